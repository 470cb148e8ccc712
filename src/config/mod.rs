//! Settings: built-in defaults < optional TOML file < environment.
//!
//! Every setting has one name. In the environment it is upper case (`MAIL_URL`); in the
//! TOML file it is the same name in lower case (`mail_url = "…"`). All values go through
//! one parser, so an invalid value is reported with the variable's name whichever layer it
//! came from, and secrets are never echoed back.
//!
//! This room holds the raw layering (the `KEYS` table, TOML and environment, the parsing
//! helpers); `settings` holds the validated [`Settings`] built from it, and `notices` the
//! brand values and the template set.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::notice::NoticeKind;
/// The signing secret lives with the signature code; named here too, beside the settings.
pub use crate::webhook::signature::WebhookSecret;

mod notices;
mod settings;
pub use notices::{BrandSettings, SAMPLE_BRAND};
pub use settings::{redact_password, Settings};

/// A settings problem, worded for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The variable (environment spelling) that is wrong.
    pub name: String,
    /// What is wrong with it; never contains the value of a secret.
    pub problem: String,
}

impl ConfigError {
    fn new(name: &str, problem: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            problem: problem.into(),
        }
    }
}

/// Every setting the service knows, with its default (`None` = no default).
const KEYS: &[(&str, Option<&str>)] = &[
    ("GIGS_WEBHOOK_SECRET", None),
    ("GIGS_API_URL", Some("https://api.gigs.com")),
    ("GIGS_PROJECT", None),
    ("GIGS_TOKEN", None),
    ("MAIL_URL", None),
    ("MAIL_TOKEN", None),
    ("DATABASE_URL", Some("sqlite://gigs-notifier.db")),
    ("LISTEN_ADDR", Some("0.0.0.0:8080")),
    ("LOG_FORMAT", Some("json")),
    ("ADMIN_TOKEN", None),
    ("BODY_LIMIT_BYTES", Some("1048576")),
    ("TIMESTAMP_TOLERANCE_SECS", Some("300")),
    ("NOTICE_FIELDS", Some("email,fullName,birthday")),
    ("NOTICE_KINDS_DISABLED", Some("")),
    ("HTTP_TIMEOUT_SECS", Some("10")),
    ("WORKER_CONCURRENCY", Some("64")),
    ("WORKER_PAUSED", Some("false")),
    ("MAIL_CONCURRENCY_PER_RECIPIENT", Some("2")),
    ("SQLITE_MAX_PAGES", Some("0")),
    ("DATABASE_STATEMENT_TIMEOUT_SECS", Some("5")),
    ("WORKER_POLL_MS", Some("1000")),
    ("LEASE_SECS", Some("30")),
    ("BACKOFF_BASE_MS", Some("1000")),
    ("BACKOFF_CAP_SECS", Some("600")),
    ("MAX_AGE_SECS", Some("259200")),
    ("RETENTION_DAYS", Some("30")),
    ("PURGE_INTERVAL_SECS", Some("3600")),
    ("AUDIT_HASH_KEY", None),
    ("AUDIT_RETENTION_DAYS", Some("1095")),
    ("MAX_CONNECTIONS", Some("512")),
    ("HEADER_READ_TIMEOUT_SECS", Some("5")),
    ("BODY_READ_TIMEOUT_SECS", Some("10")),
    ("IDLE_TIMEOUT_SECS", Some("30")),
    ("TEMPLATES_DIR", None),
    ("DEFAULT_LOCALE", Some("en")),
    ("BRAND_NAME", None),
    ("SUPPORT_URL", None),
    ("SUPPORT_EMAIL", None),
    ("SUPPORT_PHONE", None),
    ("DISPLAY_TIMEZONE", Some("UTC")),
    ("DRAIN_SECS", Some("5")),
];

/// Raw values after layering, keyed by environment name.
#[derive(Default)]
pub struct RawSettings {
    values: BTreeMap<String, String>,
}

impl RawSettings {
    /// Defaults, then the TOML file if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = Self::defaults();
        if let Some(path) = file {
            raw.merge_toml_file(path)?;
        }
        raw.merge_env(std::env::vars());
        Ok(raw)
    }

    /// Only the built-in defaults.
    pub fn defaults() -> Self {
        let mut values = BTreeMap::new();
        for (key, default) in KEYS {
            if let Some(v) = default {
                values.insert(key.to_string(), v.to_string());
            }
        }
        Self { values }
    }

    /// Set one value, as if from the environment (tests and `demo` use this).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.to_string(), value.into());
        self
    }

    fn merge_toml_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        self.merge_toml(&text).map_err(|e| {
            ConfigError::new(&e.name, format!("{} (in {})", e.problem, path.display()))
        })
    }

    /// Merge a TOML document whose keys are the lower-case setting names.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::new("--config", e.message().to_string()))?;
        for (key, value) in table {
            let name = key.to_ascii_uppercase();
            if !KEYS.iter().any(|(k, _)| *k == name) {
                return Err(ConfigError::new(&key, "unknown setting"));
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s.clone()),
                        _ => Err(ConfigError::new(&name, "list items must be strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                _ => return Err(ConfigError::new(&name, "must be a string or a number")),
            };
            self.values.insert(name, text);
        }
        Ok(())
    }

    fn merge_env(&mut self, vars: impl Iterator<Item = (String, String)>) {
        for (key, value) in vars {
            if KEYS.iter().any(|(k, _)| *k == key) {
                self.values.insert(key, value);
            }
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn required(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::new(key, "is required but not set"))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError> {
        let text = self.required(key)?;
        text.parse()
            .map_err(|_| ConfigError::new(key, format!("must be a whole number, got {text:?}")))
    }

    /// A number that must be at least 1 (a zero limit or timeout would refuse everything).
    fn positive<T: std::str::FromStr + PartialEq + From<u8>>(
        &self,
        key: &str,
    ) -> Result<T, ConfigError> {
        let n: T = self.number(key)?;
        if n == T::from(0) {
            return Err(ConfigError::new(key, "must be greater than 0"));
        }
        Ok(n)
    }

    /// `true` or `false` (TOML booleans arrive as these words).
    fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        match self.required(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ConfigError::new(
                key,
                format!("must be true or false, got {other:?}"),
            )),
        }
    }

    /// A number of days as a duration; too many to count in seconds is an error, not a wrap.
    fn days(&self, key: &str) -> Result<Duration, ConfigError> {
        const DAY: u64 = 86_400;
        self.number::<u64>(key)?
            .checked_mul(DAY)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ConfigError::new(key, format!("must be at most {} days", u64::MAX / DAY))
            })
    }

    fn url(&self, key: &str) -> Result<Url, ConfigError> {
        let text = self.required(key)?;
        parse_http_url(text).map_err(|p| ConfigError::new(key, p))
    }

    /// Settings needed to talk to a database (the `dead-letters` commands need only this).
    pub fn database_url(&self) -> Result<String, ConfigError> {
        let url = self.required("DATABASE_URL")?;
        if url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            Ok(url.to_string())
        } else {
            Err(ConfigError::new(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ))
        }
    }

    /// `AUDIT_HASH_KEY`, if set (the CLI needs it to look up addresses, like `serve`).
    pub fn audit_hash_key(&self) -> Result<Option<crate::audit::AuditKey>, ConfigError> {
        const MIN: usize = crate::audit::MIN_KEY_LEN;
        match self.get("AUDIT_HASH_KEY") {
            None => Ok(None),
            Some(k) if k.len() < MIN => Err(ConfigError::new(
                "AUDIT_HASH_KEY",
                format!("must be at least {MIN} characters (e.g. `openssl rand -hex 32`)"),
            )),
            Some(k) => Ok(Some(crate::audit::AuditKey::new(k.as_bytes()))),
        }
    }

    /// The port of `LISTEN_ADDR` (for `healthcheck`).
    pub fn listen_port(&self) -> Result<u16, ConfigError> {
        let text = self.required("LISTEN_ADDR")?;
        text.parse::<SocketAddr>().map(|a| a.port()).map_err(|_| {
            ConfigError::new(
                "LISTEN_ADDR",
                format!("must be HOST:PORT like 0.0.0.0:8080, got {text:?}"),
            )
        })
    }

    /// The log output format.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.get("LOG_FORMAT").unwrap_or("json") {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            other => Err(ConfigError::new(
                "LOG_FORMAT",
                format!("must be json or pretty, got {other:?}"),
            )),
        }
    }

    /// `NOTICE_KINDS_DISABLED`: known kind codes only. Switching off a kind a US rule
    /// requires is allowed (an operator may send it another way) but warned about.
    fn notice_kinds_disabled(&self) -> Result<Vec<NoticeKind>, ConfigError> {
        let mut kinds = Vec::new();
        for code in self
            .get("NOTICE_KINDS_DISABLED")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let kind = NoticeKind::from_code(code).ok_or_else(|| {
                let known: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.code()).collect();
                ConfigError::new(
                    "NOTICE_KINDS_DISABLED",
                    format!(
                        "unknown notice kind {code:?}; known kinds: {}",
                        known.join(", ")
                    ),
                )
            })?;
            if let Some(rule) = kind.required_by() {
                tracing::warn!(
                    kind = code,
                    rule,
                    "a notice kind that a US rule requires is switched off (NOTICE_KINDS_DISABLED);                      make sure customers are told another way"
                );
            }
            kinds.push(kind);
        }
        Ok(kinds)
    }
}

fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a valid URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("must be an http:// or https:// URL".to_string());
    }
    if url.host_str().is_none() {
        return Err("must name a host".to_string());
    }
    Ok(url)
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (default; what log collectors want).
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

#[cfg(test)]
mod tests;

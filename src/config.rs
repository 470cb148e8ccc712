//! Settings: built-in defaults < optional TOML file < environment.
//!
//! Every setting has one name. In the environment it is upper case (`MAIL_URL`); in the
//! TOML file it is the same name in lower case (`mail_url = "…"`). All values go through
//! one parser, so an invalid value is reported with the variable's name whichever layer it
//! came from, and secrets are never echoed back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::notice::NoticeKind;
use crate::store::StoreOptions;

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

    /// Validate everything `serve` needs.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let secrets = self
            .required("GIGS_WEBHOOK_SECRET")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| {
                WebhookSecret::parse(s).map_err(|p| {
                    ConfigError::new("GIGS_WEBHOOK_SECRET", format!("secret #{}: {p}", i + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(ConfigError::new(
                "GIGS_WEBHOOK_SECRET",
                "is required but not set",
            ));
        }
        let listen_addr: SocketAddr = {
            let text = self.required("LISTEN_ADDR")?;
            text.parse().map_err(|_| {
                ConfigError::new(
                    "LISTEN_ADDR",
                    format!("must be HOST:PORT like 0.0.0.0:8080, got {text:?}"),
                )
            })?
        };
        let project = self.required("GIGS_PROJECT")?.to_string();
        if !project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                "GIGS_PROJECT",
                "must contain only letters, digits, '-' and '_'",
            ));
        }
        let notice_fields: Vec<String> = self
            .required("NOTICE_FIELDS")?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let notice_kinds_disabled = self.notice_kinds_disabled()?;
        let tolerance: u64 = self.number("TIMESTAMP_TOLERANCE_SECS")?;
        let body_limit: usize = self.number("BODY_LIMIT_BYTES")?;
        if body_limit == 0 {
            return Err(ConfigError::new(
                "BODY_LIMIT_BYTES",
                "must be greater than 0",
            ));
        }
        let concurrency: usize = self.number("WORKER_CONCURRENCY")?;
        let lease_secs: u64 = self.number("LEASE_SECS")?;
        if lease_secs == 0 {
            return Err(ConfigError::new("LEASE_SECS", "must be greater than 0"));
        }
        Ok(Settings {
            webhook_secrets: secrets,
            gigs_api_url: self.url("GIGS_API_URL")?,
            gigs_project: project,
            gigs_token: SecretString::from(self.required("GIGS_TOKEN")?.to_string()),
            mail_url: self.url("MAIL_URL")?,
            mail_token: self
                .get("MAIL_TOKEN")
                .map(|t| SecretString::from(t.to_string())),
            database_url: self.database_url()?,
            listen_addr,
            admin_token: self
                .get("ADMIN_TOKEN")
                .map(|t| SecretString::from(t.to_string())),
            body_limit_bytes: body_limit,
            timestamp_tolerance: Duration::from_secs(tolerance),
            notice_fields,
            notice_kinds_disabled,
            http_timeout: Duration::from_secs(self.number("HTTP_TIMEOUT_SECS")?),
            worker_concurrency: concurrency,
            worker_paused: self.flag("WORKER_PAUSED")?,
            mail_concurrency_per_recipient: self.positive("MAIL_CONCURRENCY_PER_RECIPIENT")?,
            store: StoreOptions {
                sqlite_max_pages: match self.number::<u32>("SQLITE_MAX_PAGES")? {
                    0 => None,
                    n => Some(n),
                },
                statement_timeout: Duration::from_secs(
                    self.positive("DATABASE_STATEMENT_TIMEOUT_SECS")?,
                ),
                audit_key: self.audit_hash_key()?,
            },
            worker_poll: Duration::from_millis(self.number("WORKER_POLL_MS")?),
            lease: Duration::from_secs(lease_secs),
            backoff_base: Duration::from_millis(self.number("BACKOFF_BASE_MS")?),
            backoff_cap: Duration::from_secs(self.number("BACKOFF_CAP_SECS")?),
            max_age: Duration::from_secs(self.number("MAX_AGE_SECS")?),
            retention: self.days("RETENTION_DAYS")?,
            audit_retention: self.days("AUDIT_RETENTION_DAYS")?,
            purge_interval: Duration::from_secs(self.number("PURGE_INTERVAL_SECS")?),
            max_connections: self.positive("MAX_CONNECTIONS")?,
            header_read_timeout: Duration::from_secs(self.positive("HEADER_READ_TIMEOUT_SECS")?),
            body_read_timeout: Duration::from_secs(self.positive("BODY_READ_TIMEOUT_SECS")?),
            idle_timeout: Duration::from_secs(self.positive("IDLE_TIMEOUT_SECS")?),
        })
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

/// A Standard Webhooks signing secret: the raw HMAC key bytes.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Parse `whsec_<base64>` (the prefix is optional); the key must be 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text.strip_prefix("whsec_").unwrap_or(text);
        // Padding is optional: some tools print secrets without the trailing '='.
        const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = LENIENT
            .decode(b64)
            .map_err(|_| "is not base64 after the optional whsec_ prefix".to_string())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "must decode to 24 to 64 bytes, got {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// The HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` form (used by `demo` to hand its own secret to `replay`).
    pub fn to_whsec(&self) -> SecretString {
        SecretString::from(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        ))
    }

    /// A fresh random secret (for `demo`).
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(bytes.to_vec())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Validated settings for `serve`.
#[derive(Clone)]
pub struct Settings {
    /// Every accepted signing secret; more than one while a secret is rotated.
    pub webhook_secrets: Vec<WebhookSecret>,
    pub gigs_api_url: Url,
    pub gigs_project: String,
    pub gigs_token: SecretString,
    pub mail_url: Url,
    pub mail_token: Option<SecretString>,
    pub database_url: String,
    pub listen_addr: SocketAddr,
    /// Enables `/admin/…` when set.
    pub admin_token: Option<SecretString>,
    pub body_limit_bytes: usize,
    /// How far a `webhook-timestamp` may be from now, either way.
    pub timestamp_tolerance: Duration,
    /// `user.updated` fields whose change is worth a notice (Gigs' camelCase names).
    pub notice_fields: Vec<String>,
    /// Notice kinds switched off by the operator.
    pub notice_kinds_disabled: Vec<NoticeKind>,
    /// Per-request timeout for the Core API and the mail service.
    pub http_timeout: Duration,
    /// How many events / notices one replica works on at once (half each).
    pub worker_concurrency: usize,
    /// Accept and store deliveries but claim no work (maintenance, benchmarking bare ingest).
    pub worker_paused: bool,
    /// In-flight mail calls one recipient may hold, so one whose calls hang cannot take
    /// the notices' whole share.
    pub mail_concurrency_per_recipient: usize,
    /// How the store opens its database.
    pub store: StoreOptions,
    /// How often the worker looks for due work when nothing woke it.
    pub worker_poll: Duration,
    /// How long claimed work stays claimed without renewal (crash recovery time).
    pub lease: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Work failing for longer than this is dead-lettered.
    pub max_age: Duration,
    /// Processed events and sent notices older than this are purged.
    pub retention: Duration,
    /// Audit records finished longer ago than this are purged.
    pub audit_retention: Duration,
    pub purge_interval: Duration,
    /// Open client connections at most (further capped by the descriptor limit).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body.
    pub body_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for Settings {
    /// Secrets are redacted by their own types; the database URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("webhook_secrets", &self.webhook_secrets)
            .field("gigs_api_url", &self.gigs_api_url.as_str())
            .field("gigs_project", &self.gigs_project)
            .field("mail_url", &self.mail_url.as_str())
            .field("database_url", &redact_password(&self.database_url))
            .field("listen_addr", &self.listen_addr)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("worker_paused", &self.worker_paused)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A URL with its password (if any) replaced, for logs and `Debug`.
pub fn redact_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

impl Settings {
    /// Whether `token` is the configured admin token (constant-time).
    pub fn admin_token_matches(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        match &self.admin_token {
            Some(expected) => expected
                .expose_secret()
                .as_bytes()
                .ct_eq(token.as_bytes())
                .into(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RawSettings {
        let mut raw = RawSettings::defaults();
        raw.set(
            "GIGS_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .set("GIGS_PROJECT", "acme")
        .set("GIGS_TOKEN", "12345")
        .set("MAIL_URL", "http://127.0.0.1:9/mail");
        raw
    }

    #[test]
    fn valid_settings_load_with_defaults() {
        let s = base().into_settings().unwrap();
        assert_eq!(s.webhook_secrets.len(), 1);
        assert_eq!(s.body_limit_bytes, 1024 * 1024);
        assert_eq!(s.listen_addr.port(), 8080);
        assert_eq!(s.notice_fields, ["email", "fullName", "birthday"]);
        assert_eq!(s.max_age, Duration::from_secs(3 * 86_400));
        assert_eq!(s.max_connections, 512);
        assert_eq!(s.header_read_timeout, Duration::from_secs(5));
        assert_eq!(s.body_read_timeout, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(30));
        assert_eq!(s.audit_retention, Duration::from_secs(1095 * 86_400));
        assert!(s.store.audit_key.is_none());
        assert!(!s.worker_paused);
    }

    #[test]
    fn rotated_secrets_are_comma_separated() {
        let mut raw = base();
        raw.set(
            "GIGS_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        );
        assert_eq!(raw.into_settings().unwrap().webhook_secrets.len(), 2);
    }

    #[test]
    fn bad_settings_name_the_variable_and_hide_the_value() {
        let cases = [
            ("GIGS_WEBHOOK_SECRET", "whsec_not*base64"),
            ("GIGS_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
            ("MAIL_URL", "not a url"),
            ("GIGS_API_URL", "ftp://example.com"),
            ("LISTEN_ADDR", "8080"),
            ("LEASE_SECS", "soon"),
            ("DATABASE_URL", "mysql://x"),
            ("MAX_CONNECTIONS", "0"),
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("BODY_READ_TIMEOUT_SECS", "0"),
            ("IDLE_TIMEOUT_SECS", "0"),
            ("AUDIT_HASH_KEY", "too-short-a-secret"),
            ("AUDIT_RETENTION_DAYS", "213503982334602"),
            ("WORKER_PAUSED", "yes"),
        ];
        for (key, value) in cases {
            let mut raw = base();
            raw.set(key, value);
            let err = raw.into_settings().unwrap_err();
            assert_eq!(err.name, key, "{value}");
            if key == "GIGS_WEBHOOK_SECRET" || key == "AUDIT_HASH_KEY" {
                assert!(!err.to_string().contains(value), "secret echoed: {err}");
            }
        }
    }

    #[test]
    fn settings_too_large_to_multiply_are_refused_not_wrapped() {
        let most = u64::MAX / 86_400;
        let mut raw = base();
        raw.set("RETENTION_DAYS", most.to_string());
        let s = raw.into_settings().unwrap();
        assert_eq!(s.retention, Duration::from_secs(most * 86_400));
        for days in [most + 1, u64::MAX / 1000, u64::MAX] {
            let mut raw = base();
            raw.set("RETENTION_DAYS", days.to_string());
            let err = raw.into_settings().unwrap_err();
            assert_eq!(err.name, "RETENTION_DAYS", "{days}");
            assert!(err.problem.contains("at most"), "{err}");
        }
        // Too large for the number type at all: still named, still no panic.
        let mut raw = base();
        raw.set("RETENTION_DAYS", "184467440737095516150");
        assert_eq!(raw.into_settings().unwrap_err().name, "RETENTION_DAYS");
    }

    #[test]
    fn missing_required_setting_is_reported() {
        let mut raw = base();
        raw.set("GIGS_TOKEN", "");
        let err = raw.into_settings().unwrap_err();
        assert_eq!(err.to_string(), "GIGS_TOKEN: is required but not set");
    }

    #[test]
    fn toml_keys_are_lower_case_names_and_env_wins() {
        let mut raw = base();
        raw.merge_toml("lease_secs = 7\nmail_url = \"http://file.example/mail\"\n")
            .unwrap();
        raw.merge_env(
            [(
                "MAIL_URL".to_string(),
                "http://env.example/mail".to_string(),
            )]
            .into_iter(),
        );
        let s = raw.into_settings().unwrap();
        assert_eq!(s.lease, Duration::from_secs(7));
        assert_eq!(s.mail_url.as_str(), "http://env.example/mail");
    }

    #[test]
    fn example_config_documents_every_key_and_loads() {
        let text = include_str!("../config/gigs-notifier.example.toml");
        for (key, _) in KEYS {
            assert!(
                text.contains(&key.to_ascii_lowercase()),
                "{key} is not documented"
            );
        }
        let mut raw = RawSettings::defaults();
        raw.merge_toml(text).unwrap();
        raw.into_settings().unwrap();
    }

    #[test]
    fn unknown_toml_key_is_rejected() {
        let err = base().merge_toml("mail_ulr = \"x\"").unwrap_err();
        assert_eq!(err.name, "mail_ulr");
    }

    #[test]
    fn database_password_does_not_show_in_debug() {
        let mut raw = base();
        raw.set("DATABASE_URL", "postgres://app:hunter2secret@db:5432/gigs");
        let s = raw.into_settings().unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2secret"), "{dbg}");
        assert!(dbg.contains("db:5432"), "{dbg}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = base().into_settings().unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("MfKQ9r8"));
        assert!(!dbg.contains("12345"));
    }
}

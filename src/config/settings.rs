//! The validated settings `serve` runs with: checked once, at start-up, from the layered
//! raw values; their `Debug` shows no secret and no database password.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{ConfigError, RawSettings, WebhookSecret};
use crate::notice::{NoticeKind, NoticeSettings};
use crate::store::StoreOptions;

impl RawSettings {
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
            notices: self.notice_settings()?,
            drain: Duration::from_secs(self.number("DRAIN_SECS")?),
        })
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
    /// Templates (checked), brand values, display time zone.
    pub notices: NoticeSettings,
    /// After SIGTERM, how long `/readyz` fails while requests are still served, so a load
    /// balancer stops sending before the listener closes (0: stop at once).
    pub drain: Duration,
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
            .field("notices", &self.notices)
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

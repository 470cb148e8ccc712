//! Test harness: the real app on port 0 with a fresh database, a fake Core API and a fake
//! mail service (wiremock). SQLite always; PostgreSQL when `TEST_DATABASE_URL` is set (each
//! test creates its own database and drops it afterwards).
#![allow(dead_code)]

mod fakes;
pub mod faults;
pub mod haproxy;
pub mod people;
pub mod process;

#[allow(unused_imports)] // not every test file uses the fakes
pub use fakes::*;

use std::time::{Duration, Instant};

use gigs_notifier::config::{RawSettings, WebhookSecret};
use gigs_notifier::store::Store;
use gigs_notifier::Application;
use serde_json::Value;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

pub const PROJECT: &str = "acme";
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const SECOND_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const OWNER_EMAIL: &str = "owner@example.org";
/// The phone number of every subscription the fake Core API knows; notices may show "0147".
pub const OWNER_PHONE: &str = "+15555550147";
/// The support address every test service names in its notices.
pub const SUPPORT_EMAIL: &str = "help@acme.example";
/// The project's name, as the fake Core API answers it (the brand when BRAND_NAME is unset).
pub const PROJECT_NAME: &str = "Acme Mobile";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("TEST_DATABASE_URL")
                    .expect("TEST_DATABASE_URL is set for PostgreSQL tests");
                let name = format!("gn_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.ok();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    _dir: None,
                    pg: Some((admin, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside async; a small runtime on its own thread does the cleanup.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub webhook_url: String,
    pub secret: WebhookSecret,
    pub gigs: MockServer,
    pub mail: MockServer,
    pub store: Store,
    pub client: reqwest::Client,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: Option<TestDb>,
}

/// Settings every test app uses: fast retries and polling so tests finish quickly.
pub fn test_settings(db_url: &str, gigs: &str, mail: &str) -> RawSettings {
    let mut raw = RawSettings::defaults();
    raw.set("GIGS_WEBHOOK_SECRET", format!("{SECRET},{SECOND_SECRET}"))
        .set("GIGS_API_URL", gigs)
        .set("GIGS_PROJECT", PROJECT)
        .set("GIGS_TOKEN", "test-token")
        .set("MAIL_URL", format!("{mail}/mail/send"))
        .set("DATABASE_URL", db_url)
        .set("LISTEN_ADDR", "127.0.0.1:0")
        .set("BACKOFF_BASE_MS", "20")
        .set("BACKOFF_CAP_SECS", "1")
        .set("WORKER_POLL_MS", "50")
        .set("HTTP_TIMEOUT_SECS", "2")
        .set("LEASE_SECS", "2")
        .set("SUPPORT_EMAIL", SUPPORT_EMAIL);
    raw
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Start an app; `tweak` may change settings before it starts.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut RawSettings)) -> TestApp {
    let db = TestDb::new(backend).await;
    let gigs = MockServer::start().await;
    let mail = MockServer::start().await;
    let mut raw = test_settings(&db.url, &gigs.uri(), &mail.uri());
    tweak(&mut raw);
    let mut app = start(raw, gigs, mail).await;
    app.db = Some(db);
    app
}

/// Start an app with the given settings and fakes.
pub async fn start(raw: RawSettings, gigs: MockServer, mail: MockServer) -> TestApp {
    let settings = raw.into_settings().expect("valid test settings");
    let app = Application::build(settings).await.expect("app builds");
    let port = app.port();
    let store = app.store();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    let base = format!("http://127.0.0.1:{port}");
    TestApp {
        webhook_url: format!("{base}/webhooks/gigs"),
        base,
        secret: WebhookSecret::parse(SECRET).unwrap(),
        gigs,
        mail,
        store,
        client: reqwest::Client::new(),
        stop,
        handle: Some(handle),
        db: None,
    }
}

impl TestApp {
    /// Deliver a body signed with the primary secret, as Gigs would.
    pub async fn deliver(&self, body: &str) -> (u16, Value) {
        self.deliver_with(body, &self.secret).await
    }

    pub async fn deliver_with(&self, body: &str, secret: &WebhookSecret) -> (u16, Value) {
        let a = gigs_notifier::replay::deliver(
            &self.client,
            &self.webhook_url,
            secret,
            body.as_bytes(),
        )
        .await
        .expect("request sent");
        (
            a.status,
            serde_json::from_str(&a.body).unwrap_or(Value::Null),
        )
    }

    /// GET a path of the app.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent")
    }

    /// POST with exactly these headers.
    pub async fn post_raw(&self, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut req = self.client.post(&self.webhook_url).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Wait until no work is pending (or fail after 15 s).
    pub async fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.store.pending().await.unwrap() == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "work still pending after 15 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Mail requests received so far, as (idempotency key, body).
    pub async fn mails(&self) -> Vec<(String, Value)> {
        self.mail
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .map(|r| {
                let key = r
                    .headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                (key, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            })
            .collect()
    }

    /// Rows per (queue, state).
    pub async fn count(&self, queue: &str, state: &str) -> i64 {
        self.store
            .depth()
            .await
            .unwrap()
            .into_iter()
            .filter(|(q, s, _)| q.name() == queue && s == state)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Stop gracefully and wait; returns the fakes and database for a restart.
    pub async fn stop(mut self) -> (MockServer, MockServer, Option<TestDb>) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        (self.gigs, self.mail, self.db.take())
    }
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A fixture with a fresh event id, so tests can reuse it.
pub fn with_id(body: &str, id: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["id"] = Value::String(id.to_string());
    v.to_string()
}

/// Personal values in an event: strings under keys that hold personal data.
/// JSON log lines without their timestamps, for scanning: the logger writes those, and they
/// can hold any six digits (a PIN's among them) as their microseconds.
pub fn without_timestamps(log: &str) -> String {
    log.lines()
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(mut fields)) => {
                    fields.remove("timestamp");
                    serde_json::Value::Object(fields).to_string()
                }
                _ => line.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn personal_values(body: &str) -> Vec<String> {
    const KEYS: &[&str] = &[
        "email",
        "fullName",
        "firstName",
        "lastName",
        "birthday",
        "phoneNumber",
        "accountNumber",
        "accountPin",
        "iccid",
        "line1",
        "line2",
        "city",
        "postalCode",
        "activationCode",
        "qrCodeUrl",
    ];
    fn walk(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, Some(k), out)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, key, out)),
            Value::String(s) if key.is_some_and(|k| KEYS.contains(&k)) => out.push(s.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::from_str(body).unwrap(), None, &mut out);
    out.sort();
    out.dedup();
    out
}

/// A signature header set for `body` at `ts`, with `prefix` `webhook` or `svix`.
pub fn signed_headers(
    prefix: &str,
    secret: &WebhookSecret,
    id: &str,
    ts: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let sig = gigs_notifier::webhook::sign(secret, id, ts, body);
    let (i, t, s) = if prefix == "svix" {
        ("svix-id", "svix-timestamp", "svix-signature")
    } else {
        ("webhook-id", "webhook-timestamp", "webhook-signature")
    };
    vec![
        (i, id.to_string()),
        (t, ts.to_string()),
        (s, sig),
        ("content-type", "application/json".to_string()),
    ]
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Declare an async test body `fn(Backend)` once; get a SQLite test and, when the
/// PostgreSQL suite is compiled in (`TEST_DATABASE_URL` set at build time), a PostgreSQL one.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[cfg(pg_tests)]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

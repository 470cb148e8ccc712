//! Redaction, as properties: random personal values (unicode names, email addresses, postal
//! addresses, phone numbers, ICCIDs, account numbers and PINs, birthdays) are put into every
//! personal field of each handled fixture and into the fake Core API's answers, and must
//! never reach a mail's subject or content, the service's logs, or the `Debug` output of
//! the store's rows and the settings.
//!
//! Each case is told in one of the bundled languages (the users' `preferredLocale` cycles
//! through English, Spanish and German), so every bundled template set is exercised.
//!
//! Every generated value is at least six characters (digits: at least ten) of a shape that
//! occurs nowhere else, so finding one cannot be an accident. None needs escaping in JSON,
//! so a leak into a JSON log line shows verbatim.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::people::*;
use common::process::{base_env, serve, Served};
use common::*;
use gigs_notifier::config::{RawSettings, WebhookSecret};
use gigs_notifier::store::{ClaimedEvent, ClaimedNotice, NewEvent, NewNotice};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use sqlx::Connection;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every handled fixture, with the mails it makes (the email change mails both the new and
/// the previous address; a change of locale only mails nobody).
const FIXTURES: &[(&str, usize)] = &[
    ("portOutCredentials.issued.json", 1),
    ("subscription.activated.json", 1),
    ("subscription.activated.es.json", 1),
    ("subscription.canceled.json", 1),
    ("subscription.created.json", 1),
    ("subscription.ended.json", 1),
    ("subscription.renewed.json", 1),
    ("subscription.resumed.json", 1),
    ("subscriptionChange.applied.json", 1),
    ("subscriptionChange.applied.sim.json", 1),
    ("subscriptionChange.applied.both.json", 1),
    ("subscriptionChange.applied.neither.json", 0),
    ("subscriptionChange.created.json", 1),
    ("subscriptionChange.failed.json", 1),
    ("subscriptionChange.canceled.json", 1),
    ("portOut.created.json", 1),
    ("portOut.created.cancelOnly.json", 1),
    ("portOut.completed.json", 1),
    ("portOut.expired.json", 1),
    ("portOut.failed.json", 1),
    ("user.address.created.json", 1),
    ("user.address.deleted.json", 1),
    ("user.updated.email.json", 1),
    ("user.updated.json", 1),
    ("user.updated.locale.json", 0),
];

#[test]
fn every_handled_fixture_gets_personal_values() {
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") && !name.starts_with("unhandled") {
            assert!(
                FIXTURES.iter().any(|(f, _)| *f == name),
                "add {name} to FIXTURES"
            );
        }
    }
}

/// One `serve` process with its fakes, shared by every case.
struct Live {
    served: Served,
    url: String,
    db: TestDb,
    gigs: MockServer,
    mail: MockServer,
    client: reqwest::Client,
    secret: WebhookSecret,
}

impl Drop for Live {
    fn drop(&mut self) {
        if matches!(self.served.child.try_wait(), Ok(None)) {
            self.served.kill9();
        }
    }
}

impl Live {
    async fn start() -> Self {
        let db = TestDb::new(Backend::Sqlite).await;
        let (gigs, mail) = (MockServer::start().await, MockServer::start().await);
        let mut env = base_env(&db.url, &gigs.uri(), &mail.uri());
        env.retain(|(k, _)| k != "RUST_LOG");
        env.push(("RUST_LOG".into(), "debug".into()));
        let served = serve(&env);
        Self {
            url: format!("http://127.0.0.1:{}/webhooks/gigs", served.port),
            served,
            db,
            gigs,
            mail,
            client: reqwest::Client::new(),
            secret: WebhookSecret::parse(SECRET).unwrap(),
        }
    }

    /// Fresh fakes whose Core API knows `p` as the owner of every subscription.
    async fn reset_fakes(&self, p: &Person, locale: &str) {
        self.gigs.reset().await;
        self.mail.reset().await;
        mail_accepts(&self.mail).await;
        gigs_knows_the_project(&self.gigs, &["fr-FR", "en-US"]).await;
        let owner = serde_json::json!({"object": "user", "id": "usr_owner",
            "email": p.get("owner.email"), "fullName": p.get("owner.fullName"),
            "preferredLocale": locale});
        Mock::given(method("GET"))
            .and(path_regex(format!(
                "^/projects/{PROJECT}/subscriptions/sub_[A-Za-z0-9]+$"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "object": "subscription", "id": "sub_x", "status": "active",
                "phoneNumber": p.get("phoneNumber"), "user": owner.clone()
            })))
            .mount(&self.gigs)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(format!(
                "^/projects/{PROJECT}/users/usr_[A-Za-z0-9]+$"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(owner))
            .mount(&self.gigs)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/projects/{PROJECT}/subscriptions")))
            .respond_with(ResponseTemplate::new(200).set_body_json(list_body(1)))
            .mount(&self.gigs)
            .await;
    }

    /// Rows with work left, read from the service's database.
    async fn pending(&self) -> i64 {
        let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM events WHERE state = 'pending') \
             + (SELECT COUNT(*) FROM notices WHERE state = 'pending')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
        n
    }

    /// Deliver every fixture with `p`'s values; check the mails and the new log lines.
    async fn case(&self, p: &Person, case: usize) -> Result<(), TestCaseError> {
        // Arrange
        let (locale, greeting) = LOCALES[case % LOCALES.len()];
        self.reset_fakes(p, locale).await;
        let mut expected = 0;
        let mut bodies = Vec::new();
        for (i, (name, mails)) in FIXTURES.iter().enumerate() {
            let body = personalise(
                &with_id(&fixture(name), &format!("evt_rp{case:04}f{i:02}")),
                p,
            );
            let body = in_locale(&body, locale);
            for value in personal_values(&body) {
                prop_assert!(
                    p.values().contains(&value.as_str()),
                    "{name}: {value:?} kept"
                );
            }
            bodies.push(body);
            expected += mails;
        }

        // Act
        for body in &bodies {
            let answer = gigs_notifier::replay::deliver(
                &self.client,
                &self.url,
                &self.secret,
                body.as_bytes(),
            )
            .await
            .unwrap();
            prop_assert_eq!(answer.status, 202, "{}", answer.body);
        }
        let started = Instant::now();
        while self.pending().await > 0 {
            prop_assert!(
                started.elapsed() < Duration::from_secs(15),
                "work still pending"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        // Assert: the mails …
        let requests = self.mail.received_requests().await.unwrap_or_default();
        prop_assert_eq!(requests.len(), expected);
        for request in requests {
            let mut mail: Value = serde_json::from_slice(&request.body).unwrap();
            let to = mail["to"].take();
            prop_assert!(
                ["email", "previousData.email", "owner.email"]
                    .iter()
                    .any(|f| to == p.get(f)),
                "mail to someone else: {to}"
            );
            let content = mail["content"].as_str().unwrap_or_default();
            prop_assert!(
                content.starts_with(greeting),
                "not in {}: {}",
                locale,
                content
            );
            let headers = request.headers.values().filter_map(|v| v.to_str().ok());
            let text = format!("{mail} {}", headers.collect::<Vec<_>>().join(" "));
            if let Some(value) = p.found_in(&text) {
                return Err(leak("a mail", value, &text));
            }
        }
        // … and the log so far.
        for line in self.served.log.lock().unwrap().iter() {
            if let Some(value) = p.found_in(line) {
                return Err(leak("the log", value, line));
            }
        }
        Ok(())
    }
}

#[test]
fn random_personal_values_never_reach_a_mail_or_the_logs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut live = rt.block_on(Live::start());
    let mut runner = TestRunner::new(Config {
        cases: 24,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = AtomicUsize::new(0);
    let people = Mutex::new(Vec::new());

    let result = runner.run(&person(), |p| {
        people.lock().unwrap().push(p.clone());
        let case = cases.fetch_add(1, Ordering::SeqCst);
        rt.block_on(live.case(&p, case))
    });

    // Lines logged after their case was checked: the whole log, once the process is gone.
    live.served.terminate();
    if let Err(e) = result {
        panic!("{e}");
    }
    let log = live.served.log.lock().unwrap().join("\n");
    assert!(log.lines().count() > 24 * 10, "expected a real log:\n{log}");
    // Without the logger's timestamps, whose microseconds can be any digits.
    let scanned = without_timestamps(&log);
    for p in people.lock().unwrap().iter() {
        let leaked = p.found_in(&scanned);
        assert!(leaked.is_none(), "{leaked:?} logged:\n{log}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn debug_of_store_rows_built_from_personal_data_shows_none_of_it(p in person()) {
        for (name, _) in FIXTURES {
            // Arrange
            let payload = personalise(&fixture(name), &p);
            let event_type = serde_json::from_str::<Value>(&payload).unwrap()["type"]
                .as_str().unwrap().to_string();
            let rows = [
                format!("{:?}", NewEvent {
                    id: "evt_1".into(), event_type: event_type.clone(),
                    payload: payload.clone(), received_at: 1,
                }),
                format!("{:?}", ClaimedEvent {
                    id: "evt_1".into(), event_type, payload,
                    attempts: 1, received_at: 1, attempts_since: 1,
                }),
                format!("{:?}", NewNotice {
                    id: "ntc_1".into(), kind: "account_information_changed",
                    event_type: "com.gigs.user.updated".into(),
                    subscription_id: None, user_id: Some("usr_1".into()),
                    recipient: p.get("email").into(),
                    subject: "Your account information changed".into(),
                    content: "Your name changed.".into(),
                    html: Some("<p>Your name changed.</p>".into()),
                }),
                format!("{:?}", ClaimedNotice {
                    id: "ntc_1".into(), event_id: "evt_1".into(),
                    kind: "email_address_replaced".into(),
                    recipient: p.get("previousData.email").into(),
                    subject: "Your email address was replaced".into(),
                    content: "The email address on your account changed.".into(),
                    html: None,
                    attempts: 1, created_at: 1, event_received_at: 1, attempts_since: 1,
                }),
            ];

            // Act / Assert
            for row in &rows {
                prop_assert!(row.contains("evt_1") || row.contains("ntc_1"), "{row}");
                if let Some(value) = p.found_in(row) {
                    return Err(leak("a row's Debug", value, row));
                }
            }
        }
    }

    #[test]
    fn debug_of_settings_shows_no_database_password_token_or_secret(
        password in "[A-Za-z0-9._~-]{12,24}",
        tokens in ("[A-Za-z0-9]{16,32}", "[A-Za-z0-9]{16,32}", "[A-Za-z0-9]{16,32}"),
        key in proptest::collection::vec(any::<u8>(), 24..=64),
    ) {
        // Arrange
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.encode(&key);
        let mut raw = RawSettings::defaults();
        raw.set("SUPPORT_EMAIL", SUPPORT_EMAIL)
            .set("GIGS_WEBHOOK_SECRET", format!("whsec_{secret}"))
            .set("GIGS_PROJECT", PROJECT)
            .set("GIGS_TOKEN", tokens.0.clone())
            .set("MAIL_TOKEN", tokens.1.clone())
            .set("ADMIN_TOKEN", tokens.2.clone())
            .set("MAIL_URL", "https://mail.example.test/send")
            .set("DATABASE_URL", format!("postgres://app:{password}@db.internal:5432/gigs"));
        let settings = raw.into_settings().unwrap();

        // Act
        let debug = format!("{settings:?}");

        // Assert
        prop_assert!(debug.contains("db.internal:5432"), "{debug}");
        for hidden in [&password, &tokens.0, &tokens.1, &tokens.2, &secret] {
            prop_assert!(!debug.contains(hidden.as_str()), "{hidden:?} shows: {debug}");
        }
    }
}

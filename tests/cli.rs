//! The real binary: `serve` killed with SIGKILL, bad settings, `replay`, `dead-letters`, `demo`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::*;
use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_loses_nothing_after_restart() {
    let db = TestDb::new(Backend::Sqlite).await;
    let gigs = MockServer::start().await;
    let mail = MockServer::start().await;
    gigs_knows_everyone(&gigs).await;
    // First life: the mail service hangs, so notices are claimed and in flight at the kill.
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(30)))
        .mount(&mail)
        .await;
    let env = base_env(&db.url, &gigs.uri(), &mail.uri());
    let mut first = serve(&env);
    let url = format!("http://127.0.0.1:{}/webhooks/gigs", first.port);
    let secret = gigs_notifier::config::WebhookSecret::parse(SECRET).unwrap();
    let client = reqwest::Client::new();
    let names = [
        "subscription.created.json",
        "subscription.renewed.json",
        "portOutCredentials.issued.json",
        "subscription.ended.json",
    ];
    let mut acked = 0;
    for i in 0..20 {
        let body = with_id(&fixture(names[i % names.len()]), &format!("evt_kill{i}"));
        let a = gigs_notifier::replay::deliver(&client, &url, &secret, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 202, "{}", a.body);
        acked += 1;
    }
    wait_for("mail attempts in flight", async || {
        !mail.received_requests().await.unwrap().is_empty()
    })
    .await;

    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    // Second life: same database, the mail service answers at once.
    mail.reset().await;
    mail_accepts(&mail).await;
    let mut second = serve(&env);
    wait_for("every notice", async || {
        distinct_keys(&mail).await.len() == acked
    })
    .await;
    second.child.kill().unwrap();
    second.child.wait().unwrap();

    assert_eq!(distinct_keys(&mail).await.len(), 20);
    let log = second.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("jerry@example.com") && !log.contains(OWNER_EMAIL),
        "personal data in logs"
    );
}

fn run_with(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .expect("binary runs")
}

#[test]
fn bad_settings_stop_serve_with_the_variable_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let good = base_env(&db, "http://127.0.0.1:9", "http://127.0.0.1:9");
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        (
            "GIGS_WEBHOOK_SECRET",
            None,
            "GIGS_WEBHOOK_SECRET: is required but not set",
        ),
        (
            "GIGS_WEBHOOK_SECRET",
            Some("whsec_%%%notbase64"),
            "GIGS_WEBHOOK_SECRET: secret #1: is not base64",
        ),
        (
            "GIGS_WEBHOOK_SECRET",
            Some("whsec_c2hvcnQ="),
            "GIGS_WEBHOOK_SECRET: secret #1: must decode to 24 to 64 bytes",
        ),
        (
            "MAIL_URL",
            Some("mail.example.com/send"),
            "MAIL_URL: is not a valid URL",
        ),
        (
            "GIGS_API_URL",
            Some("ftp://api.gigs.com"),
            "GIGS_API_URL: must be an http:// or https:// URL",
        ),
        ("GIGS_TOKEN", None, "GIGS_TOKEN: is required but not set"),
        (
            "DATABASE_URL",
            Some("postgres://postgres@127.0.0.1:1/nowhere"),
            "DATABASE_URL: cannot open the database",
        ),
        (
            "LEASE_SECS",
            Some("soon"),
            "LEASE_SECS: must be a whole number",
        ),
    ];
    for (key, value, expected) in cases {
        let mut env: Vec<_> = good.iter().filter(|(k, _)| k != key).cloned().collect();
        if let Some(v) = value {
            env.push((key.to_string(), v.to_string()));
        }
        let out = run_with(&env, &["serve"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{key}: expected {expected:?} in {stderr:?}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        if let Some(v) = value.filter(|_| key == "GIGS_WEBHOOK_SECRET") {
            assert!(!stderr.contains(v), "secret echoed: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_signs_fixtures_and_prints_each_answer() {
    let app = spawn_app(Backend::Sqlite).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let fixtures = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));

    let out = tokio::task::spawn_blocking({
        let url = app.webhook_url.clone();
        move || {
            Command::new(BIN)
                .args([
                    "replay",
                    "--url",
                    &url,
                    "--secret",
                    SECRET,
                    &fixtures,
                    &format!("{fixtures}/bad/not-json.json"),
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    app.wait_idle().await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("subscription.created.json -> 202"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unhandled.sim.activated.json -> 200"),
        "{stdout}"
    );
    assert!(stdout.contains("not-json.json -> 400"), "{stdout}");
    assert!(
        stdout.contains("replayed 27 file(s): 26 2xx, 1 4xx, 0 5xx, 0 failed"),
        "{stdout}"
    );
    // Every handled fixture (all but the unhandled one) was stored and processed.
    assert_eq!(app.count("events", "done").await, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_cli_lists_shows_masked_and_retries() {
    let app = spawn_app(Backend::Sqlite).await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 400, 1, 1).await;
    mail_accepts(&app.mail).await;
    app.deliver(&fixture("subscription.created.json")).await;
    app.wait_idle().await;
    let db_url = app.db.as_ref().unwrap().url.clone();
    let env = vec![("DATABASE_URL".to_string(), db_url)];

    let list = run_with(&env, &["dead-letters", "list"]);
    let list_out = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success(), "{list_out}");
    assert!(list_out.contains("mail service answered 400"), "{list_out}");
    assert!(list_out.contains("subscription_created"), "{list_out}");
    assert!(list_out.contains("1 dead letter(s)"), "{list_out}");
    let id = app.store.dead_letters().await.unwrap()[0].id.clone();

    let show = run_with(&env, &["dead-letters", "show", &id]);
    let show_out = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(show.status.success());
    assert!(
        show_out.contains("evt_0SNlurA049MEWV5gNTcQ5A07h3Ol"),
        "{show_out}"
    );
    for value in personal_values(&fixture("subscription.created.json")) {
        assert!(!show_out.contains(&value), "{value} shown: {show_out}");
    }

    let retry = run_with(&env, &["dead-letters", "retry", "--all"]);
    let retry_out = String::from_utf8_lossy(&retry.stdout).to_string();
    assert!(retry.status.success());
    assert!(
        retry_out.contains("requeued 1 of 1 dead letter(s)"),
        "{retry_out}"
    );
    app.wait_idle().await;
    assert_eq!(app.count("notices", "sent").await, 1);
    let missing = run_with(&env, &["dead-letters", "retry", "ntc_nope"]);
    assert_eq!(missing.status.code(), Some(1));

    // A dead letter an operator decides to drop.
    app.deliver(&with_id(
        &fixture("subscription.renewed.json"),
        "evt_to_drop",
    ))
    .await;
    app.wait_idle().await; // delivered: not dead, so purge refuses it
    assert_eq!(
        run_with(&env, &["dead-letters", "purge", "evt_to_drop"])
            .status
            .code(),
        Some(1)
    );
    let pool = sqlx::AnyPool::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET state = 'dead' WHERE id = 'evt_to_drop'")
        .execute(&pool)
        .await
        .unwrap();
    let purge = run_with(&env, &["dead-letters", "purge", "evt_to_drop"]);
    assert!(
        purge.status.success(),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
    assert!(app
        .store
        .event_payload("evt_to_drop")
        .await
        .unwrap()
        .is_none());
    pool.close().await;
}

#[test]
fn demo_shows_a_notice_for_every_handled_type() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in gigs_notifier::event::HandledType::ALL {
        let short = t.type_name().trim_start_matches("com.gigs.");
        let row = stdout
            .lines()
            .find(|l| l.starts_with(short) && l.contains("202 accepted"))
            .unwrap_or_else(|| panic!("no row for {short}: {stdout}"));
        assert!(!row.contains("(no notice)"), "{row}");
    }
    assert!(
        stdout.contains("every handled event produced its notice"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("jerry@example.com") && !stdout.contains("maria.rodriguez@"),
        "demo prints addresses masked"
    );
    // Every mail of every kind in full, and one in Spanish for the es-US user.
    let shown = stdout
        .lines()
        .filter(|l| l.starts_with("  subject:"))
        .count();
    assert!(
        shown >= gigs_notifier::notice::NoticeKind::ALL.len(),
        "{stdout}"
    );
    assert!(
        stdout.contains("  subject:  Su suscripción ya está activa")
            && stdout.contains("  | Hola:"),
        "{stdout}"
    );
    assert!(stdout.contains("  | The Demo Mobile team"), "{stdout}");
    assert!(!stdout.contains("Rodríguez"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_ids_and_never_personal_values_or_secrets() {
    let db = TestDb::new(Backend::Sqlite).await;
    let gigs = MockServer::start().await;
    let mail = MockServer::start().await;
    gigs_knows_everyone(&gigs).await;
    // Two failures first, so retry and error paths log too.
    mail_answers_first(&mail, 503, 2, 1).await;
    mail_accepts(&mail).await;
    let mut env = base_env(&db.url, &gigs.uri(), &mail.uri());
    env.retain(|(k, _)| k != "RUST_LOG");
    env.push(("RUST_LOG".into(), "debug".into()));
    env.push(("MAIL_TOKEN".into(), "mail-token-do-not-log".into()));
    env.retain(|(k, _)| k != "GIGS_TOKEN");
    env.push(("GIGS_TOKEN".into(), "gigs-token-do-not-log".into()));
    let mut served = serve(&env);
    let url = format!("http://127.0.0.1:{}/webhooks/gigs", served.port);
    let secret = gigs_notifier::config::WebhookSecret::parse(SECRET).unwrap();
    let client = reqwest::Client::new();
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let files =
        gigs_notifier::replay::expand(&[dir.clone().into(), format!("{dir}/bad").into()]).unwrap();
    let mut personal = vec![OWNER_EMAIL.to_string(), "Owner Person".to_string()];
    for f in &files {
        let body = std::fs::read_to_string(f).unwrap();
        if body.trim_start().starts_with('{')
            && serde_json::from_str::<serde_json::Value>(&body).is_ok()
        {
            personal.extend(personal_values(&body));
        }
        gigs_notifier::replay::deliver(&client, &url, &secret, body.as_bytes())
            .await
            .unwrap();
    }
    // A forged one too.
    let wrong = gigs_notifier::config::WebhookSecret::parse(SECOND_SECRET).unwrap();
    gigs_notifier::replay::deliver(
        &client,
        &url,
        &wrong,
        fixture("user.updated.json").as_bytes(),
    )
    .await
    .unwrap();
    wait_for("all notices", async || {
        distinct_keys(&mail).await.len() == 23
    })
    .await;
    // SIGTERM: graceful shutdown logs too.
    served.terminate();
    served.child.wait().unwrap();

    let log = served.log.lock().unwrap().join("\n");
    assert!(log.lines().count() > 50, "expected a real log:\n{log}");
    let log = without_timestamps(&log);
    personal.sort();
    personal.dedup();
    for value in &personal {
        assert!(
            !log.contains(value.as_str()),
            "personal value {value:?} logged: {}",
            log.lines()
                .find(|l| l.contains(value.as_str()))
                .unwrap_or_default()
        );
    }
    for secret in [
        SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "mail-token-do-not-log",
        "gigs-token-do-not-log",
    ] {
        assert!(!log.contains(secret), "secret logged");
    }
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(log.contains("\"request_id\""), "request ids are logged");
    assert!(
        log.contains("\"event_id\":\"evt_0TPocIssued0000000000000001\""),
        "event ids are logged"
    );
    assert!(log.contains("shutting down"), "graceful shutdown is logged");
}

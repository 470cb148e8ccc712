//! A signed event is never refused for its `data`: once the signature and the envelope
//! (`id`, `type`) are valid, it is stored and acknowledged; what the worker cannot read goes
//! to the dead letters with the reason, and `dead-letters retry` sends it once it is fixed.
//! So does an event whose result the store refuses (a bug of ours): it is not done again
//! every time its lease runs out.

mod common;

use common::process::BIN;
use common::*;
use serde_json::Value;
use sqlx::Connection;

/// (fixture, words the dead-letter reason must hold, how to break the fixture's data).
type Case = (&'static str, &'static str, fn(&mut Value));

/// A broken copy of a fixture (same id) for each handled type.
fn broken_cases() -> Vec<Case> {
    fn no_subscription(v: &mut Value) {
        v["data"].as_object_mut().unwrap().remove("subscription");
    }
    fn no_user_id(v: &mut Value) {
        v["data"].as_object_mut().unwrap().remove("id");
    }
    fn no_subscription_id(v: &mut Value) {
        v["data"].as_object_mut().unwrap().remove("id");
    }
    fn numeric_email(v: &mut Value) {
        v["data"]["user"]["email"] = Value::from(12345);
    }
    fn previous_data_array(v: &mut Value) {
        v["previousData"] = serde_json::json!(["fullName"]);
    }
    fn numeric_time(v: &mut Value) {
        v["time"] = Value::from(1_700_000_000);
    }
    fn subscription_as_number(v: &mut Value) {
        v["data"]["subscription"] = Value::from(42);
    }
    fn data_not_object(v: &mut Value) {
        v["data"] = Value::from("sub_0SNlurA049MEWV2gSfSxi00xlPIi");
    }
    vec![
        (
            "portOutCredentials.issued.json",
            "missing field `subscription`",
            no_subscription,
        ),
        ("user.updated.json", "missing field `id`", no_user_id),
        (
            "user.updated.email.json",
            "previousData must be an object",
            previous_data_array,
        ),
        (
            "subscriptionChange.applied.json",
            "subscription must be",
            subscription_as_number,
        ),
        ("subscription.created.json", "user must be", numeric_email),
        (
            "subscription.activated.json",
            "missing field `id`",
            no_subscription_id,
        ),
        (
            "subscription.renewed.json",
            "time is not an RFC 3339 timestamp",
            numeric_time,
        ),
        (
            "subscription.canceled.json",
            "missing field `id`",
            no_subscription_id,
        ),
        (
            "subscription.resumed.json",
            "data must be an object",
            data_not_object,
        ),
        (
            "subscription.ended.json",
            "missing field `id`",
            no_subscription_id,
        ),
    ]
}

async fn unreadable_data_is_stored_dead_lettered_and_retried_once_fixed(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let cases = broken_cases();

    let mut ids = Vec::new();
    for (name, _, breaks) in &cases {
        let good = fixture(name);
        let mut v: Value = serde_json::from_str(&good).unwrap();
        breaks(&mut v);
        let (status, answer) = app.deliver(&v.to_string()).await;
        assert_eq!(status, 202, "{name}: {answer}");
        assert_eq!(answer["status"], "accepted", "{name}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    app.wait_idle().await;

    // Every one is stored and dead, with a reason that names the problem but no value.
    let dead = app.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), cases.len(), "{dead:?}");
    for ((name, reason, _), id) in cases.iter().zip(&ids) {
        let d = dead.iter().find(|d| &d.id == id).expect("dead-lettered");
        let why = d.last_error.as_deref().unwrap_or_default();
        assert!(
            why.contains("cannot be decoded") && why.contains(reason),
            "{name}: {why}"
        );
        for value in personal_values(&fixture(name)) {
            assert!(
                !why.contains(&value),
                "{name}: reason quotes {value}: {why}"
            );
        }
    }
    assert!(!why_has_value(&dead, "12345"));
    assert!(app.mails().await.is_empty());

    // An operator fixes the stored data (or upgrades), then retries with the CLI.
    let db_url = app.db.as_ref().unwrap().url.clone();
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&db_url).await.unwrap();
    for ((name, _, _), id) in cases.iter().zip(&ids) {
        sqlx::query("UPDATE events SET payload = $1 WHERE id = $2")
            .bind(fixture(name))
            .bind(id)
            .execute(&mut db)
            .await
            .unwrap();
    }
    db.close().await.ok();
    let retry = std::process::Command::new(BIN)
        .args(["dead-letters", "retry", "--all"])
        .env_clear()
        .env("DATABASE_URL", &db_url)
        .output()
        .expect("binary runs");
    let out = String::from_utf8_lossy(&retry.stdout);
    assert!(retry.status.success(), "{out}");
    assert!(
        out.contains(&format!("requeued {0} of {0}", cases.len())),
        "{out}"
    );
    app.wait_idle().await;

    assert!(app.store.dead_letters().await.unwrap().is_empty());
    assert_eq!(app.count("events", "done").await, cases.len() as i64);
    assert_eq!(app.mails().await.len(), cases.len());
}

/// Refuse every new notice, as a broken rule or a value the database cannot hold would.
const REFUSE_NOTICES: [(&str, &str); 2] = [
    (
        "CREATE TRIGGER refuse_notices BEFORE INSERT ON notices \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        "CREATE FUNCTION refuse_notices() RETURNS trigger AS $$ BEGIN \
         RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END $$ \
         LANGUAGE plpgsql; CREATE TRIGGER refuse_notices BEFORE INSERT ON notices \
         FOR EACH ROW EXECUTE FUNCTION refuse_notices()",
    ),
    (
        "DROP TRIGGER refuse_notices",
        "DROP TRIGGER refuse_notices ON notices; DROP FUNCTION refuse_notices()",
    ),
];

async fn run_sql(app: &TestApp, b: Backend, (sqlite, postgres): (&str, &str)) {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let sql = if matches!(b, Backend::Sqlite) {
        sqlite
    } else {
        postgres
    };
    sqlx::raw_sql(sql).execute(&mut db).await.unwrap();
    db.close().await.ok();
}

async fn a_result_the_store_refuses_is_dead_lettered_not_done_again_forever(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    run_sql(&app, b, REFUSE_NOTICES[0]).await;

    let body = fixture("subscription.created.json");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.deliver(&body).await.0, 202);
    // Refused every time, it used to stay pending (its lease running out, done again).
    app.wait_idle().await;

    let dead = app.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].id, id);
    let why = dead[0].last_error.as_deref().unwrap_or_default();
    assert!(why.contains("store refused"), "{why}");
    assert!(app.mails().await.is_empty());

    // The cause fixed, the operator's retry sends the notice.
    run_sql(&app, b, REFUSE_NOTICES[1]).await;
    let retry = std::process::Command::new(BIN)
        .args(["dead-letters", "retry", "--all"])
        .env_clear()
        .env("DATABASE_URL", &app.db.as_ref().unwrap().url)
        .output()
        .expect("binary runs");
    assert!(retry.status.success(), "{retry:?}");
    app.wait_idle().await;
    assert!(app.store.dead_letters().await.unwrap().is_empty());
    assert_eq!(app.mails().await.len(), 1);
}

fn why_has_value(dead: &[gigs_notifier::store::DeadLetter], value: &str) -> bool {
    dead.iter()
        .any(|d| d.last_error.as_deref().unwrap_or_default().contains(value))
}

async fn a_field_no_handler_uses_cannot_fail_an_event(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    // A number no f64 can hold, inside the plan (whose name the notice does not need here),
    // and an unknown nested field of another shape.
    let body = fixture("subscription.created.json")
        .replacen("\"dataBytes\": 10000000000", "\"dataBytes\": 1e400", 1)
        .replacen(
            "\"object\": \"event\"",
            "\"object\": \"event\", \"brandNew\": [1e999]",
            1,
        );
    assert!(body.contains("1e400"));

    let (status, answer) = app.deliver(&body).await;
    app.wait_idle().await;

    assert_eq!(status, 202, "{answer}");
    assert!(app.store.dead_letters().await.unwrap().is_empty());
    assert_eq!(app.mails().await.len(), 1);
}

both_backends!(
    unreadable_data_is_stored_dead_lettered_and_retried_once_fixed,
    a_field_no_handler_uses_cannot_fail_an_event,
    a_result_the_store_refuses_is_dead_lettered_not_done_again_forever,
);

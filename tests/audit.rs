//! Proof of notice: every notice's audit record (attempts, outcome, message id) outlives the
//! retention purge of its address, and `notices list` / `GET /admin/notices` serve it.

mod common;

use common::process::run_with_env as run;
use common::*;
use serde_json::{json, Value};
use sqlx::{Column, Row};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const ADMIN: &str = "s3cret-admin-token";
const USER: &str = "usr_0SNlurA049MEWV4OpCwsNyC9Kn2d";
const EVENT: &str = "evt_0SNlurA049MEWV5gNTcQ5A07h3Ol";

/// `notices list … --format json` with only DATABASE_URL, parsed.
async fn list_json(db: &str, filter: &[&str]) -> Vec<Value> {
    list_json_with(&[("DATABASE_URL", db)], filter).await
}

async fn list_json_with(env: &[(&str, &str)], filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["notices", "list", "--format", "json"];
    args.extend_from_slice(filter);
    let (ok, out, err) = run(env, &args).await;
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn admin_notices(app: &TestApp, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app
        .client
        .get(format!("{}/admin/notices?{query}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn pool(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap()
}

async fn exec(pool: &sqlx::AnyPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

/// Every value of every row of `table`, as text.
async fn table_text(pool: &sqlx::AnyPool, table: &str) -> String {
    let mut text = String::new();
    for row in sqlx::query(&format!("SELECT * FROM {table}"))
        .fetch_all(pool)
        .await
        .unwrap()
    {
        for c in row.columns() {
            let i = c.ordinal();
            let v = row
                .try_get::<Option<String>, _>(i)
                .map(|v| v.unwrap_or_default())
                .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                .unwrap();
            text.push_str(&v);
            text.push('\n');
        }
    }
    text
}

/// The mail fake: 500 once, then 202 with a message id.
async fn mail_fails_once_then_accepts_with_id(app: &TestApp) {
    mail_answers_first(&app.mail, 500, 1, 1).await;
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(
            ResponseTemplate::new(202).set_body_json(serde_json::json!({"id": "msg_123"})),
        )
        .with_priority(2)
        .mount(&app.mail)
        .await;
}

/// The values of `keys` in `v`, as one JSON array (compact assertions).
fn pick(v: &Value, keys: &[&str]) -> Value {
    keys.iter().map(|k| v[*k].clone()).collect()
}

fn assert_retried_then_sent(records: &[Value]) {
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    let keys = [
        "event_id",
        "event_type",
        "kind",
        "user_id",
        "outcome",
        "message_id",
        "attempts",
    ];
    let expected = json!([
        EVENT,
        "com.gigs.subscription.created",
        "subscription_created",
        USER,
        "sent",
        "msg_123",
        2
    ]);
    assert_eq!(pick(r, &keys), expected);
    assert!(r["created_at"].as_str().unwrap().ends_with('Z'), "{r}");
    assert!(r["finished_at"].is_string(), "{r}");
    let h = r["history"].as_array().unwrap();
    assert_eq!(h.len(), 2, "{r}");
    let keys = ["attempt", "outcome", "http_status", "reason"];
    let first = json!([1, "retryable", 500, "mail service answered 500"]);
    assert_eq!(pick(&h[0], &keys), first);
    assert_eq!(pick(&h[1], &keys), json!([2, "accepted", 202, null]));
}

async fn a_retried_notice_is_proven_after_its_address_is_purged(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.set("ADMIN_TOKEN", ADMIN);
    })
    .await;
    gigs_knows_everyone(&app.gigs).await;
    mail_fails_once_then_accepts_with_id(&app).await;
    let body = fixture("subscription.created.json");
    app.deliver(&body).await;
    app.wait_idle().await;
    let mails = app.mails().await;
    assert_eq!(mails.len(), 2);
    let address = mails[0].1["to"].as_str().unwrap().to_string();
    let db = app.db.as_ref().unwrap().url.clone();
    let pool = pool(&app).await;

    // The CLI (its own process, only DATABASE_URL) and the admin endpoint agree.
    assert_retried_then_sent(&list_json(&db, &["--user", USER]).await);
    let shouted = address.to_uppercase();
    assert_retried_then_sent(&list_json(&db, &["--email", &format!(" {shouted} ")]).await);
    assert!(list_json(&db, &["--email", "someone.else@example.org"])
        .await
        .is_empty());
    assert!(list_json(&db, &["--user", "usr_other"]).await.is_empty());
    let (status, json) = admin_notices(&app, &format!("user={USER}"), Some(ADMIN)).await;
    assert_eq!(status, 200, "{json}");
    assert_retried_then_sent(json["items"].as_array().unwrap());
    let (status, json) = admin_notices(
        &app,
        &format!("email={address}&kind=subscription_created&since=2000-01-01"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_retried_then_sent(json["items"].as_array().unwrap());
    let (status, json) = admin_notices(&app, "since=2999-01-01T00:00:00Z", Some(ADMIN)).await;
    assert_eq!((status, json["items"].as_array().unwrap().len()), (200, 0));
    let (status, json) = admin_notices(&app, "since=last-tuesday", Some(ADMIN)).await;
    assert_eq!(status, 400);
    assert_eq!(json["error"], "invalid_since");
    assert!(
        json["message"].as_str().unwrap().contains("RFC 3339"),
        "{json}"
    );
    let (status, _) = admin_notices(&app, "", Some("wrong")).await;
    assert_eq!(status, 401);

    // Retention: the notice (address, text) and its event go; the proof stays.
    exec(&pool, "UPDATE notices SET finished_at = 1").await;
    exec(&pool, "UPDATE events SET finished_at = 1").await;
    let purged = app
        .store
        .purge(gigs_notifier::store::now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(purged, (1, 1));
    assert_eq!(app.count("notices", "sent").await, 0);
    assert_retried_then_sent(&list_json(&db, &["--email", &address]).await);
    assert_retried_then_sent(&list_json(&db, &["--user", USER]).await);

    // No personal value anywhere in the trail's tables, nor in the CLI's table.
    let mut trail = table_text(&pool, "notice_audit").await;
    trail.push_str(&table_text(&pool, "notice_attempts").await);
    let (_, table, _) = run(&[("DATABASE_URL", &db)], &["notices", "list"]).await;
    trail.push_str(&table);
    assert!(
        table.contains("msg_123") && table.contains("1 notice(s)"),
        "{table}"
    );
    for value in personal_values(&body).into_iter().chain([address.clone()]) {
        assert!(
            !trail.to_lowercase().contains(&value.to_lowercase()),
            "{value} in the audit trail"
        );
    }
    pool.close().await;
}

async fn a_dead_letter_is_proven_and_csv_lists_every_notice(b: Backend) {
    let app = spawn_app(b).await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 400, 1, 1).await;
    mail_accepts(&app.mail).await;
    app.deliver(&with_id(&fixture("subscription.created.json"), "evt_dead"))
        .await;
    app.wait_idle().await;
    app.deliver(&with_id(&fixture("subscription.renewed.json"), "evt_sent"))
        .await;
    app.wait_idle().await;
    let db = app.db.as_ref().unwrap().url.clone();

    let records = list_json(&db, &["--kind", "subscription_created"]).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let dead = &records[0];
    let keys = ["event_id", "outcome", "attempts", "message_id"];
    assert_eq!(pick(dead, &keys), json!(["evt_dead", "dead", 1, null]));
    let keys = ["outcome", "http_status", "reason"];
    let first = json!(["permanent", 400, "mail service answered 400"]);
    assert_eq!(pick(&dead["history"][0], &keys), first);

    let (ok, csv, err) = run(
        &[("DATABASE_URL", &db)],
        &["notices", "list", "--format", "csv"],
    )
    .await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(
        lines[0],
        "notice_id,event_id,event_type,kind,user_id,subscription_id,created_at,outcome,\
         finished_at,message_id,attempts,last_http_status"
    );
    // Newest first: the sent one, then the dead letter.
    let cells: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert!(cells.iter().all(|c| c.len() == 12), "{csv}");
    assert_eq!(
        (cells[0][1], cells[0][7], cells[0][10], cells[0][11]),
        ("evt_sent", "sent", "1", "202")
    );
    assert_eq!(
        (cells[1][1], cells[1][7], cells[1][10], cells[1][11]),
        ("evt_dead", "dead", "1", "400")
    );

    // An operator's retry reopens the record; the second attempt closes it.
    let id = dead["notice_id"].as_str().unwrap();
    assert!(app
        .store
        .retry_dead_letter(id, gigs_notifier::store::now_ms())
        .await
        .unwrap());
    app.wait_idle().await;
    let again = list_json(&db, &["--kind", "subscription_created"]).await;
    assert_eq!(
        pick(&again[0], &["outcome", "attempts"]),
        json!(["sent", 2])
    );
    assert_eq!(pick(&again[0]["history"][0], &keys), first);
    assert_eq!(again[0]["history"][1]["outcome"], "accepted");
}

async fn audit_retention_purges_old_records_only(b: Backend) {
    let app = spawn_app(b).await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 400, 1, 1).await;
    mail_accepts(&app.mail).await;
    for (name, id) in [
        ("subscription.created.json", "evt_kept_dead"),
        ("subscription.renewed.json", "evt_old"),
        ("subscription.ended.json", "evt_new"),
    ] {
        app.deliver(&with_id(&fixture(name), id)).await;
        app.wait_idle().await;
    }
    let pool = pool(&app).await;
    // All three finished long ago; only evt_old's notice is gone (retention). evt_kept_dead
    // is a dead letter still waiting for an operator; evt_new finished after the cutoff.
    exec(
        &pool,
        "UPDATE notice_audit SET finished_at = 1 WHERE event_id <> 'evt_new'",
    )
    .await;
    exec(&pool, "UPDATE notice_attempts SET attempted_at = 1").await;
    exec(&pool, "DELETE FROM notices WHERE event_id = 'evt_old'").await;

    let purged = app
        .store
        .purge_audit(gigs_notifier::store::now_ms() - 60_000)
        .await
        .unwrap();

    assert_eq!(purged, (1, 1));
    let left: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM notice_audit ORDER BY event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, ["evt_kept_dead", "evt_new"]);
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notice_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
    pool.close().await;
}

async fn the_background_purger_applies_audit_retention_days(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.set("RETENTION_DAYS", "0")
            .set("AUDIT_RETENTION_DAYS", "0")
            .set("PURGE_INTERVAL_SECS", "1");
    })
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    app.deliver(&fixture("subscription.created.json")).await;
    app.wait_idle().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app
        .store
        .notice_audit(&Default::default())
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "audit purge did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.mails().await.len(), 1);
}

async fn a_configured_key_stays_out_of_the_database(b: Backend) {
    let key = "k".repeat(40);
    let app = spawn_app_with(b, |s| {
        s.set("AUDIT_HASH_KEY", key.clone());
    })
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    app.deliver(&fixture("subscription.created.json")).await;
    app.wait_idle().await;
    let address = app.mails().await[0].1["to"].as_str().unwrap().to_string();
    let db = app.db.as_ref().unwrap().url.clone();
    let pool = pool(&app).await;
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_key")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "a configured key is never written to the database");

    let env = [
        ("DATABASE_URL", db.as_str()),
        ("AUDIT_HASH_KEY", key.as_str()),
    ];
    let args = ["--email", address.as_str()];
    assert_eq!(list_json_with(&env, &args).await.len(), 1);
    // A record from before the trail (the migration cannot hash) is hashed at the next start.
    exec(&pool, "UPDATE notice_audit SET recipient_hash = NULL").await;
    assert_eq!(list_json_with(&env, &args).await.len(), 1);
    let args = ["notices", "list", "--email", address.as_str()];
    let (ok, _, err) = run(&[env[0], ("AUDIT_HASH_KEY", "short")], &args).await;
    assert!(
        !ok && err.contains("AUDIT_HASH_KEY") && !err.contains("short"),
        "{err}"
    );
    pool.close().await;
}

both_backends!(
    a_retried_notice_is_proven_after_its_address_is_purged,
    a_dead_letter_is_proven_and_csv_lists_every_notice,
    audit_retention_purges_old_records_only,
    the_background_purger_applies_audit_retention_days,
    a_configured_key_stays_out_of_the_database,
);

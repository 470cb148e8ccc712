//! `demo`: the whole service on this machine with no credentials. It starts the real server
//! on a free port with a throw-away SQLite file, a built-in Gigs Core API simulator and a mail
//! outbox that prints, replays every bundled fixture through it and shows what was sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{RawSettings, WebhookSecret};
use crate::domain::mask_email;
use crate::replay::deliver;
use crate::Application;

/// The bundled fixtures (the same files the tests and `replay` use).
pub const FIXTURES: &[(&str, &str)] = &[
    (
        "subscription.created",
        include_str!("../fixtures/subscription.created.json"),
    ),
    (
        "subscription.activated",
        include_str!("../fixtures/subscription.activated.json"),
    ),
    (
        "subscription.activated (es-US user)",
        include_str!("../fixtures/subscription.activated.es.json"),
    ),
    (
        "subscription.renewed",
        include_str!("../fixtures/subscription.renewed.json"),
    ),
    (
        "subscription.canceled",
        include_str!("../fixtures/subscription.canceled.json"),
    ),
    (
        "subscription.resumed",
        include_str!("../fixtures/subscription.resumed.json"),
    ),
    (
        "subscription.ended",
        include_str!("../fixtures/subscription.ended.json"),
    ),
    (
        "portOutCredentials.issued",
        include_str!("../fixtures/portOutCredentials.issued.json"),
    ),
    (
        "portOut.created",
        include_str!("../fixtures/portOut.created.json"),
    ),
    (
        "portOut.created (cancelOnly)",
        include_str!("../fixtures/portOut.created.cancelOnly.json"),
    ),
    (
        "portOut.completed",
        include_str!("../fixtures/portOut.completed.json"),
    ),
    (
        "portOut.expired",
        include_str!("../fixtures/portOut.expired.json"),
    ),
    (
        "portOut.failed",
        include_str!("../fixtures/portOut.failed.json"),
    ),
    (
        "subscriptionChange.created (SIM)",
        include_str!("../fixtures/subscriptionChange.created.json"),
    ),
    (
        "subscriptionChange.applied",
        include_str!("../fixtures/subscriptionChange.applied.json"),
    ),
    (
        "subscriptionChange.applied (SIM)",
        include_str!("../fixtures/subscriptionChange.applied.sim.json"),
    ),
    (
        "subscriptionChange.applied (SIM+plan)",
        include_str!("../fixtures/subscriptionChange.applied.both.json"),
    ),
    (
        "subscriptionChange.applied (neither)",
        include_str!("../fixtures/subscriptionChange.applied.neither.json"),
    ),
    (
        "subscriptionChange.failed",
        include_str!("../fixtures/subscriptionChange.failed.json"),
    ),
    (
        "subscriptionChange.canceled",
        include_str!("../fixtures/subscriptionChange.canceled.json"),
    ),
    (
        "user.updated",
        include_str!("../fixtures/user.updated.json"),
    ),
    (
        "user.updated (email)",
        include_str!("../fixtures/user.updated.email.json"),
    ),
    (
        "user.updated (locale only)",
        include_str!("../fixtures/user.updated.locale.json"),
    ),
    (
        "user.address.created",
        include_str!("../fixtures/user.address.created.json"),
    ),
    (
        "user.address.deleted",
        include_str!("../fixtures/user.address.deleted.json"),
    ),
    (
        "sim.activated (unhandled)",
        include_str!("../fixtures/unhandled.sim.activated.json"),
    ),
];

/// The simulated project's name: the brand of the demo's notices.
const DEMO_BRAND: &str = "Demo Mobile";

/// The user every simulated subscription belongs to.
const DEMO_EMAIL: &str = "jerry@example.com";
const DEMO_USER: &str = "usr_0SNlurA049MEWV4OpCwsNyC9Kn2d";

/// A mail the outbox received.
#[derive(Debug, Clone)]
struct Mail {
    key: String,
    to: String,
    subject: String,
    content: String,
}

type Outbox = Arc<Mutex<Vec<Mail>>>;

/// Serve `router` on a free loopback port in the background; returns its base URL.
pub(crate) async fn serve_on_free_port(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// Core API simulator: every subscription belongs to the demo user, who has one.
fn gigs_simulator() -> Router {
    async fn subscription(Path((_project, id)): Path<(String, String)>) -> Json<Value> {
        Json(json!({
            "object": "subscription", "id": id, "status": "active", "phoneNumber": "+19591234567",
            "user": { "object": "user", "id": DEMO_USER, "email": DEMO_EMAIL, "fullName": "Jerry Seinfeld" }
        }))
    }
    async fn user(Path((_project, id)): Path<(String, String)>) -> Json<Value> {
        Json(json!({
            "object": "user", "id": id, "email": DEMO_EMAIL, "fullName": "Jerry Seinfeld",
            "birthday": "1954-04-29", "preferredLocale": "en-US"
        }))
    }
    async fn list(Query(q): Query<std::collections::HashMap<String, String>>) -> Json<Value> {
        let items = if q.contains_key("user") {
            vec![json!({ "object": "subscription", "id": "sub_0SNlurA049MEWV2gSfSxi00xlPIi" })]
        } else {
            vec![]
        };
        Json(
            json!({ "object": "list", "items": items, "moreItemsAfter": null, "moreItemsBefore": null }),
        )
    }
    async fn project(Path(project): Path<String>) -> Json<Value> {
        Json(json!({
            "object": "project", "id": project, "name": DEMO_BRAND,
            "locales": ["en-US", "es-US"]
        }))
    }
    Router::new()
        .route("/projects/{project}", get(project))
        .route("/projects/{project}/subscriptions/{id}", get(subscription))
        .route("/projects/{project}/subscriptions", get(list))
        .route("/projects/{project}/users/{id}", get(user))
}

/// Mail outbox: records each request and prints a line, answers 202.
fn mail_outbox(outbox: Outbox) -> Router {
    async fn send(
        State(outbox): State<Outbox>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> StatusCode {
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mail = Mail {
            key: headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            to: field("to"),
            subject: field("subject"),
            content: field("content"),
        };
        println!("  outbox <- {:<22} {}", mask_email(&mail.to), mail.subject);
        outbox.lock().expect("outbox lock").push(mail);
        StatusCode::ACCEPTED
    }
    Router::new()
        .route("/mail/send", post(send))
        .with_state(outbox)
}

/// Run the demo; returns whether every handled fixture produced what it should.
pub async fn run() -> anyhow::Result<bool> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let outbox: Outbox = Arc::default();
    let gigs_url = serve_on_free_port(gigs_simulator()).await?;
    let mail_url = serve_on_free_port(mail_outbox(outbox.clone())).await?;
    let secret = WebhookSecret::random();

    let mut raw = RawSettings::defaults();
    raw.set(
        "GIGS_WEBHOOK_SECRET",
        secrecy::ExposeSecret::expose_secret(&secret.to_whsec()),
    )
    .set("GIGS_API_URL", gigs_url)
    .set("GIGS_PROJECT", "demo")
    .set("GIGS_TOKEN", "demo-token")
    .set("MAIL_URL", format!("{mail_url}/mail/send"))
    .set(
        "DATABASE_URL",
        format!("sqlite://{}", dir.path().join("demo.db").display()),
    )
    .set("LISTEN_ADDR", "127.0.0.1:0")
    .set("WORKER_POLL_MS", "100")
    .set("SUPPORT_URL", "https://help.demo-mobile.example")
    .set("SUPPORT_PHONE", "+1 800 555 0100")
    .set("DISPLAY_TIMEZONE", "America/New_York");
    let settings = raw.into_settings()?;
    let app = Application::build(settings).await?;
    let store = app.store();
    let url = format!("http://127.0.0.1:{}/webhooks/gigs", app.port());
    println!("gigs-notifier demo: service on {url}, SQLite inbox in a temporary directory\n");
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));

    let client = reqwest::Client::new();
    println!("replaying {} bundled fixtures:", FIXTURES.len());
    let mut answers = Vec::new();
    for (name, body) in FIXTURES {
        let a = deliver(&client, &url, &secret, body.as_bytes()).await?;
        answers.push((name.to_string(), event_id(body), a));
    }
    // What Gigs' retries and an attacker would look like.
    let (first_name, first_body) = FIXTURES[0];
    let dup = deliver(&client, &url, &secret, first_body.as_bytes()).await?;
    answers.push((format!("{first_name} (again)"), String::new(), dup));
    let tampered = first_body.replacen("pending", "active", 1);
    let other = WebhookSecret::random();
    let forged = deliver(&client, &url, &other, tampered.as_bytes()).await?;
    answers.push(("forged signature".to_string(), String::new(), forged));

    // Wait for the worker to drain the inbox.
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.pending().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notices = store.notice_index().await?;
    stop.cancel();
    let _ = server.await;

    let mails = outbox.lock().expect("outbox lock").clone();
    println!();
    println!(
        "{:<38} {:<22} {:<62} recipient",
        "event", "answer", "notice subject"
    );
    println!("{}", "-".repeat(142));
    let mut ok = true;
    for (name, id, answer) in &answers {
        let outcome = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| {
                v.get("status")
                    .or(v.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let answer_text = format!("{} {outcome}", answer.status);
        let sent: Vec<&Mail> = notices
            .iter()
            .filter(|(_, event)| !id.is_empty() && event == id)
            .filter_map(|(key, _)| mails.iter().find(|m| &m.key == key))
            .collect();
        if sent.is_empty() {
            println!("{name:<38} {answer_text:<22} {:<62} -", "(no notice)");
        }
        for m in sent {
            println!(
                "{name:<38} {answer_text:<22} {:<62} {}",
                m.subject,
                mask_email(&m.to)
            );
        }
        let expects_notice = !name.contains("unhandled")
            && !name.contains("locale")
            && !name.contains("neither")
            && !id.is_empty();
        if expects_notice
            && !notices
                .iter()
                .any(|(k, e)| e == id && mails.iter().any(|m| &m.key == k))
        {
            ok = false;
        }
    }
    print_mails(&mails);
    let keys: std::collections::HashSet<_> = mails.iter().map(|m| &m.key).collect();
    if keys.len() != mails.len() {
        ok = false;
    }
    println!(
        "\n{} mails sent, {} distinct idempotency keys; {}",
        mails.len(),
        keys.len(),
        if ok {
            "every handled event produced its notice"
        } else {
            "SOME NOTICES ARE MISSING"
        }
    );
    Ok(ok)
}

fn event_id(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// Every mail of a subject not shown yet, in full: at least one mail of every kind (each
/// kind has its own subject in a language), the Spanish one included.
fn print_mails(mails: &[Mail]) {
    println!(
        "\nthe mails, one of each subject ({} in the outbox, one per Idempotency-Key):",
        mails.len()
    );
    let mut shown = std::collections::HashSet::new();
    for m in mails.iter().filter(|m| shown.insert(m.subject.clone())) {
        println!("\n  to:       {}", mask_email(&m.to));
        println!("  subject:  {}", m.subject);
        for line in m.content.lines() {
            println!("{}", format!("  | {line}").trim_end());
        }
    }
}

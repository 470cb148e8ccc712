//! Head-of-line blocking, black box: one recipient whose mail calls hang, or a Core API
//! that hangs for a backlog of events, must not hold up anyone else's mail.
//!
//! The fakes hang for 60 s and `HTTP_TIMEOUT_SECS` is 30, so no hanging call ends while a
//! test runs: whatever the fakes received was in flight at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::Value;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

const SLOW: &str = "slow@example.com";
const HANG: Duration = Duration::from_secs(60);
/// `MAIL_CONCURRENCY_PER_RECIPIENT`, set explicitly (it is also the default).
const PER_RECIPIENT: usize = 2;
/// `WORKER_CONCURRENCY`, set explicitly (the default); events get half of it.
const CONCURRENCY: usize = 64;
/// The subscription of the `portOutCredentials.issued` fixture.
const PORT_OUT_SUBSCRIPTION: &str = "sub_0SNlurA049MEWV2gSfSxi00xlPIi";

/// A `subscription.created` event with its own id, for a user with address `email`
/// (embedded, so no Core API call is needed).
fn created_for(id: &str, email: &str) -> String {
    let mut v: Value = serde_json::from_str(&with_id(
        &fixture("subscription.created.json"),
        &format!("evt_{id}"),
    ))
    .unwrap();
    v["data"]["user"]["email"] = Value::String(email.to_string());
    v.to_string()
}

fn port_out_issued(id: &str) -> String {
    with_id(
        &fixture("portOutCredentials.issued.json"),
        &format!("evt_{id}"),
    )
}

fn other_users() -> Vec<String> {
    (0..20).map(|i| format!("user{i:02}@example.org")).collect()
}

/// Deliver every body, 16 at a time; each must be acknowledged.
async fn deliver_all(app: &TestApp, bodies: Vec<String>) {
    let answers: Vec<(u16, Value)> = futures::stream::iter(bodies)
        .map(|body| async move { app.deliver(&body).await })
        .buffer_unordered(16)
        .collect()
        .await;
    for (status, answer) in answers {
        assert_eq!(status, 202, "delivery not accepted: {answer}");
    }
}

/// Poll `done` until it holds; fail after `limit`.
async fn within(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Mail calls received so far (hanging ones included), by recipient.
async fn mail_calls_to(app: &TestApp, recipient: &str) -> usize {
    app.mails()
        .await
        .iter()
        .filter(|(_, mail)| mail["to"] == recipient)
        .count()
}

/// Recipients of accepted mail calls (those answered at once).
async fn mailed(app: &TestApp, recipients: &[String]) -> Vec<String> {
    let mails = app.mails().await;
    recipients
        .iter()
        .filter(|r| mails.iter().any(|(_, m)| m["to"] == r.as_str()))
        .cloned()
        .collect()
}

/// The mail fake hangs for every mail to `recipient`, ahead of the other mocks.
async fn mail_hangs_for(app: &TestApp, recipient: &str) {
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .and(body_partial_json(serde_json::json!({ "to": recipient })))
        .respond_with(ResponseTemplate::new(202).set_delay(HANG))
        .with_priority(1)
        .mount(&app.mail)
        .await;
}

async fn a_recipient_whose_mail_calls_hang_does_not_hold_up_mail_to_anyone_else(b: Backend) {
    // Arrange: 640 notices to a recipient whose mail calls hang, queued ahead of the rest.
    let test_started = Instant::now();
    let app = spawn_app_with(b, |s| {
        s.set("HTTP_TIMEOUT_SECS", "30")
            .set("WORKER_CONCURRENCY", CONCURRENCY.to_string())
            .set("MAIL_CONCURRENCY_PER_RECIPIENT", PER_RECIPIENT.to_string());
    })
    .await;
    mail_hangs_for(&app, SLOW).await;
    mail_accepts(&app.mail).await;
    let backlog = (0..640)
        .map(|i| created_for(&format!("slow{i:04}"), SLOW))
        .collect();
    deliver_all(&app, backlog).await;
    within(
        "the backlog's 640 notices are queued",
        Duration::from_secs(20),
        async || {
            app.count("events", "done").await == 640 && app.count("notices", "pending").await == 640
        },
    )
    .await;
    let others = other_users();
    let bodies = others
        .iter()
        .enumerate()
        .map(|(i, to)| created_for(&format!("other{i:02}"), to))
        .collect();

    // Act
    let delivered = Instant::now();
    deliver_all(&app, bodies).await;

    // Assert: everyone else is mailed promptly, and the slow recipient never held more
    // than its share of mail calls.
    within(
        "every other user's mail reached the mail service",
        Duration::from_secs(5),
        async || mailed(&app, &others).await.len() == others.len(),
    )
    .await;
    let took = delivered.elapsed();
    let slow_calls = mail_calls_to(&app, SLOW).await;
    assert!(
        test_started.elapsed() < Duration::from_secs(30),
        "the test outlasted HTTP_TIMEOUT_SECS, so hanging calls may have been retried"
    );
    assert!(
        (1..=PER_RECIPIENT).contains(&slow_calls),
        "{slow_calls} mail calls to the slow recipient were in flight at once \
         (share {PER_RECIPIENT}); others were mailed after {took:?}"
    );
}

async fn notices_are_mailed_while_every_event_waits_on_a_hanging_core_api(b: Backend) {
    // Arrange: 20 notices whose first mail call failed (retry due in 2-4 s), then 200
    // events whose Core API look-up hangs, filling the events' share.
    let app = spawn_app_with(b, |s| {
        s.set("HTTP_TIMEOUT_SECS", "30")
            .set("WORKER_CONCURRENCY", CONCURRENCY.to_string())
            .set("BACKOFF_BASE_MS", "4000")
            .set("BACKOFF_CAP_SECS", "10");
    })
    .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/projects/{PROJECT}/subscriptions/{PORT_OUT_SUBSCRIPTION}"
        )))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(subscription_body("usr_owner", OWNER_EMAIL))
                .set_delay(HANG),
        )
        .mount(&app.gigs)
        .await;
    let others = other_users();
    mail_answers_first(&app.mail, 503, others.len() as u64, 1).await;
    mail_accepts(&app.mail).await;
    let first_tries = others
        .iter()
        .enumerate()
        .map(|(i, to)| created_for(&format!("other{i:02}"), to))
        .collect();
    deliver_all(&app, first_tries).await;
    within(
        "every notice's first mail call failed",
        Duration::from_secs(10),
        async || app.mails().await.len() == others.len(),
    )
    .await;
    let failed = Instant::now();

    // Act: 200 events whose look-up hangs; the first 40 take the events' share (32)
    // before any retry is due (checked: else this run would show nothing) …
    let mut backlog: Vec<String> = (0..200)
        .map(|i| port_out_issued(&format!("portout{i:03}")))
        .collect();
    let rest = backlog.split_off(40);
    deliver_all(&app, backlog).await;
    within(
        "the events' share hangs on the Core API",
        Duration::from_secs(2),
        async || app.gigs.received_requests().await.unwrap_or_default().len() >= CONCURRENCY / 2,
    )
    .await;
    assert_eq!(
        app.mails().await.len(),
        others.len(),
        "a notice was retried before the Core API calls filled the events' share"
    );
    // … and the other 160 wait in the queue behind them.
    deliver_all(&app, rest).await;

    // Assert: the notices are still retried and mailed as soon as they are due (2-4 s).
    within(
        "every notice was mailed while the events hang",
        Duration::from_secs(10).saturating_sub(failed.elapsed()),
        async || app.mails().await.len() == 2 * others.len(),
    )
    .await;
    assert_eq!(mailed(&app, &others).await, others);
    within(
        "every notice is recorded as sent",
        Duration::from_secs(2),
        async || app.count("notices", "sent").await == others.len() as i64,
    )
    .await;
    assert_eq!(app.count("events", "done").await, others.len() as i64);
}

both_backends!(
    a_recipient_whose_mail_calls_hang_does_not_hold_up_mail_to_anyone_else,
    notices_are_mailed_while_every_event_waits_on_a_hanging_core_api,
);

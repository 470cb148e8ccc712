//! Black-box tests of what comes from outside and must not break the service: the Core
//! API's `Retry-After` and answers (unreadable, oversized), the mail service's answer, and
//! webhook timestamps far from now.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use hmac::Mac;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// The Core API path the `portOutCredentials.issued` fixture looks up.
fn subscription_path() -> String {
    format!("/projects/{PROJECT}/subscriptions/sub_0SNlurA049MEWV2gSfSxi00xlPIi")
}

async fn core_api_answers(app: &TestApp, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(subscription_path()))
        .respond_with(answer)
        .mount(&app.gigs)
        .await;
}

async fn gigs_calls(app: &TestApp) -> usize {
    app.gigs.received_requests().await.unwrap().len()
}

async fn retry_after_u64_max_waits_instead_of_hammering_or_dead_lettering(b: Backend) {
    // Test settings: backoff from 20 ms, capped at 1 s.
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    core_api_answers(
        &app,
        ResponseTemplate::new(503).insert_header("retry-after", u64::MAX.to_string().as_str()),
    )
    .await;

    let (status, _) = app
        .deliver(&fixture("portOutCredentials.issued.json"))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(status, 202);
    // One call, then one per capped wait (1 s): three or so, not thousands.
    let calls = gigs_calls(&app).await;
    assert!((1..=4).contains(&calls), "{calls} Core API calls in 2 s");
    assert_eq!(app.count("events", "pending").await, 1);
    assert!(app.store.dead_letters().await.unwrap().is_empty());
}

/// A 2xx from the Core API that cannot be used dead-letters the event after one call.
async fn core_api_2xx_dead_letters_at_once(b: Backend, answer: ResponseTemplate, reason: &str) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    core_api_answers(&app, answer).await;

    app.deliver(&fixture("portOutCredentials.issued.json"))
        .await;
    app.wait_idle().await;

    let dead = app.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].queue, "events");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some(reason));
    assert_eq!(gigs_calls(&app).await, 1);
    assert!(app.mails().await.is_empty());
}

async fn core_api_undecodable_answer_dead_letters_the_event(b: Backend) {
    core_api_2xx_dead_letters_at_once(
        b,
        ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
        "Core API GET subscription sent an unreadable answer",
    )
    .await
}

async fn core_api_answer_over_1_mib_dead_letters_the_event(b: Backend) {
    let mut body = serde_json::to_vec(&subscription_body("usr_owner", OWNER_EMAIL)).unwrap();
    body.truncate(body.len() - 1);
    body.extend_from_slice(br#","padding":""#);
    body.resize(8 * 1024 * 1024, b'x');
    body.extend_from_slice(br#""}"#);
    core_api_2xx_dead_letters_at_once(
        b,
        ResponseTemplate::new(200).set_body_raw(body, "application/json"),
        "Core API GET subscription sent an answer larger than 1 MiB",
    )
    .await
}

async fn mail_accepted_with_a_huge_answer_is_sent_once(b: Backend) {
    let app = spawn_app(b).await;
    gigs_knows_everyone(&app.gigs).await;
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(ResponseTemplate::new(202).set_body_bytes(vec![b'x'; 8 * 1024 * 1024]))
        .mount(&app.mail)
        .await;

    app.deliver(&fixture("subscription.activated.json")).await;
    app.wait_idle().await;

    assert_eq!(app.count("notices", "sent").await, 1);
    assert_eq!(app.mails().await.len(), 1);
}

/// Headers for `body` carrying `ts` exactly as given, correctly signed over that text.
fn signed_at(app: &TestApp, id: &str, ts: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app.secret.key()).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", format!("v1,{sig}")),
        ("content-type", "application/json".to_string()),
    ]
}

async fn timestamps_that_overflow_are_refused_as_out_of_tolerance(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.created.json").into_bytes();

    for ts in [
        i64::MIN.to_string(),
        // now − 2^63: `now - ts` is 2^63, one more than an i64 holds.
        now().wrapping_add(i64::MIN).to_string(),
        i64::MAX.to_string(),
        u64::MAX.to_string(),
        "99999999999999999999999".to_string(),
        "-99999999999999999999999".to_string(),
    ] {
        let (status, answer) = app
            .post_raw(&signed_at(&app, "msg_far", &ts, &body), body.clone())
            .await;
        assert_eq!(status, 401, "{ts}: {answer}");
        assert_eq!(answer["error"], "timestamp_out_of_tolerance", "{ts}");
    }
    // The same signing, at the right time, is accepted.
    let (status, answer) = app
        .post_raw(
            &signed_at(&app, "msg_far", &now().to_string(), &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
}

both_backends!(
    retry_after_u64_max_waits_instead_of_hammering_or_dead_lettering,
    core_api_undecodable_answer_dead_letters_the_event,
    core_api_answer_over_1_mib_dead_letters_the_event,
    mail_accepted_with_a_huge_answer_is_sent_once,
    timestamps_that_overflow_are_refused_as_out_of_tolerance,
);

//! Black-box tests of the ingress: bad deliveries get their status and store nothing;
//! signatures from a rotated secret and Svix's own headers are accepted.

mod common;

use common::*;
use serde_json::Value;

/// Send a bad delivery; check the status and error code, and that nothing was stored or sent.
async fn refused(
    app: &TestApp,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &str,
) {
    let (got, answer) = app.post_raw(&headers, body).await;
    assert_eq!(got, status, "{answer}");
    assert_eq!(answer["error"], code, "{answer}");
    assert!(
        answer["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}

async fn bad_deliveries_get_their_status_and_store_nothing(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.created.json").into_bytes();
    let wrong = gigs_notifier::config::WebhookSecret::parse(
        "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IHNlY3JldA==",
    )
    .unwrap();
    let id = "msg_1";

    // Wrong secret, stale and future timestamps.
    refused(
        &app,
        signed_headers("webhook", &wrong, id, now(), &body),
        body.clone(),
        401,
        "invalid_signature",
    )
    .await;
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now() - 301, &body),
        body.clone(),
        401,
        "timestamp_out_of_tolerance",
    )
    .await;
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now() + 301, &body),
        body.clone(),
        401,
        "timestamp_out_of_tolerance",
    )
    .await;
    // Missing headers, one at a time and all.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let h: Vec<_> = signed_headers("webhook", &app.secret, id, now(), &body)
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        refused(&app, h, body.clone(), 401, "missing_signature_header").await;
    }
    refused(&app, vec![], body.clone(), 401, "missing_signature_header").await;
    // Not a number.
    let mut h = signed_headers("webhook", &app.secret, id, now(), &body);
    h[1].1 = "yesterday".into();
    refused(&app, h, body.clone(), 401, "invalid_timestamp").await;
    // Tampered body.
    let mut tampered = body.clone();
    let pos = tampered.windows(7).position(|w| w == b"pending").unwrap();
    tampered[pos..pos + 7].copy_from_slice(b"PENDING");
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now(), &body),
        tampered,
        401,
        "invalid_signature",
    )
    .await;
    // Unknown signature version only.
    let mut h = signed_headers("webhook", &app.secret, id, now(), &body);
    h[2].1 = h[2].1.replacen("v1,", "v2,", 1);
    refused(&app, h, body.clone(), 401, "unsupported_signature").await;
    // Correctly signed but not an event envelope. (A valid envelope with unreadable data
    // is stored and dead-lettered instead: tests/undecodable.rs.)
    for (name, code) in [
        ("bad/not-json.json", "invalid_json"),
        ("bad/missing-id.json", "invalid_envelope"),
    ] {
        let bad = fixture(name).into_bytes();
        refused(
            &app,
            signed_headers("webhook", &app.secret, id, now(), &bad),
            bad,
            400,
            code,
        )
        .await;
    }
    // Over the 1 MiB default limit.
    let mut big: Value = serde_json::from_slice(&body).unwrap();
    big["data"]["padding"] = Value::String("x".repeat(1024 * 1024 + 1));
    let big = serde_json::to_vec(&big).unwrap();
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now(), &big),
        big,
        413,
        "payload_too_large",
    )
    .await;

    app.wait_idle().await;
    assert_eq!(
        app.store
            .depth()
            .await
            .unwrap()
            .iter()
            .map(|(_, _, n)| n)
            .sum::<i64>(),
        0
    );
    assert!(app.mails().await.is_empty());
    assert!(app.gigs.received_requests().await.unwrap().is_empty());
}

async fn rotated_second_secret_is_accepted(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let second = gigs_notifier::config::WebhookSecret::parse(SECOND_SECRET).unwrap();

    let (status, _) = app
        .deliver_with(&fixture("subscription.renewed.json"), &second)
        .await;
    app.wait_idle().await;

    assert_eq!(status, 202);
    assert_eq!(app.mails().await.len(), 1);
}

async fn svix_headers_are_accepted(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.ended.json").into_bytes();

    let (status, answer) = app
        .post_raw(
            &signed_headers("svix", &app.secret, "msg_svix", now(), &body),
            body,
        )
        .await;
    app.wait_idle().await;

    assert_eq!(status, 202, "{answer}");
    assert_eq!(app.mails().await.len(), 1);
}

both_backends!(
    bad_deliveries_get_their_status_and_store_nothing,
    rotated_second_secret_is_accepted,
    svix_headers_are_accepted,
);

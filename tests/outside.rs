//! Black-box tests of what comes from outside and must not break the service: webhook
//! timestamps far from now.

mod common;

use base64::Engine;
use common::*;
use hmac::Mac;

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

both_backends!(timestamps_that_overflow_are_refused_as_out_of_tolerance);

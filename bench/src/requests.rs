//! The events the load tool sends: realistic fixture bodies with unique ids, signed in
//! advance as Gigs signs them (Standard Webhooks), as raw HTTP/1.1 requests.

use gigs_notifier::config::WebhookSecret;
use gigs_notifier::notice::notice_id;
use gigs_notifier::webhook::sign;
use serde_json::Value;

/// The event mix: realistic bodies (0.5-4.6 KB), three of five needing a Core API call;
/// with the notice kind and recipient role each produces.
const MIX: [(&str, &str, &str); 5] = [
    (
        include_str!("../../fixtures/subscription.created.json"),
        "subscription_created",
        "owner",
    ),
    (
        include_str!("../../fixtures/portOutCredentials.issued.json"),
        "port_out_credentials_issued",
        "owner",
    ),
    (
        include_str!("../../fixtures/subscription.activated.json"),
        "subscription_activated",
        "owner",
    ),
    (
        include_str!("../../fixtures/subscriptionChange.applied.json"),
        "plan_changed",
        "owner",
    ),
    (
        include_str!("../../fixtures/user.updated.json"),
        "account_information_changed",
        "account",
    ),
];

/// Pre-signed requests and the notice key (idempotency key) each event will produce.
pub struct Prepared {
    pub requests: Vec<Vec<u8>>,
    pub keys: Vec<String>,
}

/// `n` requests cycling through the mix, event ids `evt_{prefix}{i}`.
pub fn prepare(secret: &WebhookSecret, prefix: &str, n: usize) -> Prepared {
    let templates: Vec<Value> = MIX
        .iter()
        .map(|(b, _, _)| serde_json::from_str(b).expect("fixture"))
        .collect();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let mut requests = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let which = i % MIX.len();
        let id = format!("evt_{prefix}{i:07}");
        let mut event = templates[which].clone();
        event["id"] = Value::String(id.clone());
        // Each event concerns a line and a person of its own (the fake Core API answers
        // with an address derived from the subscription id), as real traffic does: one
        // recipient taking every notice would only measure the per-recipient limit.
        let body = serde_json::to_string(&event)
            .expect("serialize")
            .replace(
                "sub_0SNlurA049MEWV2gSfSxi00xlPIi",
                &format!("sub_{prefix}{i:07}"),
            )
            .replace(
                "sub_0U5w2gZv2l1rLP0CXl8SgTfVdi2C",
                &format!("sub_{prefix}{i:07}"),
            )
            .replace(
                "jerry@example.com",
                &format!("usr_{prefix}{i:07}@example.com"),
            )
            .into_bytes();
        let msg = format!("msg_{prefix}{i:07}");
        let sig = sign(secret, &msg, ts, &body);
        let mut req = format!(
            "POST /webhooks/gigs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             webhook-id: {msg}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        requests.push(req);
        keys.push(notice_id(&id, MIX[which].1, MIX[which].2));
    }
    Prepared { requests, keys }
}

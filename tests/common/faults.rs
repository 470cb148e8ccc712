//! What the storage-fault tests share: large deliveries with ids of their own, and what a
//! restart would find stored.

use std::collections::HashSet;

use futures::StreamExt;
use serde_json::Value;
use sqlx::Connection;

use super::{fixture, TestApp};

/// The file behind a test database URL.
pub fn db_path(app: &TestApp) -> std::path::PathBuf {
    let url = &app.db.as_ref().unwrap().url;
    std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap())
}

/// Ids stored in the events table of the file at `path`, read by a fresh connection (what a
/// restart would see).
pub async fn stored_ids(path: &std::path::Path) -> HashSet<String> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM events")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    ids.into_iter().collect()
}

const ID_PREFIX: &str = "evt_fault";

/// An event of about 6 KiB (a large, personal-looking field pads it), with its own id.
pub fn padded_event(i: usize) -> (String, String) {
    let id = format!("{ID_PREFIX}{i:06}");
    let mut v: Value = serde_json::from_str(&fixture("subscription.created.json")).unwrap();
    v["id"] = Value::String(id.clone());
    v["data"]["notes"] = Value::String(format!("{i:x}").repeat(1500));
    (id, v.to_string())
}

/// Deliver `range` with 8 in flight; returns (id, status) for each.
pub async fn deliver_all(app: &TestApp, range: std::ops::Range<usize>) -> Vec<(String, u16)> {
    futures::stream::iter(range.map(padded_event))
        .map(|(id, body)| async move { (id, app.deliver(&body).await.0) })
        .buffer_unordered(8)
        .collect()
        .await
}

/// The number `i` of the [`padded_event`] with id `id`.
pub fn padded_number(id: &str) -> usize {
    id.strip_prefix(ID_PREFIX).unwrap().parse().unwrap()
}

/// The answers of [`deliver_all`] split into the ids acknowledged (2xx) and those refused
/// with 503; any other answer fails the test, as it would break the one promise.
pub fn acked_or_refused(answers: &[(String, u16)]) -> (HashSet<String>, Vec<String>) {
    let acked: HashSet<String> = answers
        .iter()
        .filter(|(_, s)| (200..300).contains(s))
        .map(|(id, _)| id.clone())
        .collect();
    let refused: Vec<String> = answers
        .iter()
        .filter(|(_, s)| *s == 503)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        acked.len() + refused.len(),
        answers.len(),
        "every delivery is either stored (2xx) or refused with 503: {:?}",
        answers
            .iter()
            .filter(|(_, s)| *s != 503 && !(200..300).contains(s))
            .collect::<Vec<_>>()
    );
    (acked, refused)
}

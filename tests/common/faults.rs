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

/// An event of about 6 KiB (a large, personal-looking field pads it), with its own id.
pub fn padded_event(i: usize) -> (String, String) {
    let id = format!("evt_fault{i:06}");
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

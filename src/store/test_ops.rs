//! Writes the backends' batch tests share: a delivery, and a completion that breaks a rule
//! of ours, so a test can show the worker's part failing alone; and a migrated SQLite file
//! for the tests of the writer's threads.

use super::apply::Outcomes;
use super::batch::{InsertOutcome, WriteOp, WriteOut};
use super::complete::{Claimed, Completion};
use super::{NewEvent, NewNotice, StoreError};

/// A delivery of the event `id`.
pub(super) fn event(id: &str) -> WriteOp {
    event_with(id, "{}")
}

/// A delivery of the event `id` carrying `payload`.
pub(super) fn event_with(id: &str, payload: &str) -> WriteOp {
    WriteOp::Insert(NewEvent {
        id: id.to_string(),
        event_type: "com.gigs.subscription.created".to_string(),
        payload: payload.to_string(),
        received_at: 1,
    })
}

/// A migrated SQLite file `name` in a temporary directory that lives as long as the
/// returned `TempDir`; the store that migrated it is closed again, so a test's own writer
/// thread is the only one writing to it.
pub(super) async fn migrated_sqlite_file(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let store = super::Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    store.close().await;
    (dir, path)
}

/// The ids of the events stored in the SQLite file at `path`, in order.
pub(super) fn stored_ids(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut ids = conn.prepare("SELECT id FROM events ORDER BY id").unwrap();
    let ids = ids.query_map([], |r| r.get(0)).unwrap();
    ids.collect::<Result<_, _>>().unwrap()
}

/// The claimed event `evt_claimed` (token `wkr_test`) finished with a notice but without
/// its recipient hash: refused, so nothing of it may be written.
pub(super) fn bad_completion() -> WriteOp {
    completion("evt_claimed", "s", Vec::new())
}

/// The claimed event `id` (token `wkr_test`) finished with one notice, as it should be.
pub(super) fn good_completion(id: &str) -> WriteOp {
    completion(id, "s", vec!["hash".to_string()])
}

/// The same event finished with its hash, but a subject PostgreSQL cannot store (a NUL
/// character in text): the database refuses the notice after the event's row changed.
#[cfg_attr(not(pg_tests), allow(dead_code))]
pub(super) fn unstorable_completion() -> WriteOp {
    completion("evt_claimed", "s\0", vec!["hash".to_string()])
}

fn completion(id: &str, subject: &str, recipient_hashes: Vec<String>) -> WriteOp {
    WriteOp::Complete(Claimed {
        token: "wkr_test".to_string(),
        now: 2,
        completion: Completion::EventDone {
            id: id.to_string(),
            received_at: 1,
            notices: vec![NewNotice {
                id: format!("ntc_{id}"),
                kind: "subscription_created",
                event_type: "com.gigs.subscription.created".to_string(),
                subscription_id: None,
                user_id: None,
                recipient: "someone@example.com".to_string(),
                subject: subject.to_string(),
                content: "c".to_string(),
                html: None,
            }],
        },
        attempt: None,
        recipient_hashes,
    })
}

/// The answers to `[event(…), a bad completion, a good completion]`: the delivery stored,
/// the bad completion failed on its own with an error naming `why` (returned), the good one
/// written.
pub(super) fn failed_alone<'a>(out: &'a Outcomes, why: &str) -> &'a StoreError {
    assert!(matches!(
        out[0],
        Ok(WriteOut::Inserted(InsertOutcome::Stored))
    ));
    let err = out[1]
        .as_ref()
        .expect_err("the completion fails on its own");
    assert!(err.to_string().contains(why), "{err}");
    assert!(
        matches!(out[2], Ok(WriteOut::Completed(true))),
        "the completion beside it is written: {:?}",
        out[2]
    );
    err
}

//! Real storage faults under a running service: the database reaching its size cap, and the
//! database file removed or replaced. The one promise: no 2xx for an event that a restart
//! would not find stored.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::faults::*;
use common::*;
use serde_json::Value;
use sqlx::Connection;

async fn readyz(app: &TestApp) -> (u16, Value) {
    let r = app.get("/readyz").await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_never_acknowledges_what_it_did_not_store() {
    // 1 MiB cap: room for about 120 of these events and their notices.
    let app = spawn_app_with(Backend::Sqlite, |raw| {
        raw.set("SQLITE_MAX_PAGES", "256");
    })
    .await;
    mail_accepts(&app.mail).await;
    let path = db_path(&app);

    let answers = deliver_all(&app, 0..400).await;

    let (acked, refused) = acked_or_refused(&answers);
    assert!(
        !refused.is_empty(),
        "the cap was never reached; the test proves nothing"
    );
    assert!(!acked.is_empty());
    let (status, body) = readyz(&app).await;
    assert_eq!(
        status, 503,
        "readiness must fail while the store is full: {body}"
    );

    // Deliveries keep failing the same way while it is full: never a 2xx that is not stored.
    let more = deliver_all(&app, 400..440).await;
    for (id, status) in &more {
        assert!(
            *status == 503 || (200..300).contains(status),
            "{id}: {status}"
        );
    }
    let acked: HashSet<String> = acked
        .into_iter()
        .chain(
            more.iter()
                .filter(|(_, s)| (200..300).contains(s))
                .map(|(i, _)| i.clone()),
        )
        .collect();
    let stored = stored_ids(&path).await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // Space comes back (an operator deletes old rows): the service recovers by itself.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM notices")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM events")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = readyz(&app).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not come back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = deliver_all(&app, 1000..1010).await;
    assert!(again.iter().all(|(_, s)| *s == 202), "{again:?}");

    // After a restart, everything acknowledged since the space came back is there.
    let (_, _, db) = app.stop().await;
    let stored = stored_ids(&path).await;
    for (id, _) in &again {
        assert!(
            stored.contains(id),
            "{id} acknowledged but missing after restart"
        );
    }
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_database_file_gets_503_and_fails_readiness() {
    let app = spawn_app(Backend::Sqlite).await;
    mail_accepts(&app.mail).await;
    let path = db_path(&app);
    let (status, _) = app.deliver(&padded_event(1).1).await;
    assert_eq!(status, 202);

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let after = deliver_all(&app, 2..12).await;

    assert!(
        after.iter().all(|(_, s)| *s == 503),
        "deliveries after the file was removed must get 503: {after:?}"
    );
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "database_file_replaced", "{body}");
    // Nothing was created in its place behind the operator's back.
    assert!(!path.exists(), "a new empty database file appeared");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_database_file_gets_503_and_nothing_is_acknowledged_into_the_old_one() {
    let app = spawn_app(Backend::Sqlite).await;
    mail_accepts(&app.mail).await;
    let path = db_path(&app);
    assert_eq!(app.deliver(&padded_event(1).1).await.0, 202);

    // Replace the file with a copy (a restore, or another instance's file): a new inode.
    let copy = path.with_extension("copy");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::rename(&copy, &path).unwrap();
    let after = deliver_all(&app, 2..12).await;

    let stored = stored_ids(&path).await;
    for (id, status) in &after {
        assert!(
            *status == 503 || stored.contains(id),
            "{id} got {status} but is not in the file a restart opens"
        );
    }
    assert!(after.iter().all(|(_, s)| *s == 503), "{after:?}");
    let (status, body) = readyz(&app).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("database_file_replaced"))
    );
    app.stop().await;
}

/// Another client holds the write lock (a stuck migration, an operator's open
/// transaction): deliveries must get 503 in bounded time, not hang the write queue, and
/// everything flows again once the lock is gone.
async fn a_stuck_write_is_answered_503_and_the_queue_moves_on(b: Backend) {
    let app = spawn_app_with(b, |raw| {
        raw.set("DATABASE_STATEMENT_TIMEOUT_SECS", "1");
    })
    .await;
    mail_accepts(&app.mail).await;
    sqlx::any::install_default_drivers();
    let url = app.db.as_ref().unwrap().url.clone();
    let mut blocker = sqlx::AnyConnection::connect(&url).await.unwrap();
    let lock = match b {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE",
    };
    sqlx::raw_sql(lock).execute(&mut blocker).await.unwrap();

    let started = Instant::now();
    let (status, body) = app.deliver(&padded_event(1).1).await;
    let waited = started.elapsed();

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    // Bounded by the store's own limits (busy timeout, statement timeout, batch deadline),
    // well inside the ~15 s Svix waits for an answer.
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
    blocker.close().await.ok();
    let (status, body) = app.deliver(&padded_event(2).1).await;
    assert_eq!(status, 202, "{body}");
    app.stop().await;
}

both_backends!(a_stuck_write_is_answered_503_and_the_queue_moves_on);

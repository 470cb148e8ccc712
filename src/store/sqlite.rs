//! SQLite: how the store opens its file (pragmas, create-then-`mode=rw`, the file's
//! identity for readiness) and its own migrations. One write connection for the pool and
//! the writer thread's own ([`super::sqlite_writer`]), both driven by the one write loop:
//! writers take turns in order instead of sleeping in SQLite's busy handler.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use super::health::{self, Health, NotReady};
use super::{StoreError, StoreOptions};

/// The opened database: a read pool, the single write connection's pool (writes outside the
/// group commit), the file and pragmas for the writer thread (every batch), and the health
/// watch on its file.
pub(super) struct Opened {
    pub read: AnyPool,
    pub write: AnyPool,
    pub path: std::path::PathBuf,
    pub pragmas: String,
    pub health: Health,
}

/// Create the file if needed and migrate it, then open it with `mode=rw`, so a file removed
/// under the running service is never silently created again, empty, by a reconnect.
pub(super) async fn open(url: &str, opts: &StoreOptions) -> Result<Opened, StoreError> {
    let pragmas = pragmas(opts.sqlite_max_pages);
    let pool = |max| {
        let pragmas = pragmas.clone();
        // A local file cannot drop like a network link: skip the ping sqlx sends before
        // every acquire (a round trip to SQLite's thread each).
        AnyPoolOptions::new()
            // Short: while the database is away, deliveries get a prompt 503.
            .acquire_timeout(Duration::from_secs(3))
            .min_connections(0)
            .max_connections(max)
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(pragmas.as_str()).await?;
                    Ok(())
                })
            })
    };
    let create = pool(1).connect(&with_mode(url, "rwc")).await?;
    sqlx::migrate!("./migrations/sqlite").run(&create).await?;
    create.close().await;
    let url = with_mode(url, "rw");
    let write = pool(1).connect(&url).await?;
    let path = sqlite_path(&url);
    let health = Health::for_file(&path).map_err(sqlx::Error::Io)?;
    Ok(Opened {
        read: pool(4).connect(&url).await?,
        write,
        path,
        pragmas,
        health,
    })
}

/// What every connection of the service runs first.
pub(super) fn pragmas(max_pages: Option<u32>) -> String {
    format!(
        // busy_timeout first, so even switching to WAL waits for another process's lock.
        // 1.5 s: the service's own writes hold the lock for milliseconds, and a delivery may
        // queue behind a few writes that each wait this long for a lock another process
        // holds (a claim, a lease renewal) before its own: it must still be answered, 503,
        // well inside the ingress's 10 s.
        // WAL lets readers run beside the writer; synchronous=FULL keeps every acknowledged
        // commit on disk (no durability traded away).
        // temp_store=MEMORY: the savepoint around the worker's part of a batch keeps its
        // sub-journal in memory (bounded by one batch) instead of a temporary file opened,
        // written and closed per batch (~30% of the bytes the service wrote at 2,000/s).
        // wal_autocheckpoint=10000: a thread of the writer's copies the WAL back into the
        // file (see `sqlite_checkpoint`); a commit does so itself only if that thread could
        // not for a long while.
        "PRAGMA busy_timeout=1500; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
         PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=10000;{}",
        max_pages
            .map(|n| format!(" PRAGMA max_page_count={n};"))
            .unwrap_or_default()
    )
}

/// A connection of the writer's threads to the existing file at `path`, `pragmas` run.
/// Without create: a file removed under the service is never made again, empty.
pub(super) fn open_existing(path: &Path, pragmas: &str) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(pragmas)?;
    Ok(conn)
}

/// The file behind a `sqlite:` URL (`sqlite://PATH?…`, `sqlite:PATH`).
fn sqlite_path(url: &str) -> std::path::PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    std::path::PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// `url` with `mode=…` set, unless the operator set one.
fn with_mode(url: &str, mode: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode={mode}")
    } else {
        format!("{url}?mode={mode}")
    }
}

/// Fails when fewer than [`health::MIN_FREE_BYTES`] (or a sixteenth of a smaller cap)
/// remain under `max_page_count`; free pages inside the file count as room.
pub(super) async fn page_headroom(write: &AnyPool) -> Result<(), NotReady> {
    let row = sqlx::query(
        "SELECT (SELECT max_page_count FROM pragma_max_page_count()) AS max_pages, \
         (SELECT page_count FROM pragma_page_count()) AS pages, \
         (SELECT freelist_count FROM pragma_freelist_count()) AS free_pages, \
         (SELECT page_size FROM pragma_page_size()) AS page_size",
    )
    .fetch_one(write)
    .await
    .map_err(|_| NotReady::Unreachable)?;
    let get = |name: &str| row.try_get::<i64, _>(name).unwrap_or(0).max(0) as u64;
    let room = get("max_pages")
        .saturating_sub(get("pages"))
        .saturating_add(get("free_pages"))
        .saturating_mul(get("page_size"));
    // A small cap (tests, tiny devices) asks for a sixteenth of itself, not a full MiB.
    let cap = get("max_pages").saturating_mul(get("page_size"));
    if room < health::MIN_FREE_BYTES.min(cap / 16) {
        return Err(NotReady::Full(format!(
            "{room} bytes left under max_page_count"
        )));
    }
    Ok(())
}

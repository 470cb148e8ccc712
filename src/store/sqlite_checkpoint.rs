//! SQLite's checkpoints, off the writer's path. A commit in WAL mode appends the pages it
//! changed to the `-wal` file; a checkpoint copies them back into the database file and
//! fsyncs it. Left to SQLite, the commit that crosses 1,000 pages does that itself before
//! it returns, so every few dozen batches one batch of deliveries waited 5–15 ms longer
//! for its answer (the slowest one in a hundred, measured at 2,000 deliveries/s).
//!
//! Here SQLite's own checkpoints wait until 10,000 frames (`wal_autocheckpoint`, a backstop
//! should this thread be unable to copy) and a thread of its own, on a connection of its
//! own, copies what the writer committed shortly after each commit (`PASSIVE`: it never
//! waits for a lock of the writer's or a reader's). The WAL starts over from its beginning
//! only if everything in it is copied when a writer begins its next commit; while commits
//! keep coming, copying is always a little behind. So once the WAL holds [`RESTART_AT`]
//! frames, the thread copies until little is left, then holds the writer between two
//! batches (the [`Gate`]) while it copies the rest, at most [`HOLD_AT`] frames: the next
//! commit writes from the start of the file again. The writer waits for a few hundred
//! pages, a few times a second under a burst, instead of a thousand every time, and the WAL
//! stays a few MiB, rewritten in place. While a reader keeps old frames in use, or copying
//! is far behind, the thread copies what it can and holds nobody.
//!
//! Durability is unchanged: a checkpoint only copies committed pages, and each commit is on
//! disk (`synchronous=FULL`) before anyone is answered, whoever copies it later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Frames in the WAL at which the thread sees to it that the WAL starts over (SQLite's own
/// threshold for its checkpoints).
const RESTART_AT: i64 = 1_000;

/// Frames left to copy at which the thread stops its passes.
const TAIL: i64 = 200;

/// The most frames left that the thread copies with the writer held; with more left after
/// its passes (a reader holds old frames, or copying is far behind) it holds nobody and
/// tries again on its next turn.
const HOLD_AT: i64 = 4 * TAIL;

/// Copying passes, while the writer keeps committing, before the thread holds the writer
/// whatever is left (copying must end even if commits come as fast as it copies).
const PASSES: usize = 4;

/// How long the thread waits after its work before the next: commits that come meanwhile
/// are copied together (a page changed by several of them is copied once).
const PAUSE: Duration = Duration::from_millis(5);

/// How often a checkpoint that keeps failing is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// With nothing committed, how often the thread looks anyway (writes outside the group
/// commit, such as lease renewals, nudge nobody).
const IDLE: Duration = Duration::from_secs(1);

/// Held by the writer for each batch, and by the thread for its last copy before the WAL
/// starts over, so that no batch is committed between the two. (Other writers, such as
/// lease renewals or a CLI command, may be; they restart the WAL as well if it is all
/// copied, or the next turn tries again.)
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<()>>);

impl Gate {
    fn hold(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer's handle to the copying thread, which ends when this is dropped.
pub(super) struct Checkpoints {
    nudge: mpsc::SyncSender<()>,
    gate: Gate,
    /// Bumped when the writer opens a new connection (after a failure, within a batch that
    /// found the file to be the one the service opened): only then does the thread open a
    /// new one too. Its own failures keep its connection, so it never opens a file that
    /// replaced the service's under the same path.
    generation: Arc<AtomicU64>,
}

impl Checkpoints {
    /// Start copying for the database at `path`; `pragmas` are run on each connection.
    pub(super) fn start(path: PathBuf, pragmas: String) -> std::io::Result<Self> {
        let (nudge, rx) = mpsc::sync_channel(1);
        let generation = Arc::new(AtomicU64::new(0));
        let gate = Gate::default();
        let (seen, shared_gate) = (generation.clone(), gate.clone());
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || copy_loop(&path, &pragmas, &rx, &seen, &shared_gate))?;
        Ok(Self {
            nudge,
            gate,
            generation,
        })
    }

    /// Held by the writer while it writes a batch: the thread's last copy before the WAL
    /// starts over waits for it, and it for that copy.
    pub(super) fn hold_off(&self) -> MutexGuard<'_, ()> {
        self.gate.hold()
    }

    /// The writer committed: copy soon (one nudge stands for any number of commits).
    pub(super) fn committed(&self) {
        let _ = self.nudge.try_send(());
    }

    /// The writer opened a new connection.
    pub(super) fn reopened(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (frames in the WAL, frames of them not yet copied).
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let (_busy, log, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok((log.max(0), (log - copied).max(0)))
}

/// Copy what is committed; once the WAL is long, copy until little is left and the rest
/// with the writer held, so the next commit starts the WAL over.
fn copy(conn: &Connection, gate: &Gate) -> rusqlite::Result<()> {
    let (log, mut left) = checkpoint(conn)?;
    if log < RESTART_AT {
        return Ok(());
    }
    for _ in 1..PASSES {
        if left <= TAIL {
            break;
        }
        let before = left;
        left = checkpoint(conn)?.1;
        if left >= before {
            // Nothing copied this pass: a reader holds those frames.
            break;
        }
    }
    if left > HOLD_AT {
        return Ok(());
    }
    let _writer_held = gate.hold();
    checkpoint(conn).map(drop)
}

fn copy_loop(
    path: &Path,
    pragmas: &str,
    nudges: &mpsc::Receiver<()>,
    generation: &AtomicU64,
    gate: &Gate,
) {
    let mut conn: Option<(Connection, u64)> = None;
    let mut warned: Option<Instant> = None;
    loop {
        match nudges.recv_timeout(IDLE) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let current = generation.load(Ordering::Relaxed);
        if conn.as_ref().is_some_and(|(_, g)| *g != current) {
            conn = None;
        }
        let result = match conn.as_ref() {
            Some((c, _)) => copy(c, gate),
            None => super::sqlite::open_existing(path, pragmas)
                .and_then(|c| copy(&conn.insert((c, current)).0, gate)),
        };
        match result {
            Ok(()) => warned = None,
            // A full disk, a removed file, I/O: the writer meets it on its next commit and
            // answers for it; this thread tries again on its next turn, on the same
            // connection. Said once a minute while it lasts.
            Err(e) => {
                if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(error = %e, "checkpoint failed; the WAL grows until one succeeds");
                    warned = Some(Instant::now());
                }
            }
        }
        std::thread::sleep(PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite_writer::Committer;
    use crate::store::test_ops::{event_with, migrated_sqlite_file};

    #[tokio::test]
    async fn under_steady_commits_the_wal_starts_over_instead_of_growing() {
        let (dir, path) = migrated_sqlite_file("c.db").await;
        let mut writer = Committer::new(path.clone(), crate::store::sqlite::pragmas(None)).unwrap();
        // 600 commits of 8 deliveries of 4 KiB: some 40 MiB of WAL frames in all.
        let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
        for b in 0..600 {
            let ops: Vec<_> = (0..8)
                .map(|i| event_with(&format!("evt_{b}_{i}"), &payload))
                .collect();
            writer.commit(&ops).unwrap();
            writer.committed();
        }
        let wal = std::fs::metadata(dir.path().join("c.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < 16 << 20,
            "the WAL grew to {wal} bytes instead of starting over"
        );
        let conn = rusqlite::Connection::open(&path).unwrap();
        let stored: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 4800, "every committed delivery is in the file");
    }
}

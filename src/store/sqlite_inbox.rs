//! SQLite's inbox writer: deliveries (and readiness probes) are written by a thread of its
//! own, on a connection of its own, a whole group-commit batch at a time.
//!
//! Through sqlx every statement of a batch (`BEGIN`, the insert, `COMMIT`) is a round trip
//! to the connection's thread, and on a busy two-core machine each round trip costs more
//! than the statement; the multi-row insert was also prepared anew for every batch size.
//! Here a batch is handed over once, written with one cached prepared statement row by row
//! inside one `BEGIN IMMEDIATE … COMMIT`, and answered once. Durability is the same:
//! `synchronous=FULL` (the same pragmas as the pool's connections) and no caller is answered
//! before `COMMIT` returned.
//!
//! The connection is opened read-write without create (a file removed under the service is
//! never made again, empty) and is thrown away after any failure, so no batch ever runs
//! inside a transaction SQLite kept open after an I/O error or a full disk. A batch that
//! overruns its deadline is interrupted.
//!
//! The other writers (the worker's completions and claims through sqlx, operator commands)
//! take turns with this one through [`super::batch`]'s single write loop; writers in other
//! processes (the CLI) wait in SQLite's busy handler.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, InterruptHandle, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use super::batch::InsertOutcome;
use super::{NewEvent, StoreError};

/// What one batch asks of the inbox writer.
#[derive(Debug, Default)]
pub(super) struct InboxBatch {
    pub events: Vec<NewEvent>,
    /// Also write the readiness probe row.
    pub probe: bool,
}

type Answer = Result<Vec<InsertOutcome>, rusqlite::Error>;

struct Job {
    batch: InboxBatch,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the writer thread; the thread ends when the handle is dropped.
pub(super) struct Inbox {
    jobs: mpsc::Sender<Job>,
    /// Interrupts the statement running now (a batch past its deadline).
    interrupt: Arc<Mutex<Option<InterruptHandle>>>,
}

impl Inbox {
    /// Start the writer for the database file at `path`; `pragmas` are run on every
    /// connection it opens.
    pub(super) fn start(path: PathBuf, pragmas: String) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let interrupt = Arc::new(Mutex::new(None));
        let handle = interrupt.clone();
        std::thread::Builder::new()
            .name("sqlite-inbox".into())
            .spawn(move || serve(&path, &pragmas, rx, &handle))?;
        Ok(Self { jobs, interrupt })
    }

    /// Write `batch` in one transaction; answers once it is committed, or with the error
    /// that stopped it (nothing of it is then committed), or after `deadline`.
    pub(super) async fn write(
        &self,
        batch: InboxBatch,
        deadline: Duration,
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { batch, reply })
            .map_err(|_| StoreError::Closed)?;
        match tokio::time::timeout(deadline, answer).await {
            Ok(Ok(result)) => result.map_err(StoreError::Sqlite),
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => {
                if let Some(handle) = self
                    .interrupt
                    .lock()
                    .ok()
                    .as_deref()
                    .and_then(Option::as_ref)
                {
                    handle.interrupt();
                }
                Err(StoreError::Timeout(deadline))
            }
        }
    }
}

/// The thread: one job at a time, until the handle is dropped.
fn serve(
    path: &Path,
    pragmas: &str,
    jobs: mpsc::Receiver<Job>,
    interrupt: &Mutex<Option<InterruptHandle>>,
) {
    let mut conn: Option<Connection> = None;
    let set_interrupt = |handle: Option<InterruptHandle>| {
        if let Ok(mut slot) = interrupt.lock() {
            *slot = handle;
        }
    };
    for job in jobs {
        let result = match conn.as_mut() {
            Some(c) => write(c, &job.batch),
            None => open(path, pragmas).and_then(|mut c| {
                set_interrupt(Some(c.get_interrupt_handle()));
                let result = write(&mut c, &job.batch);
                conn = Some(c);
                result
            }),
        };
        if result.is_err() {
            // Closed, not reused: closing rolls back whatever SQLite still holds open.
            set_interrupt(None);
            conn = None;
        }
        let _ = job.reply.send(result);
    }
}

fn open(path: &Path, pragmas: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(pragmas)?;
    Ok(conn)
}

/// One transaction: the probe row, then each event; the first occurrence of a new id is
/// the one that stores it, the rest (and ids already stored) are duplicates.
fn write(conn: &mut Connection, batch: &InboxBatch) -> Answer {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if batch.probe {
        tx.execute(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            [super::now_ms()],
        )?;
    }
    let mut out = Vec::with_capacity(batch.events.len());
    {
        // received_at doubles as the first due time and the start of the age budget.
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, event_type, payload, next_attempt_at, received_at, \
             attempts_since) VALUES (?1, ?2, ?3, ?4, ?4, ?4) ON CONFLICT (id) DO NOTHING",
        )?;
        for e in &batch.events {
            let stored = insert.execute(params![e.id, e.event_type, e.payload, e.received_at])?;
            out.push(if stored == 1 {
                InsertOutcome::Stored
            } else {
                InsertOutcome::Duplicate
            });
        }
    }
    tx.commit()?;
    Ok(out)
}

//! SQLite's writer: every group-commit batch (deliveries, readiness probes, the worker's
//! finished work and claims) is written by a thread of its own, on a connection of its
//! own, in one `BEGIN IMMEDIATE … COMMIT`: one hand-off, one fsync, one answer per batch.
//!
//! Through sqlx every statement of a batch is a round trip to the connection's thread, and
//! on a busy two-core machine each round trip costs more than the statement; when the
//! worker's writes went through sqlx in a second transaction, the deliveries of the same
//! batch also waited for its commit. Durability is the same: `synchronous=FULL` (the pool's
//! pragmas) and nobody is answered before `COMMIT` returned.
//!
//! The worker's part runs inside a savepoint after the deliveries: if it fails for a reason
//! of its own (a constraint, a rule of ours), it is rolled back and done again op by op
//! ([`apply::work_apart`]), so only the op at fault is answered with the error while the
//! deliveries and the other results still commit: a bad completion cannot turn deliveries
//! away, nor the results it shared a batch with. A failure of the database itself (full,
//! I/O, read-only, interrupted) fails the batch.
//!
//! The connection is opened read-write without create (a file removed under the service is
//! never made again, empty) and is thrown away after any failure, so no batch ever runs
//! inside a transaction SQLite kept open after an I/O error or a full disk. A batch that
//! overruns its deadline is interrupted. Other writers of this process (lease renewals,
//! operator commands through the pool) take turns with this one through the store's turn
//! lock; writers in other processes (the CLI) wait in SQLite's busy handler. Copying the
//! WAL back into the file is left to a thread of its own ([`super::sqlite_checkpoint`]).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, InterruptHandle, TransactionBehavior};
use tokio::sync::oneshot;

use super::apply::{self, Outcomes};
use super::batch::WriteOp;
use super::sqlite_checkpoint::Checkpoints;
use super::sqlite_tx::SqliteTx;
use super::StoreError;

type Answer = Result<Outcomes, rusqlite::Error>;

struct Job {
    ops: Vec<WriteOp>,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the writer thread; the thread ends when the handle is dropped.
pub(super) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
    /// Interrupts the statement running now (a batch past its deadline).
    interrupt: Arc<Mutex<Option<InterruptHandle>>>,
}

impl SqliteWriter {
    /// Start the writer for the database file at `path`; `pragmas` are run on every
    /// connection it opens.
    pub(super) fn start(path: PathBuf, pragmas: String) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let interrupt = Arc::new(Mutex::new(None));
        let handle = interrupt.clone();
        let checkpoints = Checkpoints::start(path.clone(), pragmas.clone())?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || serve(&path, &pragmas, rx, &handle, &checkpoints))?;
        Ok(Self { jobs, interrupt })
    }

    /// Write `ops` in one transaction; answers once it is committed, or with the error that
    /// stopped it (nothing of it is then committed), or after `deadline`.
    pub(super) async fn write(
        &self,
        ops: Vec<WriteOp>,
        deadline: Duration,
    ) -> Result<Outcomes, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { ops, reply })
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

/// The thread: one batch at a time, until the handle is dropped.
fn serve(
    path: &Path,
    pragmas: &str,
    jobs: mpsc::Receiver<Job>,
    interrupt: &Mutex<Option<InterruptHandle>>,
    checkpoints: &Checkpoints,
) {
    let mut conn: Option<Connection> = None;
    let set_interrupt = |handle: Option<InterruptHandle>| {
        if let Ok(mut slot) = interrupt.lock() {
            *slot = handle;
        }
    };
    for job in jobs {
        if job.reply.is_closed() {
            // Its caller gave up waiting (the batch deadline) and answered with an error:
            // written now, it would be a delivery stored after its 503, or a claim nobody
            // works on.
            continue;
        }
        let gate = checkpoints.hold_off();
        let result = match conn.as_mut() {
            Some(c) => write(c, &job.ops),
            None => open(path, pragmas).and_then(|mut c| {
                set_interrupt(Some(c.get_interrupt_handle()));
                checkpoints.reopened();
                let result = write(&mut c, &job.ops);
                conn = Some(c);
                result
            }),
        };
        if result.is_err() {
            // Closed, not reused: closing rolls back whatever SQLite still holds open.
            set_interrupt(None);
            conn = None;
        }
        drop(gate);
        let committed = result.is_ok();
        let _ = job.reply.send(result);
        if committed {
            checkpoints.committed();
        }
    }
}

fn open(path: &Path, pragmas: &str) -> rusqlite::Result<Connection> {
    let conn = super::sqlite::open_existing(path, pragmas)?;
    // Every statement of a batch stays prepared (claims vary with the recipients left out).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// One transaction: the deliveries, then the worker's part in a savepoint.
fn write(conn: &mut Connection, ops: &[WriteOp]) -> Answer {
    let mut out = apply::answers(ops);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut statements = SqliteTx { tx: &tx };
    // The statements never wait, so their futures finish on the first poll.
    futures::executor::block_on(apply::deliveries(
        &mut statements,
        ops,
        super::now_ms(),
        &mut out,
    ))?;
    let failed = futures::executor::block_on(apply::work_apart(&mut statements, ops, &mut out))?;
    tx.commit()?;
    let failed = failed.into_iter().map(|(i, e)| (i, StoreError::Sqlite(e)));
    Ok(apply::outcomes(out, failed.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::batch::WriteOut;
    use crate::store::test_ops::{
        bad_completion, event, failed_alone, good_completion, migrated_sqlite_file,
    };
    use crate::store::InsertOutcome;

    #[tokio::test]
    async fn a_failing_worker_part_is_rolled_back_while_the_deliveries_of_its_batch_commit() {
        let (_dir, path) = migrated_sqlite_file("w.db").await;
        // The claimed events the completions finish, held by the completions' token.
        let writer = SqliteWriter::start(path.clone(), String::new()).unwrap();
        let setup = writer
            .write(
                vec![event("evt_claimed"), event("evt_good")],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(matches!(
            setup[0],
            Ok(WriteOut::Inserted(InsertOutcome::Stored))
        ));
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE events SET claim_token = 'wkr_test', lease_until = 9e15 \
             WHERE id IN ('evt_claimed', 'evt_good')",
            [],
        )
        .unwrap();

        let claim = WriteOp::Claim(crate::store::batch::ClaimRequest {
            token: "wkr_other".into(),
            now: 2,
            lease_until: 10,
            events: 10,
            notices: 10,
            busy_recipients: Vec::new(),
        });
        let batch = vec![
            event("evt_delivered"),
            bad_completion(),
            good_completion("evt_good"),
            claim,
        ];
        let out = writer.write(batch, Duration::from_secs(5)).await.unwrap();

        failed_alone(&out, "recipient hashes");
        // The claim ran twice (in the part, rolled back, then alone): it counts once.
        let Ok(WriteOut::Claimed(claimed, _)) = &out[3] else {
            panic!("the claim beside it is answered: {:?}", out[3]);
        };
        let ids: Vec<_> = claimed.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_delivered"]);
        let attempts: i64 = conn
            .query_row(
                "SELECT attempts FROM events WHERE id = 'evt_delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(attempts, 1, "claimed once");
        let stored: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE id = 'evt_delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 1, "the delivery committed");
        let row = |id: &str| -> (String, i64) {
            conn.query_row(
                "SELECT state, (SELECT COUNT(*) FROM notices WHERE event_id = ?1) \
                 FROM events WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(
            row("evt_claimed"),
            ("pending".to_string(), 0),
            "nothing of the completion was kept"
        );
        assert_eq!(
            row("evt_good"),
            ("done".to_string(), 1),
            "the completion beside it was"
        );
    }

    #[tokio::test]
    async fn a_batch_whose_caller_gave_up_is_not_written() {
        let (_dir, path) = migrated_sqlite_file("g.db").await;
        let writer = SqliteWriter::start(path.clone(), String::new()).unwrap();
        let (reply, answer) = oneshot::channel();
        drop(answer); // what a deadline does to the waiting caller
        writer
            .jobs
            .send(Job {
                ops: vec![event("evt_given_up")],
                reply,
            })
            .unwrap();
        writer
            .write(vec![event("evt_waited_for")], Duration::from_secs(5))
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["evt_waited_for"]);
    }
}

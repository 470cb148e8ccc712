//! SQLite's writer: a thread of its own, on a connection of its own, takes the write
//! queue's batches itself (deliveries, readiness probes, the worker's finished work and
//! claims) and writes each in one `BEGIN IMMEDIATE … COMMIT`: one fsync, and its callers
//! answered from this thread the moment `COMMIT` returned.
//!
//! Through sqlx every statement of a batch was a round trip to the connection's thread,
//! and on a busy two-core machine each round trip cost more than the statement. When a task
//! of the async runtime took the batches and handed each to this thread, the thread sat
//! idle between two batches for a quarter of the time (the task waited its turn among the
//! requests to be woken, answer and hand over the next batch). Durability is the same:
//! `synchronous=FULL` (the pool's pragmas) and nobody is answered before `COMMIT` returned.
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
//! overruns its deadline is interrupted; its callers stopped waiting already (each waits at
//! most the deadline, see [`super::batch::Batcher`]), and a write whose caller stopped
//! waiting before its batch began is not written. Other writers of this process (lease
//! renewals, operator commands through the pool) take turns with this one through the
//! store's turn lock; writers in other processes (the CLI) wait in SQLite's busy handler.
//! Copying the WAL back into the file is left to a thread of its own
//! ([`super::sqlite_checkpoint`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use super::apply::{self, Outcomes};
use super::batch::{self, Queued, WriteOp, BATCH_DEADLINE};
use super::health::Health;
use super::sqlite_batches as batches;
use super::sqlite_checkpoint::Checkpoints;
use super::sqlite_tx::SqliteTx;
use super::{StoreError, WriteTurn};

type Answer = Result<Outcomes, rusqlite::Error>;

/// SQLite virtual-machine steps between two looks at the batch's deadline.
const STEPS_PER_LOOK: i32 = 1_000;

/// Start the writer for the database file at `path` (`pragmas` run on every connection it
/// opens), taking its writes from `queue` until every sender is gone.
pub(super) fn start(
    path: PathBuf,
    pragmas: String,
    queue: flume::Receiver<Queued>,
    health: Arc<Health>,
    turn: WriteTurn,
) -> std::io::Result<()> {
    let committer = Committer::new(path, pragmas)?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || serve(committer, &queue, &health, &turn))?;
    Ok(())
}

/// The thread: one batch at a time, each answered before the next is taken.
fn serve(
    mut committer: Committer,
    queue: &flume::Receiver<Queued>,
    health: &Health,
    turn: &WriteTurn,
) {
    let _close = batch::CloseOnExit(queue);
    let mut held = Vec::new();
    while let Some(mut batch) = batches::next_batch(queue, std::mem::take(&mut held)) {
        drop_given_up(&mut batch);
        held = batches::hold_back_work(&mut batch);
        if batch.is_empty() {
            continue;
        }
        let (replies, written) = {
            let _turn = turn.blocking_lock();
            // The turn may have taken a while (a purge; another process's lock on a lease
            // renewal): callers that stopped waiting meanwhile are not written either.
            drop_given_up(&mut batch);
            if batch.is_empty() {
                continue;
            }
            let (replies, ops) = batch::split(batch, "writes");
            let written = health.before_write().and_then(|()| {
                health.after_write(committer.commit(&ops).map_err(StoreError::Sqlite))
            });
            (replies, written)
        };
        let committed = written.is_ok();
        let locked = batch::answer(replies, written, "writes");
        if committed {
            committer.committed();
        }
        if let Some(e) = locked {
            batches::turn_away_deliveries(queue, &mut held, &e);
        }
    }
}

/// A caller that stopped waiting (its deadline) was answered with an error: written now, it
/// would be a delivery stored after its 503, or a claim nobody works on.
fn drop_given_up(batch: &mut Vec<Queued>) {
    batch.retain(|(_, reply)| !reply.is_closed());
}

/// The writer's connection (opened on first use, and again after a failure) and the
/// thread that copies its commits back into the file.
pub(super) struct Committer {
    path: PathBuf,
    pragmas: String,
    conn: Option<Connection>,
    checkpoints: Checkpoints,
    /// How long a batch's statements may run before they are interrupted.
    deadline: Duration,
}

impl Committer {
    pub(super) fn new(path: PathBuf, pragmas: String) -> std::io::Result<Self> {
        let checkpoints = Checkpoints::start(path.clone(), pragmas.clone())?;
        Ok(Self {
            path,
            pragmas,
            conn: None,
            checkpoints,
            deadline: BATCH_DEADLINE,
        })
    }

    /// Write `ops` in one transaction; `Ok` once it is committed, or the error that stopped
    /// it (nothing of it is then committed, and the connection is closed).
    pub(super) fn commit(&mut self, ops: &[WriteOp]) -> Answer {
        let _gate = self.checkpoints.hold_off();
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => {
                let c = open(&self.path, &self.pragmas)?;
                self.checkpoints.reopened();
                self.conn.insert(c)
            }
        };
        let deadline = Instant::now() + self.deadline;
        conn.progress_handler(STEPS_PER_LOOK, Some(move || Instant::now() >= deadline));
        let result = write(conn, ops);
        if result.is_err() {
            // Closed, not reused: closing rolls back whatever SQLite still holds open.
            self.conn = None;
        }
        result
    }
}

impl Committer {
    /// After answering a commit's callers: the checkpoint thread copies it soon.
    pub(super) fn committed(&self) {
        self.checkpoints.committed();
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
    // Not past this point: a COMMIT that reached the disk is never reported as interrupted.
    tx.progress_handler(0, None::<fn() -> bool>);
    tx.commit()?;
    let failed = failed.into_iter().map(|(i, e)| (i, StoreError::Sqlite(e)));
    Ok(apply::outcomes(out, failed.collect()))
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::store::batch::WriteOut;
    use crate::store::test_ops::{
        bad_completion, event, failed_alone, good_completion, migrated_sqlite_file, stored_ids,
    };
    use crate::store::InsertOutcome;

    #[tokio::test]
    async fn a_failing_worker_part_is_rolled_back_while_the_deliveries_of_its_batch_commit() {
        let (_dir, path) = migrated_sqlite_file("w.db").await;
        // The claimed events the completions finish, held by the completions' token.
        let mut writer = Committer::new(path.clone(), String::new()).unwrap();
        let setup = writer
            .commit(&[event("evt_claimed"), event("evt_good")])
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
        let out = writer.commit(&batch).map_err(StoreError::Sqlite).unwrap();

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
    async fn writes_are_answered_from_the_thread_except_those_whose_caller_gave_up() {
        let (_dir, path) = migrated_sqlite_file("g.db").await;
        let (tx, rx) = flume::bounded(8);
        let (given_up, answer) = oneshot::channel();
        drop(answer); // what a deadline does to the waiting caller
        tx.send((event("evt_given_up"), given_up)).unwrap();
        let (waited, answer) = oneshot::channel();
        tx.send((event("evt_waited_for"), waited)).unwrap();
        let health = Arc::new(Health::for_file(&path).unwrap());
        start(
            path.clone(),
            String::new(),
            rx,
            health,
            WriteTurn::default(),
        )
        .unwrap();
        let stored = answer.await.expect("answered").unwrap();
        assert!(matches!(stored, WriteOut::Inserted(InsertOutcome::Stored)));
        assert_eq!(stored_ids(&path), ["evt_waited_for"]);
    }

    #[tokio::test]
    async fn a_write_given_up_while_the_turn_was_held_elsewhere_is_not_written() {
        let (_dir, path) = migrated_sqlite_file("t.db").await;
        let health = Arc::new(Health::for_file(&path).unwrap());
        let (batcher, queue) = super::batch::Batcher::for_thread(health.clone());
        let turn = WriteTurn::default();
        start(path.clone(), String::new(), queue, health, turn.clone()).unwrap();
        let held = turn.lock().await; // a purge, say, or a renewal waiting on a lock
        let impatient = batcher.waiting_at_most(Duration::from_millis(50));
        let out = impatient.write(event("evt_given_up")).await;
        assert!(matches!(out, Err(StoreError::Timeout(_))), "{out:?}");
        drop(held);
        let out = batcher.write(event("evt_waited_for")).await.unwrap();
        assert!(matches!(out, WriteOut::Inserted(InsertOutcome::Stored)));
        assert_eq!(stored_ids(&path), ["evt_waited_for"]);
    }

    #[tokio::test]
    async fn a_batch_past_its_deadline_is_interrupted_and_nothing_of_it_is_kept() {
        let (_dir, path) = migrated_sqlite_file("d.db").await;
        let mut writer = Committer::new(path.clone(), String::new()).unwrap();
        writer.deadline = Duration::ZERO;
        let ops: Vec<_> = (0..200).map(|i| event(&format!("evt_{i:03}"))).collect();
        let err = writer.commit(&ops).expect_err("interrupted");
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted),
            "{err}"
        );
        assert_eq!(
            stored_ids(&path).len(),
            0,
            "rolled back with the connection"
        );
        writer.deadline = BATCH_DEADLINE;
        writer.commit(&ops).expect("a new connection, in time");
        assert_eq!(stored_ids(&path).len(), 200);
    }
}

//! Group commit. Writes from many concurrent callers (deliveries at the ingress, finished
//! work from the worker) queue up and are written in one transaction, so they share one
//! fsync; each caller still gets its answer only after the commit that holds its write.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyPool, Connection as _};
use tokio::sync::{oneshot, Mutex};

use super::apply::Outcomes;
use super::complete::Claimed;
use super::health::Health;
use super::{NewEvent, StoreError};

/// Largest batch per transaction; bounds how long one commit holds the write lock.
pub(super) const MAX_BATCH: usize = 512;

/// Longest one batch may take before its callers are answered with an error (503 at the
/// ingress) and its connection is thrown away: a stuck query or a database that stopped
/// answering must not stall the queue behind it. On SQLite it bounds each caller's whole
/// wait, from the moment its write is queued.
pub(super) const BATCH_DEADLINE: Duration = Duration::from_secs(8);

pub(super) type Reply = oneshot::Sender<Result<WriteOut, StoreError>>;
/// A write waiting in the queue, with where its answer goes.
pub(super) type Queued = (WriteOp, Reply);

/// The write queue, and whoever commits it: SQLite's writer thread, or tasks writing
/// through a pool.
#[derive(Clone)]
pub struct Batcher {
    tx: flume::Sender<Queued>,
    /// SQLite: how long a caller waits in all, and the health its timing out marks.
    wait: Option<(Duration, Arc<Health>)>,
}

impl Batcher {
    /// The queue for SQLite's writer thread, which takes it from `rx`; a caller waits at
    /// most [`BATCH_DEADLINE`] (the thread cannot be stopped inside a stuck `fsync`).
    pub(super) fn for_thread(health: Arc<Health>) -> (Self, flume::Receiver<Queued>) {
        let (tx, rx) = flume::bounded(4 * MAX_BATCH);
        let wait = Some((BATCH_DEADLINE, health));
        (Self { tx, wait }, rx)
    }

    /// Start `writers` committing tasks writing through `pool` (PostgreSQL).
    pub fn start_pooled(
        pool: AnyPool,
        writers: usize,
        name: &'static str,
        health: Arc<Health>,
    ) -> Self {
        let (tx, rx) = flume::bounded(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let writer = PoolWriter {
                pool: pool.clone(),
                health: health.clone(),
            };
            tokio::spawn(write_loop(writer, rx.clone(), name));
        }
        Self { tx, wait: None }
    }

    /// Queue one write and wait for the commit that holds it.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOut, StoreError> {
        let (reply, answer) = oneshot::channel();
        let queued = async {
            self.tx
                .send_async((op, reply))
                .await
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        };
        let Some((wait, health)) = &self.wait else {
            return queued.await;
        };
        tokio::time::timeout(*wait, queued)
            .await
            .unwrap_or_else(|_| {
                // Nothing committed in time: readiness says so until a batch commits. The
                // write, dropped here, is not written if the writer has not begun it.
                health.write_failed();
                Err(StoreError::Timeout(*wait))
            })
    }

    /// The same queue, its callers waiting at most `wait` (tests of the deadline).
    #[cfg(test)]
    pub(super) fn waiting_at_most(&self, wait: Duration) -> Self {
        let health = self.wait.as_ref().map(|(_, h)| h.clone());
        Self {
            tx: self.tx.clone(),
            wait: health.map(|h| (wait, h)),
        }
    }
}

/// Held by whatever takes from the queue: when it stops, even by a panic, the writes still
/// queued are answered (`Closed`) at once instead of waiting for a reader that is gone. On
/// PostgreSQL, only the last of its committing tasks does so.
pub(super) struct CloseOnExit<'a>(pub &'a flume::Receiver<Queued>);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        // Dropping a reply is the caller's `Closed`.
        self.0.try_iter().for_each(drop);
    }
}

/// One committing task. After any failure its connection is closed, not returned to the
/// pool, so the next batch gets a new one: a failed statement, COMMIT or ROLLBACK can leave
/// the database holding a transaction the driver no longer tracks (PostgreSQL after a lost
/// connection), and a batch run inside it would "commit" only a savepoint that never
/// reaches the disk.
struct PoolWriter {
    pool: AnyPool,
    health: Arc<Health>,
}

impl PoolWriter {
    /// Write `ops` in one transaction on a pool connection, thrown away if anything fails.
    async fn run(&self, ops: &[WriteOp]) -> Result<Outcomes, StoreError> {
        self.health.before_write()?;
        let mut conn = None;
        let outcome = async {
            let c = conn.insert(self.pool.acquire().await?);
            match tokio::time::timeout(BATCH_DEADLINE, super::postgres::commit(c, ops)).await {
                Ok(Ok(outs)) => Ok(outs),
                Ok(Err(e)) => Err(StoreError::Database(e)),
                Err(_) => Err(StoreError::Timeout(BATCH_DEADLINE)),
            }
        }
        .await;
        let outcome = self.health.after_write(outcome);
        if let (Err(_), Some(conn)) = (&outcome, conn) {
            // Taken out of the pool for good (even if closing hangs, it is never handed
            // out again); closing rolls back whatever the database holds open.
            let raw = conn.detach();
            let _ = tokio::time::timeout(Duration::from_secs(2), raw.close()).await;
        }
        outcome
    }
}

async fn write_loop(
    writer: PoolWriter,
    rx: Arc<Mutex<flume::Receiver<Queued>>>,
    name: &'static str,
) {
    let _close = LastOneCloses(rx.clone());
    loop {
        let batch: Vec<Queued> = {
            let rx = rx.lock().await;
            let Ok(first) = rx.recv_async().await else {
                return;
            };
            std::iter::once(first)
                .chain(rx.try_iter().take(MAX_BATCH - 1))
                .collect()
        };
        let (replies, ops) = split(batch, name);
        answer(replies, writer.run(&ops).await, name);
    }
}

/// [`CloseOnExit`] for the last of the committing tasks sharing a queue.
struct LastOneCloses(Arc<Mutex<flume::Receiver<Queued>>>);

impl Drop for LastOneCloses {
    fn drop(&mut self) {
        // This guard's reference and its task's own: nobody else is left to read.
        if Arc::strong_count(&self.0) <= 2 {
            if let Ok(rx) = self.0.try_lock() {
                drop(CloseOnExit(&rx));
            }
        }
    }
}

/// A batch taken apart into its callers' replies and its writes; its size is recorded.
pub(super) fn split(batch: Vec<Queued>, name: &'static str) -> (Vec<Reply>, Vec<WriteOp>) {
    metrics::histogram!("gigs_notifier_batch_size", "batch" => name).record(batch.len() as f64);
    batch.into_iter().map(|(op, reply)| (reply, op)).unzip()
}

/// Send each caller its answer (all of them the batch's failure, logged once, if it failed
/// as a whole); returns the error of a write that waited for a lock another process held,
/// if one did.
pub(super) fn answer(
    replies: Vec<Reply>,
    written: Result<Outcomes, StoreError>,
    name: &str,
) -> Option<Arc<StoreError>> {
    let answers = written.unwrap_or_else(|e| failed(e, replies.len(), name));
    let locked = answers
        .iter()
        .find_map(|a| a.as_ref().err().filter(|e| e.is_locked()).cloned());
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer.map_err(StoreError::Batch));
    }
    locked
}

/// `n` answers sharing the failure `e`, which is logged once.
fn failed(e: StoreError, n: usize, name: &str) -> Outcomes {
    tracing::error!(error = %e, batch = name, writes = n, "batched commit failed; every write in it is answered with an error");
    let e = Arc::new(e);
    (0..n).map(|_| Err(e.clone())).collect()
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored.
    Stored,
    /// The id was already in the inbox: nothing new was written.
    Duplicate,
}

/// Claim due work for a worker. Events and notices are claimed up to limits of their own,
/// so a backlog of one never takes the other's share of the worker.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub token: String,
    pub now: i64,
    pub lease_until: i64,
    pub events: i64,
    pub notices: i64,
    /// Recipients that already hold their share of in-flight mail calls: their notices are
    /// left for later. Personal data: never logged.
    pub busy_recipients: Vec<String>,
}

/// Every write the service makes on its hot paths. They share one queue, so on SQLite a
/// delivery, a finished notice and a claim that arrive together share one commit.
#[derive(Debug)]
pub enum WriteOp {
    Insert(NewEvent),
    Complete(Claimed),
    Claim(ClaimRequest),
    /// A readiness probe: a real committed write, so it fails where a delivery would.
    Probe,
}

/// The answer to a [`WriteOp`], same variant order.
#[derive(Debug)]
pub enum WriteOut {
    Inserted(InsertOutcome),
    Completed(bool),
    Claimed(Vec<super::ClaimedEvent>, Vec<super::ClaimedNotice>),
    Probed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting_queue(wait: Duration) -> (Batcher, flume::Receiver<Queued>, Arc<Health>) {
        let health = Arc::new(Health::without_file());
        let (batcher, queue) = Batcher::for_thread(health.clone());
        (batcher.waiting_at_most(wait), queue, health)
    }

    #[tokio::test]
    async fn a_caller_waits_at_most_its_deadline_and_then_writes_count_as_failing() {
        let (batcher, queue, health) = waiting_queue(Duration::from_millis(20));
        let out = batcher.write(WriteOp::Probe).await;
        assert!(matches!(out, Err(StoreError::Timeout(_))), "{out:?}");
        assert!(health.is_failing(), "readiness says writes are failing");
        let (_, reply) = queue.try_recv().expect("the write was queued");
        assert!(reply.is_closed(), "the writer sees it was given up");
    }

    #[tokio::test]
    async fn writes_still_queued_when_their_reader_stops_are_answered_at_once() {
        let (batcher, queue, _) = waiting_queue(Duration::from_secs(3600));
        let pending = tokio::spawn(async move { batcher.write(WriteOp::Probe).await });
        while queue.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(CloseOnExit(&queue));
        let out = pending.await.unwrap();
        assert!(matches!(out, Err(StoreError::Closed)), "{out:?}");
    }
}

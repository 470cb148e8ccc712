//! Group commit. Writes from many concurrent callers (deliveries at the ingress, finished
//! work from the worker) queue up and are written in one transaction, so they share one
//! fsync; each caller still gets its answer only after the commit that holds its write.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyPool, Connection as _};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::apply::{is_work, Outcomes};
use super::complete::Claimed;
use super::health::Health;
use super::sqlite_writer::SqliteWriter;
use super::{NewEvent, StoreError};

/// Largest batch per transaction; bounds how long one commit holds the write lock.
const MAX_BATCH: usize = 512;

/// Longest one batch may take before its callers are answered with an error (503 at the
/// ingress) and its connection is thrown away: a stuck query or a database that stopped
/// answering must not stall the queue behind it.
const BATCH_DEADLINE: Duration = Duration::from_secs(8);

/// How long a batch of the worker's writes alone waits for company (see [`linger`]).
const WORK_LINGER: Duration = Duration::from_millis(2);

/// The most of the worker's writes a batch that answers deliveries carries (on SQLite). A
/// finished event writes its notices and their audit rows, several random index pages
/// each: fifty of them made a batch take 5–15 ms, and the deliveries in it waited as long.
/// The rest follow in the next batch, in order; a batch of the worker's writes alone still
/// takes up to [`MAX_BATCH`].
const WORK_BESIDE_DELIVERIES: usize = 8;

/// Batches of the worker's writes this size or larger are written at once.
const LINGER_BELOW: usize = 4;

type Reply = oneshot::Sender<Result<WriteOut, StoreError>>;
/// The receiving end, shared by the committing tasks.
type Queue = Arc<Mutex<mpsc::Receiver<(WriteOp, Reply)>>>;

/// The write queue and the tasks that commit it.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(WriteOp, Reply)>,
}

impl Batcher {
    /// Start `writers` committing tasks (one for SQLite, which has one writer anyway). With
    /// a `sqlite` writer, every batch is written by it; otherwise through `pool`.
    pub fn start(
        pool: AnyPool,
        writers: usize,
        name: &'static str,
        health: Arc<Health>,
        sqlite: Option<(SqliteWriter, super::WriteTurn)>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<(WriteOp, Reply)>(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        let sqlite = sqlite.map(|(writer, turn)| (Arc::new(writer), turn));
        for _ in 0..writers.max(1) {
            let writer = Writer {
                pool: pool.clone(),
                health: health.clone(),
                sqlite: sqlite.clone(),
            };
            tokio::spawn(write_loop(writer, rx.clone(), name));
        }
        Self { tx }
    }

    /// Queue one write and wait for the commit that holds it.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOut, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// One committing task. After any failure its connection is closed, not returned to the
/// pool, so the next batch gets a new one: a failed statement, COMMIT or ROLLBACK can leave
/// the database holding a transaction the driver no longer tracks (SQLite after
/// SQLITE_FULL, SQLITE_READONLY or an I/O error; PostgreSQL after a lost connection), and a
/// batch run inside it would "commit" only a savepoint that never reaches the disk.
struct Writer {
    pool: AnyPool,
    health: Arc<Health>,
    /// SQLite's writer thread, and the turn it writes in.
    sqlite: Option<(Arc<SqliteWriter>, super::WriteTurn)>,
}

impl Writer {
    /// Write a batch in one transaction: on SQLite by its writer thread (which may answer
    /// the worker's part with an error of its own while the deliveries commit), otherwise
    /// through the pool.
    async fn run(&mut self, ops: Vec<WriteOp>, name: &str) -> Outcomes {
        let n = ops.len();
        let Some((sqlite, turn)) = self.sqlite.clone() else {
            return match self.run_pool(&ops).await {
                Ok(outs) => outs,
                Err(e) => failed(e, n, name),
            };
        };
        let written = {
            let _turn = turn.lock().await;
            self.checked(sqlite.write(ops, BATCH_DEADLINE)).await
        };
        written.unwrap_or_else(|e| failed(e, n, name))
    }

    /// A write that counts only if it went to the file a restart opens: the file is checked
    /// before and after the commit, before anyone is answered; the outcome sets health.
    async fn checked<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // A replaced file is never written to, not even once more.
        self.health.check_file()?;
        let outcome = write.await.and_then(|t| {
            self.health.check_file()?;
            Ok(t)
        });
        match &outcome {
            Ok(_) => self.health.wrote(),
            Err(_) => self.health.write_failed(),
        }
        outcome
    }

    /// Write `ops` in one transaction on a pool connection, thrown away if anything fails.
    async fn run_pool(&mut self, ops: &[WriteOp]) -> Result<Outcomes, StoreError> {
        let mut conn = None;
        let outcome = self
            .checked(async {
                let c = conn.insert(self.pool.acquire().await?);
                match tokio::time::timeout(BATCH_DEADLINE, super::postgres::commit(c, ops)).await {
                    Ok(Ok(outs)) => Ok(outs),
                    Ok(Err(e)) => Err(StoreError::Database(e)),
                    Err(_) => Err(StoreError::Timeout(BATCH_DEADLINE)),
                }
            })
            .await;
        if let (Err(_), Some(conn)) = (&outcome, conn) {
            // Taken out of the pool for good (even if closing hangs, it is never handed
            // out again); closing rolls back whatever the database holds open.
            let raw = conn.detach();
            let _ = tokio::time::timeout(Duration::from_secs(2), raw.close()).await;
        }
        outcome
    }
}

/// `n` answers sharing the failure `e`, which is logged once.
fn failed(e: StoreError, n: usize, name: &str) -> Outcomes {
    tracing::error!(error = %e, batch = name, writes = n, "batched commit failed; every write in it is answered with an error");
    let e = Arc::new(e);
    (0..n).map(|_| Err(e.clone())).collect()
}

async fn write_loop(mut writer: Writer, rx: Queue, name: &'static str) {
    let mut batch: Vec<(WriteOp, Reply)> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if batch.is_empty() {
                if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
            } else {
                // Writes held over from the last round: take what else is queued, no wait.
                take_queued(&mut rx, &mut batch);
            }
            if writer.sqlite.is_some() {
                linger(&mut rx, &mut batch).await;
            }
        }
        let held = if writer.sqlite.is_some() {
            hold_back_work(&mut batch)
        } else {
            Vec::new()
        };
        let (replies, ops): (Vec<_>, Vec<_>) = batch.drain(..).map(|(op, r)| (r, op)).unzip();
        batch = held;
        metrics::histogram!("gigs_notifier_batch_size", "batch" => name).record(ops.len() as f64);
        let answers = writer.run(ops, name).await;
        let locked = answers
            .iter()
            .find_map(|a| a.as_ref().err().filter(|e| e.is_locked()).cloned());
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer.map_err(StoreError::Batch));
        }
        if let Some(e) = locked {
            // Another process holds the write lock: deliveries that queued while this batch
            // waited for it would only wait as long again, each batch in turn, and could
            // wait several lock timeouts for their 503. They are answered now (Gigs retries);
            // the worker's writes and probes are held for the next round, so the worker's
            // retry budget and readiness are not spent on a lock they never waited for.
            let mut rx = rx.lock().await;
            while batch.len() < MAX_BATCH {
                let Ok((op, reply)) = rx.try_recv() else {
                    break;
                };
                if matches!(op, WriteOp::Insert(_)) {
                    let _ = reply.send(Err(StoreError::Batch(e.clone())));
                } else {
                    batch.push((op, reply));
                }
            }
        }
    }
}

/// On SQLite (one writer, an fsync per commit), a small batch of the worker's writes alone
/// waits up to [`WORK_LINGER`] for more, so at a moderate rate its steps (claims, finished
/// events, sent notices) share commits instead of taking one each. The first delivery or
/// probe to arrive ends the wait (with whatever queued behind it), so nobody the ingress
/// answers waits; a worker busy enough to fill [`LINGER_BELOW`] writes does not wait either
/// (draining a backlog, each of its rounds would take longer).
async fn linger(rx: &mut mpsc::Receiver<(WriteOp, Reply)>, batch: &mut Vec<(WriteOp, Reply)>) {
    let deadline = tokio::time::Instant::now() + WORK_LINGER;
    while batch.len() < LINGER_BELOW && batch.iter().all(|(op, _)| is_work(op)) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => batch.push(item),
            // Closed: what is here is still written; the next round ends the loop.
            Ok(None) | Err(_) => return,
        }
    }
    take_queued(rx, batch);
}

/// In a batch that answers deliveries or probes, at most [`WORK_BESIDE_DELIVERIES`] of the
/// worker's writes ride along; the rest are taken out, in order, for the next batch.
fn hold_back_work(batch: &mut Vec<(WriteOp, Reply)>) -> Vec<(WriteOp, Reply)> {
    if batch.iter().all(|(op, _)| is_work(op)) {
        return Vec::new();
    }
    let mut work = 0;
    let mut held = Vec::new();
    let mut kept = Vec::with_capacity(batch.len());
    for item in batch.drain(..) {
        if !is_work(&item.0) || work < WORK_BESIDE_DELIVERIES {
            work += usize::from(is_work(&item.0));
            kept.push(item);
        } else {
            held.push(item);
        }
    }
    *batch = kept;
    held
}

/// Add what is queued now to `batch`, up to [`MAX_BATCH`], without waiting.
fn take_queued(rx: &mut mpsc::Receiver<(WriteOp, Reply)>, batch: &mut Vec<(WriteOp, Reply)>) {
    while batch.len() < MAX_BATCH {
        let Ok(item) = rx.try_recv() else { break };
        batch.push(item);
    }
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

    fn claim() -> WriteOp {
        WriteOp::Claim(ClaimRequest {
            token: "wkr_test".into(),
            now: 1,
            lease_until: 2,
            events: 1,
            notices: 1,
            busy_recipients: Vec::new(),
        })
    }

    fn queued(op: WriteOp) -> (WriteOp, Reply) {
        (op, oneshot::channel().0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_worker_write_waits_for_company_but_no_longer_than_the_linger() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut batch = vec![queued(claim())];
        let started = tokio::time::Instant::now();
        linger(&mut rx, &mut batch).await;
        assert_eq!(batch.len(), 1, "nothing came");
        assert_eq!(started.elapsed(), WORK_LINGER);

        let mut batch = vec![queued(claim())];
        let started = tokio::time::Instant::now();
        let company = tokio::spawn(async move {
            tokio::time::sleep(WORK_LINGER / 2).await;
            tx.send(queued(claim())).await.unwrap();
            tx.send(queued(WriteOp::Probe)).await.unwrap();
            tx.send(queued(claim())).await.unwrap();
            tx
        });
        linger(&mut rx, &mut batch).await;
        let _tx = company.await.unwrap();
        assert_eq!(
            batch.len(),
            4,
            "the probe ended the wait, with what queued behind it"
        );
        assert_eq!(
            started.elapsed(),
            WORK_LINGER / 2,
            "not a moment after the probe"
        );
    }

    #[test]
    fn deliveries_take_a_few_of_the_worker_writes_along_and_the_rest_follow_in_order() {
        let n = WORK_BESIDE_DELIVERIES + 3;
        let claim_at = |now| match claim() {
            WriteOp::Claim(c) => queued(WriteOp::Claim(ClaimRequest { now, ..c })),
            _ => unreachable!(),
        };
        let works = || (0..n as i64).map(claim_at);
        let mut batch: Vec<_> = works().chain([queued(WriteOp::Probe)]).collect();
        let held = hold_back_work(&mut batch);
        let work_in = |b: &[(WriteOp, Reply)]| b.iter().filter(|(op, _)| is_work(op)).count();
        assert_eq!(
            (work_in(&batch), batch.len()),
            (WORK_BESIDE_DELIVERIES, WORK_BESIDE_DELIVERIES + 1)
        );
        let nows: Vec<_> = held
            .iter()
            .map(|(op, _)| match op {
                WriteOp::Claim(c) => c.now,
                _ => -1,
            })
            .collect();
        let last: Vec<_> = (WORK_BESIDE_DELIVERIES as i64..n as i64).collect();
        assert_eq!(nows, last, "the last three, in order");
        let mut alone: Vec<_> = works().collect();
        assert!(
            hold_back_work(&mut alone).is_empty(),
            "the worker's writes alone all go"
        );
        assert_eq!(alone.len(), n);
    }

    #[tokio::test(start_paused = true)]
    async fn deliveries_and_busy_workers_never_wait() {
        let (_tx, mut rx) = mpsc::channel::<(WriteOp, Reply)>(8);
        let started = tokio::time::Instant::now();
        let mut batch = vec![queued(claim()), queued(WriteOp::Probe)];
        linger(&mut rx, &mut batch).await;
        let mut full: Vec<_> = (0..LINGER_BELOW).map(|_| queued(claim())).collect();
        linger(&mut rx, &mut full).await;
        assert_eq!((batch.len(), full.len()), (2, LINGER_BELOW));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

//! Group commit. Writes from many concurrent callers (deliveries at the ingress, finished
//! work from the worker) queue up and are written in one transaction, so they share one
//! fsync; each caller still gets its answer only after the commit that holds its write.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Connection as _};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::complete::{complete_many, Claimed};
use super::health::Health;
use super::sqlite_inbox::{Inbox, InboxBatch};
use super::{NewEvent, StoreError};

/// Largest batch per transaction; bounds how long one commit holds the write lock.
const MAX_BATCH: usize = 512;

/// Longest one batch may take before its callers are answered with an error (503 at the
/// ingress) and its connection is thrown away: a stuck query or a database that stopped
/// answering must not stall the queue behind it.
const BATCH_DEADLINE: Duration = Duration::from_secs(8);

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
    /// an `inbox` (SQLite), deliveries and probes are written by it, everything else
    /// through `pool`, one after the other in the same loop.
    pub fn start(
        pool: AnyPool,
        writers: usize,
        name: &'static str,
        health: Arc<Health>,
        inbox: Option<(Inbox, super::WriteTurn)>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<(WriteOp, Reply)>(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        let inbox = inbox.map(|(inbox, turn)| (Arc::new(inbox), turn));
        for _ in 0..writers.max(1) {
            let writer = Writer {
                pool: pool.clone(),
                health: health.clone(),
                inbox: inbox.clone(),
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
    /// SQLite's writer of deliveries and probes, and the turn it writes in.
    inbox: Option<(Arc<Inbox>, super::WriteTurn)>,
}

/// Each write's answer; a failure is shared by every write of the transaction it was in.
type Answers = Vec<Result<WriteOut, Arc<StoreError>>>;

impl Writer {
    /// Write a batch: on SQLite, deliveries and probes through the inbox writer in one
    /// transaction, then the rest through the pool in another; each write is answered by
    /// the outcome of its own transaction.
    async fn run(&mut self, ops: Vec<WriteOp>, name: &str) -> Answers {
        let Some((inbox, turn)) = self.inbox.clone() else {
            let n = ops.len();
            return match self.run_pool(&ops).await {
                Ok(outs) => outs.into_iter().map(Ok).collect(),
                Err(e) => failed(e, n, name),
            };
        };
        let mut out: Vec<Option<Result<WriteOut, Arc<StoreError>>>> =
            (0..ops.len()).map(|_| None).collect();
        let (mut batch, mut inserted, mut probes) = (InboxBatch::default(), Vec::new(), Vec::new());
        let (mut rest, mut rest_at) = (Vec::new(), Vec::new());
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                WriteOp::Insert(e) => {
                    inserted.push(i);
                    batch.events.push(e);
                }
                WriteOp::Probe => {
                    probes.push(i);
                    batch.probe = true;
                }
                other => {
                    rest_at.push(i);
                    rest.push(other);
                }
            }
        }
        if batch.probe || !batch.events.is_empty() {
            let written = {
                let _turn = turn.lock().await;
                self.checked(inbox.write(batch, BATCH_DEADLINE)).await
            };
            match written {
                Ok(stored) => {
                    for (i, s) in inserted.iter().zip(stored) {
                        out[*i] = Some(Ok(WriteOut::Inserted(s)));
                    }
                    for i in &probes {
                        out[*i] = Some(Ok(WriteOut::Probed));
                    }
                }
                Err(e) => {
                    let n = inserted.len() + probes.len();
                    for (i, e) in inserted.iter().chain(&probes).zip(failed(e, n, name)) {
                        out[*i] = Some(e);
                    }
                }
            }
        }
        if !rest.is_empty() {
            let answers = match self.run_pool(&rest).await {
                Ok(outs) => outs.into_iter().map(Ok).collect(),
                Err(e) => failed(e, rest.len(), name),
            };
            for (i, a) in rest_at.into_iter().zip(answers) {
                out[i] = Some(a);
            }
        }
        out.into_iter()
            .map(|o| o.expect("every write answered"))
            .collect()
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
    async fn run_pool(&mut self, ops: &[WriteOp]) -> Result<Vec<WriteOut>, StoreError> {
        let mut conn = None;
        let outcome = self
            .checked(async {
                let c = conn.insert(self.pool.acquire().await?);
                match tokio::time::timeout(BATCH_DEADLINE, commit(c, ops)).await {
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
fn failed(e: StoreError, n: usize, name: &str) -> Answers {
    tracing::error!(error = %e, batch = name, writes = n, "batched commit failed; every write in it is answered with an error");
    let e = Arc::new(e);
    (0..n).map(|_| Err(e.clone())).collect()
}

async fn write_loop(mut writer: Writer, rx: Queue, name: &'static str) {
    let mut batch: Vec<(WriteOp, Reply)> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let (replies, ops): (Vec<_>, Vec<_>) = batch.drain(..).map(|(op, r)| (r, op)).unzip();
        metrics::histogram!("gigs_notifier_batch_size", "batch" => name).record(ops.len() as f64);
        for (reply, answer) in replies.into_iter().zip(writer.run(ops, name).await) {
            let _ = reply.send(answer.map_err(StoreError::Batch));
        }
    }
}

/// Commit a batch; a deadlock or serialization failure (replicas writing the same ids at
/// once on PostgreSQL) is retried, since the database rolled everything back.
async fn commit(conn: &mut AnyConnection, ops: &[WriteOp]) -> Result<Vec<WriteOut>, sqlx::Error> {
    let mut tries = 0;
    loop {
        let attempt = async {
            let mut tx = conn.begin().await?;
            let outs = apply(&mut tx, ops).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outs)
        };
        match attempt.await {
            Err(sqlx::Error::Database(e))
                if tries < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tries += 1;
                tracing::warn!(code = ?e.code(), "batched commit hit a transient conflict; retrying");
            }
            other => return other,
        }
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

/// One multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id`: the ids that come back
/// were new; the first occurrence of a new id in the batch is the one that stored it.
async fn insert_many(
    conn: &mut AnyConnection,
    ops: &[&NewEvent],
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    {
        // received_at (4th parameter of a row) doubles as the first due time and the start
        // of the age budget.
        let mut sql = format!(
            "INSERT INTO events (id, event_type, payload, next_attempt_at, received_at, attempts_since) VALUES {}",
            super::sql::values_list(ops.len(), &[1, 2, 3, 4, 4, 4])
        );
        sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for e in ops {
            q = q
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(&e.payload)
                .bind(e.received_at);
        }
        let stored: std::collections::HashSet<String> =
            q.fetch_all(&mut *conn).await?.into_iter().collect();
        let mut seen = std::collections::HashSet::new();
        Ok(ops
            .iter()
            .map(|e| {
                if stored.contains(&e.id) && seen.insert(e.id.as_str()) {
                    InsertOutcome::Stored
                } else {
                    InsertOutcome::Duplicate
                }
            })
            .collect())
    }
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
    pub backend: super::Backend,
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

/// Completions first (they free work), then the inbox inserts, then claims (which may
/// take what was just inserted).
async fn apply(conn: &mut AnyConnection, ops: &[WriteOp]) -> Result<Vec<WriteOut>, sqlx::Error> {
    let mut out: Vec<Option<WriteOut>> = (0..ops.len()).map(|_| None).collect();
    let (mut completes, mut inserts) = (Vec::new(), Vec::new());
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Complete(c) => completes.push((i, c)),
            WriteOp::Insert(e) => inserts.push((i, e)),
            WriteOp::Claim(_) => {}
            WriteOp::Probe => out[i] = Some(WriteOut::Probed),
        }
    }
    if ops.iter().any(|op| matches!(op, WriteOp::Probe)) {
        sqlx::query(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(super::now_ms())
        .execute(&mut *conn)
        .await?;
    }
    let held = complete_many(conn, &completes.iter().map(|(_, c)| *c).collect::<Vec<_>>()).await?;
    for ((i, _), h) in completes.iter().zip(held) {
        out[*i] = Some(WriteOut::Completed(h));
    }
    // The same order everywhere, so two replicas inserting overlapping ids cannot deadlock.
    inserts.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    let stored = insert_many(conn, &inserts.iter().map(|(_, e)| *e).collect::<Vec<_>>()).await?;
    for ((i, _), s) in inserts.iter().zip(stored) {
        out[*i] = Some(WriteOut::Inserted(s));
    }
    for (i, op) in ops.iter().enumerate() {
        if let WriteOp::Claim(req) = op {
            let (events, notices) = super::sql::claim_in(conn, req).await?;
            out[i] = Some(WriteOut::Claimed(events, notices));
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every op answered"))
        .collect())
}

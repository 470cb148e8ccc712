//! Group commit. Writes from many concurrent callers (deliveries at the ingress, finished
//! work from the worker) queue up and are written in one transaction, so they share one
//! fsync; each caller still gets its answer only after the commit that holds its write.

use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{NewEvent, NewNotice, StoreError};

/// Largest batch per transaction; bounds how long one commit holds the write lock.
const MAX_BATCH: usize = 512;

/// A kind of write that can be batched.
#[async_trait::async_trait]
pub trait BatchWrite: Send + Sync + Sized + 'static {
    type Out: Send + 'static;
    /// Apply `ops` inside the open transaction `conn`, one result per op, in order.
    async fn apply(conn: &mut AnyConnection, ops: &[Self]) -> Result<Vec<Self::Out>, sqlx::Error>;
}

type Reply<T> = oneshot::Sender<Result<<T as BatchWrite>::Out, String>>;
/// The receiving end, shared by the committing tasks.
type Queue<T> = Arc<Mutex<mpsc::Receiver<(T, Reply<T>)>>>;

/// A queue of writes of one kind and the tasks that commit them.
pub struct Batcher<T: BatchWrite> {
    tx: mpsc::Sender<(T, Reply<T>)>,
}

impl<T: BatchWrite> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T: BatchWrite> Batcher<T> {
    /// Start `writers` committing tasks (one for SQLite, which has one writer anyway).
    pub fn start(pool: AnyPool, writers: usize, name: &'static str) -> Self {
        let (tx, rx) = mpsc::channel::<(T, Reply<T>)>(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_loop(pool.clone(), rx.clone(), name));
        }
        Self { tx }
    }

    /// Queue one write and wait for the commit that holds it.
    pub async fn write(&self, op: T) -> Result<T::Out, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Batch)
    }
}

async fn write_loop<T: BatchWrite>(pool: AnyPool, rx: Queue<T>, name: &'static str) {
    let mut batch: Vec<(T, Reply<T>)> = Vec::with_capacity(MAX_BATCH);
    let mut ops: Vec<T> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let (replies, taken): (Vec<_>, Vec<_>) = batch.drain(..).map(|(op, r)| (r, op)).unzip();
        ops.extend(taken);
        metrics::histogram!("gigs_notifier_batch_size", "batch" => name).record(ops.len() as f64);
        match commit(&pool, &ops).await {
            Ok(outs) => {
                for (reply, out) in replies.into_iter().zip(outs) {
                    let _ = reply.send(Ok(out));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = name, writes = ops.len(), "batched commit failed");
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
        ops.clear();
    }
}

async fn commit<T: BatchWrite>(pool: &AnyPool, ops: &[T]) -> Result<Vec<T::Out>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let outs = T::apply(&mut tx, ops).await?;
    tx.commit().await?;
    Ok(outs)
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored.
    Stored,
    /// The id was already in the inbox: nothing new was written.
    Duplicate,
}

#[async_trait::async_trait]
impl BatchWrite for NewEvent {
    type Out = InsertOutcome;

    /// One multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id`: the ids that come back
    /// were new; the first occurrence of a new id in the batch is the one that stored it.
    async fn apply(
        conn: &mut AnyConnection,
        ops: &[Self],
    ) -> Result<Vec<InsertOutcome>, sqlx::Error> {
        let mut sql = String::from(
            "INSERT INTO events (id, event_type, payload, next_attempt_at, received_at, attempts_since) VALUES ",
        );
        for i in 0..ops.len() {
            let p = i * 4;
            if i > 0 {
                sql.push(',');
            }
            // received_at doubles as the first due time and the start of the age budget.
            let t = p + 4;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${t}, ${t}, ${t})",
                p + 1,
                p + 2,
                p + 3
            ));
        }
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

/// The end of one piece of claimed work.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Event processed: mark it done and queue its notices.
    EventDone {
        id: String,
        received_at: i64,
        notices: Vec<NewNotice>,
    },
    /// Notice accepted by the mail service.
    NoticeSent { id: String },
    /// Try again at `next_attempt_at`.
    Retry {
        queue: super::Queue,
        id: String,
        next_attempt_at: i64,
        error: String,
    },
    /// Give up: dead letter with the reason.
    Dead {
        queue: super::Queue,
        id: String,
        error: String,
    },
}

/// A completion under the claim it belongs to.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub token: String,
    pub now: i64,
    pub completion: Completion,
}

#[async_trait::async_trait]
impl BatchWrite for Claimed {
    /// Whether the claim was still held (otherwise nothing was written for it).
    type Out = bool;

    async fn apply(conn: &mut AnyConnection, ops: &[Self]) -> Result<Vec<bool>, sqlx::Error> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(apply_one(conn, op).await?);
        }
        Ok(out)
    }
}

async fn apply_one(conn: &mut AnyConnection, op: &Claimed) -> Result<bool, sqlx::Error> {
    let token = op.token.as_str();
    let now = op.now;
    let held = match &op.completion {
        Completion::EventDone { id, received_at, notices } => {
            let held = sqlx::query(
                "UPDATE events SET state = 'done', finished_at = $1, lease_until = 0, claim_token = NULL, \
                 last_error = NULL WHERE id = $2 AND claim_token = $3 AND state = 'pending'",
            )
            .bind(now)
            .bind(id)
            .bind(token)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0;
            if held {
                for n in notices {
                    sqlx::query(
                        "INSERT INTO notices (id, event_id, kind, recipient, subject, content, next_attempt_at, \
                         created_at, attempts_since, event_received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $8) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&n.id)
                    .bind(id)
                    .bind(n.kind)
                    .bind(&n.recipient)
                    .bind(&n.subject)
                    .bind(&n.content)
                    .bind(now)
                    .bind(*received_at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            held
        }
        Completion::NoticeSent { id } => {
            sqlx::query(
                "UPDATE notices SET state = 'sent', finished_at = $1, lease_until = 0, claim_token = NULL, \
                 last_error = NULL WHERE id = $2 AND claim_token = $3 AND state = 'pending'",
            )
            .bind(now)
            .bind(id)
            .bind(token)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        Completion::Retry {
            queue,
            id,
            next_attempt_at,
            error,
        } => {
            let sql = format!(
                "UPDATE {} SET next_attempt_at = $1, last_error = $2, lease_until = 0, claim_token = NULL \
                 WHERE id = $3 AND claim_token = $4 AND state = 'pending'",
                queue.table()
            );
            sqlx::query(&sql)
                .bind(*next_attempt_at)
                .bind(error)
                .bind(id)
                .bind(token)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0
        }
        Completion::Dead { queue, id, error } => {
            let sql = format!(
                "UPDATE {} SET state = 'dead', last_error = $1, finished_at = $2, lease_until = 0, \
                 claim_token = NULL WHERE id = $3 AND claim_token = $4 AND state = 'pending'",
                queue.table()
            );
            sqlx::query(&sql)
                .bind(error)
                .bind(now)
                .bind(id)
                .bind(token)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0
        }
    };
    Ok(held)
}

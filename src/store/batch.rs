//! Group commit for the ingress: concurrent deliveries are written in one transaction, so
//! many requests share one fsync, and each request is still answered only after the commit
//! that holds its event.

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{Backend, NewEvent, StoreError};

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored.
    Stored,
    /// The id was already in the inbox: nothing new was written.
    Duplicate,
}

type Reply = oneshot::Sender<Result<InsertOutcome, String>>;

/// Largest batch per transaction; bounds how long one commit holds the write lock.
const MAX_BATCH: usize = 512;

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

impl Batcher {
    /// Start the writer tasks: one for SQLite (it has one writer anyway), a few for
    /// PostgreSQL so commits from one replica overlap.
    pub fn start(pool: AnyPool, backend: Backend) -> Self {
        let (tx, rx) = mpsc::channel::<(NewEvent, Reply)>(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        let writers = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        };
        for _ in 0..writers {
            tokio::spawn(write_loop(pool.clone(), rx.clone()));
        }
        Self { tx }
    }

    pub async fn insert(&self, event: NewEvent) -> Result<InsertOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Batch)
    }
}

async fn write_loop(pool: AnyPool, rx: Arc<Mutex<mpsc::Receiver<(NewEvent, Reply)>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let result = write(&pool, &batch).await;
        metrics::histogram!("gigs_notifier_inbox_batch_size").record(batch.len() as f64);
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = batch.len(), "inbox commit failed");
                let msg = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

async fn write(
    pool: &AnyPool,
    batch: &[(NewEvent, Reply)],
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (e, _) in batch {
        let n = sqlx::query(
            "INSERT INTO events (id, event_type, payload, next_attempt_at, received_at, attempts_since) \
             VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.event_type)
        .bind(&e.payload)
        .bind(e.received_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        outcomes.push(if n == 1 {
            InsertOutcome::Stored
        } else {
            InsertOutcome::Duplicate
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

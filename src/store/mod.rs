//! The durable inbox and notice queue, on SQLite (one instance) or PostgreSQL (replicas):
//! the one seam the rest of the service stores through.
//!
//! Rooms: [`sqlite`] and [`postgres`] own their connection handling and migrations;
//! [`batch`] is the group-commit queue every hot-path write goes through (deliveries,
//! claims, finished work in [`complete`]); [`apply`] holds the rules of a batch, written
//! once over each backend's statements: [`sqlite_tx`] (rusqlite, on SQLite's writer
//! thread, [`sqlite_writer`]) and [`sqlx_tx`] (PostgreSQL); [`sql`] the SQL text they
//! share; [`state`] maps the row states; [`operator`] serves dead letters and retention;
//! [`audit`] the proof of notice; [`health`] readiness; [`error`] classifies failures once.
//!
//! Claims are leases: a row stays with its claimer until `lease_until`, which the worker
//! renews while it works; after a crash the lease runs out and anyone may take it. Updates
//! after a claim check `claim_token`, so a worker that lost its lease cannot overwrite what
//! the new holder did.

mod apply;
mod audit;
mod batch;
mod complete;
mod error;
pub mod health;
mod operator;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod sqlite_batches;
mod sqlite_checkpoint;
mod sqlite_tx;
mod sqlite_writer;
mod sqlx_tx;
pub mod state;
#[cfg(test)]
mod test_ops;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::AnyPool;

use crate::audit::{AttemptRecord, AuditKeys};
pub use batch::InsertOutcome;
use batch::{Batcher, ClaimRequest, WriteOp, WriteOut};
use complete::Claimed;
pub use complete::Completion;
pub use error::{Backend, ErrorClass, StoreError, StoreOptions};
use health::{Health, NotReady};
pub use rows::{ClaimedEvent, ClaimedNotice, DeadLetter, NewEvent, NewNotice, Queue, Wanted};
use sql::param_list;
use state::State;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite a single connection: writers queue here, in order, instead of
    /// contending for the file lock and sleeping in SQLite's busy handler.
    write: AnyPool,
    backend: Backend,
    /// Group-committed writes of the hot paths (deliveries, claims, completions).
    writes: Batcher,
    /// Whether writes can commit now (readiness).
    health: Arc<Health>,
    /// Keys of the audit trail's recipient hash.
    audit: Arc<AuditKeys>,
    /// How hard the ingress is pushing (the worker defers to a burst).
    ingest: Arc<IngestPressure>,
    /// Held by SQLite's writer thread for each batch and by every write through `write`
    /// made outside the group commit: the two SQLite connections take turns here instead
    /// of sleeping in SQLite's busy handler.
    turn: WriteTurn,
}

/// See [`Store::turn`](Store).
pub(crate) type WriteTurn = Arc<tokio::sync::Mutex<()>>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Connect with the default options.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Connect, apply the backend's migrations and start the group-commit write queue.
    pub async fn connect_with(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let turn = WriteTurn::default();
        let (backend, pool, write, health, writes) = if url.starts_with("sqlite:") {
            let db = sqlite::open(url, opts).await?;
            let health = Arc::new(db.health);
            // SQLite has one writer anyway: a thread of its own takes every batch, in order.
            let (writes, queue) = Batcher::for_thread(health.clone());
            sqlite_writer::start(db.path, db.pragmas, queue, health.clone(), turn.clone())
                .map_err(sqlx::Error::Io)?;
            (Backend::Sqlite, db.read, db.write, health, writes)
        } else {
            let pool = postgres::open(url, opts).await?;
            let health = Arc::new(Health::without_file());
            let writes = Batcher::start_pooled(pool.clone(), 4, "writes", health.clone());
            (Backend::Postgres, pool.clone(), pool, health, writes)
        };
        let audit = audit::keys(&write, opts.audit_key.clone()).await?;
        audit::fill_missing_hashes(&write, &audit).await?;
        Ok(Self {
            writes,
            turn,
            pool,
            write,
            backend,
            health,
            audit: Arc::new(audit),
            ingest: Arc::default(),
        })
    }

    /// Whether a delivery could be stored now: the database file is still the one opened,
    /// there is room to grow, and a probe write (a real commit through the same queue as
    /// deliveries) succeeds.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        self.health.check_file()?;
        if let Some(dir) = self.health.directory() {
            let free = health::free_bytes(dir).unwrap_or(u64::MAX);
            if free < health::MIN_FREE_BYTES {
                return Err(NotReady::Full(format!(
                    "{free} bytes free on its file system"
                )));
            }
            sqlite::page_headroom(&self.write).await?;
        }
        match self.writes.write(WriteOp::Probe).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.root() {
                StoreError::NotReady(e) => e.clone(),
                _ if self.health.is_failing() => NotReady::WritesFailing,
                _ => NotReady::Unreachable,
            }),
        }
    }

    /// This process's write turn, for a write outside the group commit; waits at most the
    /// batch deadline: a batch stuck inside the disk must not hold every other writer
    /// (lease renewals, operator commands, the purge, shutdown's hand-back) with it.
    async fn take_turn(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, StoreError> {
        tokio::time::timeout(batch::BATCH_DEADLINE, self.turn.lock())
            .await
            .map_err(|_| StoreError::Timeout(batch::BATCH_DEADLINE))
    }

    /// Store a verified event; returns once it is committed (or found already stored).
    pub async fn insert_event(&self, event: NewEvent) -> Result<InsertOutcome, StoreError> {
        self.ingest.received.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting::enter(&self.ingest.waiting);
        match self.writes.write(WriteOp::Insert(event)).await? {
            WriteOut::Inserted(outcome) => Ok(outcome),
            other => unreachable!("insert answered with {other:?}"),
        }
    }

    /// Deliveries waiting for their commit at this moment, and deliveries received since
    /// start (the worker defers to a burst).
    pub fn ingest_pressure(&self) -> (usize, u64) {
        (
            self.ingest.waiting.load(Ordering::Relaxed),
            self.ingest.received.load(Ordering::Relaxed),
        )
    }

    /// Claim due items under `token` until `lease_until`, as many as `wanted` says.
    pub async fn claim(
        &self,
        token: &str,
        now: i64,
        lease_until: i64,
        wanted: Wanted,
    ) -> Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>), StoreError> {
        let op = WriteOp::Claim(ClaimRequest {
            token: token.to_string(),
            now,
            lease_until,
            events: wanted.events,
            notices: wanted.notices,
            busy_recipients: wanted.busy_recipients,
        });
        match self.writes.write(op).await? {
            WriteOut::Claimed(events, notices) => Ok((events, notices)),
            other => unreachable!("claim answered with {other:?}"),
        }
    }

    /// Record the end of claimed work. Concurrent completions share one transaction; an
    /// event's notices are queued in the same transaction that marks it done. Returns false
    /// (and writes nothing) if the claim was lost meanwhile.
    pub async fn complete(&self, token: &str, completion: Completion) -> Result<bool, StoreError> {
        self.complete_attempt(token, completion, None).await
    }

    /// [`Store::complete`] for a notice's send, with the attempt for its audit trail,
    /// written in the same transaction.
    pub async fn complete_attempt(
        &self,
        token: &str,
        completion: Completion,
        attempt: Option<AttemptRecord>,
    ) -> Result<bool, StoreError> {
        // Hashed here, before the write queue, so the commit does no more than write.
        let recipient_hashes = match &completion {
            Completion::EventDone { notices, .. } => notices
                .iter()
                .map(|n| self.audit.hash(&n.recipient))
                .collect(),
            _ => Vec::new(),
        };
        let op = WriteOp::Complete(Claimed {
            token: token.to_string(),
            now: now_ms(),
            completion,
            attempt,
            recipient_hashes,
        });
        match self.writes.write(op).await? {
            WriteOut::Completed(held) => Ok(held),
            other => unreachable!("completion answered with {other:?}"),
        }
    }

    /// Extend the leases `token` holds on `ids` (the work actually in progress: work whose
    /// result could not be recorded must be allowed to expire and be picked up again).
    pub async fn renew(
        &self,
        queue: Queue,
        token: &str,
        ids: &[String],
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let _turn = self.take_turn().await?;
        let mut total = 0;
        for chunk in ids.chunks(256) {
            let sql = format!(
                "UPDATE {} SET lease_until = $1 WHERE claim_token = $2 AND state = {pending} AND id IN ({})",
                queue.table(),
                param_list(3, chunk.len()),
                pending = State::Pending.sql()
            );
            let mut q = sqlx::query(&sql).bind(lease_until).bind(token);
            for id in chunk {
                q = q.bind(id);
            }
            total += q.execute(&self.write).await?.rows_affected();
        }
        Ok(total)
    }

    /// Hand back some claimed rows of `queue` untouched (claimed beyond a recipient's
    /// share): due again at once, the claim not counted as an attempt.
    pub async fn hand_back(
        &self,
        queue: Queue,
        token: &str,
        ids: &[String],
    ) -> Result<u64, StoreError> {
        let _turn = self.take_turn().await?;
        let mut total = 0;
        for chunk in ids.chunks(256) {
            let sql = format!(
                "UPDATE {} SET lease_until = 0, claim_token = NULL, attempts = CASE WHEN attempts > 0 \
                 THEN attempts - 1 ELSE 0 END WHERE claim_token = $1 AND state = {pending} AND id IN ({})",
                queue.table(),
                param_list(2, chunk.len()),
                pending = State::Pending.sql()
            );
            let mut q = sqlx::query(&sql).bind(token);
            for id in chunk {
                q = q.bind(id);
            }
            total += q.execute(&self.write).await?.rows_affected();
        }
        Ok(total)
    }

    /// Hand back everything `token` holds (graceful shutdown), so others need not wait
    /// for the leases to run out.
    pub async fn release(&self, token: &str) -> Result<u64, StoreError> {
        let _turn = self.take_turn().await?;
        let mut total = 0;
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "UPDATE {} SET lease_until = 0, claim_token = NULL, attempts = CASE WHEN attempts > 0 \
                 THEN attempts - 1 ELSE 0 END WHERE claim_token = $1 AND state = {pending}",
                queue.table(),
                pending = State::Pending.sql()
            );
            total += sqlx::query(&sql)
                .bind(token)
                .execute(&self.write)
                .await?
                .rows_affected();
        }
        Ok(total)
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
        self.write.close().await;
    }
}

/// See [`Store::ingest_pressure`].
#[derive(Default)]
struct IngestPressure {
    waiting: AtomicUsize,
    received: AtomicU64,
}

/// Counts a delivery as waiting for its commit until dropped (also when the ingress gives
/// up waiting and drops the future).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

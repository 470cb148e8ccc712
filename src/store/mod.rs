//! The durable inbox and notice queue, on SQLite (one instance) or PostgreSQL (replicas).
//!
//! One SQL dialect serves both through sqlx's `Any` driver: numbered `$n` parameters work in
//! both, `INSERT … ON CONFLICT DO NOTHING` gives dedup, and the only fork is the claim
//! query, where PostgreSQL adds `FOR UPDATE SKIP LOCKED` so replicas never take the same
//! row. Claims are leases: a row stays with its claimer until `lease_until`, which the
//! worker renews while it works; after a crash the lease runs out and anyone may take it.
//! Updates after a claim check `claim_token`, so a worker that lost its lease cannot
//! overwrite what the new holder did.
//!
//! The hot-path writes (deliveries, claims, finished work) go through one group-commit
//! queue ([`batch`]); on SQLite they run on a single write connection, so writers wait their
//! turn in order instead of sleeping in SQLite's busy handler.

mod audit;
mod batch;
pub mod health;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::audit::{AttemptRecord, AuditKey, AuditKeys};
use batch::{Batcher, ClaimRequest, Claimed, WriteOp, WriteOut};
pub use batch::{Completion, InsertOutcome};
use health::{Health, NotReady};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store failure. The ingress answers 503 for it; the worker retries later.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the store is shutting down")]
    Closed,
    #[error("the database did not finish a write within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    NotReady(#[from] NotReady),
    /// The shared failure of a group-committed batch, handed to each write in it.
    #[error(transparent)]
    Batch(Arc<StoreError>),
}

impl StoreError {
    /// The error behind a shared batch failure.
    pub fn root(&self) -> &StoreError {
        match self {
            Self::Batch(e) => e.root(),
            other => other,
        }
    }
}

/// How the store opens its database, beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite `PRAGMA max_page_count`: caps the file's size (pages of 4 KiB). `None` leaves
    /// SQLite's own limit.
    pub sqlite_max_pages: Option<u32>,
    /// PostgreSQL `statement_timeout`: one stuck statement cannot hold the write queue.
    pub statement_timeout: Duration,
    /// `AUDIT_HASH_KEY`; `None`: a key kept in the database (see [`crate::audit`]).
    pub audit_key: Option<AuditKey>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sqlite_max_pages: None,
            statement_timeout: Duration::from_secs(5),
            audit_key: None,
        }
    }
}

/// The two queues. Both have the same state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    Events,
    Notices,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Notices => "notices",
        }
    }

    pub fn name(self) -> &'static str {
        self.table()
    }
}

/// An event to store, after its signature and envelope were checked.
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub payload: String,
    pub received_at: i64,
}

impl std::fmt::Debug for NewEvent {
    /// The payload holds personal data and is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEvent")
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

/// A claimed event.
#[derive(Clone)]
pub struct ClaimedEvent {
    pub id: String,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub received_at: i64,
    /// When the current run of attempts began (age limit counts from here).
    pub attempts_since: i64,
}

/// A notice to store, rendered.
#[derive(Clone)]
pub struct NewNotice {
    /// Stable id, also the mail `Idempotency-Key`.
    pub id: String,
    pub kind: &'static str,
    /// The type of the event behind it (for the audit record).
    pub event_type: String,
    /// Gigs ids the notice concerns, when the handler knows them (for the audit record).
    pub subscription_id: Option<String>,
    pub user_id: Option<String>,
    pub recipient: String,
    pub subject: String,
    pub content: String,
}

/// A claimed notice.
#[derive(Clone)]
pub struct ClaimedNotice {
    pub id: String,
    pub event_id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub content: String,
    pub attempts: i64,
    pub created_at: i64,
    pub event_received_at: i64,
    pub attempts_since: i64,
}

// Rows that hold a recipient or a payload show only ids in `Debug`, so no `{:?}` in a log
// line or a panic message can carry personal data.
impl std::fmt::Debug for ClaimedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedEvent")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewNotice")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClaimedNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedNotice")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How much work a claim may take.
#[derive(Clone, Default)]
pub struct Wanted {
    pub events: i64,
    pub notices: i64,
    /// Recipients whose notices are left for later (they hold their share of mail calls).
    pub busy_recipients: Vec<String>,
}

/// A dead-lettered row, for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub queue: &'static str,
    pub id: String,
    /// Event type for events, notice kind for notices.
    pub kind: String,
    pub event_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub finished_at: Option<i64>,
}

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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// The file behind a `sqlite:` URL (`sqlite://PATH?…`, `sqlite:PATH`).
fn sqlite_path(url: &str) -> std::path::PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    std::path::PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// `url` with `mode=…` set, unless the operator set one.
fn with_mode(url: &str, mode: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode={mode}")
    } else {
        format!("{url}?mode={mode}")
    }
}

/// `extra` is appended to the due-row filter (the recipient exclusion for notices).
fn claim_sql(backend: Backend, queue: Queue, columns: &str, extra: &str) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let table = queue.table();
    format!(
        "UPDATE {table} SET lease_until = $1, claim_token = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM {table} WHERE state = 'pending' AND next_attempt_at <= $3 \
         AND lease_until <= $3{extra} ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING {columns}"
    )
}

/// Claim up to `limit` due rows of `queue` inside the batch transaction `conn`, skipping
/// notices to `busy` recipients.
async fn claim_rows(
    conn: &mut sqlx::AnyConnection,
    req: &ClaimRequest,
    queue: Queue,
    columns: &str,
    limit: i64,
    busy: &[String],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let extra = if busy.is_empty() {
        String::new()
    } else {
        format!(" AND recipient NOT IN ({})", param_list(5, busy.len()))
    };
    let sql = claim_sql(req.backend, queue, columns, &extra);
    let mut q = sqlx::query(&sql)
        .bind(req.lease_until)
        .bind(&req.token)
        .bind(req.now)
        .bind(limit);
    for r in busy {
        q = q.bind(r);
    }
    q.fetch_all(&mut *conn).await
}

/// Run a claim inside the batch transaction `conn`: notices and events, each up to its own
/// limit.
async fn claim_in(
    conn: &mut sqlx::AnyConnection,
    req: &ClaimRequest,
) -> Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>), sqlx::Error> {
    const NOTICE_COLUMNS: &str = "id, event_id, kind, recipient, subject, content, attempts, \
                                  created_at, event_received_at, attempts_since";
    const EVENT_COLUMNS: &str = "id, event_type, payload, attempts, received_at, attempts_since";
    let mut notices = Vec::new();
    if req.notices > 0 {
        for r in claim_rows(
            conn,
            req,
            Queue::Notices,
            NOTICE_COLUMNS,
            req.notices,
            &req.busy_recipients,
        )
        .await?
        {
            notices.push(ClaimedNotice {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                kind: r.try_get("kind")?,
                recipient: r.try_get("recipient")?,
                subject: r.try_get("subject")?,
                content: r.try_get("content")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
                event_received_at: r.try_get("event_received_at")?,
                attempts_since: r.try_get("attempts_since")?,
            });
        }
    }
    let mut events = Vec::new();
    if req.events > 0 {
        for r in claim_rows(conn, req, Queue::Events, EVENT_COLUMNS, req.events, &[]).await? {
            events.push(ClaimedEvent {
                id: r.try_get("id")?,
                event_type: r.try_get("event_type")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                received_at: r.try_get("received_at")?,
                attempts_since: r.try_get("attempts_since")?,
            });
        }
    }
    Ok((events, notices))
}

/// `($1, $2, …), ($7, …)` for `rows` rows. Each row's columns take the parameters named in
/// `columns` (1-based within the row), so one bound value can fill several columns.
fn values_list(rows: usize, columns: &[usize]) -> String {
    let per_row = columns.iter().copied().max().unwrap_or(0);
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = columns
                .iter()
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, …` (`n` parameters), for `IN (…)` lists.
fn param_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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

    /// Connect, apply migrations (PostgreSQL: under sqlx's advisory lock, so replicas
    /// starting together do not race), and start the group-commit write queue.
    ///
    /// SQLite: the file is created (and migrated) first; the pools then open it with
    /// `mode=rw`, so a file removed under the running service is never silently created
    /// again, empty, by a reconnecting writer.
    pub async fn connect_with(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = || {
            AnyPoolOptions::new()
                // Short: while the database is away, deliveries get a prompt 503 (Svix
                // gives about 15 s per attempt) rather than hanging.
                .acquire_timeout(Duration::from_secs(3))
                .min_connections(0)
        };
        let (pool, write, health) = match backend {
            Backend::Sqlite => {
                let pragmas = format!(
                    // WAL lets readers run beside the writer; synchronous=FULL keeps every
                    // acknowledged commit on disk (no durability traded away).
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=3000;{}",
                    opts.sqlite_max_pages
                        .map(|n| format!(" PRAGMA max_page_count={n};"))
                        .unwrap_or_default()
                );
                let sqlite = |max| {
                    let pragmas = pragmas.clone();
                    // A local file cannot drop like a network link: skip the ping sqlx
                    // sends before every acquire (a round trip to SQLite's thread each).
                    options()
                        .max_connections(max)
                        .test_before_acquire(false)
                        .after_connect(move |conn, _| {
                            let pragmas = pragmas.clone();
                            Box::pin(async move {
                                conn.execute(pragmas.as_str()).await?;
                                Ok(())
                            })
                        })
                };
                let create = sqlite(1).connect(&with_mode(url, "rwc")).await?;
                sqlx::migrate!("./migrations/sqlite").run(&create).await?;
                create.close().await;
                let url = with_mode(url, "rw");
                let write = sqlite(1).connect(&url).await?;
                let health = Health::for_file(&sqlite_path(&url)).map_err(sqlx::Error::Io)?;
                (sqlite(4).connect(&url).await?, write, health)
            }
            Backend::Postgres => {
                let timeout_ms = opts.statement_timeout.as_millis().min(i32::MAX as u128);
                let pool = options()
                    .max_connections(16)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            let set = format!("SET statement_timeout = {timeout_ms}");
                            conn.execute(set.as_str()).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                (pool.clone(), pool, Health::without_file())
            }
        };
        let audit = audit::keys(&write, opts.audit_key.clone()).await?;
        audit::fill_missing_hashes(&write, &audit).await?;
        let health = Arc::new(health);
        let writers = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        };
        Ok(Self {
            writes: Batcher::start(write.clone(), writers, "writes", health.clone()),
            pool,
            write,
            backend,
            health,
            audit: Arc::new(audit),
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
            self.page_headroom().await?;
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

    /// SQLite: fails when fewer than [`health::MIN_FREE_BYTES`] (or a sixteenth of a
    /// smaller cap) remain under `max_page_count`; free pages inside the file count as room.
    async fn page_headroom(&self) -> Result<(), NotReady> {
        let row = sqlx::query(
            "SELECT (SELECT max_page_count FROM pragma_max_page_count()) AS max_pages, \
             (SELECT page_count FROM pragma_page_count()) AS pages, \
             (SELECT freelist_count FROM pragma_freelist_count()) AS free_pages, \
             (SELECT page_size FROM pragma_page_size()) AS page_size",
        )
        .fetch_one(&self.write)
        .await
        .map_err(|_| NotReady::Unreachable)?;
        let get = |name: &str| row.try_get::<i64, _>(name).unwrap_or(0).max(0) as u64;
        let room = get("max_pages")
            .saturating_sub(get("pages"))
            .saturating_add(get("free_pages"))
            .saturating_mul(get("page_size"));
        // A small cap (tests, tiny devices) asks for a sixteenth of itself, not a full MiB.
        let cap = get("max_pages").saturating_mul(get("page_size"));
        if room < health::MIN_FREE_BYTES.min(cap / 16) {
            return Err(NotReady::Full(format!(
                "{room} bytes left under max_page_count"
            )));
        }
        Ok(())
    }

    /// Store a verified event; returns once it is committed (or found already stored).
    pub async fn insert_event(&self, event: NewEvent) -> Result<InsertOutcome, StoreError> {
        match self.writes.write(WriteOp::Insert(event)).await? {
            WriteOut::Inserted(outcome) => Ok(outcome),
            other => unreachable!("insert answered with {other:?}"),
        }
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
            backend: self.backend,
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
        let mut total = 0;
        for chunk in ids.chunks(256) {
            let sql = format!(
                "UPDATE {} SET lease_until = $1 WHERE claim_token = $2 AND state = 'pending' AND id IN ({})",
                queue.table(),
                param_list(3, chunk.len())
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
        let mut total = 0;
        for chunk in ids.chunks(256) {
            let sql = format!(
                "UPDATE {} SET lease_until = 0, claim_token = NULL, attempts = CASE WHEN attempts > 0 \
                 THEN attempts - 1 ELSE 0 END WHERE claim_token = $1 AND state = 'pending' AND id IN ({})",
                queue.table(),
                param_list(2, chunk.len())
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
        let mut total = 0;
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "UPDATE {} SET lease_until = 0, claim_token = NULL, attempts = CASE WHEN attempts > 0 \
                 THEN attempts - 1 ELSE 0 END WHERE claim_token = $1 AND state = 'pending'",
                queue.table()
            );
            total += sqlx::query(&sql)
                .bind(token)
                .execute(&self.write)
                .await?
                .rows_affected();
        }
        Ok(total)
    }

    /// Rows per queue and state (for metrics and operators).
    pub async fn depth(&self) -> Result<Vec<(Queue, String, i64)>, StoreError> {
        let mut out = Vec::new();
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "SELECT state, COUNT(*) AS n FROM {} GROUP BY state",
                queue.table()
            );
            for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                out.push((queue, row.try_get("state")?, row.try_get("n")?));
            }
        }
        Ok(out)
    }

    /// Rows that still have work (pending), across both queues.
    pub async fn pending(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM events WHERE state = 'pending') + \
             (SELECT COUNT(*) FROM notices WHERE state = 'pending') AS n",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Every dead letter, newest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_matching(None).await
    }

    /// One dead letter, by event or notice id.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self.dead_letters_matching(Some(id)).await?.pop())
    }

    async fn dead_letters_matching(&self, id: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for (queue, sql) in [
            (
                Queue::Events,
                "SELECT id, event_type AS kind, id AS event_id, attempts, last_error, finished_at \
                 FROM events WHERE state = 'dead'",
            ),
            (
                Queue::Notices,
                "SELECT id, kind, event_id, attempts, last_error, finished_at FROM notices \
                 WHERE state = 'dead'",
            ),
        ] {
            let rows = match id {
                Some(id) => {
                    sqlx::query(&format!("{sql} AND id = $1"))
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?
                }
                None => sqlx::query(sql).fetch_all(&self.pool).await?,
            };
            for row in rows {
                out.push(DeadLetter {
                    queue: queue.name(),
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    event_id: row.try_get("event_id")?,
                    attempts: row.try_get("attempts")?,
                    last_error: row.try_get("last_error")?,
                    finished_at: row.try_get("finished_at")?,
                });
            }
        }
        out.sort_by(|a, b| b.finished_at.cmp(&a.finished_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// (notice id, event id) of every stored notice, oldest first (for `demo`).
    pub async fn notice_index(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, event_id FROM notices ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("event_id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The stored payload of an event (for `dead-letters show`; mask before printing).
    pub async fn event_payload(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT payload FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("payload")).transpose()?)
    }

    /// Put a dead letter back in its queue, due now, with a fresh age budget.
    /// `id` may name an event or a notice. Returns whether anything was dead under that id.
    pub async fn retry_dead_letter(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let mut n = 0;
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "UPDATE {} SET state = 'pending', next_attempt_at = $1, attempts_since = $1, \
                 attempts = 0, lease_until = 0, claim_token = NULL, finished_at = NULL \
                 WHERE id = $2 AND state = 'dead'",
                queue.table()
            );
            let requeued = sqlx::query(&sql)
                .bind(now)
                .bind(id)
                .execute(&self.write)
                .await?
                .rows_affected();
            if queue == Queue::Notices && requeued > 0 {
                audit::reopen(&self.write, id).await?;
            }
            n += requeued;
        }
        Ok(n > 0)
    }

    /// Delete a dead letter for good (an operator decided it needs no delivery); its
    /// stored payload goes with it. Returns whether anything was dead under that id.
    pub async fn purge_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let mut n = 0;
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "DELETE FROM {} WHERE id = $1 AND state = 'dead'",
                queue.table()
            );
            n += sqlx::query(&sql)
                .bind(id)
                .execute(&self.write)
                .await?
                .rows_affected();
        }
        Ok(n > 0)
    }

    /// Delete processed events and sent notices finished before `before` (dead letters
    /// stay until an operator deals with them). Returns (events, notices) deleted. Their
    /// audit records stay: see [`Store::purge_audit`].
    pub async fn purge(&self, before: i64) -> Result<(u64, u64), StoreError> {
        let notices = sqlx::query("DELETE FROM notices WHERE state = 'sent' AND finished_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected();
        // An event stays while any of its notices is still pending or dead, so its
        // payload is there for an operator's `show` and its id still deduplicates.
        let events = sqlx::query(
            "DELETE FROM events WHERE state = 'done' AND finished_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM notices WHERE notices.event_id = events.id)",
        )
        .bind(before)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok((events, notices))
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
        self.write.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_number_rows_and_reuse_values() {
        assert_eq!(values_list(2, &[1, 2, 2]), "($1, $2, $2), ($3, $4, $4)");
        assert_eq!(param_list(3, 3), "$3, $4, $5");
        assert_eq!(param_list(3, 0), "");
    }
}

//! Store errors, kept with their source and classified once: what a caller does about a
//! failure (503 and retry, retry the batch, or treat as a bug) is decided here.

use std::sync::Arc;
use std::time::Duration;

use super::health::NotReady;
use crate::audit::AuditKey;

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
    /// From SQLite's inbox writer.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    /// One write of the worker's that the database refused on its own: rolled back alone
    /// while the rest of its batch committed.
    #[error(transparent)]
    Refused(Box<StoreError>),
}

impl StoreError {
    /// The error behind a shared batch failure or a refusal.
    pub fn root(&self) -> &StoreError {
        match self {
            Self::Batch(e) => e.root(),
            Self::Refused(e) => e.root(),
            other => other,
        }
    }

    /// A write refused alone for what it carries: a value the database cannot hold or a
    /// rule it breaks (SQLSTATE 22 and 23, SQLite's constraints and type checks, the
    /// store's own rules). Done again, it is refused again. Not a failure of its whole
    /// batch, nor a schema or privilege problem (SQLSTATE 42, a missing column or type),
    /// which an operator fixes and after which the same write succeeds.
    pub fn is_refused_for_its_data(&self) -> bool {
        match self {
            Self::Batch(e) => e.is_refused_for_its_data(),
            Self::Refused(e) => match e.root() {
                Self::Sqlite(e) => sqlite_class(e) == ErrorClass::Bug,
                Self::Database(sqlx::Error::Database(e)) => e
                    .code()
                    .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
                Self::Database(
                    sqlx::Error::InvalidArgument(_)
                    | sqlx::Error::Decode(_)
                    | sqlx::Error::ColumnDecode { .. },
                ) => true,
                _ => false,
            },
            _ => false,
        }
    }
}

impl StoreError {
    /// SQLite answered that another connection holds the lock it waited for.
    pub fn is_locked(&self) -> bool {
        let busy = |code: Option<rusqlite::ErrorCode>| {
            matches!(
                code,
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        };
        // SQLite's batches are all written through rusqlite (its writer thread).
        match self.root() {
            Self::Sqlite(e) => busy(e.sqlite_error_code()),
            _ => false,
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

/// What a store failure means for its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database cannot take the write now (down, full, replaced, too slow, closing):
    /// answer 503, try again later.
    Unavailable,
    /// Another writer got in the way (deadlock, serialization failure): the same batch may
    /// simply be tried again.
    Conflict,
    /// A mistake of ours (bad SQL, a decode error, a broken constraint, a value the
    /// database cannot hold): retrying will not help.
    Bug,
}

impl ErrorClass {
    /// The class as logs name it (`class=…`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Conflict => "conflict",
            Self::Bug => "bug",
        }
    }
}

impl StoreError {
    /// The class of the failure behind this one.
    pub fn class(&self) -> ErrorClass {
        match self.root() {
            Self::Database(e) => sqlx_class(e),
            Self::Sqlite(e) => sqlite_class(e),
            Self::Migrate(_) => ErrorClass::Bug,
            _ => ErrorClass::Unavailable,
        }
    }
}

/// The class of a driver error from PostgreSQL (or sqlx's pools). A bug here is a
/// statement of ours that failed on its own, so inside a batch it is rolled back to the
/// worker's savepoint alone (see `postgres::commit`).
pub(super) fn sqlx_class(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Database(e) => match e.code().as_deref() {
            Some("40P01" | "40001") => ErrorClass::Conflict,
            // A data exception, a broken constraint, bad SQL.
            Some(c) if c.starts_with("22") || c.starts_with("23") || c.starts_with("42") => {
                ErrorClass::Bug
            }
            _ => ErrorClass::Unavailable,
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::Decode(_) => ErrorClass::Bug,
        _ => ErrorClass::Unavailable,
    }
}

/// The class of an error from SQLite's writer: a failure SQLite reported (busy, full, I/O,
/// read-only, interrupted) is the database's state, unless it is a statement of ours it
/// refused; anything not from SQLite (a rule of ours, a conversion) is a mistake of ours.
/// A bug is rolled back to the worker's savepoint alone (see `sqlite_writer`).
pub(super) fn sqlite_class(e: &rusqlite::Error) -> ErrorClass {
    match e.sqlite_error_code() {
        Some(
            rusqlite::ErrorCode::ConstraintViolation
            | rusqlite::ErrorCode::TypeMismatch
            | rusqlite::ErrorCode::ApiMisuse,
        ) => ErrorClass::Bug,
        Some(_) => ErrorClass::Unavailable,
        None => ErrorClass::Bug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn only_a_write_refused_alone_for_its_data_is_its_own_fault() {
        use rusqlite::ffi;
        let refused = |e| StoreError::Refused(Box::new(e));
        let shared = |e| StoreError::Batch(Arc::new(e));
        let rule = || StoreError::Database(sqlx::Error::InvalidArgument("a rule".into()));
        let schema = || StoreError::Database(sqlx::Error::ColumnNotFound("state".into()));
        for (e, own) in [
            (shared(refused(sqlite(ffi::SQLITE_CONSTRAINT))), true),
            (refused(rule()), true),
            (refused(schema()), false),
            (refused(sqlite(ffi::SQLITE_FULL)), false),
            // The same refusal, but of the whole batch: not this write's doing.
            (shared(sqlite(ffi::SQLITE_CONSTRAINT)), false),
            (rule(), false),
        ] {
            assert_eq!(e.is_refused_for_its_data(), own, "{e:?}");
        }
        assert_eq!(
            refused(sqlite(ffi::SQLITE_CONSTRAINT)).class(),
            ErrorClass::Bug
        );
    }

    #[test]
    fn failures_are_classified_by_what_the_caller_can_do() {
        use rusqlite::ffi;
        for (e, class) in [
            (sqlite(ffi::SQLITE_FULL), ErrorClass::Unavailable),
            (sqlite(ffi::SQLITE_IOERR), ErrorClass::Unavailable),
            (sqlite(ffi::SQLITE_READONLY), ErrorClass::Unavailable),
            (sqlite(ffi::SQLITE_CONSTRAINT), ErrorClass::Bug),
            (
                StoreError::Database(sqlx::Error::InvalidArgument("a rule of ours".into())),
                ErrorClass::Bug,
            ),
            (
                StoreError::Database(sqlx::Error::PoolTimedOut),
                ErrorClass::Unavailable,
            ),
            (
                StoreError::Timeout(Duration::from_secs(8)),
                ErrorClass::Unavailable,
            ),
        ] {
            let shared = StoreError::Batch(Arc::new(e));
            assert_eq!(shared.class(), class, "{shared}");
        }
        assert_eq!(ErrorClass::Bug.name(), "bug");
    }
}

//! Whether the store can keep its promise right now: the answer behind `/readyz` and the
//! check every batch passes before its callers are told "committed".
//!
//! Three things are watched. The last write: a failed batch leaves the store "failing"
//! until a later batch (or a readiness probe, which is a real committed write) succeeds.
//! The database file (SQLite): its identity (device, inode) is taken when the store opens,
//! and a file that disappears or is replaced under a running instance makes the store
//! "lost" for good, because every further commit would land in an unlinked file that a
//! restart never sees. And the room left to grow (SQLite): free space on the file system
//! and under `max_page_count`.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Below this much room to grow, the store is reported not ready (a delivery needs a few
/// KiB; a little margin keeps readiness from flapping while the last pages fill).
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Why the store cannot take writes now. The codes are the `/readyz` error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The path goes to the log, not into answers: readiness is asked by load balancers.
    #[error(
        "the database file was removed or replaced while the service ran; restart the service"
    )]
    FileReplaced,
    #[error("the last write to the event store failed and none has succeeded since")]
    WritesFailing,
    #[error("the event store has too little room left to grow ({0})")]
    Full(String),
    #[error("the event store cannot be reached")]
    Unreachable,
}

impl NotReady {
    /// The machine-readable code for `{"error": …}`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::FileReplaced => "database_file_replaced",
            Self::WritesFailing => "store_writes_failing",
            Self::Full(_) => "store_full",
            Self::Unreachable => "store_unavailable",
        }
    }
}

/// The identity of the SQLite file the store opened.
#[derive(Debug)]
struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Shared between the writers and readiness.
#[derive(Debug)]
pub struct Health {
    file: Option<FileIdentity>,
    lost: AtomicBool,
    failing: AtomicBool,
}

impl Health {
    /// For PostgreSQL: no file to watch.
    pub fn without_file() -> Self {
        Self {
            file: None,
            lost: AtomicBool::new(false),
            failing: AtomicBool::new(false),
        }
    }

    /// For SQLite: remember which file `path` is now.
    pub fn for_file(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            file: Some(FileIdentity {
                path: path.to_path_buf(),
                dev: meta.dev(),
                ino: meta.ino(),
            }),
            ..Self::without_file()
        })
    }

    /// The directory whose file system holds the database, if it is a file.
    pub fn directory(&self) -> Option<&Path> {
        self.file.as_ref().and_then(|f| f.path.parent())
    }

    /// Fails if the database file is no longer the one the store opened. Once it has
    /// failed it always fails: the open connections point at the old file.
    pub fn check_file(&self) -> Result<(), NotReady> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.lost.load(Ordering::Acquire) {
            return Err(NotReady::FileReplaced);
        }
        let same = std::fs::metadata(&file.path)
            .map(|m| m.dev() == file.dev && m.ino() == file.ino)
            .unwrap_or(false);
        if same {
            return Ok(());
        }
        if !self.lost.swap(true, Ordering::AcqRel) {
            tracing::error!(
                path = %file.path.display(),
                "the database file was removed or replaced under the running service; \
                 refusing every write (503) until it is restarted"
            );
        }
        Err(NotReady::FileReplaced)
    }

    /// Before a batch: a replaced file is never written to, not even once more.
    pub(super) fn before_write(&self) -> Result<(), super::StoreError> {
        Ok(self.check_file()?)
    }

    /// After a batch, before anyone is answered: it counts only if it went to the file a
    /// restart opens; its outcome says whether writes are failing.
    pub(super) fn after_write<T>(
        &self,
        outcome: Result<T, super::StoreError>,
    ) -> Result<T, super::StoreError> {
        let outcome = outcome.and_then(|t| {
            self.check_file()?;
            Ok(t)
        });
        match &outcome {
            Ok(_) => self.wrote(),
            Err(_) => self.write_failed(),
        }
        outcome
    }

    /// A batch committed.
    pub fn wrote(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!("the event store commits again");
        }
    }

    /// A batch failed.
    pub fn write_failed(&self) {
        self.failing.store(true, Ordering::Release);
    }

    /// Whether the last batch failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }
}

/// Bytes an unprivileged writer may still add on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_or_replaced_file_is_detected_and_stays_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"one").unwrap();
        let health = Health::for_file(&path).unwrap();
        assert_eq!(health.check_file(), Ok(()));
        // Replaced by a new file under the same name (a new inode).
        let other = dir.path().join("db.new");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let err = health.check_file().unwrap_err();
        assert_eq!(err.code(), "database_file_replaced");
        let shown = err.to_string();
        assert!(
            !shown.contains(dir.path().to_str().unwrap()),
            "the answer names no path: {shown}"
        );
        // Removed: still lost.
        std::fs::remove_file(&path).unwrap();
        assert!(health.check_file().is_err());
    }

    #[test]
    fn a_removed_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"one").unwrap();
        let health = Health::for_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(health.check_file(), Err(NotReady::FileReplaced)));
    }

    #[test]
    fn failing_clears_on_the_next_commit() {
        let health = Health::without_file();
        assert!(!health.is_failing());
        health.write_failed();
        assert!(health.is_failing());
        health.wrote();
        assert!(!health.is_failing());
    }

    #[test]
    fn free_bytes_reads_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }
}

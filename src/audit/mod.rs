//! Proof of notice: what an operator can still show, years later, about a notice.
//!
//! Every notice gets an audit record in the transaction that queues it, and an attempt entry
//! in the transaction that records each send's result (so the trail can never say less or
//! more than the queue did). A record keeps ids, the kind, times, outcomes, HTTP statuses and
//! the mail service's message id — never the address or the text. The address is kept only
//! as a keyed hash (HMAC-SHA256 under the audit key), so someone who has an address can find
//! its notices, while the table alone names no one. Notices go after `RETENTION_DAYS`; their
//! audit records stay for `AUDIT_RETENTION_DAYS`.
//!
//! This module holds the keyed hash and the attempt records; `list` the query filter, the
//! listed records and their output; the SQL is in `store::audit`.

mod list;
pub use list::*;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::outbound::CallError;

/// The shortest `AUDIT_HASH_KEY` accepted: a short key would let anyone who reads the
/// table try likely addresses against it.
pub const MIN_KEY_LEN: usize = 32;

/// The key of the recipient hash. Never logged; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AuditKey(Hmac<Sha256>);

impl AuditKey {
    pub fn new(bytes: &[u8]) -> Self {
        Self(Hmac::new_from_slice(bytes).expect("HMAC accepts any key length"))
    }

    /// The hash of an address: lower-cased and trimmed first, so `Ann@Example.org ` and
    /// `ann@example.org` find the same notices.
    pub fn recipient_hash(&self, address: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(address.trim().to_lowercase().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(redacted)")
    }
}

/// The key new records are hashed with, and the keys an address is looked up under: a
/// key kept in the database from before `AUDIT_HASH_KEY` was set still finds the records
/// it hashed.
#[derive(Debug, Clone)]
pub struct AuditKeys {
    pub(crate) write: AuditKey,
    pub(crate) older: Option<AuditKey>,
}

impl AuditKeys {
    pub fn hash(&self, address: &str) -> String {
        self.write.recipient_hash(address)
    }

    pub fn lookup_hashes(&self, address: &str) -> Vec<String> {
        std::iter::once(&self.write)
            .chain(&self.older)
            .map(|k| k.recipient_hash(address))
            .collect()
    }
}

/// How one send attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx: the mail service took the notice.
    Accepted,
    /// An answer worth retrying (408, 429, 5xx).
    Retryable,
    /// Any other answer: the notice is dead-lettered.
    Permanent,
    /// No answer: timeout, refused or broken connection.
    Transport,
    /// The attempt failed inside this service (a panic).
    Internal,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Transport => "transport",
            Self::Internal => "internal",
        }
    }
}

/// One send attempt, recorded with its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When the answer (or the failure) came, ms since the epoch.
    pub at: i64,
    pub outcome: AttemptOutcome,
    pub http_status: Option<u16>,
    /// Why it failed, as the retry rules word it: the call and the status, never a value.
    pub reason: Option<String>,
    pub message_id: Option<String>,
}

impl AttemptRecord {
    pub fn accepted(at: i64, status: u16, message_id: Option<String>) -> Self {
        Self {
            at,
            outcome: AttemptOutcome::Accepted,
            http_status: Some(status),
            reason: None,
            message_id,
        }
    }

    pub fn failed(at: i64, error: &CallError, http_status: Option<u16>) -> Self {
        let outcome = match (http_status, error.is_retryable()) {
            (None, true) => AttemptOutcome::Transport,
            (_, true) => AttemptOutcome::Retryable,
            (_, false) => AttemptOutcome::Permanent,
        };
        Self {
            at,
            outcome,
            http_status,
            reason: Some(error.to_string().chars().take(200).collect()),
            message_id: None,
        }
    }

    pub fn panicked(at: i64) -> Self {
        Self {
            at,
            outcome: AttemptOutcome::Internal,
            http_status: None,
            reason: Some("processing panicked".to_string()),
            message_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_ignore_case_and_spaces() {
        let a = AuditKey::new(&[7; 32]);
        let b = AuditKey::new(&[8; 32]);
        let h = a.recipient_hash("ann@example.org");
        assert_eq!(h, a.recipient_hash("  Ann@Example.ORG "));
        assert_ne!(h, b.recipient_hash("ann@example.org"));
        assert_eq!(h.len(), 64);
        assert!(!h.contains("ann"));
        assert_eq!(format!("{a:?}"), "AuditKey(redacted)");
        let keys = AuditKeys {
            write: a,
            older: Some(b.clone()),
        };
        assert_eq!(
            keys.lookup_hashes("ann@example.org")[1],
            b.recipient_hash("ann@example.org")
        );
    }

    #[test]
    fn failed_attempts_are_classed_by_status_and_retryability() {
        let retry = CallError::Retryable {
            reason: "mail service answered 503".into(),
            retry_after: None,
        };
        let class = |e: &CallError, s| AttemptRecord::failed(0, e, s).outcome;
        assert_eq!(class(&retry, Some(503)), AttemptOutcome::Retryable);
        assert_eq!(class(&retry, None), AttemptOutcome::Transport);
        let perm = CallError::permanent("mail service answered 400");
        assert_eq!(class(&perm, Some(400)), AttemptOutcome::Permanent);
        assert_eq!(
            AttemptRecord::failed(0, &perm, Some(400)).reason.as_deref(),
            Some("mail service answered 400")
        );
    }
}

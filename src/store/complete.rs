//! Finished work as the worker reports it: events done with the notices to queue, notices
//! sent, retries and dead letters. [`super::apply`] writes it inside a group-commit batch,
//! each only if its claim is still held.

use super::NewNotice;

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
    /// A notice's send attempt, for its audit trail (written only if the claim is held).
    pub attempt: Option<crate::audit::AttemptRecord>,
    /// For `EventDone`: the keyed hash of each notice's recipient, in order.
    pub recipient_hashes: Vec<String>,
}

impl Completion {
    /// The id of the row it finishes.
    pub(super) fn id(&self) -> &str {
        match self {
            Self::EventDone { id, .. }
            | Self::NoticeSent { id }
            | Self::Retry { id, .. }
            | Self::Dead { id, .. } => id,
        }
    }
}

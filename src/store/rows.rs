//! The rows the store takes and hands out. Those that hold a recipient or a payload show
//! only ids in `Debug`, so no `{:?}` in a log line or a panic message can carry personal
//! data.

/// The two queues. Both have the same state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    Events,
    Notices,
}

impl Queue {
    pub(super) fn table(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Notices => "notices",
        }
    }

    pub fn name(self) -> &'static str {
        self.table()
    }

    /// The state a row of this queue takes when its work is done.
    pub(super) fn finished_state(self) -> super::state::State {
        match self {
            Self::Events => super::state::State::Done,
            Self::Notices => super::state::State::Sent,
        }
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
    /// The HTML body, when the templates have one for this kind and locale.
    pub html: Option<String>,
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
    pub html: Option<String>,
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

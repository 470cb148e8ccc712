//! The state machine both queues share, mapped to its stored spelling in one place:
//! `pending` (work left; due by `next_attempt_at`, held by a lease), then `done` (an event
//! processed) or `sent` (a notice accepted by the mail service), or `dead` (given up, kept
//! for an operator).

/// A row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    /// An event whose notices are queued.
    Done,
    /// A notice the mail service accepted.
    Sent,
    Dead,
}

impl State {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Sent => "sent",
            Self::Dead => "dead",
        }
    }

    /// The value as an SQL literal, for statements built with `format!`.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Pending => "'pending'",
            Self::Done => "'done'",
            Self::Sent => "'sent'",
            Self::Dead => "'dead'",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_literal_is_the_stored_value_quoted() {
        for s in [State::Pending, State::Done, State::Sent, State::Dead] {
            assert_eq!(s.sql(), format!("'{}'", s.as_str()));
        }
    }
}

//! The ingress's counters and latency histogram, registered once at start-up: a labelled
//! metric looked up by name on every delivery hashed its whole key and searched the
//! registry each time. Same names and labels as before (docs/operations.md).

use metrics::{Counter, Histogram};

use crate::event::HandledType;

/// What became of a delivery whose envelope was read.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Ignored,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Self::Accepted, Self::Duplicate, Self::Ignored];

    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
        }
    }
}

/// An event type as a label of logs and metrics: ours verbatim, anything else folded to
/// `other_gigs` or `other`, to keep the label set bounded. Also the row of its counters:
/// the handled types in [`HandledType::ALL`] order, then `other_gigs`, then `other`.
#[derive(Debug, Clone, Copy)]
pub struct TypeLabel(usize);

impl TypeLabel {
    const OTHER_GIGS: usize = HandledType::ALL.len();
    const OTHER: usize = HandledType::ALL.len() + 1;
    const COUNT: usize = HandledType::ALL.len() + 2;

    /// The label of `event_type` (the sender's text), whose `handled` type is known.
    pub fn of(handled: Option<HandledType>, event_type: &str) -> Self {
        Self(match handled {
            // Every handled type is in ALL (tested); were one not, it is still a Gigs type.
            Some(h) => HandledType::ALL
                .iter()
                .position(|t| *t == h)
                .unwrap_or(Self::OTHER_GIGS),
            None if event_type.starts_with("com.gigs.") => Self::OTHER_GIGS,
            None => Self::OTHER,
        })
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            Self::OTHER_GIGS => "other_gigs",
            Self::OTHER => "other",
            row => HandledType::ALL[row].type_name(),
        }
    }
}

/// `gigs_notifier_events_received_total` for each [`TypeLabel`] and outcome, and
/// `gigs_notifier_ingest_seconds`.
pub struct IngressMetrics {
    /// By [`TypeLabel`] row, then in [`Outcome::ALL`] order.
    received: Vec<[Counter; 3]>,
    ingest_seconds: Histogram,
}

impl IngressMetrics {
    /// Register every handle with the process's recorder, installing it first if need be
    /// (a handle taken before would count nothing, for good). Every series is then in
    /// `/metrics` from start-up, at 0 until its first delivery.
    pub fn register() -> Self {
        crate::telemetry::metrics_handle();
        let received = (0..TypeLabel::COUNT)
            .map(|row| {
                let event_type = TypeLabel(row).name();
                Outcome::ALL.map(|outcome| {
                    metrics::counter!("gigs_notifier_events_received_total", "event_type" => event_type, "outcome" => outcome.label(), "reason" => "")
                })
            })
            .collect();
        Self {
            received,
            ingest_seconds: metrics::histogram!("gigs_notifier_ingest_seconds"),
        }
    }

    /// Count one delivery of a type labelled `label`.
    pub fn count(&self, label: TypeLabel, outcome: Outcome) {
        self.received[label.0][outcome as usize].increment(1);
    }

    /// Time from receipt to the store's answer, seconds.
    pub fn ingested_in(&self, seconds: f64) {
        self.ingest_seconds.record(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_names_its_own_row() {
        for (row, t) in HandledType::ALL.iter().enumerate() {
            let label = TypeLabel::of(Some(*t), t.type_name());
            assert_eq!((label.0, label.name()), (row, t.type_name()));
        }
        assert_eq!(
            TypeLabel::of(None, "com.gigs.sim.updated").name(),
            "other_gigs"
        );
        assert_eq!(TypeLabel::of(None, "jerry@example.com").name(), "other");
        let rows: std::collections::HashSet<_> =
            (0..TypeLabel::COUNT).map(|r| TypeLabel(r).name()).collect();
        assert_eq!(rows.len(), TypeLabel::COUNT, "no two rows share a label");
    }
}

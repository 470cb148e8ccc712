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

/// Type labels beside the handled types: anything else is folded, to keep the label set
/// bounded.
const OTHER_GIGS: &str = "other_gigs";
const OTHER: &str = "other";

/// `gigs_notifier_events_received_total` for each event-type label and outcome, and
/// `gigs_notifier_ingest_seconds`.
pub struct IngressMetrics {
    /// In [`HandledType::ALL`] order, then `other_gigs`, then `other`; outcomes in
    /// [`Outcome::ALL`] order.
    received: Vec<[Counter; 3]>,
    ingest_seconds: Histogram,
}

impl IngressMetrics {
    /// Register every handle with the process's recorder, installing it first if need be
    /// (a handle taken before would count nothing, for good). Every series is then in
    /// `/metrics` from start-up, at 0 until its first delivery.
    pub fn register() -> Self {
        crate::telemetry::metrics_handle();
        let labels = HandledType::ALL
            .iter()
            .map(|t| t.type_name())
            .chain([OTHER_GIGS, OTHER]);
        let received = labels
            .map(|event_type| {
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

    /// Count one delivery of `event_type` (the sender's text) with its `handled` type.
    pub fn count(&self, handled: Option<HandledType>, event_type: &str, outcome: Outcome) {
        let row = handled
            .and_then(|h| HandledType::ALL.iter().position(|t| *t == h))
            .unwrap_or(match type_label(None, event_type) {
                OTHER_GIGS => HandledType::ALL.len(),
                _ => HandledType::ALL.len() + 1,
            });
        self.received[row][outcome as usize].increment(1);
    }

    /// Time from receipt to the store's answer, seconds.
    pub fn ingested_in(&self, seconds: f64) {
        self.ingest_seconds.record(seconds);
    }
}

/// The label of a type in logs and metrics: ours verbatim, anything else folded.
pub fn type_label(handled: Option<HandledType>, event_type: &str) -> &'static str {
    handled
        .map(HandledType::type_name)
        .unwrap_or(if event_type.starts_with("com.gigs.") {
            OTHER_GIGS
        } else {
            OTHER
        })
}

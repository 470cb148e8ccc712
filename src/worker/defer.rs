//! Deferring to a burst of deliveries. Acknowledging is what Gigs times (an attempt has
//! about 15 s) and what a burst needs most; the worker shares the CPU and the write queue
//! with the ingress. While many deliveries are waiting for their commit, the worker holds
//! back new claims, but never for longer than [`MAX_DEFER`] in a row, so notices still flow
//! during a sustained burst and the backlog drains as soon as it ends. At ordinary rates
//! (hundreds of deliveries per second) deliveries never queue this deep and nothing is
//! deferred.

use std::time::{Duration, Instant};

/// Deliveries waiting for a commit at which the ingress counts as under a burst.
pub(super) const BUSY_INGEST: usize = 16;
/// Longest the worker goes without claiming while deferring.
pub(super) const MAX_DEFER: Duration = Duration::from_millis(250);
/// How long the worker waits before looking again.
pub(super) const STEP: Duration = Duration::from_millis(5);

/// When the worker last claimed.
pub(super) struct Deferral {
    last_claim: Instant,
}

impl Deferral {
    pub(super) fn new(now: Instant) -> Self {
        Self { last_claim: now }
    }

    /// Whether to hold back a claim now, with `waiting` deliveries waiting for a commit.
    pub(super) fn defer(&self, waiting: usize, now: Instant) -> bool {
        waiting >= BUSY_INGEST && now.saturating_duration_since(self.last_claim) < MAX_DEFER
    }

    pub(super) fn claimed(&mut self, now: Instant) {
        self.last_claim = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defers_only_under_a_burst_and_never_for_long() {
        let start = Instant::now();
        let mut d = Deferral::new(start);
        // Ordinary load: claim at once.
        assert!(!d.defer(BUSY_INGEST - 1, start));
        assert!(!d.defer(0, start + Duration::from_millis(1)));
        // A burst: hold back...
        assert!(d.defer(BUSY_INGEST, start + Duration::from_millis(1)));
        assert!(d.defer(500, start + MAX_DEFER - Duration::from_millis(1)));
        // ...but not longer than MAX_DEFER since the last claim.
        assert!(!d.defer(500, start + MAX_DEFER));
        d.claimed(start + MAX_DEFER);
        assert!(d.defer(500, start + MAX_DEFER + STEP));
    }
}

//! Deferring to a burst of deliveries. Acknowledging is what Gigs times (an attempt has
//! about 15 s) and what a burst needs most; the worker shares the CPU and the write queue
//! with the ingress. While the ingress is under a burst, the worker holds back new claims,
//! but never for longer than [`MAX_DEFER`] in a row, so notices still flow during a
//! sustained burst and the backlog drains as soon as it ends.
//!
//! A burst is deliveries arriving faster than [`BURST_RATE`] over the last [`WINDOW`], or
//! many of them waiting for their commit right now. The rate is the steadier signal: the
//! number waiting swings from zero to the whole burst with every commit. At ordinary rates
//! (hundreds of deliveries per second, up to a few thousand) nothing is deferred.

use std::time::{Duration, Instant};

/// Deliveries waiting for a commit at which the ingress counts as under a burst.
pub(super) const BUSY_INGEST: usize = 16;
/// Deliveries per second at which the ingress counts as under a burst.
pub(super) const BURST_RATE: f64 = 5_000.0;
/// How far back the rate is measured.
pub(super) const WINDOW: Duration = Duration::from_millis(20);
/// Longest the worker goes without claiming while deferring.
pub(super) const MAX_DEFER: Duration = Duration::from_millis(250);
/// How long the worker waits before looking again.
pub(super) const STEP: Duration = Duration::from_millis(5);

/// When the worker last claimed, and the ingress rate it last measured.
pub(super) struct Deferral {
    last_claim: Instant,
    window_start: Instant,
    /// Deliveries received (since the store started) when the window began; `None` until
    /// the first look, so deliveries from before the worker started are not a burst.
    window_received: Option<u64>,
    bursting: bool,
}

impl Deferral {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            last_claim: now,
            window_start: now,
            window_received: None,
            bursting: false,
        }
    }

    /// Whether to hold back a claim now, given (deliveries waiting for a commit, deliveries
    /// received since start).
    pub(super) fn defer(&mut self, (waiting, received): (usize, u64), now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.window_start);
        match self.window_received {
            None => {
                self.window_start = now;
                self.window_received = Some(received);
            }
            Some(before) if elapsed >= WINDOW => {
                let arrived = received.saturating_sub(before) as f64;
                self.bursting = arrived / elapsed.as_secs_f64() >= BURST_RATE;
                self.window_start = now;
                self.window_received = Some(received);
            }
            Some(_) => {}
        }
        (self.bursting || waiting >= BUSY_INGEST)
            && now.saturating_duration_since(self.last_claim) < MAX_DEFER
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
        assert!(!d.defer((BUSY_INGEST - 1, 0), start));
        assert!(!d.defer((0, 0), start + Duration::from_millis(1)));
        // Many waiting for a commit: hold back...
        assert!(d.defer((BUSY_INGEST, 0), start + Duration::from_millis(1)));
        assert!(d.defer((500, 0), start + MAX_DEFER - Duration::from_millis(1)));
        // ...but not longer than MAX_DEFER since the last claim.
        assert!(!d.defer((500, 0), start + MAX_DEFER));
        d.claimed(start + MAX_DEFER);
        assert!(d.defer((500, 0), start + MAX_DEFER + STEP));
    }

    #[test]
    fn a_high_delivery_rate_is_a_burst_even_when_nothing_waits_at_that_moment() {
        let start = Instant::now();
        let mut d = Deferral::new(start);
        // Deliveries from before the first look are no burst.
        assert!(!d.defer((0, 100_000), start));
        // 2,000/s over a window: ordinary, the worker keeps up.
        let t1 = start + WINDOW;
        assert!(!d.defer((0, 100_040), t1));
        // 10,000/s over the next window: a burst, though the queue is empty right now.
        let t2 = t1 + WINDOW;
        assert!(d.defer((0, 100_240), t2));
        // Still a burst until a window says otherwise...
        assert!(d.defer((0, 100_240), t2 + STEP));
        // ...and over when the rate falls.
        assert!(!d.defer((0, 100_245), t2 + WINDOW));
    }
}

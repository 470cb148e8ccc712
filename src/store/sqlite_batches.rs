//! How SQLite's writer thread forms its batches from the write queue. It takes everything
//! queued the moment it is free (deliveries never wait for a batch to fill), lets a small
//! batch of the worker's writes alone wait briefly for company, keeps the worker's share of
//! a batch that answers deliveries small, and after a lock timeout turns away at once the
//! deliveries queued behind it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::apply::is_work;
use super::batch::{Queued, WriteOp, MAX_BATCH};
use super::StoreError;

/// How long a batch of the worker's writes alone waits for company (see [`linger`]).
const WORK_LINGER: Duration = Duration::from_millis(2);

/// The most of the worker's writes a batch that answers deliveries carries. A finished
/// event writes its notices and their audit rows, several random index pages each: fifty
/// of them made a batch take 5–15 ms, and the deliveries in it waited as long. The rest
/// follow in the next batch, in order; a batch of the worker's writes alone still takes up
/// to [`MAX_BATCH`].
const WORK_BESIDE_DELIVERIES: usize = 8;

/// Batches of the worker's writes this size or larger are written at once.
const LINGER_BELOW: usize = 4;

/// Where the writer takes its writes from: the write queue (or a script, in the tests).
pub(super) trait Queue {
    /// The next write, waiting for one; `None` once the queue is closed and empty.
    fn recv(&self) -> Option<Queued>;
    /// The next write queued by `deadline`; `None` if none came (or the queue closed).
    fn recv_until(&self, deadline: Instant) -> Option<Queued>;
    /// The next write already queued, without waiting.
    fn try_recv(&self) -> Option<Queued>;
}

impl Queue for flume::Receiver<Queued> {
    fn recv(&self) -> Option<Queued> {
        flume::Receiver::recv(self).ok()
    }

    fn recv_until(&self, deadline: Instant) -> Option<Queued> {
        self.recv_deadline(deadline).ok()
    }

    fn try_recv(&self) -> Option<Queued> {
        flume::Receiver::try_recv(self).ok()
    }
}

/// The next batch: `held` (writes held over from the last one) and what is queued now, or
/// the first write to come if there is nothing; `None` once the queue is closed and empty.
pub(super) fn next_batch(queue: &impl Queue, mut held: Vec<Queued>) -> Option<Vec<Queued>> {
    if held.is_empty() {
        held.push(queue.recv()?);
    }
    take_queued(queue, &mut held);
    linger(queue, &mut held, Instant::now());
    Some(held)
}

/// On SQLite (one writer, an fsync per commit), a small batch of the worker's writes alone
/// waits up to [`WORK_LINGER`] from `now` for more, so at a moderate rate its steps (claims,
/// finished events, sent notices) share commits instead of taking one each. The first
/// delivery or probe to arrive ends the wait (with whatever queued behind it), so nobody the
/// ingress answers waits; a worker busy enough to fill [`LINGER_BELOW`] writes does not wait
/// either (draining a backlog, each of its rounds would take longer).
fn linger(queue: &impl Queue, batch: &mut Vec<Queued>, now: Instant) {
    let deadline = now + WORK_LINGER;
    while batch.len() < LINGER_BELOW && batch.iter().all(|(op, _)| is_work(op)) {
        match queue.recv_until(deadline) {
            Some(item) => batch.push(item),
            // Closed: what is here is still written; the next round ends the loop.
            None => return,
        }
    }
    take_queued(queue, batch);
}

/// In a batch that answers deliveries or probes, at most [`WORK_BESIDE_DELIVERIES`] of the
/// worker's writes ride along; the rest are taken out, in order, for the next batch.
pub(super) fn hold_back_work(batch: &mut Vec<Queued>) -> Vec<Queued> {
    if batch.iter().all(|(op, _)| is_work(op)) {
        return Vec::new();
    }
    let mut work = 0;
    let mut held = Vec::new();
    let mut kept = Vec::with_capacity(batch.len());
    for item in batch.drain(..) {
        if !is_work(&item.0) || work < WORK_BESIDE_DELIVERIES {
            work += usize::from(is_work(&item.0));
            kept.push(item);
        } else {
            held.push(item);
        }
    }
    *batch = kept;
    held
}

/// Another process held the write lock past the busy timeout (`e`): deliveries that queued
/// while this batch waited for it would only wait as long again, each batch in turn, and
/// could wait several lock timeouts for their 503. They are answered now (Gigs retries); the
/// worker's writes and probes join `held` for the next round, so the worker's retry budget
/// and readiness are not spent on a lock they never waited for.
pub(super) fn turn_away_deliveries(
    queue: &impl Queue,
    held: &mut Vec<Queued>,
    e: &Arc<StoreError>,
) {
    while held.len() < MAX_BATCH {
        let Some((op, reply)) = queue.try_recv() else {
            break;
        };
        if matches!(op, WriteOp::Insert(_)) {
            let _ = reply.send(Err(StoreError::Batch(e.clone())));
        } else {
            held.push((op, reply));
        }
    }
}

/// Add what is queued now to `batch`, up to [`MAX_BATCH`], without waiting.
fn take_queued(queue: &impl Queue, batch: &mut Vec<Queued>) {
    while batch.len() < MAX_BATCH {
        let Some(item) = queue.try_recv() else { break };
        batch.push(item);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use tokio::sync::oneshot;

    use super::*;
    use crate::store::batch::ClaimRequest;
    use crate::store::test_ops::event;

    /// Writes that arrive at set times on a clock of its own, which waiting moves on.
    struct Script {
        start: Instant,
        now: Cell<Instant>,
        arrivals: RefCell<VecDeque<(Duration, Queued)>>,
    }

    impl Script {
        fn new(arrivals: impl IntoIterator<Item = (Duration, WriteOp)>) -> Self {
            let start = Instant::now();
            let arrivals = arrivals.into_iter().map(|(at, op)| (at, queued(op)));
            Self {
                start,
                now: Cell::new(start),
                arrivals: RefCell::new(arrivals.collect()),
            }
        }

        /// The next arrival, if it comes by `deadline`; the clock moves to whichever is first.
        fn take_by(&self, deadline: Instant) -> Option<Queued> {
            let mut arrivals = self.arrivals.borrow_mut();
            let due = self.start + arrivals.front()?.0;
            if due > deadline {
                self.now.set(self.now.get().max(deadline));
                return None;
            }
            self.now.set(self.now.get().max(due));
            arrivals.pop_front().map(|(_, item)| item)
        }

        fn waited(&self) -> Duration {
            self.now.get() - self.start
        }
    }

    impl Queue for Script {
        fn recv(&self) -> Option<Queued> {
            self.take_by(self.start + Duration::from_secs(3600))
        }

        fn recv_until(&self, deadline: Instant) -> Option<Queued> {
            let item = self.take_by(deadline);
            if item.is_none() {
                self.now.set(self.now.get().max(deadline));
            }
            item
        }

        fn try_recv(&self) -> Option<Queued> {
            self.take_by(self.now.get())
        }
    }

    fn claim_at(now: i64) -> WriteOp {
        WriteOp::Claim(ClaimRequest {
            token: "wkr_test".into(),
            now,
            lease_until: now + 1,
            events: 1,
            notices: 1,
            busy_recipients: Vec::new(),
        })
    }

    fn claim() -> WriteOp {
        claim_at(1)
    }

    fn queued(op: WriteOp) -> Queued {
        (op, oneshot::channel().0)
    }

    #[test]
    fn a_lone_worker_write_waits_for_company_but_no_longer_than_the_linger() {
        let nothing = Script::new([]);
        let mut batch = vec![queued(claim())];
        linger(&nothing, &mut batch, nothing.start);
        assert_eq!(batch.len(), 1, "nothing came");
        assert_eq!(nothing.waited(), WORK_LINGER);

        let half = WORK_LINGER / 2;
        let company = Script::new([
            (half, claim()),
            (half, WriteOp::Probe),
            (half, claim()),
            (WORK_LINGER, claim()),
        ]);
        let mut batch = vec![queued(claim())];
        linger(&company, &mut batch, company.start);
        assert_eq!(
            batch.len(),
            4,
            "the probe ended the wait, with what queued behind it"
        );
        assert_eq!(company.waited(), half, "not a moment after the probe");
    }

    #[test]
    fn deliveries_and_busy_workers_never_wait() {
        let later = || Script::new([(WORK_LINGER / 2, claim())]);
        let queue = later();
        let mut batch = vec![queued(claim()), queued(WriteOp::Probe)];
        linger(&queue, &mut batch, queue.start);
        assert_eq!((batch.len(), queue.waited()), (2, Duration::ZERO));
        let queue = later();
        let mut full: Vec<_> = (0..LINGER_BELOW).map(|_| queued(claim())).collect();
        linger(&queue, &mut full, queue.start);
        assert_eq!((full.len(), queue.waited()), (LINGER_BELOW, Duration::ZERO));
    }

    #[test]
    fn a_batch_is_what_was_held_over_and_everything_queued_or_else_the_first_to_come() {
        let queue = Script::new([(Duration::ZERO, event("evt_a")), (Duration::ZERO, claim())]);
        let batch = next_batch(&queue, vec![queued(WriteOp::Probe)]).unwrap();
        let kinds: Vec<_> = batch.iter().map(|(op, _)| is_work(op)).collect();
        assert_eq!(
            kinds,
            [false, false, true],
            "held over first, then the queue"
        );

        let queue = Script::new([(Duration::from_secs(5), event("evt_b"))]);
        let batch = next_batch(&queue, Vec::new()).unwrap();
        assert_eq!(batch.len(), 1, "waited for the first write to come");
        assert!(next_batch(&Script::new([]), Vec::new()).is_none(), "closed");
    }

    #[test]
    fn deliveries_take_a_few_of_the_worker_writes_along_and_the_rest_follow_in_order() {
        let n = WORK_BESIDE_DELIVERIES + 3;
        let works = || (0..n as i64).map(|now| queued(claim_at(now)));
        let mut batch: Vec<_> = works().chain([queued(WriteOp::Probe)]).collect();
        let held = hold_back_work(&mut batch);
        let work_in = |b: &[Queued]| b.iter().filter(|(op, _)| is_work(op)).count();
        assert_eq!(
            (work_in(&batch), batch.len()),
            (WORK_BESIDE_DELIVERIES, WORK_BESIDE_DELIVERIES + 1)
        );
        let nows: Vec<_> = held
            .iter()
            .map(|(op, _)| match op {
                WriteOp::Claim(c) => c.now,
                _ => -1,
            })
            .collect();
        let last: Vec<_> = (WORK_BESIDE_DELIVERIES as i64..n as i64).collect();
        assert_eq!(nows, last, "the last three, in order");
        let mut alone: Vec<_> = works().collect();
        assert!(
            hold_back_work(&mut alone).is_empty(),
            "the worker's writes alone all go"
        );
        assert_eq!(alone.len(), n);
    }

    #[test]
    fn after_a_lock_timeout_queued_deliveries_are_answered_and_the_rest_held() {
        let (delivery, mut answer) = oneshot::channel();
        let queue = Script::new([(Duration::ZERO, claim()), (Duration::ZERO, WriteOp::Probe)]);
        queue
            .arrivals
            .borrow_mut()
            .insert(1, (Duration::ZERO, (event("evt_a"), delivery)));
        let mut held = Vec::new();
        let locked = Arc::new(StoreError::Closed);
        turn_away_deliveries(&queue, &mut held, &locked);
        let answered = answer.try_recv().expect("the delivery was answered");
        assert!(matches!(answered, Err(StoreError::Batch(_))));
        let kinds: Vec<_> = held.iter().map(|(op, _)| is_work(op)).collect();
        assert_eq!(
            kinds,
            [true, false],
            "the claim and the probe wait, in order"
        );
    }
}

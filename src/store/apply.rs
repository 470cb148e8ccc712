//! One group-commit batch applied inside one transaction: the rules every backend shares,
//! written once over [`BatchTx`], the statements each backend implements in its own room
//! ([`super::sqlx_tx`] for PostgreSQL, [`super::sqlite_tx`] for SQLite's writer thread).
//!
//! The rules: the ingress's part first, deliveries in id order (two replicas inserting
//! overlapping ids take their locks in the same order); then the worker's part, finished
//! work (it frees claims) and claims (which may take what was just stored). Finished work counts only while its claim is
//! still held: an event's notices and their audit records are queued only if the event was
//! still this worker's, and a send is recorded only if the notice was.

use std::collections::HashSet;
use std::sync::Arc;

use super::batch::{ClaimRequest, InsertOutcome, WriteOp, WriteOut};
use super::complete::{Claimed, Completion};
use super::{ClaimedEvent, ClaimedNotice, NewEvent, NewNotice, Queue, StoreError};
use crate::audit::AttemptRecord;

/// A notice being queued, with what its audit record needs.
pub(super) struct QueuedNotice<'a> {
    pub event_id: &'a str,
    pub event_received_at: i64,
    pub now: i64,
    pub notice: &'a NewNotice,
    /// Keyed hash of the recipient (the audit record holds no address).
    pub recipient_hash: &'a str,
}

/// The statements of one backend, inside the batch's open transaction.
pub(super) trait BatchTx {
    type Error;

    /// Rewrite the readiness probe's row: a real write that fails where a delivery would.
    async fn probe(&mut self, now: i64) -> Result<(), Self::Error>;

    /// Store events not stored yet; the first occurrence of a new id is the one that
    /// stores it, the rest and ids already stored are duplicates.
    async fn insert_events(
        &mut self,
        events: &[&NewEvent],
    ) -> Result<Vec<InsertOutcome>, Self::Error>;

    /// Mark the rows `ids` of `queue` finished (`done` or `sent`) where `token` still holds
    /// them; returns the ids it marked.
    async fn finish(
        &mut self,
        queue: Queue,
        token: &str,
        now: i64,
        ids: &[&str],
    ) -> Result<HashSet<String>, Self::Error>;

    /// Queue notices and their audit records; a notice already queued keeps its first row.
    async fn queue_notices(&mut self, notices: &[QueuedNotice<'_>]) -> Result<(), Self::Error>;

    /// The audit trail of notices just marked sent: their attempts, outcome and message id.
    async fn record_sent(
        &mut self,
        now: i64,
        sent: &[(&str, Option<&AttemptRecord>)],
    ) -> Result<(), Self::Error>;

    /// A retry or a dead letter (with its audit entry for a notice), if the claim is held.
    async fn settle(&mut self, op: &Claimed) -> Result<bool, Self::Error>;

    /// Claim due events and notices, each up to its own limit.
    async fn claim(
        &mut self,
        req: &ClaimRequest,
    ) -> Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>), Self::Error>;

    /// A batch that breaks a rule of ours (refused rather than written).
    fn refused(why: &'static str) -> Self::Error;

    /// Whether `e` is a refusal of one statement of ours (a [bug](super::ErrorClass::Bug)),
    /// after which the transaction is sound once rolled back to a savepoint; anything else
    /// (the database down, full, interrupted) fails the batch.
    fn fails_alone(e: &Self::Error) -> bool;

    /// `SAVEPOINT`, `RELEASE SAVEPOINT` or `ROLLBACK TO SAVEPOINT`, as given.
    async fn savepoint(&mut self, sql: &'static str) -> Result<(), Self::Error>;
}

/// Each op's answer, filled in as the phases run.
pub(super) type Answers = Vec<Option<WriteOut>>;

/// Each op's outcome: the worker's ops fail on their own when their savepoint was rolled back.
pub(super) type Outcomes = Vec<Result<WriteOut, Arc<StoreError>>>;

/// A fresh answer sheet for `ops`.
pub(super) fn answers(ops: &[WriteOp]) -> Answers {
    (0..ops.len()).map(|_| None).collect()
}

/// The outcomes of a committed batch, in the order of its ops: both backends apply the
/// [`deliveries`], then the work ([`work_apart`]); an op of the worker's that was refused
/// and rolled back alone (`failed`, by index) gets its error while the rest stand.
pub(super) fn outcomes(out: Answers, failed: Vec<(usize, StoreError)>) -> Outcomes {
    let mut outcomes: Outcomes = out
        .into_iter()
        .map(|o| o.ok_or_else(|| Arc::new(StoreError::Closed)))
        .collect();
    for (i, e) in failed {
        outcomes[i] = Err(Arc::new(StoreError::Refused(Box::new(e))));
    }
    outcomes
}

/// The ingress's part of a batch: the readiness probe and the deliveries, in id order.
pub(super) async fn deliveries<T: BatchTx>(
    tx: &mut T,
    ops: &[WriteOp],
    now: i64,
    out: &mut Answers,
) -> Result<(), T::Error> {
    let mut inserts = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Insert(e) => inserts.push((i, e)),
            WriteOp::Probe => out[i] = Some(WriteOut::Probed),
            WriteOp::Complete(_) | WriteOp::Claim(_) => {}
        }
    }
    if ops.iter().any(|op| matches!(op, WriteOp::Probe)) {
        tx.probe(now).await?;
    }
    inserts.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    let events: Vec<&NewEvent> = inserts.iter().map(|(_, e)| *e).collect();
    let stored = tx.insert_events(&events).await?;
    for ((i, _), s) in inserts.iter().zip(stored) {
        out[*i] = Some(WriteOut::Inserted(s));
    }
    Ok(())
}

/// The worker's part of a batch: finished work, then claims (which may take what the
/// same batch just stored).
pub(super) async fn work<T: BatchTx>(
    tx: &mut T,
    ops: &[WriteOp],
    out: &mut Answers,
) -> Result<(), T::Error> {
    let completes: Vec<(usize, &Claimed)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            WriteOp::Complete(c) => Some((i, c)),
            _ => None,
        })
        .collect();
    let held = complete_many(tx, &completes.iter().map(|(_, c)| *c).collect::<Vec<_>>()).await?;
    for ((i, _), h) in completes.iter().zip(held) {
        out[*i] = Some(WriteOut::Completed(h));
    }
    for (i, op) in ops.iter().enumerate() {
        if let WriteOp::Claim(req) = op {
            let (events, notices) = tx.claim(req).await?;
            out[i] = Some(WriteOut::Claimed(events, notices));
        }
    }
    Ok(())
}

/// The worker's part of a batch, in a savepoint after the deliveries. If a statement of it
/// is refused ([`BatchTx::fails_alone`]), the part is rolled back and done again one op at
/// a time, each in a savepoint of its own, so that only the op at fault fails (its error is
/// returned with its index) and the others commit: one bad result must not turn away the
/// results it happened to share a batch with. Any other failure fails the batch.
pub(super) async fn work_apart<T: BatchTx>(
    tx: &mut T,
    ops: &[WriteOp],
    out: &mut Answers,
) -> Result<Vec<(usize, T::Error)>, T::Error>
where
    T::Error: std::fmt::Display,
{
    if !ops.iter().any(is_work) {
        return Ok(Vec::new());
    }
    tx.savepoint("SAVEPOINT work").await?;
    match work(tx, ops, out).await {
        Ok(()) => {
            tx.savepoint("RELEASE SAVEPOINT work").await?;
            return Ok(Vec::new());
        }
        Err(e) if T::fails_alone(&e) => tx.savepoint("ROLLBACK TO SAVEPOINT work").await?,
        Err(e) => return Err(e),
    }
    let mut failed = Vec::new();
    for (i, op) in ops.iter().enumerate().filter(|(_, op)| is_work(op)) {
        let mut one = vec![None];
        tx.savepoint("SAVEPOINT one").await?;
        match work(tx, std::slice::from_ref(op), &mut one).await {
            Ok(()) => out[i] = one.pop().flatten(),
            Err(e) if T::fails_alone(&e) => {
                tx.savepoint("ROLLBACK TO SAVEPOINT one").await?;
                tracing::error!(error = %e, "a write of the worker's was refused and rolled back alone; the rest of its batch commits");
                out[i] = None;
                failed.push((i, e));
            }
            Err(e) => return Err(e),
        }
        tx.savepoint("RELEASE SAVEPOINT one").await?;
    }
    tx.savepoint("RELEASE SAVEPOINT work").await?;
    Ok(failed)
}

/// Whether `op` is the worker's (see [`work`]) rather than the ingress's.
pub(super) fn is_work(op: &WriteOp) -> bool {
    matches!(op, WriteOp::Complete(_) | WriteOp::Claim(_))
}

/// Whether each claim was still held (otherwise nothing was written for it). Successes
/// (the bulk) are finished per queue and claimer, 256 at a time; retries and dead letters
/// are rare and go one by one.
async fn complete_many<T: BatchTx>(tx: &mut T, ops: &[&Claimed]) -> Result<Vec<bool>, T::Error> {
    let mut out = vec![false; ops.len()];
    let mut groups: std::collections::HashMap<(Queue, &str), Vec<usize>> = Default::default();
    for (i, op) in ops.iter().enumerate() {
        let queue = match op.completion {
            Completion::EventDone { .. } => Queue::Events,
            Completion::NoticeSent { .. } => Queue::Notices,
            _ => {
                out[i] = tx.settle(op).await?;
                continue;
            }
        };
        groups
            .entry((queue, op.token.as_str()))
            .or_default()
            .push(i);
    }
    for ((queue, token), indexes) in groups {
        for chunk in indexes.chunks(256) {
            let now = chunk.iter().map(|&i| ops[i].now).max().unwrap_or(0);
            let ids: Vec<&str> = chunk.iter().map(|&i| ops[i].completion.id()).collect();
            let held = tx.finish(queue, token, now, &ids).await?;
            for &i in chunk {
                out[i] = held.contains(ops[i].completion.id());
            }
            let done = chunk
                .iter()
                .map(|&i| ops[i])
                .filter(|op| held.contains(op.completion.id()));
            match queue {
                Queue::Notices => {
                    let sent: Vec<_> = done
                        .map(|op| (op.completion.id(), op.attempt.as_ref()))
                        .collect();
                    if !sent.is_empty() {
                        tx.record_sent(now, &sent).await?;
                    }
                }
                Queue::Events => {
                    let queued = queued_notices::<T>(done)?;
                    if !queued.is_empty() {
                        tx.queue_notices(&queued).await?;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The notices of finished events, each with its recipient's hash.
fn queued_notices<'a, T: BatchTx>(
    done: impl Iterator<Item = &'a Claimed>,
) -> Result<Vec<QueuedNotice<'a>>, T::Error> {
    let mut queued = Vec::new();
    for op in done {
        if let Completion::EventDone {
            id,
            received_at,
            notices,
        } = &op.completion
        {
            // `Store::complete_attempt` makes one hash per notice; a notice without one would
            // go unrecorded, so a mismatch is refused rather than written.
            if op.recipient_hashes.len() != notices.len() {
                return Err(T::refused("notices queued without their recipient hashes"));
            }
            for (notice, hash) in notices.iter().zip(&op.recipient_hashes) {
                queued.push(QueuedNotice {
                    event_id: id,
                    event_received_at: *received_at,
                    now: op.now,
                    notice,
                    recipient_hash: hash,
                });
            }
        }
    }
    Ok(queued)
}

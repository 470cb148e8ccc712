//! Outcomes: recording how claimed work ended, and for a failure the retry-or-dead-letter
//! decision (`crate::retry` decides; this records it and counts it).

use std::time::Duration;

use super::Worker;
use crate::audit::AttemptRecord;
use crate::outbound::CallError;
use crate::retry::Attempt;
use crate::store::{now_ms, Completion, Queue};

impl Worker {
    /// Record the end of claimed work, retrying briefly if the store is unreachable (an
    /// unrecorded result means the work is done again after its lease expires); a result
    /// the store refused alone for what it carries is not tried again.
    /// A notice's completion carries its send attempt, for the audit trail.
    pub(super) async fn record(
        &self,
        completion: Completion,
        attempt: Option<AttemptRecord>,
    ) -> Result<bool, crate::store::StoreError> {
        let me = &self.inner;
        let mut wait = Duration::from_millis(250);
        let mut tries = 0;
        loop {
            let (c, a) = (completion.clone(), attempt.clone());
            match me.store.complete_attempt(&me.token, c, a).await {
                Err(e) if tries < 5 && !e.is_refused_for_its_data() => {
                    tracing::warn!(error = %e, "could not record a result; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Run one item's processing; a panic in it is recorded as a failed attempt.
    pub(super) async fn guarded(&self, item: Attempt, work: impl std::future::Future<Output = ()>) {
        if let Some(failure) = crate::retry::guarded(work, &item, &self.inner.policy).await {
            let attempt = (item.queue == Queue::Notices).then(|| AttemptRecord::panicked(now_ms()));
            self.settle(failure, attempt).await
        }
    }

    /// Retry later, or dead-letter when the error is permanent or the work is too old.
    pub(super) async fn failed(
        &self,
        item: Attempt,
        error: &CallError,
        attempt: Option<AttemptRecord>,
    ) {
        let outcome = self.inner.policy.after_failure(&item, error, now_ms());
        self.settle(outcome, attempt).await
    }

    /// Record a failed attempt's outcome: a retry or a dead letter.
    pub(super) async fn settle(&self, outcome: Completion, attempt: Option<AttemptRecord>) {
        if let Completion::Dead { queue, id, error } = &outcome {
            return self.give_up(*queue, id, error, attempt).await;
        }
        if let Completion::Retry {
            queue,
            next_attempt_at,
            error,
            ..
        } = &outcome
        {
            if *queue == Queue::Notices {
                metrics::counter!("gigs_notifier_notices_total", "outcome" => "retried")
                    .increment(1);
            }
            let retry_in_ms = next_attempt_at.saturating_sub(now_ms()).max(0);
            tracing::warn!(error = %error, retry_in_ms, "will retry");
        }
        if let Err(e) = self.record(outcome, attempt).await {
            tracing::error!(error = %e, "could not reschedule; the lease will expire and it will be retried");
        }
    }

    pub(super) async fn give_up(
        &self,
        queue: Queue,
        id: &str,
        reason: &str,
        attempt: Option<AttemptRecord>,
    ) {
        let dead = Completion::Dead {
            queue,
            id: id.to_string(),
            error: reason.to_string(),
        };
        match self.record(dead, attempt).await {
            Ok(_) => {
                if queue == Queue::Notices {
                    metrics::counter!("gigs_notifier_notices_total", "outcome" => "dead_lettered")
                        .increment(1);
                }
                metrics::counter!("gigs_notifier_dead_letters_total", "queue" => queue.name())
                    .increment(1);
                tracing::error!(queue = queue.name(), reason, "dead-lettered");
            }
            Err(e) => {
                tracing::error!(error = %e, "could not dead-letter; the lease will expire and it will be retried")
            }
        }
    }
}

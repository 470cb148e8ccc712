//! The worker: claim due events and notices, process them, retry with backoff, dead-letter.
//!
//! Events become notices in one transaction (event done + its notices queued); each notice
//! is then sent under its own stable idempotency key. Up to `worker_concurrency` items are
//! in progress at once. Claims are leases renewed while work is in progress; on shutdown
//! the worker hands back what it holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit::AttemptRecord;
use crate::config::Settings;
use crate::event::Decoded;
use crate::gigs::GigsClient;
use crate::handlers::{self, Context};
use crate::mail::{MailClient, MailRequest};
use crate::notice::notice_id;
use crate::outbound::CallError;
use crate::retry::{millis, Attempt, RetryPolicy};
use crate::store::{now_ms, ClaimedEvent, ClaimedNotice, Completion, NewNotice, Queue, Store};

mod inflight;
use inflight::{InFlight, Shares};

/// Everything the worker needs; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    gigs: GigsClient,
    mail: MailClient,
    policy: RetryPolicy,
    lease: Duration,
    shares: Shares,
    poll: Duration,
    /// `WORKER_PAUSED`: claim nothing.
    paused: bool,
    notice_fields: Vec<String>,
    /// Notice kinds the operator switched off.
    disabled: Vec<crate::notice::NoticeKind>,
    wake: Arc<Notify>,
    /// Identifies this worker's claims.
    token: String,
    /// Claimed items being worked on now: the only leases the renewer extends.
    in_flight: InFlight,
}

/// How long in-flight work may run on after shutdown is asked for, before it is handed back.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Worker {
    pub fn new(
        settings: &Settings,
        store: Store,
        gigs: GigsClient,
        mail: MailClient,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                gigs,
                mail,
                policy: RetryPolicy {
                    base: settings.backoff_base,
                    cap: settings.backoff_cap,
                    max_age: settings.max_age,
                },
                lease: settings.lease,
                shares: Shares::split(
                    settings.worker_concurrency,
                    settings.mail_concurrency_per_recipient,
                ),
                poll: settings.worker_poll,
                paused: settings.worker_paused,
                notice_fields: settings.notice_fields.clone(),
                disabled: settings.notice_kinds_disabled.clone(),
                wake,
                token: format!("wkr_{}", uuid::Uuid::new_v4().simple()),
                in_flight: InFlight::default(),
            }),
        }
    }

    /// Work until `shutdown` is cancelled, then hand back any claims.
    ///
    /// A continuous pipeline rather than batch steps: whenever a share of the concurrency
    /// has room, claim more. Events and notices have shares of their own, and a recipient
    /// holds at most a few in-flight mail calls, so one slow call, kind or recipient never
    /// holds up the rest.
    pub async fn run(self, shutdown: CancellationToken) {
        let me = &self.inner;
        if me.paused {
            tracing::warn!(
                "worker paused (WORKER_PAUSED=true): deliveries are stored, not processed"
            );
            shutdown.cancelled().await;
            return;
        }
        tracing::info!(worker = %me.token, "worker started");
        let renewer = tokio::spawn(self.clone().renew_leases(shutdown.clone()));
        let mut in_flight = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            let mut claimed = 0;
            if me.in_flight.worth_claiming(&me.shares) {
                match self.claim().await {
                    Ok((events, notices)) => {
                        claimed = events.len() + notices.len();
                        let mut over = Vec::new();
                        for n in notices {
                            let Some(guard) = me.in_flight.notice(&n.id, &n.recipient, &me.shares)
                            else {
                                over.push(n.id);
                                continue;
                            };
                            let w = self.clone();
                            in_flight.spawn(async move {
                                w.guarded(Attempt::from(&n), w.send_notice(n)).await;
                                drop(guard);
                            });
                        }
                        for e in events {
                            let (w, guard) = (self.clone(), me.in_flight.event(&e.id));
                            in_flight.spawn(async move {
                                w.guarded(Attempt::from(&e), w.process_event(e)).await;
                                drop(guard);
                            });
                        }
                        if !over.is_empty() {
                            // Claimed beyond a recipient's share in one go: back at once,
                            // uncounted; the next claim leaves that recipient out.
                            claimed -= over.len();
                            if let Err(e) =
                                me.store.hand_back(Queue::Notices, &me.token, &over).await
                            {
                                tracing::warn!(error = %e, "could not hand back notices; their leases will expire");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "worker could not reach the store; will retry")
                    }
                }
            }
            if claimed == 0 || !me.in_flight.worth_claiming(&me.shares) {
                tokio::select! {
                    Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(me.poll) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            // Reap what has finished, so the set does not grow with done tasks.
            while in_flight.try_join_next().is_some() {}
        }
        // Let work in flight finish for a moment, then hand back whatever is left.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        in_flight.abort_all();
        renewer.abort();
        match me.store.release(&me.token).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "handed back claimed work"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not hand back claims; their leases will expire")
            }
        }
        tracing::info!("worker stopped");
    }

    /// Claim what the shares have room for.
    async fn claim(
        &self,
    ) -> Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>), crate::store::StoreError> {
        let me = &self.inner;
        let now = now_ms();
        let lease_until = now.saturating_add(millis(me.lease));
        me.store
            .claim(&me.token, now, lease_until, me.in_flight.wanted(&me.shares))
            .await
    }

    /// Keep the leases of work in progress alive.
    async fn renew_leases(self, shutdown: CancellationToken) {
        let me = &self.inner;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(me.lease / 3) => {}
                _ = shutdown.cancelled() => return,
            }
            let until = now_ms().saturating_add(millis(me.lease));
            for queue in [Queue::Events, Queue::Notices] {
                let ids = me.in_flight.ids(queue);
                if ids.is_empty() {
                    continue;
                }
                if let Err(e) = me.store.renew(queue, &me.token, &ids, until).await {
                    tracing::warn!(error = %e, "could not renew leases");
                }
            }
        }
    }

    /// Record the end of claimed work, retrying briefly if the store is unreachable (an
    /// unrecorded result means the work is done again after its lease expires).
    /// A notice's completion carries its send attempt, for the audit trail.
    async fn record(
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
                Err(e) if tries < 5 => {
                    tracing::warn!(error = %e, "could not record a result; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn process_event(&self, ev: ClaimedEvent) {
        let span = tracing::info_span!("event", event_id = %ev.id, event_type = %ev.event_type, attempt = ev.attempts);
        self.process_event_inner(ev).instrument(span).await
    }

    async fn process_event_inner(&self, ev: ClaimedEvent) {
        let me = &self.inner;
        let started = Instant::now();
        let decoded = match Decoded::decode(ev.payload.as_bytes()) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                self.finish_event(&ev, Vec::new(), started).await;
                return;
            }
            Err(e) => {
                // Stored and acknowledged, but this version cannot read it: an operator
                // sees why and retries it (`dead-letters retry`) after an upgrade or fix.
                // The message names fields and types, never a value.
                let reason = format!("event cannot be decoded: {e}");
                self.give_up(Queue::Events, &ev.id, &reason, None).await;
                return;
            }
        };
        let at = decoded.time.unwrap_or_else(|| {
            chrono::DateTime::from_timestamp_millis(ev.received_at).unwrap_or_else(chrono::Utc::now)
        });
        let ctx = Context {
            gigs: &me.gigs,
            notice_fields: &me.notice_fields,
            disabled: &me.disabled,
        };
        match handlers::deliveries(&decoded, at, &ctx).await {
            Ok(deliveries) => {
                let notices = deliveries
                    .into_iter()
                    .map(|d| {
                        let kind = d.notice.kind().code();
                        NewNotice {
                            id: notice_id(&ev.id, kind, d.role),
                            kind,
                            event_type: ev.event_type.clone(),
                            subscription_id: d.subscription.map(|s| s.as_str().to_string()),
                            user_id: d.user.map(|u| u.as_str().to_string()),
                            recipient: d.to.expose().to_string(),
                            subject: d.notice.subject(),
                            content: d.notice.content(),
                        }
                    })
                    .collect();
                self.finish_event(&ev, notices, started).await;
            }
            Err(e) => self.failed(Attempt::from(&ev), &e, None).await,
        }
    }

    async fn finish_event(&self, ev: &ClaimedEvent, notices: Vec<NewNotice>, started: Instant) {
        let me = &self.inner;
        let count = notices.len();
        let done = Completion::EventDone {
            id: ev.id.clone(),
            received_at: ev.received_at,
            notices,
        };
        match self.record(done, None).await {
            Ok(true) => {
                metrics::histogram!("gigs_notifier_event_processing_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("gigs_notifier_events_processed_total", "event_type" => ev.event_type.clone())
                    .increment(1);
                tracing::info!(notices = count, "event processed");
                if count > 0 {
                    me.wake.notify_one();
                }
            }
            Ok(false) => {
                tracing::warn!("lease lost before the event was finished; another worker has it")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record processed event; it will be retried")
            }
        }
    }

    async fn send_notice(&self, n: ClaimedNotice) {
        let span = tracing::info_span!("notice", notice_id = %n.id, event_id = %n.event_id, kind = %n.kind, attempt = n.attempts);
        self.send_notice_inner(n).instrument(span).await
    }

    async fn send_notice_inner(&self, n: ClaimedNotice) {
        let me = &self.inner;
        let request = MailRequest {
            to: &n.recipient,
            subject: &n.subject,
            content: &n.content,
        };
        let answer = me.mail.send(&n.id, &request).await;
        let at = now_ms();
        match answer {
            Ok(accepted) => match self
                .record(
                    Completion::NoticeSent { id: n.id.clone() },
                    Some(AttemptRecord::accepted(
                        at,
                        accepted.status,
                        accepted.message_id,
                    )),
                )
                .await
            {
                Ok(true) => {
                    metrics::counter!("gigs_notifier_notices_total", "outcome" => "sent")
                        .increment(1);
                    let now = now_ms();
                    let queued = (now - n.created_at).max(0) as f64 / 1000.0;
                    metrics::histogram!("gigs_notifier_notice_delivery_seconds").record(queued);
                    let e2e = (now - n.event_received_at).max(0) as f64 / 1000.0;
                    metrics::histogram!("gigs_notifier_end_to_end_seconds").record(e2e);
                    tracing::info!("notice sent");
                }
                Ok(false) => tracing::warn!(
                    "notice sent but its lease was lost; the key makes a resend harmless"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "notice sent but not recorded; the key makes a resend harmless")
                }
            },
            Err(e) => {
                let attempt = AttemptRecord::failed(at, &e.error, e.status);
                self.failed(Attempt::from(&n), &e.error, Some(attempt))
                    .await
            }
        }
    }

    /// Run one item's processing; a panic in it is recorded as a failed attempt.
    async fn guarded(&self, item: Attempt, work: impl std::future::Future<Output = ()>) {
        if let Some(failure) = crate::retry::guarded(work, &item, &self.inner.policy).await {
            let attempt = (item.queue == Queue::Notices).then(|| AttemptRecord::panicked(now_ms()));
            self.settle(failure, attempt).await
        }
    }

    /// Retry later, or dead-letter when the error is permanent or the work is too old.
    async fn failed(&self, item: Attempt, error: &CallError, attempt: Option<AttemptRecord>) {
        let outcome = self.inner.policy.after_failure(&item, error, now_ms());
        self.settle(outcome, attempt).await
    }

    /// Record a failed attempt's outcome: a retry or a dead letter.
    async fn settle(&self, outcome: Completion, attempt: Option<AttemptRecord>) {
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

    async fn give_up(&self, queue: Queue, id: &str, reason: &str, attempt: Option<AttemptRecord>) {
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

/// Delete old processed work every `interval` (`retention`), and audit records older than
/// `audit_retention`.
pub async fn run_purger(
    store: Store,
    retention: Duration,
    audit_retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let before = now_ms().saturating_sub(millis(retention));
        match store.purge(before).await {
            Ok((events, notices)) if events + notices > 0 => {
                tracing::info!(events, notices, "purged old processed work")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed; will try again"),
        }
        let before = now_ms().saturating_sub(millis(audit_retention));
        match store.purge_audit(before).await {
            Ok((records, attempts)) if records + attempts > 0 => {
                tracing::info!(records, attempts, "purged old audit records")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit purge failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

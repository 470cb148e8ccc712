//! The worker: claim due events and notices, process them, retry with backoff, dead-letter.
//!
//! Events become notices in one transaction (event done + its notices queued); each notice
//! is then sent under its own stable idempotency key. Up to `worker_concurrency` items are
//! in progress at once. Claims are leases renewed while work is in progress; on shutdown
//! the worker hands back what it holds.
//!
//! This room holds the loop itself: claiming, spawning and the hand-back on shutdown. The
//! rest has a room each: `defer` (holding back during a burst of deliveries), `leases`
//! (renewal), `process` (an event into notices), `send` (a notice to the mail service),
//! `outcome` (recording results, retry or dead letter), `purge` (deleting old work), and
//! `inflight` (the concurrency shares).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::gigs::GigsClient;
use crate::mail::MailClient;
use crate::retry::{millis, Attempt, RetryPolicy};
use crate::store::{now_ms, ClaimedEvent, ClaimedNotice, Queue, Store};

mod defer;
mod inflight;
mod leases;
mod outcome;
mod process;
mod purge;
mod send;

use inflight::{InFlight, Shares};
pub use purge::run_purger;

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
    /// Notices are rendered with this when they are created.
    renderer: crate::notice::Renderer,
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
        let renderer = crate::notice::Renderer::new(settings.notices.clone(), gigs.clone());
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
                renderer,
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
        let mut deferral = defer::Deferral::new(std::time::Instant::now());
        while !shutdown.is_cancelled() {
            let mut claimed = 0;
            let room = me.in_flight.worth_claiming(&me.shares);
            let deferred =
                room && deferral.defer(me.store.ingest_pressure(), std::time::Instant::now());
            if room && !deferred {
                deferral.claimed(std::time::Instant::now());
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
                        tracing::error!(error = %e, class = e.class().name(), "worker could not claim work; will retry")
                    }
                }
            }
            if deferred {
                tokio::select! {
                    _ = tokio::time::sleep(defer::STEP) => {}
                    _ = shutdown.cancelled() => {}
                }
            } else if claimed == 0 || !me.in_flight.worth_claiming(&me.shares) {
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
}

//! Processing: one claimed event into its notices. Decode the stored payload, ask the
//! handlers who is told what, render each notice in its recipient's language, and queue
//! the notices (ids and text from `crate::notice`) in the same transaction that marks the
//! event done.

use std::time::Instant;

use tracing::Instrument;

use super::Worker;
use crate::event::Decoded;
use crate::handlers::{self, Context};
use crate::notice::notice_id;
use crate::retry::Attempt;
use crate::store::{ClaimedEvent, Completion, NewNotice, Queue};

impl Worker {
    pub(super) async fn process_event(&self, ev: ClaimedEvent) {
        let span = tracing::info_span!("event", event_id = %ev.id, event_type = %ev.event_type, attempt = ev.attempts);
        self.process_event_inner(ev).instrument(span).await
    }

    pub(super) async fn process_event_inner(&self, ev: ClaimedEvent) {
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
        let deliveries = match handlers::deliveries(&decoded, at, &ctx).await {
            Ok(deliveries) => deliveries,
            Err(e) => return self.failed(Attempt::from(&ev), &e, None).await,
        };
        // Rendered once, now, and stored: retries send this text whatever the templates
        // become.
        let mut notices = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let rendered = match me.renderer.render(&d.notice, d.locale.as_ref()).await {
                Ok(rendered) => rendered,
                Err(e) => return self.failed(Attempt::from(&ev), &e, None).await,
            };
            let kind = d.notice.kind().code();
            tracing::debug!(kind, locale = %rendered.locale, "notice rendered");
            notices.push(NewNotice {
                id: notice_id(&ev.id, kind, d.role),
                kind,
                event_type: ev.event_type.clone(),
                subscription_id: d.subscription.map(|s| s.as_str().to_string()),
                user_id: d.user.map(|u| u.as_str().to_string()),
                recipient: d.to.expose().to_string(),
                subject: rendered.subject,
                content: rendered.content,
                html: rendered.html,
            });
        }
        self.finish_event(&ev, notices, started).await;
    }

    pub(super) async fn finish_event(
        &self,
        ev: &ClaimedEvent,
        notices: Vec<NewNotice>,
        started: Instant,
    ) {
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
                tracing::debug!(notices = count, "event processed");
                if count > 0 {
                    me.wake.notify_one();
                }
            }
            Ok(false) => {
                tracing::warn!("lease lost before the event was finished; another worker has it")
            }
            Err(e) if e.is_refused_for_its_data() => {
                // Refused for what it carries, not failed: done again it would be refused
                // again, each time its lease ran out, never counted as an attempt. Set
                // aside for an operator, who retries it (`dead-letters retry`) once the
                // cause is fixed.
                tracing::error!(error = %e, "the store refused the processed event's result; dead-lettering it");
                let reason = "the store refused the processed event's result (see the service log)";
                self.give_up(Queue::Events, &ev.id, reason, None).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record processed event; it will be retried")
            }
        }
    }
}

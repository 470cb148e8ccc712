//! Sending: one queued notice to the mail service under its idempotency key, and the
//! attempt recorded for the audit trail.

use tracing::Instrument;

use super::Worker;
use crate::audit::AttemptRecord;
use crate::mail::MailRequest;
use crate::retry::Attempt;
use crate::store::{now_ms, ClaimedNotice, Completion};

impl Worker {
    pub(super) async fn send_notice(&self, n: ClaimedNotice) {
        let span = tracing::info_span!("notice", notice_id = %n.id, event_id = %n.event_id, kind = %n.kind, attempt = n.attempts);
        self.send_notice_inner(n).instrument(span).await
    }

    pub(super) async fn send_notice_inner(&self, n: ClaimedNotice) {
        let me = &self.inner;
        let request = MailRequest {
            to: &n.recipient,
            subject: &n.subject,
            content: &n.content,
            html: n.html.as_deref(),
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
                    tracing::debug!("notice sent");
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
}

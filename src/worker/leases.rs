//! Leases: claimed work stays claimed only while it is being worked on. The renewer
//! extends the leases of what is in flight, so a crashed replica's claims expire and
//! another picks them up.

use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::retry::millis;
use crate::store::{now_ms, Queue};

impl Worker {
    /// Keep the leases of work in progress alive.
    pub(super) async fn renew_leases(self, shutdown: CancellationToken) {
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
}

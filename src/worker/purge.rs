//! Purging: processed work and old audit records deleted on a schedule.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::retry::millis;
use crate::store::{now_ms, Store};

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

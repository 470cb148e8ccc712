//! Stopping without failing a delivery: drain first, then stop.
//!
//! A load balancer learns that a replica is going away only from its health check, a second
//! or more after the replica was told to stop. A replica that closes its listener at once
//! makes the balancer send the deliveries of that second to a closed port, and a balancer
//! that does not retry a POST (most do not) answers them 502/503. So on the first SIGTERM
//! or SIGINT the service only *drains*: `/readyz` fails (`draining`) and HTTP/1.1 answers
//! carry `Connection: close`, so the health check takes the replica out and clients holding
//! a kept-alive connection open a new one elsewhere, while every request that still arrives
//! is served as usual. After `DRAIN_SECS` (or at a second signal) the listener closes,
//! requests in flight finish, and claimed work is handed back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT, listened to from start-up on, so a signal is never handled by the
/// default action (which would end the process with requests in flight).
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Start listening. Fails only if the runtime cannot register the handlers.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// The two stages of a signalled stop: the first signal starts the drain, the second
    /// cuts it short.
    pub fn stages(mut self) -> (CancellationToken, CancellationToken) {
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        let (begin, hurry) = (first.clone(), second.clone());
        tokio::spawn(async move {
            self.next().await;
            begin.cancel();
            self.next().await;
            hurry.cancel();
        });
        (first, second)
    }
}

/// Whether the service is draining before a stop: set once, read by every HTTP/1.1 answer
/// and by `/readyz`. A flag rather than a cancellation token, which takes a lock to be
/// cloned, dropped or read: on every request, two worker threads queued on that lock.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Mark the drain as begun (for good).
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// While draining, ask an HTTP/1.1 client to close its connection after this answer, so
    /// a client with a kept-alive connection (a proxy's pool, an ingress) reconnects, and
    /// lands on a replica that stays. Called for HTTP/1.x answers only
    /// ([`crate::request_context`]): HTTP/2 has no such header; its connections get GOAWAY
    /// when the listener closes.
    pub fn ask_to_close(&self, headers: &mut HeaderMap) {
        if self.is_draining() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// Resolves when the listener should close: `begin`, then marks `draining` and waits
/// `drain` or until `hurry`, whichever comes first.
pub async fn drain_then_stop(
    begin: impl Future<Output = ()>,
    hurry: impl Future<Output = ()>,
    drain: Duration,
    draining: Draining,
) {
    begin.await;
    draining.begin();
    if drain.is_zero() {
        return;
    }
    tracing::info!(
        drain_secs = drain.as_secs(),
        "draining: /readyz fails so the load balancer moves traffic away; still serving \
         (a second SIGTERM or SIGINT stops at once)"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {}
        () = hurry => tracing::info!("second signal: drain cut short"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_drain_marks_draining_at_once_and_a_hurry_ends_it() {
        let draining = Draining::default();
        let hurry = CancellationToken::new();
        let stop = tokio::spawn(drain_then_stop(
            async {},
            hurry.clone().cancelled_owned(),
            Duration::from_secs(600),
            draining.clone(),
        ));
        let marked = async {
            while !draining.is_draining() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), marked)
            .await
            .expect("draining is marked as soon as the drain begins");
        assert!(!stop.is_finished(), "still draining");
        hurry.cancel();
        // Ten minutes of drain were left: only the hurry can have ended it.
        tokio::time::timeout(Duration::from_secs(10), stop)
            .await
            .expect("the hurry ends the drain")
            .unwrap();
    }

    #[tokio::test]
    async fn the_drain_ends_by_itself() {
        let stop = drain_then_stop(
            async {},
            std::future::pending(),
            Duration::from_millis(50),
            Draining::default(),
        );
        tokio::time::timeout(Duration::from_secs(10), stop)
            .await
            .expect("the drain ends after its time");
    }

    #[tokio::test]
    async fn no_drain_stops_as_soon_as_told() {
        let draining = Draining::default();
        drain_then_stop(
            async {},
            std::future::pending(),
            Duration::ZERO,
            draining.clone(),
        )
        .await;
        assert!(draining.is_draining());
    }
}

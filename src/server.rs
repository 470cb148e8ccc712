//! The HTTP listener: connection limits and timeouts.
//!
//! A plain accept loop takes every connection it is offered, so a few hundred idle or
//! slow clients can use up the process's file descriptors; accept then fails and real
//! deliveries wait behind them. Here every connection is registered: there are at most a
//! fixed number, a newcomer at the cap displaces the longest-idle one, connections with no
//! request in progress are closed after a while, and slow senders are cut off by timeouts.
//! Serving itself (HTTP/1.1, HTTP/2 with prior knowledge, graceful shutdown) is hyper-util's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::Settings;

/// Pause after a failed accept, so a descriptor shortage does not become a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// Connection limits, from settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// Descriptors kept free for everything that is not a client connection.
    pub reserve: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            max_connections: s.max_connections,
            // Each worker slot may hold a pooled connection to the Core API and one to the
            // mail service; the rest covers database connections and files, the listener
            // and the runtime.
            reserve: 2 * s.worker_concurrency + 64,
            header_read_timeout: s.header_read_timeout,
            idle_timeout: s.idle_timeout,
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves; then stop accepting, let
/// requests in progress finish, and return once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let cap = connection_cap(&limits);
    tracing::info!(
        max_connections = cap,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "connection limits"
    );
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let registry = Arc::new(Registry::default());
    let graceful = GracefulShutdown::new();
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Most likely out of descriptors (EMFILE/ENFILE): free one, never stop.
                    tracing::warn!(error = %e, "accept failed; closing an idle connection and retrying");
                    registry.evict_idlest();
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            }
        };
        // Answers are small and written whole: never held back waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let Some(entry) = registry.admit(cap) else {
            closed("refused");
            tracing::debug!("every connection has a request in progress; refused a new one");
            continue;
        };
        let slot = entry.slot.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::start(&slot);
            let response = router.clone().oneshot(req);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(supervise(graceful.watch(conn), entry, limits.clone()));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Run one connection until it ends, or close it when it has been idle too long or was
/// chosen to make room. Closing drops it: with no request in progress nothing is lost.
async fn supervise<E: std::fmt::Display>(
    conn: impl Future<Output = Result<(), E>>,
    entry: Registered,
    limits: Arc<Limits>,
) {
    tokio::pin!(conn);
    let slot = &entry.slot;
    let mut evicted = false;
    loop {
        let wake = slot
            .close_at(&limits)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = slot.evict.cancelled(), if !evicted => {
                evicted = true;
                // It was idle when chosen; if a request has started since, let it finish and
                // leave the closing to the idle timeout.
                if slot.close_at(&limits).is_some() {
                    closed("evicted");
                    return;
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if slot.close_at(&limits).is_some_and(|at| at <= Instant::now()) {
                    closed("idle");
                    return;
                }
            }
        }
    }
}

/// A client gave up before its connection was accepted: nothing is wrong with the server.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

fn closed(reason: &'static str) {
    metrics::counter!("gigs_notifier_connections_closed_total", "reason" => reason).increment(1);
}

/// `max_connections`, lowered when the open-file limit leaves no room for it beside the
/// reserve. The soft limit is first raised to the hard one, as far as the system allows.
fn connection_cap(limits: &Limits) -> usize {
    let Some(files) = raise_open_file_limit() else {
        return limits.max_connections;
    };
    // A limit smaller than the reserve still gets some connections rather than none.
    let room = files.saturating_sub(limits.reserve).max(files / 4).max(1);
    if room < limits.max_connections {
        tracing::warn!(
            open_file_limit = files,
            max_connections = limits.max_connections,
            using = room,
            "MAX_CONNECTIONS lowered to fit the open-file limit"
        );
    }
    room.min(limits.max_connections)
}

#[cfg(unix)]
fn raise_open_file_limit() -> Option<usize> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            // On failure the old limit stays, and the cap is fitted under it.
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
    }
    // `None` is RLIM_INFINITY.
    limit
        .current
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<usize> {
    None
}

/// Every open connection, by id.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
}

impl Registry {
    /// Register a new connection, making room at the cap if some connection is idle.
    fn admit(self: &Arc<Self>, cap: usize) -> Option<Registered> {
        let mut slots = lock(&self.slots);
        if slots.len() >= cap && !Self::evict_from(&mut slots) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                in_flight: 0,
                idle_since: Instant::now(),
                started: false,
            }),
            evict: CancellationToken::new(),
        });
        slots.insert(id, slot.clone());
        metrics::gauge!("gigs_notifier_connections_open").set(slots.len() as f64);
        Some(Registered {
            registry: self.clone(),
            id,
            slot,
        })
    }

    fn evict_idlest(&self) -> bool {
        Self::evict_from(&mut lock(&self.slots))
    }

    /// Close the connection idle the longest, if any has no request in progress.
    fn evict_from(slots: &mut HashMap<u64, Arc<Slot>>) -> bool {
        let idlest = slots
            .iter()
            .filter_map(|(id, slot)| {
                let state = lock(&slot.state);
                (state.in_flight == 0).then_some((state.idle_since, *id))
            })
            .min();
        let Some(slot) = idlest.and_then(|(_, id)| slots.remove(&id)) else {
            return false;
        };
        slot.evict.cancel();
        true
    }
}

/// A connection's place in the registry, given up when the connection ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
    slot: Arc<Slot>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut slots = lock(&self.registry.slots);
        slots.remove(&self.id);
        metrics::gauge!("gigs_notifier_connections_open").set(slots.len() as f64);
    }
}

struct Slot {
    state: Mutex<SlotState>,
    evict: CancellationToken,
}

struct SlotState {
    /// Requests whose headers have arrived and whose response is not yet sent.
    in_flight: usize,
    /// Since when `in_flight` is 0 (or since accept).
    idle_since: Instant,
    /// Whether any request has started on this connection.
    started: bool,
}

impl Slot {
    /// When this connection is to be closed if nothing starts; `None` while it is busy.
    fn close_at(&self, limits: &Limits) -> Option<Instant> {
        let state = lock(&self.state);
        if state.in_flight > 0 {
            return None;
        }
        // Before its first request a connection owes us headers, so their timeout applies
        // from accept (hyper's own clock only starts once a byte has told it the protocol).
        let allowed = if state.started {
            limits.idle_timeout
        } else {
            limits.idle_timeout.min(limits.header_read_timeout)
        };
        Some(state.idle_since + allowed)
    }
}

/// Marks a request in progress on its connection, from headers received to response sent.
struct Busy(Arc<Slot>);

impl Busy {
    fn start(slot: &Arc<Slot>) -> Self {
        let mut state = lock(&slot.state);
        state.in_flight += 1;
        state.started = true;
        Self(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in progress until hyper has sent it
/// (hyper drops the body once the last frame is written).
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// No code here panics while holding a lock, so a poisoned one still holds valid state.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

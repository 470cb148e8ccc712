//! HTTP: the Gigs ingress, health, readiness and metrics. Refusals are [`ApiError`]s.

mod counters;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::Notify;

use crate::event::{Envelope, EnvelopeError};
pub use crate::http_error::ApiError;
use crate::store::{now_ms, InsertOutcome, NewEvent, Store};
pub use counters::IngressMetrics;
use counters::{Outcome, TypeLabel};
pub use signature::{sign, SignatureError, Verifier, WebhookSecret};

/// Longest the ingress waits for the store before answering 503.
const STORE_DEADLINE: Duration = Duration::from_secs(10);

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Arc<Verifier>,
    pub store: Store,
    /// Wakes the worker when a new event is stored.
    pub wake: Arc<Notify>,
    pub metrics: PrometheusHandle,
    /// The ingress's own counters, registered once.
    pub counters: Arc<IngressMetrics>,
    pub body_limit: usize,
    /// How long a sender may take to deliver the whole body.
    pub body_timeout: Duration,
    /// Set when the service begins to drain before stopping: `/readyz` fails.
    pub draining: crate::shutdown::Draining,
}

/// The service's routes (admin routes are merged in by the caller when enabled).
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route(
            "/webhooks/gigs",
            post(receive).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Behind one `Arc`: every request takes the state, and a clone of the fields would
        // be a dozen reference counts (and a lock for the cancellation token) per request.
        .with_state(Arc::new(state))
}

/// The ingress route: every refusal of a delivery is counted, by reason.
async fn receive(state: State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    ingest(state, request).await.inspect_err(|e| {
        metrics::counter!("gigs_notifier_events_received_total", "event_type" => "unknown", "outcome" => "rejected", "reason" => e.code())
            .increment(1);
    })
}

/// Verify, parse, store, acknowledge: in that order, and 2xx only after the commit.
///
/// The lines logged once the envelope is read carry its id and type themselves, inside the
/// request's span: a span of its own per delivery, with two fields recorded into it later,
/// cost more than the HMAC and the JSON parse together (each record re-encodes the span's
/// fields for the JSON log format).
async fn ingest(
    State(state): State<Arc<AppState>>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let received = std::time::Instant::now();
    // Taken out of the request rather than extracted, which would copy the whole map.
    let headers = std::mem::take(request.headers_mut());
    // One deadline for the whole body, not per chunk: a sender trickling a byte at a time
    // would otherwise keep its connection busy, and so safe from eviction, indefinitely.
    let body = tokio::time::timeout(state.body_timeout, Bytes::from_request(request, &()))
        .await
        .map_err(|_| ApiError::BodyTimeout(state.body_timeout))?
        .map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(state.body_limit)
            } else {
                ApiError::BadBody
            }
        })?;
    let now = chrono::Utc::now().timestamp();
    state
        .verifier
        .verify(&headers, &body, now)
        .inspect_err(|e| {
            tracing::warn!(reason = e.code(), "signature refused");
        })?;
    let envelope = Envelope::parse(&body).inspect_err(|e| {
        tracing::warn!(reason = e.code(), "body refused");
    })?;
    let event_id = envelope.id.as_str();
    let label = TypeLabel::of(envelope.handled, &envelope.event_type);
    let event_type = label.name();
    let counters = &state.counters;
    if envelope.handled.is_none() {
        counters.count(label, Outcome::Ignored);
        // A type we do not handle is the sender's text: logged only if it looks like a type.
        let event_type = crate::telemetry::loggable(&envelope.event_type, 100);
        tracing::info!(event_id, %event_type, "event type not handled; acknowledged and ignored");
        return Ok(answer(StatusCode::OK, "ignored", event_id));
    }
    let payload = String::from_utf8(Vec::from(body))
        .map_err(|_| EnvelopeError::NotJson("body is not UTF-8".into()))?;
    let insert = state.store.insert_event(NewEvent {
        id: event_id.to_string(),
        event_type: envelope.event_type.clone(),
        payload,
        received_at: now_ms(),
    });
    // Svix gives an attempt about 15 s; answer 503 well before that rather than hang. If
    // the commit still lands later, the retry is acknowledged as a duplicate: nothing lost.
    let outcome = match tokio::time::timeout(STORE_DEADLINE, insert).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            tracing::error!(event_id, event_type, error = %e, class = e.class().name(), "could not store event; answering 503 so Gigs retries");
            return Err(ApiError::StoreUnavailable);
        }
        Err(_) => {
            tracing::error!(
                event_id,
                event_type,
                "store did not commit in time; answering 503 so Gigs retries"
            );
            return Err(ApiError::StoreUnavailable);
        }
    };
    counters.ingested_in(received.elapsed().as_secs_f64());
    Ok(match outcome {
        InsertOutcome::Stored => {
            state.wake.notify_one();
            counters.count(label, Outcome::Accepted);
            tracing::debug!(event_id, event_type, "event stored");
            answer(StatusCode::ACCEPTED, "accepted", event_id)
        }
        InsertOutcome::Duplicate => {
            counters.count(label, Outcome::Duplicate);
            tracing::debug!(
                event_id,
                event_type,
                "event already stored; duplicate delivery acknowledged"
            );
            answer(StatusCode::OK, "duplicate", event_id)
        }
    })
}

fn answer(status: StatusCode, outcome: &'static str, id: &str) -> Response {
    /// The body of a 2xx (`{"status": …, "id": …}`), written without a `Value` in between.
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        status: &'static str,
        id: &'a str,
    }
    (
        status,
        Json(Answer {
            status: outcome,
            id,
        }),
    )
        .into_response()
}

/// Ready only while a delivery could be stored (see [`Store::readiness`]) and the service
/// is not draining before a stop (see [`crate::shutdown`]).
async fn ready(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::Draining);
    }
    let not_ready =
        match tokio::time::timeout(Duration::from_secs(2), state.store.readiness()).await {
            Ok(Ok(())) => return Ok(Json(json!({ "status": "ready" })).into_response()),
            Ok(Err(e)) => e,
            Err(_) => crate::store::health::NotReady::Unreachable,
        };
    tracing::warn!(reason = not_ready.code(), "not ready");
    Err(ApiError::NotReady(not_ready))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(Ok(depth)) = tokio::time::timeout(Duration::from_secs(2), state.store.depth()).await {
        for (queue, st, n) in depth {
            metrics::gauge!("gigs_notifier_queue_depth", "queue" => queue.name(), "state" => st)
                .set(n as f64);
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

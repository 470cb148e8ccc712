//! What every HTTP request gets around its handler, in one layer:
//!
//! - a request id: the client's `x-request-id` if it sent one, otherwise a new UUID, echoed
//!   back on the answer;
//! - a `request` span (method, path, request id) that every line logged while answering
//!   carries; client-chosen values in it only when short and plain ([`loggable`]);
//! - `Connection: close` on HTTP/1.x answers while the service drains ([`Draining`]);
//! - the lines tower-http's trace layer wrote, with its targets and fields, so log queries and
//!   `RUST_LOG` directives that name them still work: `debug` "started processing request"
//!   and "finished processing request", `error` "response failed" for a 5xx.
//!
//! Written by hand in place of tower-http's `SetRequestId`, `TraceLayer` and
//! `PropagateRequestId` and an axum `from_fn` middleware, which did the same four jobs as
//! four nested services: stacked, they cost about a quarter of the ingress's CPU per
//! delivery (BENCHMARKS.md, issue 11, eighth pass); this one is a single service with one
//! future, no boxing, and one id made without a string in between.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::http::{HeaderName, HeaderValue, Request, Response, Version};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::instrument::{Instrument as _, Instrumented};

use crate::shutdown::Draining;
use crate::telemetry::loggable;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps every route of the service (see the module doc).
#[derive(Clone, Debug)]
pub struct RequestContextLayer {
    draining: Draining,
}

impl RequestContextLayer {
    pub fn new(draining: Draining) -> Self {
        Self { draining }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext {
            inner,
            draining: self.draining.clone(),
        }
    }
}

/// The service [`RequestContextLayer`] makes.
#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
    draining: Draining,
}

impl<S, B, ResBody> Service<Request<B>> for RequestContext<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = match request.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_id();
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let span = span_for(&request, &id);
        // HTTP/2 has no `Connection` header; its connections get GOAWAY at the stop.
        let http1 = request.version() <= Version::HTTP_11;
        let inner = span.in_scope(|| {
            tracing::debug!(target: "tower_http::trace::on_request", "started processing request");
            self.inner.call(request)
        });
        ResponseFuture {
            inner: inner.instrument(span),
            id: Some(id),
            draining: http1.then(|| self.draining.clone()),
            started,
        }
    }
}

pin_project! {
    /// The handler's answer, with the request id, the drain's `Connection: close` and the
    /// answer's log line added.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        id: Option<HeaderValue>,
        // Set for HTTP/1.x requests only.
        draining: Option<Draining>,
        started: Instant,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = match ready!(this.inner.as_mut().poll(cx)) {
            Ok(response) => response,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let headers = response.headers_mut();
        if let Some(id) = this.id.take() {
            // A handler that set its own id keeps it.
            headers.entry(REQUEST_ID).or_insert(id);
        }
        if let Some(draining) = this.draining.as_ref() {
            draining.ask_to_close(headers);
        }
        let status = response.status();
        let latency = Millis(this.started.elapsed());
        let _in = this.inner.span().enter();
        tracing::debug!(
            target: "tower_http::trace::on_response",
            %latency,
            status = i32::from(status.as_u16()),
            "finished processing request"
        );
        if status.is_server_error() {
            tracing::error!(
                target: "tower_http::trace::on_failure",
                classification = %format_args!("Status code: {status}"),
                %latency,
                "response failed"
            );
        }
        Poll::Ready(Ok(response))
    }
}

/// A latency as tower-http logged it: "12 ms".
struct Millis(std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

/// A new request id: a random UUID, written straight into the header value.
fn new_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a hyphenated UUID is a valid header value")
}

fn span_for<B>(request: &Request<B>, id: &HeaderValue) -> tracing::Span {
    // The client may send its own id: logged only if it looks like one.
    let id = loggable(id.to_str().unwrap_or("\u{fffd}"), 64);
    let path = loggable(request.uri().path(), 128);
    tracing::info_span!("request", method = %request.method(), path = %path, request_id = %id)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::http::{header, StatusCode};
    use tower::ServiceExt as _;

    use super::*;
    use crate::telemetry::captured::CapturedLog;
    use crate::telemetry::JsonSpanFields;

    /// A handler that logs a line, then answers `status` with the request id it saw in
    /// the header `seen`.
    async fn handler(
        request: Request<Body>,
        status: StatusCode,
    ) -> Result<Response<Body>, Infallible> {
        tracing::warn!("inside the handler");
        let seen = request.headers().get(&REQUEST_ID).cloned();
        let mut response = Response::builder().status(status);
        if let Some(seen) = seen {
            response = response.header("seen", seen);
        }
        Ok(response.body(Body::empty()).unwrap())
    }

    async fn answer(
        draining: &Draining,
        request: Request<Body>,
        status: StatusCode,
    ) -> Response<Body> {
        let service = tower::service_fn(move |r| handler(r, status));
        RequestContextLayer::new(draining.clone())
            .layer(service)
            .oneshot(request)
            .await
            .unwrap()
    }

    fn post(version: Version, id: Option<&str>) -> Request<Body> {
        let mut request = Request::post("/webhooks/gigs").version(version);
        if let Some(id) = id {
            request = request.header(REQUEST_ID, id);
        }
        request.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_new_one_seen_by_the_handler_and_echoed() {
        let draining = Draining::default();
        let first = answer(&draining, post(Version::HTTP_11, None), StatusCode::OK).await;
        let second = answer(&draining, post(Version::HTTP_11, None), StatusCode::OK).await;
        let id = first.headers()[&REQUEST_ID].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "a UUID: {id}");
        assert_eq!(first.headers()["seen"], id, "the handler saw the same id");
        assert_ne!(second.headers()[&REQUEST_ID], id, "each request its own");
        assert!(!first.headers().contains_key(header::CONNECTION));
    }

    #[tokio::test]
    async fn a_clients_id_is_kept_and_echoed_as_sent() {
        let sent = "client id with spaces";
        let response = answer(
            &Draining::default(),
            post(Version::HTTP_11, Some(sent)),
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(response.headers()[&REQUEST_ID], sent);
        assert_eq!(response.headers()["seen"], sent);
    }

    #[tokio::test]
    async fn an_id_set_by_the_handler_is_kept() {
        let service = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header(REQUEST_ID, "mine")
                    .body(Body::empty())
                    .unwrap(),
            )
        });
        let response = RequestContextLayer::new(Draining::default())
            .layer(service)
            .oneshot(post(Version::HTTP_11, Some("theirs")))
            .await
            .unwrap();
        let ids: Vec<_> = response.headers().get_all(&REQUEST_ID).iter().collect();
        assert_eq!(ids, ["mine"]);
    }

    #[tokio::test]
    async fn while_draining_http1_answers_ask_to_close_and_http2_answers_do_not() {
        let draining = Draining::default();
        draining.begin();
        for version in [Version::HTTP_10, Version::HTTP_11] {
            let response = answer(&draining, post(version, None), StatusCode::OK).await;
            assert_eq!(
                response.headers()[header::CONNECTION],
                "close",
                "{version:?}"
            );
        }
        let response = answer(&draining, post(Version::HTTP_2, None), StatusCode::OK).await;
        assert!(!response.headers().contains_key(header::CONNECTION));
    }

    #[tokio::test]
    async fn lines_logged_while_answering_carry_the_request_span_and_a_5xx_is_logged() {
        let log = CapturedLog::default();
        let _guard = tracing::subscriber::set_default(log.subscriber(JsonSpanFields));
        let draining = Draining::default();
        let ok = answer(
            &draining,
            post(Version::HTTP_11, None),
            StatusCode::ACCEPTED,
        )
        .await;
        answer(
            &draining,
            post(Version::HTTP_11, Some("jerry@example.com")),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;

        let lines = log.lines();
        let messages: Vec<_> = lines
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        // At `info`, the 2xx has only the handler's line; the 5xx adds "response failed".
        assert_eq!(
            messages,
            [
                "inside the handler",
                "inside the handler",
                "response failed"
            ]
        );
        let span = &lines[0]["spans"][0];
        assert_eq!(span["name"], "request");
        assert_eq!(span["method"], "POST");
        assert_eq!(span["path"], "/webhooks/gigs");
        assert_eq!(
            span["request_id"],
            ok.headers()[&REQUEST_ID].to_str().unwrap()
        );
        let failed = &lines[2];
        // As tower-http's trace layer wrote it.
        assert_eq!(failed["level"], "ERROR");
        assert_eq!(failed["target"], "tower_http::trace::on_failure");
        assert_eq!(
            failed["classification"],
            "Status code: 503 Service Unavailable"
        );
        assert!(failed["latency"].as_str().unwrap().ends_with(" ms"));
        let logged_id = failed["spans"][0]["request_id"].as_str().unwrap();
        assert!(
            logged_id.starts_with("sha256:"),
            "a client's odd id is hashed: {logged_id}"
        );
        assert!(!log
            .lines()
            .iter()
            .any(|l| l.to_string().contains("jerry@example.com")));
    }
}

//! HTTP refusals: the one error type every route answers with (the webhook ingress, the
//! admin routes, health and readiness, the fallbacks).
//!
//! Every refusal is a status plus `{"error": code, "message": …}`, nothing more. A 5xx
//! that has an underlying cause logs it (the whole error chain, at error level) and sends
//! only its fixed message; the cause never reaches the client.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::event::EnvelopeError;
use crate::store::health::NotReady;
use crate::store::StoreError;
use crate::webhook::SignatureError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A delivery's signature did not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A delivery's body is not an event envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("body could not be read")]
    BadBody,
    #[error("the body did not arrive within {} seconds", .0.as_secs())]
    BodyTimeout(Duration),
    /// A delivery could not be stored; the sender should try again (the ingress logs why,
    /// inside the delivery's span).
    #[error("the event store is unavailable; retry later")]
    StoreUnavailable,
    /// An admin request could not reach the store.
    #[error("the store cannot be reached")]
    StoreUnreachable(#[source] StoreError),
    /// `/readyz`: the store cannot take writes now; the code says why.
    #[error("{0}")]
    NotReady(NotReady),
    /// `/readyz`: the service is stopping and wants no new traffic (it still serves what comes).
    #[error("the service is stopping; send new requests to another replica")]
    Draining,
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// No such route, or no such item (the message says which).
    #[error("{0}")]
    NotFound(&'static str),
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    /// The query string could not be read at all.
    #[error("the query string could not be read")]
    UnreadableQuery,
    /// A query parameter is wrong, e.g. the admin `since` or `limit`.
    #[error("{message}")]
    BadQuery { code: &'static str, message: String },
    /// Anything else that went wrong on our side.
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Signature(_) | Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Envelope(_) | Self::BadBody | Self::UnreadableQuery | Self::BadQuery { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::StoreUnavailable
            | Self::StoreUnreachable(_)
            | Self::NotReady(_)
            | Self::Draining => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code for `{"error": …}`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Signature(e) => e.code(),
            Self::Envelope(e) => e.code(),
            Self::TooLarge(_) => "payload_too_large",
            Self::BadBody => "unreadable_body",
            Self::BodyTimeout(_) => "body_timeout",
            Self::StoreUnavailable | Self::StoreUnreachable(_) => "store_unavailable",
            Self::NotReady(e) => e.code(),
            Self::Draining => "draining",
            Self::Unauthorized => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnreadableQuery => "invalid_query",
            Self::BadQuery { code, .. } => code,
            Self::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            if let Some(cause) = std::error::Error::source(&self) {
                tracing::error!(code = self.code(), error = %Chain(cause), "{self}");
            }
        }
        let body = json!({ "error": self.code(), "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// An error and its sources, `: `-separated, for one log field.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_refusal_is_its_code_and_message_and_a_cause_is_not_sent() {
        let (status, v) = body(ApiError::Internal(anyhow::anyhow!("password hunter2"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            v,
            json!({ "error": "internal_error", "message": "an internal error occurred" })
        );
        let (status, v) = body(ApiError::BadQuery {
            code: "invalid_limit",
            message: "limit must be 1 to 500".into(),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            v,
            json!({ "error": "invalid_limit", "message": "limit must be 1 to 500" })
        );
    }
}

//! What the Core API and mail clients share: how a failed call is classified.

use std::time::Duration;

use reqwest::{Response, StatusCode};

/// A failed outside call, classified once: retry later, or give up.
/// Reasons name the call and the status, never a personal value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("{reason}")]
    Retryable {
        reason: String,
        /// From a `Retry-After` header, when the server sent one.
        retry_after: Option<Duration>,
    },
    #[error("{reason}")]
    Permanent { reason: String },
}

impl CallError {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// Which calls are worth retrying: 408, 429 and 5xx.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Turn a non-2xx answer into a [`CallError`].
pub fn from_status(what: &str, response: &Response) -> CallError {
    let status = response.status();
    let reason = format!("{what} answered {}", status.as_u16());
    if is_retryable_status(status) {
        CallError::Retryable {
            reason,
            retry_after: crate::retry::retry_after(response.headers()),
        }
    } else {
        CallError::Permanent { reason }
    }
}

/// A transport failure (timeout, refused connection, reset) is always worth a retry.
pub fn from_transport(what: &str, err: &reqwest::Error) -> CallError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_decode() || err.is_body() {
        "sent an unreadable answer"
    } else {
        "failed"
    };
    CallError::Retryable {
        reason: format!("{what} {kind}"),
        retry_after: None,
    }
}

/// A `reqwest` client with the service's timeout and user agent.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("gigs-notifier/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend is compiled in")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}

//! What the Core API and mail clients share: how a failed call is classified, and how an
//! answer is read without trusting its size.

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

/// The most of an outside answer that is read (1 MiB); a larger answer is refused.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Read an answer's body chunk by chunk, refusing it as soon as it passes `limit` bytes, so
/// a server that answers endlessly costs at most `limit` of memory. Too large is permanent
/// (asking again gets the same answer); a transfer broken off midway is worth a retry.
pub async fn read_bounded(
    what: &str,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, CallError> {
    let too_large =
        || CallError::permanent(format!("{what} sent an answer larger than {}", size(limit)));
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| from_transport(what, &e))?
    {
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A byte count for a reason text: `1 MiB`, `4 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wiremock::{Mock, MockServer, ResponseTemplate};

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

    /// A 200 answer with a `len`-byte body, and the server that sends it.
    async fn answer_of(len: usize) -> (MockServer, Response) {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; len]))
            .mount(&server)
            .await;
        let resp = http_client(Duration::from_secs(5))
            .get(server.uri())
            .send()
            .await
            .unwrap();
        (server, resp)
    }

    #[tokio::test]
    async fn answers_up_to_the_limit_are_read_and_larger_are_refused() {
        let (_server, resp) = answer_of(4096).await;
        assert_eq!(read_bounded("x", resp, 4096).await.unwrap().len(), 4096);
        let (_server, resp) = answer_of(4097).await;
        assert_eq!(
            read_bounded("Core API GET subscription", resp, 4096).await,
            Err(CallError::permanent(
                "Core API GET subscription sent an answer larger than 4 KiB"
            ))
        );
        let (_server, resp) = answer_of(MAX_RESPONSE_BYTES + 1).await;
        let err = read_bounded("x", resp, MAX_RESPONSE_BYTES)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "x sent an answer larger than 1 MiB");
    }

    /// A server that announces no length and sends chunks until the client hangs up; how
    /// many bytes it got out before that.
    async fn endless_server() -> (String, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
            let mut sent = 0;
            while socket.write_all(chunk.as_bytes()).await.is_ok() {
                sent += 16 * 1024;
                if sent >= 64 * MAX_RESPONSE_BYTES {
                    break;
                }
            }
            sent
        });
        (url, handle)
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_off_at_the_limit() {
        let (url, server) = endless_server().await;
        let resp = http_client(Duration::from_secs(5))
            .get(url)
            .send()
            .await
            .unwrap();
        let result = read_bounded("mail service", resp, MAX_RESPONSE_BYTES).await;
        assert_eq!(
            result,
            Err(CallError::permanent(
                "mail service sent an answer larger than 1 MiB"
            ))
        );
        // The reader hung up early: the server was cut off before it stopped by itself.
        let sent = server.await.unwrap();
        assert!(sent < 64 * MAX_RESPONSE_BYTES, "{sent} bytes sent");
    }
}

//! Mail service client: `POST MAIL_URL {to, subject, content[, html]}` with an
//! `Idempotency-Key`.
//! It reports what the audit trail needs of each attempt: the HTTP status, and on success
//! the message id the mail service gave, when its answer has one.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::outbound::{from_status, from_transport, read_bounded, CallError, MAX_RESPONSE_BYTES};

#[derive(Clone)]
pub struct MailClient {
    http: reqwest::Client,
    url: Url,
    token: Option<SecretString>,
}

impl std::fmt::Debug for MailClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailClient")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// The mail service took the notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub status: u16,
    /// From the answer's `id`, `messageId` or `message_id`, when it is a plain id.
    pub message_id: Option<String>,
}

/// A send that failed: how the retry rules see it, and the HTTP status when there was an
/// answer (none for a timeout or a refused connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub error: CallError,
    pub status: Option<u16>,
}

/// The mail service's message id in a 2xx answer's JSON body. Only a plain id (at most 200
/// of `A-Z a-z 0-9 . _ @ < > : -`) is kept: the answer is outside data, and anything else
/// might be free text that carries an address — and one that contains the recipient's
/// address is dropped too.
pub fn message_id(body: &[u8], recipient: &str) -> Option<String> {
    let recipient = recipient.trim().to_lowercase();
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["id", "messageId", "message_id"].iter().find_map(|key| {
        let id = value.get(key)?.as_str()?;
        let plain = !id.is_empty()
            && id.len() <= 200
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_@<>:".contains(&b));
        let names_recipient = !recipient.is_empty() && id.to_lowercase().contains(&recipient);
        (plain && !names_recipient).then(|| id.to_string())
    })
}

/// The mail request body: `{to, subject, content}`, plus `html` only when the notice has
/// an HTML body (mail services that take text only never see the field).
#[derive(Serialize)]
pub struct MailRequest<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<&'a str>,
}

impl MailClient {
    pub fn new(http: reqwest::Client, url: Url, token: Option<SecretString>) -> Self {
        Self { http, url, token }
    }

    /// Send one notice. The same `idempotency_key` is used for every attempt at it.
    pub async fn send(
        &self,
        idempotency_key: &str,
        mail: &MailRequest<'_>,
    ) -> Result<Accepted, SendError> {
        const WHAT: &str = "mail service";
        let started = std::time::Instant::now();
        let mut req = self
            .http
            .post(self.url.clone())
            .header("Idempotency-Key", idempotency_key)
            .json(mail);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose_secret());
        }
        let result = req.send().await;
        crate::telemetry::record_call(
            "mail",
            crate::telemetry::status_class(&result),
            started.elapsed(),
        );
        match result {
            Err(e) => Err(SendError {
                error: from_transport(WHAT, &e),
                status: None,
            }),
            Ok(resp) if resp.status().is_success() => {
                let status = resp.status().as_u16();
                // Sent, whatever the answer says; it is read (bounded) for its message id.
                let message_id = match read_bounded(WHAT, resp, MAX_RESPONSE_BYTES).await {
                    Ok(body) => message_id(&body, mail.to),
                    Err(e) => {
                        tracing::warn!(error = %e, "mail service accepted the notice; its answer was not read");
                        None
                    }
                };
                Ok(Accepted { status, message_id })
            }
            Ok(resp) => Err(SendError {
                error: from_status(WHAT, &resp),
                status: Some(resp.status().as_u16()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_ids_are_taken_only_when_plain() {
        let to = "Ann@Example.org";
        let id = |body: &[u8]| message_id(body, to);
        assert_eq!(id(br#"{"id":"msg_123"}"#).as_deref(), Some("msg_123"));
        assert_eq!(
            id(br#"{"messageId":"<0100.abc@email.example>"}"#).as_deref(),
            Some("<0100.abc@email.example>")
        );
        assert_eq!(id(br#"{"message_id":"a:b-c"}"#).as_deref(), Some("a:b-c"));
        // The recipient's own address is never taken for an id.
        assert_eq!(id(br#"{"id":"<ann@example.org>"}"#), None);
        // Free text, numbers, overlong or absent: ignored.
        for body in [
            r#"{"id":"sent to ann@example.org today"}"#.to_string(),
            r#"{"id":42}"#.to_string(),
            format!(r#"{{"id":"{}"}}"#, "x".repeat(201)),
            r#"{"status":"queued"}"#.to_string(),
            "accepted".to_string(),
            String::new(),
        ] {
            assert_eq!(id(body.as_bytes()), None, "{body}");
        }
    }
}

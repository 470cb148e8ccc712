//! Mail service client: `POST MAIL_URL {to, subject, content}` with an `Idempotency-Key`.

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

/// The mail request body.
#[derive(Serialize)]
pub struct MailRequest<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub content: &'a str,
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
    ) -> Result<(), CallError> {
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
            Err(e) => Err(from_transport(WHAT, &e)),
            Ok(resp) if resp.status().is_success() => {
                // Sent, whatever the answer says; it is read (bounded) for what it may carry.
                if let Err(e) = read_bounded(WHAT, resp, MAX_RESPONSE_BYTES).await {
                    tracing::warn!(error = %e, "mail service accepted the notice; its answer was not read");
                }
                Ok(())
            }
            Ok(resp) => Err(from_status(WHAT, &resp)),
        }
    }
}

//! Gigs Core API client: just the two look-ups the handlers need.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::domain::{SubscriptionId, UserId};
use crate::event::UserRef;
use crate::outbound::{from_status, from_transport, read_bounded, CallError, MAX_RESPONSE_BYTES};

/// Calls `GET /projects/{project}/subscriptions…` with a bearer token.
#[derive(Clone)]
pub struct GigsClient {
    http: reqwest::Client,
    base: Url,
    project: String,
    token: SecretString,
}

impl std::fmt::Debug for GigsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GigsClient")
            .field("base", &self.base.as_str())
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct SubscriptionResponse {
    #[serde(default)]
    user: Option<UserRef>,
}

#[derive(Deserialize)]
struct ListResponse {
    items: Vec<serde::de::IgnoredAny>,
}

impl GigsClient {
    pub fn new(http: reqwest::Client, base: Url, project: String, token: SecretString) -> Self {
        Self {
            http,
            base,
            project,
            token,
        }
    }

    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("base URL was validated as http(s)")
            .pop_if_empty()
            .extend(["projects", self.project.as_str()])
            .extend(tail);
        url
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        url: Url,
    ) -> Result<T, CallError> {
        let started = std::time::Instant::now();
        let result = self
            .http
            .get(url)
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        crate::telemetry::record_call(
            "gigs",
            crate::telemetry::status_class(&result),
            started.elapsed(),
        );
        match result {
            Err(e) => Err(from_transport(what, &e)),
            Ok(resp) if resp.status().is_success() => {
                let body = read_bounded(what, resp, MAX_RESPONSE_BYTES).await?;
                // A 2xx we cannot decode would decode no better in three days of retries.
                serde_json::from_slice(&body)
                    .map_err(|_| CallError::permanent(format!("{what} sent an unreadable answer")))
            }
            Ok(resp) => Err(from_status(what, &resp)),
        }
    }

    /// The user a subscription belongs to (`GET /subscriptions/{id}`); 404 is permanent.
    pub async fn subscription_user(&self, id: &SubscriptionId) -> Result<UserRef, CallError> {
        let url = self.url(&["subscriptions", id.as_str()]);
        let sub: SubscriptionResponse = self.get_json("Core API GET subscription", url).await?;
        sub.user
            .ok_or_else(|| CallError::permanent("Core API subscription has no user"))
    }

    /// Whether a user has at least one subscription (`GET /subscriptions?user=`).
    pub async fn user_has_subscription(&self, user: &UserId) -> Result<bool, CallError> {
        let mut url = self.url(&["subscriptions"]);
        url.query_pairs_mut().append_pair("user", user.as_str());
        let list: ListResponse = self.get_json("Core API GET subscriptions", url).await?;
        Ok(!list.items.is_empty())
    }
}

//! Gigs Core API client: the look-ups the handlers need, answered in this client's own
//! types (only the fields a notice needs: an address, a user id, a line's last four digits,
//! the user's preferred locale), and the project (brand name and languages), cached.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::domain::{EmailAddress, LastFour, SubscriptionId, UserId};
use crate::notice::locale::LocaleTag;
use crate::outbound::{from_status, from_transport, read_bounded, CallError, MAX_RESPONSE_BYTES};

/// Calls `GET /projects/{project}/subscriptions…` with a bearer token.
#[derive(Clone)]
pub struct GigsClient {
    http: reqwest::Client,
    base: Url,
    project: String,
    token: SecretString,
    project_cache: Arc<Mutex<Option<CachedProject>>>,
}

/// The project as last fetched, and when (`None`: the Core API does not know it).
type CachedProject = (Instant, Option<Arc<CoreProject>>);

/// How long a fetched project (its name and locales) is used before it is asked again.
const PROJECT_TTL: Duration = Duration::from_secs(600);

impl std::fmt::Debug for GigsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GigsClient")
            .field("base", &self.base.as_str())
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// A user, as the Core API answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct CoreUser {
    pub id: UserId,
    #[serde(default, deserialize_with = "lenient_email")]
    pub email: Option<EmailAddress>,
    /// The language the user reads notices in, when it is a valid tag.
    #[serde(
        rename = "preferredLocale",
        default,
        deserialize_with = "lenient_locale"
    )]
    pub locale: Option<LocaleTag>,
}

/// The project: the brand name and the languages it serves, in preference order.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CoreProject {
    #[serde(default, deserialize_with = "lenient_name")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_locales")]
    pub locales: Vec<LocaleTag>,
}

fn lenient_locale<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<LocaleTag>, D::Error> {
    let v: Option<String> = Option::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|s| LocaleTag::parse(&s)))
}

fn lenient_locales<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LocaleTag>, D::Error> {
    let v: Option<Vec<serde_json::Value>> = Option::deserialize(d).unwrap_or(None);
    Ok(v.unwrap_or_default()
        .iter()
        .filter_map(|t| t.as_str().and_then(LocaleTag::parse))
        .collect())
}

/// A brand name: no control characters, at most 100 characters.
fn lenient_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|s| crate::notice::brand_name(&s)))
}

/// A subscription, as the Core API answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct CoreSubscription {
    #[serde(default, deserialize_with = "user_or_id")]
    pub user: Option<CoreUser>,
    /// The line, by its last four digits.
    #[serde(rename = "phoneNumber", default, deserialize_with = "last_four")]
    pub line: Option<LastFour>,
}

fn lenient_email<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<EmailAddress>, D::Error> {
    let v: Option<String> = Option::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|s| EmailAddress::parse(&s).ok()))
}

fn last_four<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<LastFour>, D::Error> {
    let v: Option<String> = Option::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|p| LastFour::of(&p)))
}

fn user_or_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CoreUser>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        User(CoreUser),
        Id(UserId),
    }
    Ok(match Option::<Wire>::deserialize(d)? {
        Some(Wire::User(u)) => Some(u),
        Some(Wire::Id(id)) => Some(CoreUser {
            id,
            email: None,
            locale: None,
        }),
        None => None,
    })
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
            project_cache: Arc::default(),
        }
    }

    /// The project id this client asks about.
    pub fn project_id(&self) -> &str {
        &self.project
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

    /// A subscription (`GET /subscriptions/{id}`); 404 is permanent.
    pub async fn subscription(&self, id: &SubscriptionId) -> Result<CoreSubscription, CallError> {
        let url = self.url(&["subscriptions", id.as_str()]);
        self.get_json("Core API GET subscription", url).await
    }

    /// A user (`GET /users/{id}`); 404 is permanent.
    pub async fn user(&self, id: &UserId) -> Result<CoreUser, CallError> {
        let url = self.url(&["users", id.as_str()]);
        self.get_json("Core API GET user", url).await
    }

    /// Whether a user has at least one subscription (`GET /subscriptions?user=`).
    pub async fn user_has_subscription(&self, user: &UserId) -> Result<bool, CallError> {
        let mut url = self.url(&["subscriptions"]);
        url.query_pairs_mut().append_pair("user", user.as_str());
        let list: ListResponse = self.get_json("Core API GET subscriptions", url).await?;
        Ok(!list.items.is_empty())
    }

    /// The project (`GET /projects/{project}`), cached for ten minutes; `None` when the
    /// Core API does not know it (a permanent answer, cached too).
    pub async fn project(&self) -> Result<Option<Arc<CoreProject>>, CallError> {
        if let Some((at, project)) = self.project_cache.lock().expect("cache lock").as_ref() {
            if at.elapsed() < PROJECT_TTL {
                return Ok(project.clone());
            }
        }
        let url = self.url(&[]);
        let project = match self
            .get_json::<CoreProject>("Core API GET project", url)
            .await
        {
            Ok(p) => Some(Arc::new(p)),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "the project is unknown to the Core API: notices use no project locales, and BRAND_NAME should be set");
                None
            }
        };
        *self.project_cache.lock().expect("cache lock") = Some((Instant::now(), project.clone()));
        Ok(project)
    }
}

//! The fake Core API and mail service's answers (wiremock): who Gigs knows, what the mail
//! service says.

use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

/// Fake mail service answering 202 to everything.
pub async fn mail_accepts(mail: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(ResponseTemplate::new(202))
        .mount(mail)
        .await;
}

/// The mail fake answers `status` to the next `times` requests, ahead of mocks with a
/// larger `priority` number.
pub async fn mail_answers_first(mail: &MockServer, status: u16, times: u64, priority: u8) {
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(ResponseTemplate::new(status))
        .up_to_n_times(times)
        .with_priority(priority)
        .mount(mail)
        .await;
}

/// Fake Core API: the project (PROJECT_NAME, English then Spanish), every subscription
/// belongs to a user with OWNER_EMAIL, and every user has one subscription.
pub async fn gigs_knows_everyone(gigs: &MockServer) {
    gigs_knows_the_project(gigs, &["en-US", "es-US"]).await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^/projects/{PROJECT}/subscriptions/sub_[A-Za-z0-9]+$"
        )))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(subscription_body("usr_owner", OWNER_EMAIL)),
        )
        .mount(gigs)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/projects/{PROJECT}/subscriptions")))
        .and(wiremock::matchers::query_param_contains("user", "usr_"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_body(1)))
        .mount(gigs)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^/projects/{PROJECT}/users/usr_[A-Za-z0-9]+$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_body("usr_owner", OWNER_EMAIL)))
        .mount(gigs)
        .await;
}

/// Fake Core API: `GET /projects/{PROJECT}` answers PROJECT_NAME and `locales`.
pub async fn gigs_knows_the_project(gigs: &MockServer, locales: &[&str]) {
    Mock::given(method("GET"))
        .and(path(format!("/projects/{PROJECT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "object": "project", "id": PROJECT, "name": PROJECT_NAME, "locales": locales,
            "legal": {"name": "Acme Mobile Inc."}
        })))
        .mount(gigs)
        .await;
}

pub fn subscription_body(user: &str, email: &str) -> Value {
    serde_json::json!({
        "object": "subscription", "id": "sub_x", "status": "active", "brandNewField": {"a": 1},
        "phoneNumber": OWNER_PHONE,
        "user": {"object": "user", "id": user, "email": email, "fullName": "Owner Person"}
    })
}

/// A Core API user.
pub fn user_body(user: &str, email: &str) -> Value {
    serde_json::json!({
        "object": "user", "id": user, "email": email, "fullName": "Owner Person",
        "birthday": "1961-02-03", "preferredLocale": "en-US"
    })
}

pub fn list_body(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"object": "subscription", "id": format!("sub_{i}")}))
        .collect();
    serde_json::json!({"object": "list", "items": items, "moreItemsAfter": null, "moreItemsBefore": null})
}

/// A user with no subscriptions.
pub async fn gigs_user_without_subscription(app: &TestApp, user: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/projects/{PROJECT}/subscriptions")))
        .and(query_param("user", user))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_body(0)))
        .with_priority(1)
        .mount(&app.gigs)
        .await;
}

//! Black-box tests through HTTP: the real app on port 0, fake Core API and mail service.

mod common;

use common::*;
use serde_json::Value;

/// Deliver a fixture and check the one notice it makes: recipient, subject, and that no
/// personal value from the event reaches subject or content.
async fn one_notice(backend: Backend, fixture_name: &str, recipient: &str, subject: &str) {
    let app = spawn_app(backend).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture(fixture_name);

    let (status, answer) = app.deliver(&body).await;
    app.wait_idle().await;

    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let mails = app.mails().await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (key, mail) = &mails[0];
    assert!(key.starts_with("ntc_"), "idempotency key {key}");
    assert_eq!(mail["to"], recipient);
    assert_eq!(mail["subject"], subject);
    let text = format!("{} {}", mail["subject"], mail["content"]);
    // The event's own personal values, and those the Core API returned about the owner.
    let mut personal = personal_values(&body);
    personal.extend([
        OWNER_EMAIL.to_string(),
        "Owner Person".to_string(),
        "jerry".to_string(),
    ]);
    for value in personal {
        assert!(
            !text.contains(&value),
            "personal value leaked into the notice: {text}"
        );
    }
}

async fn subscription_created_notifies_the_embedded_user(b: Backend) {
    one_notice(
        b,
        "subscription.created.json",
        "jerry@example.com",
        "Your subscription was created",
    )
    .await
}
async fn subscription_activated_notifies_the_embedded_user(b: Backend) {
    one_notice(
        b,
        "subscription.activated.json",
        "jerry@example.com",
        "Your subscription is now active",
    )
    .await
}
async fn subscription_renewed_notifies_the_embedded_user(b: Backend) {
    one_notice(
        b,
        "subscription.renewed.json",
        "jerry@example.com",
        "Your subscription was renewed",
    )
    .await
}
async fn subscription_canceled_without_embedded_user_asks_the_core_api(b: Backend) {
    one_notice(
        b,
        "subscription.canceled.json",
        OWNER_EMAIL,
        "Your subscription was canceled",
    )
    .await
}
async fn subscription_resumed_notifies_the_embedded_user(b: Backend) {
    one_notice(
        b,
        "subscription.resumed.json",
        "jerry@example.com",
        "Your subscription was resumed",
    )
    .await
}
async fn subscription_ended_with_user_lacking_email_asks_the_core_api(b: Backend) {
    one_notice(
        b,
        "subscription.ended.json",
        OWNER_EMAIL,
        "Your subscription has ended",
    )
    .await
}
async fn port_out_credentials_issued_notifies_the_subscription_owner(b: Backend) {
    one_notice(
        b,
        "portOutCredentials.issued.json",
        OWNER_EMAIL,
        "Port-out credentials were issued for your number",
    )
    .await
}
async fn user_updated_name_notifies_the_user(b: Backend) {
    one_notice(
        b,
        "user.updated.json",
        "jerry@example.com",
        "Your account information was changed",
    )
    .await
}
async fn subscription_change_applied_notifies_the_owner_with_the_plan_name(b: Backend) {
    one_notice(
        b,
        "subscriptionChange.applied.json",
        OWNER_EMAIL,
        "Your plan was changed",
    )
    .await
}

both_backends!(
    subscription_created_notifies_the_embedded_user,
    subscription_activated_notifies_the_embedded_user,
    subscription_renewed_notifies_the_embedded_user,
    subscription_canceled_without_embedded_user_asks_the_core_api,
    subscription_resumed_notifies_the_embedded_user,
    subscription_ended_with_user_lacking_email_asks_the_core_api,
    port_out_credentials_issued_notifies_the_subscription_owner,
    user_updated_name_notifies_the_user,
    subscription_change_applied_notifies_the_owner_with_the_plan_name,
);

async fn plan_change_names_the_new_plan_and_when(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    app.deliver(&fixture("subscriptionChange.applied.json"))
        .await;
    app.wait_idle().await;
    let content = app.mails().await[0].1["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.contains("\"Gigs Unlimited\""), "{content}");
    assert!(
        content.contains("March 10, 2024 at 3:27 PM UTC"),
        "{content}"
    );
}

/// 47 CFR 64.2010(f): never to the new contact details. The previous address alone is
/// told, and it hears of everything the same event changed.
async fn email_change_is_told_to_the_previous_address_only(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let mut v: Value = serde_json::from_str(&fixture("user.updated.email.json")).unwrap();
    v["previousData"]["fullName"] = Value::from("Jerome Seinfeld");

    app.deliver(&v.to_string()).await;
    app.wait_idle().await;

    let mails = app.mails().await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0].1;
    assert_eq!(m["to"], "jerry@example.com");
    let text = format!("{} {}", m["subject"], m["content"]);
    assert!(text.contains("email address and name"), "{text}");
    assert!(
        !text.contains("example.net") && !text.contains("jerry@"),
        "{text}"
    );
    assert!(!text.contains("Seinfeld"), "{text}");
}

/// A change of case is not a new mailbox: one notice, to the (same) address.
async fn a_case_only_email_change_sends_one_notice(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let mut v: Value = serde_json::from_str(&fixture("user.updated.email.json")).unwrap();
    v["data"]["email"] = Value::from("Jerry@Example.com");

    app.deliver(&v.to_string()).await;
    app.wait_idle().await;

    let mails = app.mails().await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].1["to"], "Jerry@Example.com");
}

async fn user_without_subscription_is_not_notified(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_user_without_subscription(&app, "usr_0TtwGIAf3l2Mfq2h6rMzx7b8CvI1").await;
    gigs_knows_everyone(&app.gigs).await;

    let (status, _) = app.deliver(&fixture("user.updated.json")).await;
    app.wait_idle().await;

    assert_eq!(status, 202);
    assert!(app.mails().await.is_empty());
    assert_eq!(app.count("events", "done").await, 1);
}

async fn locale_only_change_notifies_nobody_and_asks_nothing(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;

    let (status, _) = app.deliver(&fixture("user.updated.locale.json")).await;
    app.wait_idle().await;

    assert_eq!(status, 202);
    assert!(app.mails().await.is_empty());
    assert!(app.gigs.received_requests().await.unwrap().is_empty());
}

async fn redelivery_of_an_event_id_sends_nothing_new(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("portOutCredentials.issued.json");

    let (first, _) = app.deliver(&body).await;
    app.wait_idle().await;
    let (second, answer) = app.deliver(&body).await;
    // Same id, different bytes (Gigs would not, but the id is what counts).
    let (third, _) = app.deliver(&body.replace("48213957", "99990000")).await;
    app.wait_idle().await;

    assert_eq!(first, 202);
    assert_eq!(
        (second, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(third, 200);
    assert_eq!(app.mails().await.len(), 1);
    assert_eq!(app.count("events", "done").await, 1);
}

async fn unhandled_gigs_type_is_acknowledged_and_ignored(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;

    let (status, answer) = app.deliver(&fixture("unhandled.sim.activated.json")).await;

    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    assert_eq!(app.store.pending().await.unwrap(), 0);
    assert_eq!(
        app.count("events", "pending").await + app.count("events", "done").await,
        0
    );
}

async fn concurrent_deliveries_of_one_id_store_it_once(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.created.json");

    let answers = futures::future::join_all((0..8).map(|_| app.deliver(&body))).await;
    app.wait_idle().await;

    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    let duplicates = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((accepted, duplicates), (1, 7));
    assert_eq!(app.mails().await.len(), 1);
}

both_backends!(
    plan_change_names_the_new_plan_and_when,
    email_change_is_told_to_the_previous_address_only,
    a_case_only_email_change_sends_one_notice,
    user_without_subscription_is_not_notified,
    locale_only_change_notifies_nobody_and_asks_nothing,
    redelivery_of_an_event_id_sends_nothing_new,
    unhandled_gigs_type_is_acknowledged_and_ignored,
    concurrent_deliveries_of_one_id_store_it_once,
);

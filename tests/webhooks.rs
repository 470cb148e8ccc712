//! Black-box tests through HTTP: the real app on port 0, fake Core API and mail service.

mod common;

use common::*;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

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

/// Send a bad delivery; check the status and error code, and that nothing was stored or sent.
async fn refused(
    app: &TestApp,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &str,
) {
    let (got, answer) = app.post_raw(&headers, body).await;
    assert_eq!(got, status, "{answer}");
    assert_eq!(answer["error"], code, "{answer}");
    assert!(
        answer["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}

async fn bad_deliveries_get_their_status_and_store_nothing(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.created.json").into_bytes();
    let wrong = gigs_notifier::config::WebhookSecret::parse(
        "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IHNlY3JldA==",
    )
    .unwrap();
    let id = "msg_1";

    // Wrong secret, stale and future timestamps.
    refused(
        &app,
        signed_headers("webhook", &wrong, id, now(), &body),
        body.clone(),
        401,
        "invalid_signature",
    )
    .await;
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now() - 301, &body),
        body.clone(),
        401,
        "timestamp_out_of_tolerance",
    )
    .await;
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now() + 301, &body),
        body.clone(),
        401,
        "timestamp_out_of_tolerance",
    )
    .await;
    // Missing headers, one at a time and all.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let h: Vec<_> = signed_headers("webhook", &app.secret, id, now(), &body)
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        refused(&app, h, body.clone(), 401, "missing_signature_header").await;
    }
    refused(&app, vec![], body.clone(), 401, "missing_signature_header").await;
    // Not a number.
    let mut h = signed_headers("webhook", &app.secret, id, now(), &body);
    h[1].1 = "yesterday".into();
    refused(&app, h, body.clone(), 401, "invalid_timestamp").await;
    // Tampered body.
    let mut tampered = body.clone();
    let pos = tampered.windows(7).position(|w| w == b"pending").unwrap();
    tampered[pos..pos + 7].copy_from_slice(b"PENDING");
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now(), &body),
        tampered,
        401,
        "invalid_signature",
    )
    .await;
    // Unknown signature version only.
    let mut h = signed_headers("webhook", &app.secret, id, now(), &body);
    h[2].1 = h[2].1.replacen("v1,", "v2,", 1);
    refused(&app, h, body.clone(), 401, "unsupported_signature").await;
    // Correctly signed but not an event envelope. (A valid envelope with unreadable data
    // is stored and dead-lettered instead: tests/undecodable.rs.)
    for (name, code) in [
        ("bad/not-json.json", "invalid_json"),
        ("bad/missing-id.json", "invalid_envelope"),
    ] {
        let bad = fixture(name).into_bytes();
        refused(
            &app,
            signed_headers("webhook", &app.secret, id, now(), &bad),
            bad,
            400,
            code,
        )
        .await;
    }
    // Over the 1 MiB default limit.
    let mut big: Value = serde_json::from_slice(&body).unwrap();
    big["data"]["padding"] = Value::String("x".repeat(1024 * 1024 + 1));
    let big = serde_json::to_vec(&big).unwrap();
    refused(
        &app,
        signed_headers("webhook", &app.secret, id, now(), &big),
        big,
        413,
        "payload_too_large",
    )
    .await;

    app.wait_idle().await;
    assert_eq!(
        app.store
            .depth()
            .await
            .unwrap()
            .iter()
            .map(|(_, _, n)| n)
            .sum::<i64>(),
        0
    );
    assert!(app.mails().await.is_empty());
    assert!(app.gigs.received_requests().await.unwrap().is_empty());
}

async fn rotated_second_secret_is_accepted(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let second = gigs_notifier::config::WebhookSecret::parse(SECOND_SECRET).unwrap();

    let (status, _) = app
        .deliver_with(&fixture("subscription.renewed.json"), &second)
        .await;
    app.wait_idle().await;

    assert_eq!(status, 202);
    assert_eq!(app.mails().await.len(), 1);
}

async fn svix_headers_are_accepted(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.ended.json").into_bytes();

    let (status, answer) = app
        .post_raw(
            &signed_headers("svix", &app.secret, "msg_svix", now(), &body),
            body,
        )
        .await;
    app.wait_idle().await;

    assert_eq!(status, 202, "{answer}");
    assert_eq!(app.mails().await.len(), 1);
}

both_backends!(
    bad_deliveries_get_their_status_and_store_nothing,
    rotated_second_secret_is_accepted,
    svix_headers_are_accepted,
);

async fn core_api_5xx_and_429_then_success_gives_exactly_one_notice(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    let sub = format!("/projects/{PROJECT}/subscriptions/sub_0SNlurA049MEWV2gSfSxi00xlPIi");
    Mock::given(method("GET"))
        .and(path(&sub))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.gigs)
        .await;
    Mock::given(method("GET"))
        .and(path(&sub))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&app.gigs)
        .await;
    Mock::given(method("GET"))
        .and(path(&sub))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(subscription_body("usr_owner", OWNER_EMAIL)),
        )
        .with_priority(3)
        .mount(&app.gigs)
        .await;

    app.deliver(&fixture("portOutCredentials.issued.json"))
        .await;
    app.wait_idle().await;

    // Three tries at the subscription, then the project once (for the brand name).
    let paths: Vec<String> = app
        .gigs
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(paths.iter().filter(|p| **p == sub).count(), 3, "{paths:?}");
    assert_eq!(paths.len(), 4, "{paths:?}");
    let mails = app.mails().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1["to"], OWNER_EMAIL);
}

async fn mail_5xx_then_success_reuses_one_idempotency_key(b: Backend) {
    let app = spawn_app(b).await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 500, 2, 1).await;
    mail_answers_first(&app.mail, 408, 1, 2).await;
    mail_accepts(&app.mail).await;

    app.deliver(&fixture("subscription.activated.json")).await;
    app.wait_idle().await;

    let mails = app.mails().await;
    assert_eq!(mails.len(), 4, "three failures and one success");
    assert!(mails.iter().all(|(k, _)| k == &mails[0].0), "{mails:?}");
    assert_eq!(app.count("notices", "sent").await, 1);
}

async fn core_api_404_dead_letters_the_event_with_its_reason(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&app.gigs)
        .await;

    app.deliver(&fixture("portOutCredentials.issued.json"))
        .await;
    app.wait_idle().await;

    let dead = app.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].queue, "events");
    assert_eq!(dead[0].attempts, 1, "a 404 is not retried");
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("Core API GET subscription answered 404")
    );
    assert!(app.mails().await.is_empty());
}

async fn mail_4xx_dead_letters_the_notice_and_retry_delivers_it_once(b: Backend) {
    let app = spawn_app(b).await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 422, 1, 1).await;
    mail_accepts(&app.mail).await;

    app.deliver(&fixture("subscription.resumed.json")).await;
    app.wait_idle().await;
    let dead = app.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].queue, "notices");
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("mail service answered 422")
    );

    assert!(app
        .store
        .retry_dead_letter(&dead[0].id, gigs_notifier::store::now_ms())
        .await
        .unwrap());
    app.wait_idle().await;

    let mails = app.mails().await;
    assert_eq!(mails.len(), 2, "the refused attempt and the retried one");
    assert_eq!(mails[0].0, mails[1].0);
    assert_eq!(app.count("notices", "sent").await, 1);
    assert!(app.store.dead_letters().await.unwrap().is_empty());
}

async fn work_older_than_max_age_is_dead_lettered(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.set("MAX_AGE_SECS", "0");
    })
    .await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 503, u64::MAX, 1).await;

    app.deliver(&fixture("subscription.created.json")).await;
    app.wait_idle().await;

    let dead = app.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 1 attempts: mail service answered 503"),
        "{dead:?}"
    );
}

both_backends!(
    core_api_5xx_and_429_then_success_gives_exactly_one_notice,
    mail_5xx_then_success_reuses_one_idempotency_key,
    core_api_404_dead_letters_the_event_with_its_reason,
    mail_4xx_dead_letters_the_notice_and_retry_delivers_it_once,
    work_older_than_max_age_is_dead_lettered,
);

async fn app_stopped_after_acknowledging_delivers_after_restart(b: Backend) {
    // First life: the mail service is down, so events are acknowledged but not delivered.
    let app = spawn_app(b).await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 503, u64::MAX, 1).await;
    for (i, name) in [
        "subscription.created.json",
        "subscription.activated.json",
        "portOutCredentials.issued.json",
    ]
    .iter()
    .enumerate()
    {
        let (status, _) = app
            .deliver(&with_id(&fixture(name), &format!("evt_restart{i}")))
            .await;
        assert_eq!(status, 202);
    }
    let db_url = app.db.as_ref().unwrap().url.clone();
    let (gigs, mail, db) = app.stop().await;

    // Second life: same database, the mail service is back.
    mail.reset().await;
    mail_accepts(&mail).await;
    let raw = test_settings(&db_url, &gigs.uri(), &mail.uri());
    let mut app = start(raw, gigs, mail).await;
    app.db = db;
    app.wait_idle().await;

    let mut mails = app.mails().await;
    mails.sort_by(|a, b| a.0.cmp(&b.0));
    mails.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(mails.len(), 3);
    assert_eq!(app.count("notices", "sent").await, 3);
}

both_backends!(app_stopped_after_acknowledging_delivers_after_restart);

async fn health_and_readiness_answer(b: Backend) {
    let app = spawn_app(b).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("x-request-id"));
    let (gigs, mail, db) = app.stop().await;
    drop((gigs, mail, db));
}

both_backends!(health_and_readiness_answer);

async fn birthday_change_is_named_and_notice_fields_are_configurable(b: Backend) {
    let body = with_id(&fixture("user.updated.json"), "evt_birthday");
    let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["previousData"] = serde_json::json!({"birthday": "1960-01-01"});
    let body = v.to_string();

    // Default fields: a birthday change is worth a notice, named as such.
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    app.deliver(&body).await;
    app.wait_idle().await;
    let mails = app.mails().await;
    assert_eq!(mails.len(), 1);
    let content = mails[0].1["content"].as_str().unwrap();
    assert!(content.contains(": date of birth."), "{content}");
    assert!(
        !content.contains("1960") && !content.contains("1954"),
        "{content}"
    );

    // An operator who only cares about email changes.
    let app = spawn_app_with(b, |s| {
        s.set("NOTICE_FIELDS", "email");
    })
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    app.deliver(&body).await;
    app.wait_idle().await;
    assert!(app.mails().await.is_empty());
}

async fn graceful_stop_hands_back_claimed_work_at_once(b: Backend) {
    // The mail service hangs (and the client waits for it), so the notice is still claimed
    // and in flight when the app is stopped.
    let app = spawn_app_with(b, |s| {
        s.set("LEASE_SECS", "600").set("HTTP_TIMEOUT_SECS", "120");
    })
    .await;
    gigs_knows_everyone(&app.gigs).await;
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(ResponseTemplate::new(202).set_delay(std::time::Duration::from_secs(60)))
        .mount(&app.mail)
        .await;
    app.deliver(&fixture("subscription.created.json")).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.mails().await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "notice never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let db_url = app.db.as_ref().unwrap().url.clone();
    let (gigs, mail, db) = app.stop().await;

    // With a 10-minute lease, only a released claim can be picked up again right away.
    mail.reset().await;
    mail_accepts(&mail).await;
    let mut raw = test_settings(&db_url, &gigs.uri(), &mail.uri());
    raw.set("LEASE_SECS", "600");
    let mut app = start(raw, gigs, mail).await;
    app.db = db;
    app.wait_idle().await;

    assert_eq!(app.count("notices", "sent").await, 1);
    assert_eq!(app.mails().await.len(), 1);
}

both_backends!(
    birthday_change_is_named_and_notice_fields_are_configurable,
    graceful_stop_hands_back_claimed_work_at_once,
);

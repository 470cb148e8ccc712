//! Black-box tests of what goes wrong downstream and across restarts: Core API and mail
//! failures retried or dead-lettered, the age budget, a restart after acknowledging, and
//! handing back claimed work on a graceful stop.

mod common;

use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

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

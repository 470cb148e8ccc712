//! What operators rely on: metrics, admin endpoints, retention, readiness, a paused worker.

mod common;

use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn metrics(app: &TestApp) -> String {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of the first sample line that starts with `prefix` (name plus labels).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn metrics_families_are_present_and_counting(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    for name in [
        "portOutCredentials.issued.json",
        "subscription.created.json",
        "unhandled.sim.activated.json",
    ] {
        app.deliver(&fixture(name)).await;
    }
    app.deliver(&fixture("subscription.created.json")).await; // duplicate
    app.post_raw(&[], b"{}".to_vec()).await; // rejected: no signature
    app.wait_idle().await;

    let text = metrics(&app).await;

    // (family, labels, at least): counters count at least this much; gauges are exact.
    let counters: &[(&str, &[&str], f64)] = &[
        (
            "gigs_notifier_events_received_total",
            &[
                "event_type=\"com.gigs.portOutCredentials.issued\"",
                "outcome=\"accepted\"",
            ],
            1.0,
        ),
        (
            "gigs_notifier_events_received_total",
            &[
                "event_type=\"com.gigs.subscription.created\"",
                "outcome=\"duplicate\"",
            ],
            1.0,
        ),
        (
            "gigs_notifier_events_received_total",
            &["event_type=\"other_gigs\"", "outcome=\"ignored\""],
            1.0,
        ),
        (
            "gigs_notifier_events_received_total",
            &[
                "outcome=\"rejected\"",
                "reason=\"missing_signature_header\"",
            ],
            1.0,
        ),
        ("gigs_notifier_notices_total", &["outcome=\"sent\""], 2.0),
        (
            "gigs_notifier_outbound_requests_total",
            &["api=\"mail\"", "status_class=\"2xx\""],
            2.0,
        ),
        (
            "gigs_notifier_outbound_requests_total",
            &["api=\"gigs\"", "status_class=\"2xx\""],
            1.0,
        ),
    ];
    for (family, labels, at_least) in counters {
        let got = sample(&text, family, labels);
        assert!(
            got.is_some_and(|v| v >= *at_least),
            "{family} {labels:?} = {got:?}:\n{text}"
        );
    }
    for labels in [
        ["queue=\"notices\"", "state=\"sent\""],
        ["queue=\"events\"", "state=\"done\""],
    ] {
        let got = sample(&text, "gigs_notifier_queue_depth", &labels);
        assert_eq!(got, Some(2.0), "queue depth {labels:?}:\n{text}");
    }
    for histogram in [
        "gigs_notifier_ingest_seconds_count",
        "gigs_notifier_event_processing_seconds_count",
        "gigs_notifier_end_to_end_seconds_count",
        "gigs_notifier_outbound_request_duration_seconds_count",
    ] {
        assert!(
            sample(&text, histogram, &[]).is_some_and(|v| v >= 1.0),
            "{histogram} missing:\n{text}"
        );
    }
    assert!(
        text.contains("gigs_notifier_end_to_end_seconds_bucket{le=\"0.25\"}"),
        "{text}"
    );
}

async fn admin_endpoints_need_the_token(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.set("ADMIN_TOKEN", "s3cret-admin-token");
    })
    .await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 403, 1, 1).await;
    mail_accepts(&app.mail).await;
    app.deliver(&fixture("subscription.created.json")).await;
    app.wait_idle().await;
    let list_url = format!("{}/admin/dead-letters", app.base);

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-admin-token-longer"),
        Some("s3cret-admin-token"),
    ] {
        let mut req = app.client.get(&list_url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }

    let ok = |r: reqwest::RequestBuilder| {
        r.header("authorization", "Bearer s3cret-admin-token")
            .send()
    };
    let dead_letter_list = || async {
        let resp = ok(app.client.get(&list_url)).await.unwrap();
        resp.json::<serde_json::Value>().await.unwrap()
    };
    let list = dead_letter_list().await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["last_error"], "mail service answered 403");
    let id = items[0]["id"].as_str().unwrap().to_string();

    let shown = ok(app.client.get(format!("{list_url}/{id}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        shown.contains("evt_0SNlurA049MEWV5gNTcQ5A07h3Ol"),
        "{shown}"
    );
    for value in personal_values(&fixture("subscription.created.json")) {
        assert!(!shown.contains(&value), "{value} shown: {shown}");
    }

    let retried = ok(app.client.post(format!("{list_url}/{id}/retry")))
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    app.wait_idle().await;
    assert_eq!(app.count("notices", "sent").await, 1);
    let again = ok(app.client.post(format!("{list_url}/{id}/retry")))
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let gone = ok(app.client.delete(format!("{list_url}/{id}")))
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        404,
        "a delivered notice is no dead letter to delete"
    );
    let unauthorized = app
        .client
        .delete(format!("{list_url}/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    // A second failure, which the operator drops.
    mail_answers_first(&app.mail, 403, 1, 1).await;
    app.deliver(&fixture("subscription.ended.json")).await;
    app.wait_idle().await;
    let list = dead_letter_list().await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let deleted = ok(app.client.delete(format!("{list_url}/{id}")))
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let list = dead_letter_list().await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

async fn admin_endpoints_are_absent_without_a_token(b: Backend) {
    let app = spawn_app(b).await;
    let resp = app
        .client
        .get(format!("{}/admin/dead-letters", app.base))
        .header("authorization", "Bearer anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

async fn retention_purges_old_processed_work_and_keeps_the_rest(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/projects/{PROJECT}/subscriptions/sub_0U5w2gZv2l1rLP0CXl8SgTfVdi2C"
        )))
        .respond_with(ResponseTemplate::new(404))
        .with_priority(1)
        .mount(&app.gigs)
        .await;
    app.deliver(&with_id(&fixture("subscription.created.json"), "evt_old"))
        .await;
    app.deliver(&with_id(&fixture("subscription.renewed.json"), "evt_new"))
        .await;
    app.deliver(&with_id(
        &fixture("subscriptionChange.applied.json"),
        "evt_dead",
    ))
    .await;
    app.wait_idle().await;
    let cutoff = gigs_notifier::store::now_ms() + 1;
    // Age one processed event and its notice past the cutoff; finish the other after it.
    let pool = sqlx::AnyPool::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET finished_at = 1 WHERE id IN ('evt_old', 'evt_dead')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE notices SET finished_at = 1 WHERE event_id = 'evt_old'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET finished_at = $1 WHERE id = 'evt_new'")
        .bind(cutoff + 1000)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE notices SET finished_at = $1 WHERE event_id = 'evt_new'")
        .bind(cutoff + 1000)
        .execute(&pool)
        .await
        .unwrap();

    let (events, notices) = app.store.purge(cutoff).await.unwrap();

    assert_eq!((events, notices), (1, 1));
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        ids,
        ["evt_dead", "evt_new"],
        "processed-and-old goes, recent and dead letters stay"
    );
    assert_eq!(app.count("notices", "sent").await, 1);
    pool.close().await;
}

async fn background_purge_runs_on_its_own(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.set("RETENTION_DAYS", "0").set("PURGE_INTERVAL_SECS", "1");
    })
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    app.deliver(&fixture("subscription.created.json")).await;
    app.wait_idle().await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.count("events", "done").await + app.count("notices", "sent").await > 0 {
        assert!(std::time::Instant::now() < deadline, "purger did not run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.mails().await.len(), 1);
}

async fn a_paused_worker_stores_deliveries_and_sends_nothing(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.set("WORKER_PAUSED", "true");
    })
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let (status, _) = app.deliver(&fixture("subscription.created.json")).await;
    assert_eq!(status, 202);
    // Several poll intervals (50 ms in tests): nothing is claimed.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(app.count("events", "pending").await, 1);
    assert_eq!(app.store.pending().await.unwrap(), 1);
    assert!(app.mails().await.is_empty());
}

both_backends!(
    metrics_families_are_present_and_counting,
    admin_endpoints_need_the_token,
    admin_endpoints_are_absent_without_a_token,
    retention_purges_old_processed_work_and_keeps_the_rest,
    background_purge_runs_on_its_own,
    a_paused_worker_stores_deliveries_and_sends_nothing,
);

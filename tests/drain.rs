//! Stopping behind a load balancer, through the real binary: on SIGTERM `/readyz` fails at
//! once while deliveries are still served for `DRAIN_SECS`; then the listener closes,
//! requests in flight finish, and the process exits 0. A second signal cuts the drain short.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use gigs_notifier::store::Store;
use wiremock::MockServer;

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

struct Running {
    served: Served,
    base: String,
    client: reqwest::Client,
    _fakes: (MockServer, MockServer),
    db: TestDb,
}

async fn serve_draining(drain_secs: u64) -> Running {
    let db = TestDb::new(Backend::Sqlite).await;
    let gigs = MockServer::start().await;
    let mail = MockServer::start().await;
    gigs_knows_everyone(&gigs).await;
    mail_accepts(&mail).await;
    let mut env = base_env(&db.url, &gigs.uri(), &mail.uri());
    env.retain(|(k, _)| k != "DRAIN_SECS");
    env.push(("DRAIN_SECS".into(), drain_secs.to_string()));
    let served = serve(&env);
    let base = format!("http://127.0.0.1:{}", served.port);
    Running {
        served,
        base,
        client: reqwest::Client::new(),
        _fakes: (gigs, mail),
        db,
    }
}

impl Running {
    async fn readyz(&self) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("/readyz answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    async fn wait_draining(&self) {
        wait_for("/readyz to say draining", async || {
            self.readyz().await == (503, serde_json::json!({"error": "draining", "message": "the service is stopping; send new requests to another replica"}))
        })
        .await;
    }

    async fn deliver(&self, id: &str) -> reqwest::Response {
        let body = with_id(&fixture("subscription.created.json"), id);
        let mut req = self
            .client
            .post(format!("{}/webhooks/gigs", self.base))
            .body(body.clone());
        let secret = gigs_notifier::config::WebhookSecret::parse(SECRET).unwrap();
        for (k, v) in signed_headers("webhook", &secret, id, now(), body.as_bytes()) {
            req = req.header(k, v);
        }
        req.send().await.expect("delivery answered")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_at_once_and_keeps_serving_through_the_drain() {
    let mut app = serve_draining(4).await;
    assert_eq!(app.readyz().await.0, 200);

    app.served.signal(SIGTERM);
    app.wait_draining().await;
    // Still serving: deliveries are stored and acknowledged, and HTTP/1.1 clients are told
    // to reconnect (to a replica that stays).
    for i in 0..5 {
        let answer = app.deliver(&format!("evt_drain{i}")).await;
        assert_eq!(answer.status(), 202);
        assert_eq!(answer.headers()["connection"], "close");
    }
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        app.served.child.try_wait().unwrap().is_none(),
        "still running while draining"
    );

    let status = app.served.exited_within(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "a drained stop is a clean exit");
    let log = app.served.log.lock().unwrap().join("\n");
    assert!(log.contains("draining"), "{log}");
    // Every acknowledged delivery is in the store.
    let store = Store::connect(&app.db.url).await.unwrap();
    let stored: i64 = store
        .depth()
        .await
        .unwrap()
        .into_iter()
        .filter(|(q, _, _)| q.name() == "events")
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(stored, 5);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_cuts_the_drain_short() {
    let mut app = serve_draining(600).await;
    app.served.signal(SIGTERM);
    app.wait_draining().await;
    assert_eq!(app.deliver("evt_hurry").await.status(), 202);

    // Ten minutes of drain left; SIGINT (or a second SIGTERM) ends it.
    app.served.signal(SIGINT);
    let status = app.served.exited_within(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_listener_closes_is_answered() {
    let mut app = serve_draining(1).await;
    let id = "evt_inflight";
    let body = with_id(&fixture("subscription.created.json"), id);
    let secret = gigs_notifier::config::WebhookSecret::parse(SECRET).unwrap();
    let mut head = format!(
        "POST /webhooks/gigs HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in signed_headers("webhook", &secret, id, now(), body.as_bytes()) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut conn = TcpStream::connect(("127.0.0.1", app.served.port)).unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(first).unwrap();

    // Stop, and wait until the listener has closed (new connections are refused) while
    // this request is still half sent.
    app.served.signal(SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", app.served.port)).is_ok() {
        assert!(Instant::now() < deadline, "the listener never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.write_all(rest).unwrap();
    let mut answer = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    let status = app.served.exited_within(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0));
}

//! Several replicas on one PostgreSQL database (compiled only with `TEST_DATABASE_URL`).
#![cfg(pg_tests)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use gigs_notifier::config::WebhookSecret;
use gigs_notifier::store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EVENTS: usize = 1000;

/// Deliver to `first`, falling back to `second` if `first` cannot be reached (what a load
/// balancer does once a replica is gone). Returns the status.
async fn deliver_lb(
    client: &reqwest::Client,
    secret: &WebhookSecret,
    first: &str,
    second: &str,
    body: &str,
) -> u16 {
    for url in [first, second] {
        if let Ok(a) = gigs_notifier::replay::deliver(client, url, secret, body.as_bytes()).await {
            return a.status;
        }
    }
    panic!("no replica answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_1000_events_and_survive_one_sigkill() {
    let db = TestDb::new(Backend::Postgres).await;
    let gigs = MockServer::start().await;
    let mail = MockServer::start().await;
    gigs_knows_everyone(&gigs).await;
    Mock::given(method("POST"))
        .and(path("/mail/send"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_millis(5)))
        .mount(&mail)
        .await;
    let mut env = base_env(&db.url, &gigs.uri(), &mail.uri());
    env.retain(|(k, _)| k != "LEASE_SECS" && k != "RUST_LOG");
    env.push(("LEASE_SECS".into(), "2".into()));
    env.push(("WORKER_CONCURRENCY".into(), REPLICA_CONCURRENCY.to_string()));
    env.push(("RUST_LOG".into(), "warn,gigs_notifier::app=info".into()));
    // Both start at once: migrations run under PostgreSQL's advisory lock.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| serve(&env));
        let b = s.spawn(|| serve(&env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let urls = [
        format!("http://127.0.0.1:{}/webhooks/gigs", a.port),
        format!("http://127.0.0.1:{}/webhooks/gigs", b.port),
    ];
    let b = Arc::new(Mutex::new(b));
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();

    // Round-robin, each event also redelivered to the other replica; B is killed halfway.
    let bodies: Vec<String> = (0..EVENTS)
        .map(|i| {
            with_id(
                &fixture(REPLICA_FIXTURES[i % REPLICA_FIXTURES.len()].0),
                &format!("evt_rep{i:04}"),
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for (chunk_no, chunk) in bodies.chunks(50).enumerate() {
        if chunk_no * 50 == EVENTS / 2 {
            b.lock().await.kill9();
        }
        let sends = chunk.iter().enumerate().map(|(j, body)| {
            let i = chunk_no * 50 + j;
            let (first, other) = (&urls[i % 2], &urls[(i + 1) % 2]);
            let (client, secret) = (&client, &secret);
            async move {
                let s1 = deliver_lb(client, secret, first, other, body).await;
                let s2 = deliver_lb(client, secret, other, first, body).await;
                (s1, s2)
            }
        });
        statuses.extend(futures::future::join_all(sends).await);
    }
    let ingest_time = started.elapsed();
    assert!(
        statuses
            .iter()
            .all(|(s1, s2)| (200..300).contains(s1) && (200..300).contains(s2)),
        "every delivery acknowledged"
    );
    let accepted = statuses
        .iter()
        .map(|(s1, s2)| (*s1 == 202) as usize + (*s2 == 202) as usize)
        .sum::<usize>();
    assert_eq!(
        accepted, EVENTS,
        "each event accepted once, the redelivery answered as duplicate"
    );

    let expected: HashSet<String> = (0..EVENTS)
        .map(|i| {
            gigs_notifier::notice::notice_id(
                &format!("evt_rep{i:04}"),
                REPLICA_FIXTURES[i % REPLICA_FIXTURES.len()].1,
                "owner",
            )
        })
        .collect();
    wait_until(Duration::from_secs(120), async || {
        distinct_keys(&mail).await.len() >= EVENTS
    })
    .await;
    let total_time = started.elapsed();
    let requests = mail.received_requests().await.unwrap().len();
    let keys = distinct_keys(&mail).await;
    let mut a = a;
    a.terminate();

    println!(
        "two replicas: {EVENTS} events, {} deliveries, {} mail requests, {} distinct keys, {} duplicates by key \
         (resent after the SIGKILL), ingest {:.1} s, all notices {:.1} s",
        statuses.len() * 2,
        requests,
        keys.len(),
        requests - keys.len(),
        ingest_time.as_secs_f64(),
        total_time.as_secs_f64()
    );
    assert_eq!(
        keys, expected,
        "every notice arrived under its own key, none missing, none extra"
    );
    // Only work in flight at the moment of the SIGKILL may be sent twice (same key).
    assert!(
        requests - keys.len() <= 16,
        "{} duplicates",
        requests - keys.len()
    );
}

async fn wait_until(limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP proxy to PostgreSQL that a test can cut and restore.
struct Proxy {
    port: u16,
    relays: Arc<std::sync::Mutex<Relays>>,
}

/// The proxy's tasks, and whether it was cut: checked under the same lock the accept loop
/// registers a relay with, so no connection accepted while `cut` runs outlives it.
#[derive(Default)]
struct Relays {
    cut: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn open(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relays: Arc<std::sync::Mutex<Relays>> = Arc::default();
        let inner = relays.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut relays = inner.lock().unwrap();
                if relays.cut {
                    return;
                }
                relays.tasks.push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        relays.lock().unwrap().tasks.push(accept);
        Self { port, relays }
    }

    /// Refuse new connections and drop the open ones.
    fn cut(&self) {
        let mut relays = self.relays.lock().unwrap();
        relays.cut = true;
        for t in relays.tasks.drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_gets_503_never_2xx_and_recovers() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = Proxy::open(0).await;
    let mut via_proxy = url::Url::parse(&db.url).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let gigs = MockServer::start().await;
    let mail = MockServer::start().await;
    let mut app = start(
        test_settings(via_proxy.as_str(), &gigs.uri(), &mail.uri()),
        gigs,
        mail,
    )
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = |i: usize| {
        with_id(
            &fixture("subscription.created.json"),
            &format!("evt_outage{i}"),
        )
    };

    for i in 0..5 {
        assert_eq!(app.deliver(&body(i)).await.0, 202);
    }
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let during = futures::future::join_all((5..10).map(|i| {
        let b = body(i);
        let app = &app;
        async move { app.deliver(&b).await }
    }))
    .await;
    for (status, answer) in &during {
        assert_eq!(*status, 503, "{answer}");
        assert_eq!(answer["error"], "store_unavailable");
    }

    let _proxy = Proxy::open(proxy.port).await;
    wait_until(Duration::from_secs(30), async || {
        app.client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // Gigs retries what got 503.
    for i in 5..10 {
        assert_eq!(app.deliver(&body(i)).await.0, 202);
    }
    app.wait_idle().await;

    let keys: HashSet<String> = app.mails().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys.len(),
        10,
        "every acknowledged event delivered once it was back"
    );
    app.db = Some(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let stores = futures::future::join_all((0..6).map(|_| Store::connect(&db.url))).await;
    for s in &stores {
        assert!(s.is_ok(), "{:?}", s.as_ref().err());
    }
    for s in stores.into_iter().flatten() {
        s.close().await;
    }
}

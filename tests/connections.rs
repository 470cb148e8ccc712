//! Connection limits and timeouts, from the outside: idle and slow clients must not keep
//! Gigs' deliveries or the load balancer's readiness probe from being answered.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::process::{base_env, serve_with_open_files};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use wiremock::MockServer;

/// How long a normal request may take while the server is crowded.
const PROMPT: Duration = Duration::from_secs(1);

/// A request line and headers that never end, for slowloris clients to drip.
const ENDLESS_HEAD: &[u8] =
    b"POST /webhooks/gigs HTTP/1.1\r\nHost: gigs-notifier\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn port_of(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect")
}

/// A client that connects and then either says nothing or drips `ENDLESS_HEAD` a byte per
/// `drip`; it counts itself in `closed` when the server closes the connection.
fn crowd(
    set: &mut JoinSet<()>,
    port: u16,
    drip: Option<Duration>,
    closed: Arc<AtomicUsize>,
) -> impl std::future::Future<Output = ()> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    set.spawn(async move {
        let mut stream = connect(port).await;
        let _ = ready_tx.send(());
        let mut buf = [0u8; 1024];
        let mut sent = 0;
        loop {
            let pause = drip.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                read = stream.read(&mut buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                () = tokio::time::sleep(pause) => {
                    let byte = &ENDLESS_HEAD[sent % ENDLESS_HEAD.len()..][..1];
                    sent += 1;
                    if stream.write_all(byte).await.is_err() {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    });
    async move {
        let _ = ready_rx.await;
    }
}

/// Whether the server closes `stream` (end of stream or reset) before `deadline`; whatever
/// it sends first (an error response, say) is read and ignored.
async fn closed_within(stream: &mut TcpStream, deadline: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
    .await
    .is_ok()
}

/// Read one HTTP/1.1 response: status and body (the server sends Content-Length).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read response");
        assert!(n > 0, "connection closed mid-response: {data:?}");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..end].to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            let status = text[9..12].parse().unwrap();
            return (status, text[end + 4..end + 4 + length].to_string());
        }
    }
}

/// A delivery and a readiness probe, each on a new connection, each within `PROMPT`.
async fn deliver_and_probe(base: &str, webhook_url: &str, id: &str) {
    let body = with_id(&fixture("subscription.created.json"), id);
    let secret = gigs_notifier::config::WebhookSecret::parse(SECRET).unwrap();
    let client = reqwest::Client::new();
    let delivery = gigs_notifier::replay::deliver(&client, webhook_url, &secret, body.as_bytes());
    let answer = tokio::time::timeout(PROMPT, delivery)
        .await
        .expect("the delivery is answered within a second")
        .expect("the delivery is answered");
    assert_eq!(answer.status, 202, "{}", answer.body);

    let probe = reqwest::Client::new().get(format!("{base}/readyz")).send();
    let ready = tokio::time::timeout(PROMPT, probe)
        .await
        .expect("/readyz answers within a second")
        .expect("/readyz answers");
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_connections_at_the_cap_do_not_delay_deliveries() {
    const CAP: usize = 64;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.set("MAX_CONNECTIONS", CAP.to_string());
    })
    .await;
    let port = port_of(&app.base);
    let closed = Arc::new(AtomicUsize::new(0));
    let mut crowd_set = JoinSet::new();
    // Idle and slowloris clients alternate, so both kinds hold the cap at the end.
    for i in 0..2 * CAP {
        let drip = (i % 2 == 1).then_some(Duration::from_millis(500));
        crowd(&mut crowd_set, port, drip, closed.clone()).await;
    }
    // Let the slowloris clients get a few bytes in.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    deliver_and_probe(&app.base, &app.webhook_url, "evt_crowded").await;

    // The server holds at most CAP connections, so it made room for the later crowd and
    // for the delivery by closing others (well before any timeout could have closed them).
    let must_close = 2 * CAP + 1 - CAP;
    tokio::time::timeout(Duration::from_secs(2), async {
        while closed.load(Ordering::SeqCst) < must_close {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {} connections were closed with a cap of {CAP}",
            closed.load(Ordering::SeqCst),
            2 * CAP
        )
    });
    crowd_set.abort_all();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_descriptor_limit_does_not_stop_deliveries() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (gigs, mail) = (MockServer::start().await, MockServer::start().await);
    let env = base_env(&db.url, &gigs.uri(), &mail.uri());
    let mut served = serve_with_open_files(&env, 256);
    let base = format!("http://127.0.0.1:{}", served.port);
    let closed = Arc::new(AtomicUsize::new(0));
    let mut crowd_set = JoinSet::new();
    for _ in 0..300 {
        crowd(&mut crowd_set, served.port, None, closed.clone()).await;
    }

    deliver_and_probe(&base, &format!("{base}/webhooks/gigs"), "evt_few_files").await;

    crowd_set.abort_all();
    served.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.set("IDLE_TIMEOUT_SECS", "1");
    })
    .await;
    let mut stream = connect(port_of(&app.base)).await;
    // Two requests on one connection: it is kept alive between them.
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: gigs-notifier\r\n\r\n")
            .await
            .unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    }

    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "an idle connection stayed open past IDLE_TIMEOUT_SECS=1"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_after_the_header_read_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.set("HEADER_READ_TIMEOUT_SECS", "1");
    })
    .await;
    let mut stream = connect(port_of(&app.base)).await;
    let mut drip = ENDLESS_HEAD.iter();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => if !matches!(read, Ok(n) if n > 0) { return },
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    let byte = *drip.next().expect("headers still dripping");
                    if stream.write_all(&[byte]).await.is_err() { return }
                }
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a client dripping its headers stayed connected past HEADER_READ_TIMEOUT_SECS=1"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.set("BODY_READ_TIMEOUT_SECS", "1");
    })
    .await;
    let mut stream = connect(port_of(&app.base)).await;
    stream.write_all(&partial_post(1000)).await.unwrap();

    let (status, body) = tokio::time::timeout(Duration::from_secs(3), read_response(&mut stream))
        .await
        .expect("a stalled body is answered after BODY_READ_TIMEOUT_SECS=1");
    assert_eq!(status, 408, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "body_timeout");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    app.stop().await;
}

/// Complete headers of a delivery whose `length`-byte body stops after a few bytes.
fn partial_post(length: usize) -> Vec<u8> {
    format!(
        "POST /webhooks/gigs HTTP/1.1\r\nHost: gigs-notifier\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n{{\"id\": \"evt_"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_every_request_in_flight_a_newcomer_is_refused() {
    const CAP: usize = 4;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.set("MAX_CONNECTIONS", CAP.to_string())
            .set("BODY_READ_TIMEOUT_SECS", "2");
    })
    .await;
    let port = port_of(&app.base);
    let mut busy = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect(port).await;
        stream.write_all(&partial_post(1000)).await.unwrap();
        busy.push(stream);
    }
    // Let the server read those headers, so the requests are in progress.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut newcomer = connect(port).await;
    assert!(
        closed_within(&mut newcomer, PROMPT).await,
        "a connection beyond the cap was kept while every other one was busy"
    );
    // The busy connections were not sacrificed: each gets its answer.
    for stream in &mut busy {
        let (status, _) = tokio::time::timeout(Duration::from_secs(4), read_response(stream))
            .await
            .expect("the request in progress is answered");
        assert_eq!(status, 408);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_still_works() {
    let app = spawn_app(Backend::Sqlite).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let health = h2
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    assert_eq!(health.status(), 200);
    let body = fixture("subscription.created.json");
    let answer =
        gigs_notifier::replay::deliver(&h2, &app.webhook_url, &app.secret, body.as_bytes())
            .await
            .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    app.stop().await;
}

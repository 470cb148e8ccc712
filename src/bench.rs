//! `bench`: how fast the real `serve` acknowledges and delivers, beside the HTTP floor.
//!
//! One run, several rounds, medians reported. Each round starts a fresh `serve` child
//! process (SQLite, synchronous commits on) with instant fakes of the Core API and the mail
//! service, and a bare axum child (`bench-floor`) that answers 200 without doing anything.
//! One load tool drives both over keep-alive HTTP/1.1 connections with pre-signed requests:
//!
//! 1. closed loop at a fixed concurrency: acknowledged events/s and ack latency;
//! 2. the same against the bare endpoint: the floor, and the ratio;
//! 3. open loop at a fixed offered rate (2,000/s): ack latency, measured from each request's
//!    scheduled send time, so queueing in the load tool counts (no coordinated omission);
//! 4. open loop at 500/s: end-to-end latency from scheduled send to the mail fake's receipt;
//! 5. the service's peak RSS (`VmHWM`) over the round.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::WebhookSecret;
use crate::demo::serve_on_free_port;
use crate::notice::notice_id;
use crate::webhook::sign;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    /// Events in the closed-loop throughput phase.
    pub events: usize,
    pub concurrency: usize,
    /// Seconds of each open-loop phase.
    pub open_loop_secs: f64,
}

impl Options {
    pub fn full() -> Self {
        Self {
            rounds: 3,
            events: 20_000,
            concurrency: 64,
            open_loop_secs: 10.0,
        }
    }

    /// CI smoke: proves the benchmark runs; its numbers mean little.
    pub fn quick() -> Self {
        Self {
            rounds: 1,
            events: 1_000,
            concurrency: 16,
            open_loop_secs: 1.0,
        }
    }
}

/// The event mix: realistic bodies (0.5-4.6 KB), three of five needing a Core API call.
const MIX: [(&str, &str, &str); 5] = [
    (
        include_str!("../fixtures/subscription.created.json"),
        "subscription_created",
        "owner",
    ),
    (
        include_str!("../fixtures/portOutCredentials.issued.json"),
        "port_out_credentials_issued",
        "owner",
    ),
    (
        include_str!("../fixtures/subscription.activated.json"),
        "subscription_activated",
        "owner",
    ),
    (
        include_str!("../fixtures/subscriptionChange.applied.json"),
        "plan_changed",
        "owner",
    ),
    (
        include_str!("../fixtures/user.updated.json"),
        "account_information_changed",
        "account",
    ),
];

/// Pre-signed requests and the notice key each event will produce.
struct Prepared {
    requests: Vec<Vec<u8>>,
    keys: Vec<String>,
}

fn prepare(secret: &WebhookSecret, prefix: &str, n: usize) -> Prepared {
    let templates: Vec<Value> = MIX
        .iter()
        .map(|(b, _, _)| serde_json::from_str(b).expect("fixture"))
        .collect();
    let ts = chrono::Utc::now().timestamp();
    let mut requests = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let which = i % MIX.len();
        let id = format!("evt_{prefix}{i:07}");
        let mut event = templates[which].clone();
        event["id"] = Value::String(id.clone());
        let body = serde_json::to_vec(&event).expect("serialize");
        let msg = format!("msg_{prefix}{i:07}");
        let sig = sign(secret, &msg, ts, &body);
        let mut req = format!(
            "POST /webhooks/gigs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             webhook-id: {msg}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        requests.push(req);
        keys.push(notice_id(&id, MIX[which].1, MIX[which].2));
    }
    Prepared { requests, keys }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Send one request and read its response; returns the status.
    async fn call(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = resp.parse(&self.buf)? {
                let status = resp.code.unwrap_or(0);
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                if self.buf.len() >= head + len {
                    self.buf.drain(..head + len);
                    return Ok(status);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// Result of one load phase.
struct Load {
    ok: usize,
    elapsed: Duration,
    /// Microseconds.
    latency: Histogram<u64>,
    /// When each request was scheduled to be sent (open loop) or sent (closed loop).
    sent: Vec<Option<Instant>>,
}

/// Closed loop: `concurrency` connections, each sending its next request when the last
/// one was answered, until `total` requests (cycling through `requests`) are answered.
/// Connections are opened before the clock starts.
async fn closed_loop(
    port: u16,
    requests: Arc<Vec<Vec<u8>>>,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Load> {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::open(port).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (next, requests) = (next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut ok = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok((ok, hist));
                }
                let t = Instant::now();
                let status = conn.call(&requests[i % requests.len()]).await?;
                hist.saturating_record(t.elapsed().as_micros() as u64);
                ok += (200..300).contains(&status) as usize;
            }
        }));
    }
    gather(tasks, Vec::new(), started).await
}

/// Open loop: request `i` is due at `start + i / rate`, whatever the server does; latency
/// counts from that due time.
async fn open_loop(
    port: u16,
    requests: Arc<Vec<Vec<u8>>>,
    rate: f64,
    connections: usize,
) -> anyhow::Result<Load> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (rx, requests) = (rx.clone(), requests.clone());
        let mut conn = Conn::open(port).await?;
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut ok = 0;
            loop {
                let next = rx.lock().await.recv().await;
                let Some((i, due)) = next else {
                    return anyhow::Ok((ok, hist));
                };
                let status = conn.call(&requests[i]).await?;
                hist.saturating_record(due.elapsed().as_micros() as u64);
                ok += (200..300).contains(&status) as usize;
            }
        }));
    }
    let start = Instant::now() + Duration::from_millis(50);
    let mut sent = vec![None; requests.len()];
    for (i, slot) in sent.iter_mut().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        *slot = Some(due);
        tx.send((i, due)).ok();
    }
    drop(tx);
    gather(tasks, sent, start).await
}

type ConnTask = tokio::task::JoinHandle<anyhow::Result<(usize, Histogram<u64>)>>;

/// Wait for the connection tasks and add up what they counted.
async fn gather(
    tasks: Vec<ConnTask>,
    sent: Vec<Option<Instant>>,
    started: Instant,
) -> anyhow::Result<Load> {
    let mut load = Load {
        ok: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        sent,
    };
    for t in tasks {
        let (ok, hist) = t.await??;
        load.ok += ok;
        load.latency.add(hist)?;
    }
    load.elapsed = started.elapsed();
    Ok(load)
}

/// Mail fake: answers 202 at once and notes when each idempotency key first arrived.
#[derive(Default)]
struct MailSink {
    received: Mutex<HashMap<String, Instant>>,
}

async fn start_fakes() -> anyhow::Result<(String, String, Arc<MailSink>)> {
    let gigs = Router::new()
        .route(
            "/projects/{project}/subscriptions/{id}",
            get(|| async {
                Json(json!({"object": "subscription", "id": "sub_bench", "user": {"object": "user", "id": "usr_bench", "email": "bench@example.com"}}))
            }),
        )
        .route(
            "/projects/{project}/subscriptions",
            get(|| async { Json(json!({"object": "list", "items": [{"id": "sub_bench"}], "moreItemsAfter": null})) }),
        );
    let sink = Arc::new(MailSink::default());
    let mail = Router::new()
        .route(
            "/mail/send",
            post(
                |State(sink): State<Arc<MailSink>>, headers: HeaderMap| async move {
                    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok())
                    {
                        sink.received
                            .lock()
                            .expect("sink lock")
                            .entry(key.to_string())
                            .or_insert_with(Instant::now);
                    }
                    StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(sink.clone());
    Ok((
        serve_on_free_port(gigs).await?,
        serve_on_free_port(mail).await?,
        sink,
    ))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process of this binary (`serve` or `bench-floor`).
struct ChildProc {
    child: tokio::process::Child,
    port: u16,
}

impl ChildProc {
    async fn spawn(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let child = tokio::process::Command::new(exe)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a child process")?;
        let me = Self { child, port };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = format!("http://127.0.0.1:{port}/healthz");
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(me);
            }
            if Instant::now() > deadline {
                bail!("{args:?} did not become healthy");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident set size so far, in KiB (Linux `VmHWM`).
    fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM for a graceful stop; kill_on_drop is the fallback.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Wait until the mail fake has every key (or `limit` passes); returns how many arrived.
async fn drain(sink: &MailSink, keys: &[String], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let got = {
            let received = sink.received.lock().expect("sink lock");
            keys.iter().filter(|k| received.contains_key(*k)).count()
        };
        if got == keys.len() || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One round's figures.
#[derive(Debug, Clone, Default)]
struct Round {
    ingest_per_s: f64,
    ingest_p50_ms: f64,
    ingest_p99_ms: f64,
    ingest_p999_ms: f64,
    floor_per_s: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    ack_p999_ms: f64,
    e2e_p50_ms: f64,
    e2e_p99_ms: f64,
    peak_rss_mib: f64,
    drain_per_s: f64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn round(
    no: usize,
    opts: &Options,
    gigs: &str,
    mail: &str,
    sink: &Arc<MailSink>,
) -> anyhow::Result<Round> {
    let dir = tempfile::tempdir()?;
    let secret = WebhookSecret::random();
    let whsec = secrecy::ExposeSecret::expose_secret(&secret.to_whsec()).to_string();
    let env = [
        ("GIGS_WEBHOOK_SECRET", whsec),
        ("GIGS_API_URL", gigs.to_string()),
        ("GIGS_PROJECT", "bench".to_string()),
        ("GIGS_TOKEN", "bench-token".to_string()),
        ("MAIL_URL", format!("{mail}/mail/send")),
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("bench.db").display()),
        ),
        (
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
        ("LOG_FORMAT", "json".to_string()),
    ];
    let service = ChildProc::spawn(&["serve"], &env).await?;
    let floor = ChildProc::spawn(&["bench-floor"], &[]).await?;
    let mut r = Round::default();

    // 1. Durable ingest at full speed.
    let p = prepare(&secret, &format!("r{no}t"), opts.events);
    let requests = Arc::new(p.requests);
    let load = closed_loop(
        service.port,
        requests.clone(),
        opts.events,
        opts.concurrency,
    )
    .await?;
    if load.ok != opts.events {
        bail!(
            "ingest: only {} of {} events acknowledged",
            load.ok,
            opts.events
        );
    }
    r.ingest_per_s = load.ok as f64 / load.elapsed.as_secs_f64();
    (r.ingest_p50_ms, r.ingest_p99_ms, r.ingest_p999_ms) = (
        ms(&load.latency, 0.5),
        ms(&load.latency, 0.99),
        ms(&load.latency, 0.999),
    );
    let drain_started = Instant::now();
    let got = drain(sink, &p.keys, Duration::from_secs(300)).await;
    if got != p.keys.len() {
        bail!("only {got} of {} notices delivered", p.keys.len());
    }
    r.drain_per_s = got as f64 / (drain_started.elapsed() + load.elapsed).as_secs_f64();

    // 2. The floor: same requests, same tool, an endpoint that does nothing. It is much
    // faster, so it gets three times the requests to run long enough to measure.
    let load = closed_loop(floor.port, requests, 3 * opts.events, opts.concurrency).await?;
    r.floor_per_s = load.ok as f64 / load.elapsed.as_secs_f64();
    floor.stop().await;

    // 3. Ack latency at 2,000 events/s offered.
    let n = (2000.0 * opts.open_loop_secs) as usize;
    let p = prepare(&secret, &format!("r{no}a"), n);
    let load = open_loop(service.port, Arc::new(p.requests), 2000.0, opts.concurrency).await?;
    if load.ok != n {
        bail!("ack phase: only {} of {n} acknowledged", load.ok);
    }
    (r.ack_p50_ms, r.ack_p99_ms, r.ack_p999_ms) = (
        ms(&load.latency, 0.5),
        ms(&load.latency, 0.99),
        ms(&load.latency, 0.999),
    );
    drain(sink, &p.keys, Duration::from_secs(120)).await;

    // 4. End to end at 500 events/s offered.
    let n = (500.0 * opts.open_loop_secs) as usize;
    let p = prepare(&secret, &format!("r{no}e"), n);
    let load = open_loop(service.port, Arc::new(p.requests), 500.0, opts.concurrency).await?;
    if load.ok != n {
        bail!("end-to-end phase: only {} of {n} acknowledged", load.ok);
    }
    if drain(sink, &p.keys, Duration::from_secs(60)).await != n {
        bail!("end-to-end phase: notices missing");
    }
    let mut e2e = histogram();
    {
        let received = sink.received.lock().expect("sink lock");
        for (key, sent) in p.keys.iter().zip(&load.sent) {
            if let (Some(got), Some(sent)) = (received.get(key), sent) {
                e2e.saturating_record(got.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
    }
    (r.e2e_p50_ms, r.e2e_p99_ms) = (ms(&e2e, 0.5), ms(&e2e, 0.99));

    r.peak_rss_mib = service.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
    service.stop().await;
    Ok(r)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Run the benchmark and print the table.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let (gigs, mail, sink) = start_fakes().await?;
    println!(
        "gigs-notifier bench: {} round(s); {} events at concurrency {} per throughput phase; {} s open-loop phases; {} cores",
        opts.rounds,
        opts.events,
        opts.concurrency,
        opts.open_loop_secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut rounds = Vec::new();
    for no in 0..opts.rounds {
        let r = round(no, &opts, &gigs, &mail, &sink).await?;
        println!(
            "  round {}: ingest {:.0}/s, floor {:.0}/s, ack p99 @2000/s {:.2} ms, e2e p99 @500/s {:.1} ms, peak RSS {:.1} MiB",
            no + 1,
            r.ingest_per_s,
            r.floor_per_s,
            r.ack_p99_ms,
            r.e2e_p99_ms,
            r.peak_rss_mib
        );
        rounds.push(r);
    }
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let ratio = median(
        rounds
            .iter()
            .map(|r| r.ingest_per_s / r.floor_per_s)
            .collect(),
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!();
    println!(
        "| measure (median of {} rounds) | value | target | |",
        rounds.len()
    );
    println!("|---|---|---|---|");
    println!(
        "| bare axum floor, requests/s | {:.0} | | |",
        m(|r| r.floor_per_s)
    );
    println!(
        "| durable ingest, events/s (SQLite, synchronous=FULL) | {:.0} | | |",
        m(|r| r.ingest_per_s)
    );
    println!(
        "| ingest / floor (same run) | {:.2} | >= 0.50 | {} |",
        ratio,
        verdict(ratio >= 0.5)
    );
    println!(
        "| ack latency at full speed p50 / p99 / p99.9, ms | {:.2} / {:.2} / {:.2} | | |",
        m(|r| r.ingest_p50_ms),
        m(|r| r.ingest_p99_ms),
        m(|r| r.ingest_p999_ms)
    );
    let ack99 = m(|r| r.ack_p99_ms);
    println!(
        "| ack latency at 2,000/s offered p50 / p99 / p99.9, ms | {:.2} / {:.2} / {:.2} | p99 <= 10 | {} |",
        m(|r| r.ack_p50_ms),
        ack99,
        m(|r| r.ack_p999_ms),
        verdict(ack99 <= 10.0)
    );
    let e2e99 = m(|r| r.e2e_p99_ms);
    println!(
        "| end-to-end at 500/s offered p50 / p99, ms | {:.1} / {:.1} | p99 <= 250 | {} |",
        m(|r| r.e2e_p50_ms),
        e2e99,
        verdict(e2e99 <= 250.0)
    );
    println!(
        "| delivery throughput after a burst, notices/s | {:.0} | | |",
        m(|r| r.drain_per_s)
    );
    let rss = m(|r| r.peak_rss_mib);
    println!(
        "| peak RSS of serve, MiB | {:.1} | <= 64 | {} |",
        rss,
        verdict(rss <= 64.0)
    );
    Ok(())
}

/// `bench-floor`: the bare endpoint the benchmark compares against.
pub async fn floor(listen: &str) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/webhooks/gigs", post(|| async { StatusCode::OK }))
        .route("/healthz", get(|| async { StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::app::shutdown_signal())
        .await?;
    Ok(())
}

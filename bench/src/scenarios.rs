//! One round: a fresh `serve` (its own database) and a fresh floor, then the phases:
//!
//! 1. closed loop at a fixed concurrency: acknowledged events/s and ack latency; then the
//!    time until every notice of that burst reached the mail fake (delivery throughput);
//! 2. the same requests against the floor: its requests/s, for the ratio;
//! 3. open loop at 2,000/s offered: ack latency from each request's due time;
//! 4. open loop at 500/s offered: end-to-end latency, due time to the mail fake's receipt;
//! 5. the service's peak RSS (`VmHWM`) over the round.
//!
//! During phase 3 a probe fsyncs a file of its own beside the database ([`crate::disk`]),
//! so a round whose acknowledgements were late because the disk stalled says so.
//!
//! With the worker paused (`WORKER_PAUSED=true`) nothing is delivered: phases 1-3 and 5
//! run, the delivery and end-to-end figures are not taken.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use gigs_notifier::config::WebhookSecret;

use crate::children::ChildProc;
use crate::database::{Backend, RoundDb};
use crate::disk::{DiskProbe, Stalls};
use crate::fakes::{drain, Fakes};
use crate::load::{closed_loop, histogram, ms, open_loop};
use crate::requests::prepare;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    /// Events in the closed-loop throughput phase.
    pub events: usize,
    pub concurrency: usize,
    /// Seconds of each open-loop phase.
    pub open_loop_secs: f64,
    /// The service's binary (`serve` is run from it).
    pub service_bin: PathBuf,
    pub backend: Backend,
    /// Start `serve` with `WORKER_PAUSED=true`: bare ingest, no deliveries.
    pub worker_paused: bool,
}

impl Options {
    /// The full run: 3 rounds, medians.
    pub fn full(service_bin: PathBuf, backend: Backend) -> Self {
        Self {
            rounds: 3,
            events: 20_000,
            concurrency: 64,
            open_loop_secs: 10.0,
            service_bin,
            backend,
            worker_paused: false,
        }
    }

    /// CI smoke: proves the benchmark runs; its numbers mean little.
    pub fn quick(service_bin: PathBuf, backend: Backend) -> Self {
        Self {
            rounds: 1,
            events: 1_000,
            concurrency: 16,
            open_loop_secs: 1.0,
            ..Self::full(service_bin, backend)
        }
    }
}

/// One round's figures; `None` where the worker was paused.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub ingest_per_s: f64,
    pub ingest_p50_ms: f64,
    pub ingest_p99_ms: f64,
    pub ingest_p999_ms: f64,
    pub floor_per_s: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub ack_p999_ms: f64,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    pub drain_per_s: Option<f64>,
    pub peak_rss_mib: f64,
    /// CPU of `serve` during the ingest phase per acknowledged event, µs: less sensitive to
    /// what else the shared machine runs than the rates are.
    pub ingest_cpu_us: f64,
    /// The disk probe's fsyncs during the ack phase.
    pub disk: Stalls,
}

/// Run round `no` on its own database, removed afterwards whatever happened.
pub async fn round(no: usize, opts: &Options, fakes: &Fakes) -> anyhow::Result<Round> {
    let db = RoundDb::create(&opts.backend).await?;
    let result = measure(no, opts, fakes, &db).await;
    db.remove().await;
    result
}

async fn measure(no: usize, opts: &Options, fakes: &Fakes, db: &RoundDb) -> anyhow::Result<Round> {
    let sink = &fakes.sink;
    let secret = WebhookSecret::random();
    let whsec = secrecy::ExposeSecret::expose_secret(&secret.to_whsec()).to_string();
    let env = [
        ("GIGS_WEBHOOK_SECRET", whsec),
        ("GIGS_API_URL", fakes.gigs.clone()),
        ("GIGS_PROJECT", "bench".to_string()),
        ("GIGS_TOKEN", "bench-token".to_string()),
        ("MAIL_URL", format!("{}/mail/send", fakes.mail)),
        ("DATABASE_URL", db.url.clone()),
        ("WORKER_PAUSED", opts.worker_paused.to_string()),
        (
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
        ("LOG_FORMAT", "json".to_string()),
        // Notices name a way to reach support (required since the template issue; older
        // service builds ignore it).
        ("SUPPORT_URL", "https://help.bench.example".to_string()),
    ];
    let service = ChildProc::spawn(&opts.service_bin, &["serve"], &env).await?;
    let floor = ChildProc::spawn(&std::env::current_exe()?, &["floor"], &[]).await?;
    let mut r = Round::default();
    let delivered_before = sink.delivered();

    // 1. Durable ingest at full speed.
    let p = prepare(&secret, &format!("r{no}t"), opts.events);
    let requests = Arc::new(p.requests);
    let cpu_before = service.cpu_seconds().unwrap_or(0.0);
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
    r.ingest_cpu_us =
        (service.cpu_seconds().unwrap_or(0.0) - cpu_before) * 1e6 / load.ok.max(1) as f64;
    (r.ingest_p50_ms, r.ingest_p99_ms, r.ingest_p999_ms) = (
        ms(&load.latency, 0.5),
        ms(&load.latency, 0.99),
        ms(&load.latency, 0.999),
    );
    if !opts.worker_paused {
        let drain_started = Instant::now();
        let got = drain(sink, &p.keys, Duration::from_secs(300)).await;
        if got != p.keys.len() {
            bail!("only {got} of {} notices delivered", p.keys.len());
        }
        r.drain_per_s = Some(got as f64 / (drain_started.elapsed() + load.elapsed).as_secs_f64());
    }

    // 2. The floor: same requests, same tool, an endpoint that does nothing. It is much
    // faster, so it gets three times the requests to run long enough to measure.
    let load = closed_loop(floor.port, requests, 3 * opts.events, opts.concurrency).await?;
    r.floor_per_s = load.ok as f64 / load.elapsed.as_secs_f64();
    floor.stop().await;

    // 3. Ack latency at 2,000 events/s offered.
    let n = (2000.0 * opts.open_loop_secs) as usize;
    let p = prepare(&secret, &format!("r{no}a"), n);
    let probe = DiskProbe::start(&db.dir())?;
    let load = open_loop(service.port, Arc::new(p.requests), 2000.0, opts.concurrency).await;
    r.disk = probe.stop()?;
    let load = load?;
    if load.ok != n {
        bail!("ack phase: only {} of {n} acknowledged", load.ok);
    }
    (r.ack_p50_ms, r.ack_p99_ms, r.ack_p999_ms) = (
        ms(&load.latency, 0.5),
        ms(&load.latency, 0.99),
        ms(&load.latency, 0.999),
    );

    if opts.worker_paused {
        // A service that ignores WORKER_PAUSED (an older build) would have sent notices.
        if sink.delivered() != delivered_before {
            bail!(
                "--worker-paused: notices were delivered; this service binary does not know WORKER_PAUSED"
            );
        }
    } else {
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
        (r.e2e_p50_ms, r.e2e_p99_ms) = (Some(ms(&e2e, 0.5)), Some(ms(&e2e, 0.99)));
    }

    r.peak_rss_mib = service.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
    service.stop().await;
    Ok(r)
}

//! What a run prints: one line per round, then a Markdown table of the medians with the
//! targets (the table BENCHMARKS.md quotes).

use crate::scenarios::{Options, Round};

/// Printed before the first round.
pub fn header(opts: &Options) {
    println!(
        "gigs-notifier bench: {} round(s); {} events at concurrency {} per throughput phase; {} s open-loop phases; {} cores",
        opts.rounds,
        opts.events,
        opts.concurrency,
        opts.open_loop_secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "  service: {} serve; database: {}; worker: {}",
        opts.service_bin.display(),
        opts.backend.describe(),
        if opts.worker_paused {
            "paused (WORKER_PAUSED=true)"
        } else {
            "running"
        }
    );
}

/// Printed after each round.
pub fn round(no: usize, r: &Round) {
    let e2e = match r.e2e_p99_ms {
        Some(v) => format!("e2e p99 @500/s {v:.1} ms"),
        None => "e2e n/a (worker paused)".to_string(),
    };
    println!(
        "  round {}: ingest {:.0}/s ({:.2} of floor, {:.0} µs CPU/event), floor {:.0}/s, ack p99 @2000/s {:.2} ms (disk: {} of {} fsyncs stalled, longest {:.1} ms), {e2e}, peak RSS {:.1} MiB",
        no + 1,
        r.ingest_per_s,
        r.ingest_per_s / r.floor_per_s,
        r.ingest_cpu_us,
        r.floor_per_s,
        r.ack_p99_ms,
        r.disk.count,
        r.disk.probes,
        r.disk.longest_ms,
        r.peak_rss_mib
    );
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

/// The table of medians.
pub fn table(opts: &Options, rounds: &[Round]) {
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    // Figures the worker makes: absent from every round when it was paused.
    let mo = |f: fn(&Round) -> Option<f64>| {
        let v: Vec<f64> = rounds.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let ratio = median(
        rounds
            .iter()
            .map(|r| r.ingest_per_s / r.floor_per_s)
            .collect(),
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    const PAUSED: &str = "n/a (worker paused)";
    let ingest = if opts.worker_paused {
        "bare ingest (worker paused)"
    } else {
        "durable ingest"
    };
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
        "| {ingest}, events/s ({}) | {:.0} | | |",
        opts.backend.label(),
        m(|r| r.ingest_per_s)
    );
    println!(
        "| ingest / floor (same run) | {:.2} | >= 0.25 (first asked: 0.50) | {} (0.50: {}) |",
        ratio,
        verdict(ratio >= 0.25),
        verdict(ratio >= 0.5)
    );
    println!(
        "| serve CPU per acknowledged event during ingest, µs | {:.0} | | |",
        m(|r| r.ingest_cpu_us)
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
    println!(
        "| the disk meanwhile: a plain fsync beside the database, stalls >= {} ms / longest, ms | {:.0} / {:.1} | | |",
        crate::disk::STALL.as_millis(),
        m(|r| r.disk.count as f64),
        m(|r| r.disk.longest_ms)
    );
    match (mo(|r| r.e2e_p50_ms), mo(|r| r.e2e_p99_ms)) {
        (Some(p50), Some(p99)) => println!(
            "| end-to-end at 500/s offered p50 / p99, ms | {p50:.1} / {p99:.1} | p99 <= 250 | {} |",
            verdict(p99 <= 250.0)
        ),
        _ => println!("| end-to-end at 500/s offered p50 / p99, ms | {PAUSED} | p99 <= 250 | |"),
    }
    match mo(|r| r.drain_per_s) {
        Some(v) => println!("| delivery throughput after a burst, notices/s | {v:.0} | | |"),
        None => println!("| delivery throughput after a burst, notices/s | {PAUSED} | | |"),
    }
    let rss = m(|r| r.peak_rss_mib);
    println!(
        "| peak RSS of serve, MiB | {:.1} | <= 64 | {} |",
        rss,
        verdict(rss <= 64.0)
    );
}

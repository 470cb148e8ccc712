//! `gigs-notifier-bench`: how fast the real service acknowledges and delivers, beside the
//! HTTP floor. Not part of the deployed binary: it runs an already built service binary
//! (`target/release/gigs-notifier` by default) as a child process, `serve`, with instant
//! fakes of the Core API and the mail service, and a bare axum child of its own (`floor`),
//! and drives both with one load tool. See BENCHMARKS.md.
//!
//! Rooms: `scenarios` (a round and its phases), `load` (the load tool), `requests` (signed
//! events), `fakes` (Core API and mail fakes), `children` (the processes under test),
//! `database` (each round's database), `disk` (the fsync probe beside it), `report` (what is
//! printed), `floor` (the bare endpoint).

mod children;
mod database;
mod disk;
mod fakes;
mod floor;
mod load;
mod report;
mod requests;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::database::Backend;
use crate::scenarios::Options;

#[derive(Parser)]
#[command(
    name = "gigs-notifier-bench",
    about = "Measure the service's ingest throughput, ack and end-to-end latency, peak RSS (see BENCHMARKS.md)"
)]
struct Cli {
    /// A short smoke run for CI: proves the benchmark works, numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Rounds to take the median of.
    #[arg(long)]
    rounds: Option<usize>,
    /// Events in each throughput phase.
    #[arg(long)]
    events: Option<usize>,
    /// Connections the load tool keeps open.
    #[arg(long)]
    concurrency: Option<usize>,
    /// The service binary to run `serve` from [default: target/release/gigs-notifier of
    /// this workspace]. Nothing is built: run `cargo build --release` first.
    #[arg(long, value_name = "PATH")]
    service_bin: Option<PathBuf>,
    /// Run the service against PostgreSQL: a fresh database per round is created through
    /// this admin URL and dropped after [default: a fresh SQLite file in a temporary dir].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Start the service with WORKER_PAUSED=true: bare ingest, no processing or delivery
    /// (the end-to-end and delivery figures are not taken).
    #[arg(long)]
    worker_paused: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The bare endpoint the benchmark compares against (listens on LISTEN_ADDR).
    #[command(hide = true)]
    Floor,
}

/// mimalloc, as in the service: the floor and the load tool allocate as it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `target/release/gigs-notifier` of this workspace (`CARGO_TARGET_DIR` if set).
fn default_service_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("release").join("gigs-notifier")
}

fn options(cli: Cli) -> anyhow::Result<Options> {
    let service_bin = cli.service_bin.unwrap_or_else(default_service_bin);
    if !service_bin.is_file() {
        bail!(
            "no service binary at {}: run `cargo build --release -p gigs-notifier` first, or pass --service-bin PATH",
            service_bin.display()
        );
    }
    let backend = Backend::parse(cli.database.as_deref())?;
    let mut opts = if cli.quick {
        Options::quick(service_bin, backend)
    } else {
        Options::full(service_bin, backend)
    };
    opts.rounds = cli.rounds.unwrap_or(opts.rounds).max(1);
    opts.events = cli.events.unwrap_or(opts.events).max(1);
    opts.concurrency = cli.concurrency.unwrap_or(opts.concurrency).max(1);
    opts.worker_paused = cli.worker_paused;
    Ok(opts)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Floor) = cli.command {
        let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".into());
        return floor::run(&listen).await;
    }
    let opts = options(cli)?;
    let fakes = fakes::start().await?;
    report::header(&opts);
    let mut rounds = Vec::new();
    for no in 0..opts.rounds {
        let r = scenarios::round(no, &opts, &fakes).await?;
        report::round(no, &r);
        rounds.push(r);
    }
    report::table(&opts, &rounds);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

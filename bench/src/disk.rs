//! The disk beside the service: a plain file in the database's directory, 4 KiB written and
//! fsynced every [`EVERY`] while the ack phase runs. Every acknowledgement waits for an
//! fsync, so when the disk stalls (a shared virtual disk does, for tens of milliseconds,
//! whatever writes to it), every acknowledgement due meanwhile is late by as much. The
//! probe tells such a round from a slow service: its fsyncs stall too, and the report
//! shows how long. It writes about as much per second as 25 deliveries, next to 2,000.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Between two probes.
const EVERY: Duration = Duration::from_millis(20);

/// An fsync at least this long counts as a stall (a commit here takes well under 1 ms).
pub const STALL: Duration = Duration::from_millis(10);

/// What the probe saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stalls {
    /// Probes taken.
    pub probes: usize,
    /// Probes of [`STALL`] or longer.
    pub count: usize,
    /// The longest probe, ms.
    pub longest_ms: f64,
}

/// A running probe; [`DiskProbe::stop`] ends it.
pub struct DiskProbe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<Stalls>>,
    path: PathBuf,
}

impl DiskProbe {
    /// Start probing with a file of its own in `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(format!("bench-fsync-probe-{}", std::process::id()));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("disk probe: cannot create {}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("disk-probe".into())
            .spawn(move || {
                let block = [0x5au8; 4096];
                let mut seen = Stalls::default();
                while !stopped.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    // Written in place, as SQLite's WAL is between two restarts.
                    file.write_all_at(&block, 0)?;
                    file.sync_all()?;
                    let took = started.elapsed();
                    seen.probes += 1;
                    seen.count += usize::from(took >= STALL);
                    seen.longest_ms = seen.longest_ms.max(took.as_secs_f64() * 1e3);
                    std::thread::sleep(EVERY.saturating_sub(took));
                }
                Ok(seen)
            })?;
        Ok(Self { stop, thread, path })
    }

    /// Stop probing, remove the file, and say what was seen.
    pub fn stop(self) -> anyhow::Result<Stalls> {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("disk probe panicked"))?
            .context("disk probe: write or fsync failed")?;
        std::fs::remove_file(&self.path).ok();
        Ok(seen)
    }
}

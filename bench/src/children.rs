//! The processes under test: the service's own binary (`serve`) and this binary's floor,
//! each started on a free loopback port, waited for until `/healthz` answers, and stopped
//! with SIGTERM.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A child process listening on `LISTEN_ADDR=127.0.0.1:port`.
pub struct ChildProc {
    child: tokio::process::Child,
    pub port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl ChildProc {
    /// Start `program args…` with `env` and wait until it is healthy (20 s at most).
    pub async fn spawn(
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (OsStr::new(k), v.as_str())))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut me = Self { child, port };
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/healthz");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(me);
            }
            if let Some(status) = me.child.try_wait()? {
                bail!(
                    "{} {args:?} exited ({status}) before it was healthy; run it by hand with the same settings to see why",
                    program.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} {args:?} did not become healthy", program.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident set size so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
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

    /// CPU time the process has used so far (user + system), from `/proc/PID/stat`
    /// (in clock ticks of 1/100 s, Linux's `USER_HZ`).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    }

    /// SIGTERM for a graceful stop, then wait up to 10 s; kill_on_drop is the fallback.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

//! HAProxy in front of `serve` processes, on the configuration `deploy/compose.yaml` ships
//! (`deploy/haproxy/haproxy.cfg`, whose addresses come from the environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// HAProxy on `deploy/haproxy/haproxy.cfg`, stopped when dropped.
pub struct Haproxy {
    child: Child,
    /// Where deliveries go in.
    pub port: u16,
    /// The status page (`/stats;csv`).
    pub stats: u16,
    /// HAProxy's own output (errors and abnormal answers only).
    pub log: PathBuf,
}

impl Haproxy {
    /// Start HAProxy before `replicas` (ports on 127.0.0.1); fails the test if it is not
    /// installed.
    pub fn start(replicas: [u16; 2], log_dir: &Path) -> Self {
        let bin = find_haproxy().unwrap_or_else(|| {
            panic!(
                "HAProxy is not installed, and this test needs a real load balancer: run \
                 scripts/install-test-tools.sh (as .ci/run does) or `apt-get install haproxy`"
            )
        });
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy/haproxy.cfg");
        let (port, stats) = (free_port(), free_port());
        let log = log_dir.join("haproxy.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["-db", "-f", config])
            .env("LB_BIND", format!("127.0.0.1:{port}"))
            .env("LB_STATS_BIND", format!("127.0.0.1:{stats}"))
            .env("REPLICA_1", format!("127.0.0.1:{}", replicas[0]))
            .env("REPLICA_2", format!("127.0.0.1:{}", replicas[1]))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("haproxy starts");
        Self {
            child,
            port,
            stats,
            log,
        }
    }

    /// Each server's state from the status page (`UP`, `DOWN`, `UP 1/2`, …).
    pub async fn states(&self, client: &reqwest::Client) -> BTreeMap<String, String> {
        let url = format!("http://127.0.0.1:{}/stats;csv", self.stats);
        let Ok(r) = client.get(url).send().await else {
            return BTreeMap::new();
        };
        let text = r.text().await.unwrap_or_default();
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
            return BTreeMap::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > st && f[px] == "replicas")
            .map(|f| (f[sv].to_string(), f[st].to_string()))
            .collect()
    }

    /// Wait until HAProxy has `server` (`replica1`/`replica2`) in `state`.
    pub async fn wait_for_state(&self, client: &reqwest::Client, server: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.states(client).await.get(server).map(String::as_str) == Some(state) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy never saw {server} {state}: {:?}\n{}",
                self.states(client).await,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `haproxy` on PATH, or where Debian puts it.
fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago (for a process that must listen on a known port).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

//! Running the real binary: `serve` as a child process, like a container would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wiremock::MockServer;

use super::{PROJECT, SECRET};

pub const BIN: &str = env!("CARGO_BIN_EXE_gigs-notifier");

/// `WORKER_CONCURRENCY` of the replicas in the multi-replica tests: also how many notices a
/// killed replica may have sent without recording them (resent under the same key).
pub const REPLICA_CONCURRENCY: usize = 32;

/// The fixtures the multi-replica tests cycle through, with the notice kind each makes.
pub const REPLICA_FIXTURES: [(&str, &str); 4] = [
    ("subscription.created.json", "subscription_created"),
    ("subscription.renewed.json", "subscription_renewed"),
    (
        "portOutCredentials.issued.json",
        "port_out_credentials_issued",
    ),
    ("subscription.canceled.json", "subscription_canceled"),
];

pub fn base_env(db_url: &str, gigs: &str, mail: &str) -> Vec<(String, String)> {
    [
        ("GIGS_WEBHOOK_SECRET", SECRET.to_string()),
        ("GIGS_API_URL", gigs.to_string()),
        ("GIGS_PROJECT", PROJECT.to_string()),
        ("GIGS_TOKEN", "test-token".to_string()),
        ("MAIL_URL", format!("{mail}/mail/send")),
        ("DATABASE_URL", db_url.to_string()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_string()),
        ("BACKOFF_BASE_MS", "20".to_string()),
        ("WORKER_POLL_MS", "50".to_string()),
        ("LEASE_SECS", "1".to_string()),
        ("HTTP_TIMEOUT_SECS", "5".to_string()),
        ("RUST_LOG", "info".to_string()),
        ("SUPPORT_EMAIL", super::SUPPORT_EMAIL.to_string()),
        // Stop at once on SIGTERM: no load balancer is in front of these tests' processes
        // (tests/drain.rs and tests/load_balancer.rs set their own).
        ("DRAIN_SECS", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A running `serve` process and the port it listens on.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn serve(env: &[(String, String)]) -> Served {
    start(serve_command(env))
}

/// `serve` allowed only `files` open descriptors (soft and hard limit), like a container
/// started with `--ulimit nofile=N`.
pub fn serve_with_open_files(env: &[(String, String)], files: u64) -> Served {
    use std::os::unix::process::CommandExt;
    let mut command = serve_command(env);
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let limit = rustix::process::Rlimit {
                current: Some(files),
                maximum: Some(files),
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    start(command)
}

fn serve_command(env: &[(String, String)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env_clear()
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn start(mut command: Command) -> Served {
    let mut child = command.spawn().expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"listening\"") {
                if let Some(tx) = tx.take() {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let addr: std::net::SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
                    let _ = tx.send(addr.port());
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve logs its address");
    Served { child, port, log }
}

pub async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn distinct_keys(mail: &MockServer) -> std::collections::HashSet<String> {
    mail.received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .collect()
}

impl Served {
    /// SIGTERM, then wait for the process to exit.
    pub fn terminate(&mut self) {
        unsafe { kill(self.child.id() as i32, 15) };
        self.child.wait().unwrap();
    }

    /// Send `sig` (e.g. 15 for SIGTERM, 2 for SIGINT) without waiting.
    pub fn signal(&self, sig: i32) {
        unsafe { kill(self.child.id() as i32, sig) };
    }

    /// Wait for the process to exit by itself, at most `limit` (then it is killed and the
    /// test fails).
    pub async fn exited_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!("the process did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then reap it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Run the real binary with exactly `env`; (success, stdout, stderr).
pub async fn run_with_env(env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("binary runs")
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

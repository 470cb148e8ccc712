//! The load tool: keep-alive HTTP/1.1 connections (tokio + `httparse`) opened before the
//! clock starts, sending pre-built requests in a closed loop (throughput) or an open loop
//! (latency at an offered rate, without coordinated omission). Latencies go into HDR
//! histograms in microseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A histogram of microseconds, 1 µs to 120 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// The `q` quantile of a microsecond histogram, in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Result of one load phase.
pub struct Load {
    /// Requests answered 2xx.
    pub ok: usize,
    pub elapsed: Duration,
    /// Microseconds.
    pub latency: Histogram<u64>,
    /// When each request was due (open loop only; empty for the closed loop).
    pub sent: Vec<Option<Instant>>,
}

/// Closed loop: `concurrency` connections, each sending its next request when the last
/// one was answered, until `total` requests (cycling through `requests`) are answered.
pub async fn closed_loop(
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
/// counts from that due time, so queueing in the tool counts too.
pub async fn open_loop(
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

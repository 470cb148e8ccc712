//! `replay`: sign event files the way Gigs (Svix) does and POST them, printing each answer.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::WebhookSecret;
use crate::webhook::sign;

/// The answer to one delivery.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sign `body` with a fresh message id and the current time, and POST it to `url`.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &WebhookSecret,
    body: &[u8],
) -> reqwest::Result<Answer> {
    let msg_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let ts = chrono::Utc::now().timestamp();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(secret, &msg_id, ts, body))
        .body(body.to_vec())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(Answer { status, body })
}

/// Expand directories into their `*.json` files, sorted; keep files as given.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Replay files, printing one line per file and a summary. Fails only if a request could
/// not be made at all (the answers themselves, 4xx included, are what the user asked to see).
pub async fn run(url: &str, secret: &WebhookSecret, paths: &[PathBuf]) -> anyhow::Result<bool> {
    let files = expand(paths)?;
    let client = crate::outbound::http_client(std::time::Duration::from_secs(30));
    let total = files.len();
    let (mut ok, mut client_err, mut server_err, mut failed) = (0, 0, 0, 0);
    for (i, file) in files.iter().enumerate() {
        let body = read(file)?;
        match deliver(&client, url, secret, &body).await {
            Ok(a) => {
                match a.status {
                    200..=299 => ok += 1,
                    400..=499 => client_err += 1,
                    _ => server_err += 1,
                }
                println!(
                    "[{}/{total}] {} -> {} {}",
                    i + 1,
                    file.display(),
                    a.status,
                    a.body.trim()
                );
            }
            Err(e) => {
                failed += 1;
                println!(
                    "[{}/{total}] {} -> request failed: {}",
                    i + 1,
                    file.display(),
                    e.without_url()
                );
            }
        }
    }
    println!(
        "replayed {total} file(s): {ok} 2xx, {client_err} 4xx, {server_err} 5xx, {failed} failed"
    );
    Ok(failed == 0)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

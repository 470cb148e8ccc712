//! Instant in-process fakes of what `serve` calls: the Gigs Core API (every subscription
//! belongs to one user) and the mail service, which answers 202 at once and notes when each
//! idempotency key first arrived (the end of the end-to-end measure).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

/// What the mail fake received: idempotency key → first arrival.
#[derive(Default)]
pub struct MailSink {
    pub received: Mutex<HashMap<String, Instant>>,
}

impl MailSink {
    /// How many notices arrived so far.
    pub fn delivered(&self) -> usize {
        self.received.lock().expect("sink lock").len()
    }
}

/// The fakes' base URLs: (Core API, mail service), and the mail fake's record.
pub struct Fakes {
    pub gigs: String,
    pub mail: String,
    pub sink: Arc<MailSink>,
}

/// Serve `router` on a free loopback port in the background; returns its base URL.
async fn serve_on_free_port(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

pub async fn start() -> anyhow::Result<Fakes> {
    let gigs = Router::new()
        .route(
            "/projects/{project}",
            get(|Path(id): Path<String>| async move {
                Json(json!({"object": "project", "id": id, "name": "Bench Mobile", "locales": ["en-US"]}))
            }),
        )
        .route(
            "/projects/{project}/subscriptions/{id}",
            get(|Path((_, id)): Path<(String, String)>| async move {
                // A person of its own per line (see `requests`).
                Json(json!({"object": "subscription", "id": id, "user": {"object": "user", "id": "usr_bench", "email": format!("{id}@example.com")}}))
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
    Ok(Fakes {
        gigs: serve_on_free_port(gigs).await?,
        mail: serve_on_free_port(mail).await?,
        sink,
    })
}

/// Wait until the mail fake has every key (or `limit` passes); returns how many arrived.
pub async fn drain(sink: &MailSink, keys: &[String], limit: Duration) -> usize {
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

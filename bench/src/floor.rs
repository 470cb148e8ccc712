//! The floor: a bare axum endpoint that answers 200 and does nothing, run as a child process
//! of this binary (`gigs-notifier-bench floor`) so it is measured the way `serve` is.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

/// Serve `POST /webhooks/gigs` and `GET /healthz` on `listen` until SIGTERM or Ctrl-C.
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/webhooks/gigs", post(|| async { StatusCode::OK }))
        .route("/healthz", get(|| async { StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(gigs_notifier::app::shutdown_signal())
        .await?;
    Ok(())
}

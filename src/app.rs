//! Startup: one builder that wires settings into a running service, so `serve`, `demo` and
//! the tests all start the same thing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::gigs::GigsClient;
use crate::mail::MailClient;
use crate::outbound::http_client;
use crate::request_context::RequestContextLayer;
use crate::store::Store;
use crate::webhook::{self, AppState, Verifier};
use crate::worker::{run_purger, Worker};

/// A built, not yet running service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    worker: Worker,
    store: Store,
    settings: Settings,
    /// Set when the drain begins: `/readyz` fails from then on.
    draining: crate::shutdown::Draining,
}

impl Application {
    /// Connect the store (running migrations), bind the listener, build the clients.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.store.audit_key.is_none() {
            tracing::warn!(
                "AUDIT_HASH_KEY is not set: audit records hash addresses under a key kept in the \
                 database; set AUDIT_HASH_KEY to keep the key apart from the data"
            );
        }
        let store = Store::connect_with(&settings.database_url, &settings.store)
            .await
            .context("DATABASE_URL: cannot open the database")?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("LISTEN_ADDR: cannot listen on {}", settings.listen_addr))?;
        Ok(Self::with_parts(settings, store, listener))
    }

    fn with_parts(settings: Settings, store: Store, listener: TcpListener) -> Self {
        let http = http_client(settings.http_timeout);
        let gigs = GigsClient::new(
            http.clone(),
            settings.gigs_api_url.clone(),
            settings.gigs_project.clone(),
            settings.gigs_token.clone(),
        );
        let mail = MailClient::new(http, settings.mail_url.clone(), settings.mail_token.clone());
        let wake = Arc::new(Notify::new());
        let draining = crate::shutdown::Draining::default();
        let worker = Worker::new(&settings, store.clone(), gigs, mail, wake.clone());
        let state = AppState {
            verifier: Arc::new(Verifier::new(
                &settings.webhook_secrets,
                settings.timestamp_tolerance,
            )),
            store: store.clone(),
            wake,
            metrics: crate::telemetry::metrics_handle(),
            counters: Arc::new(webhook::IngressMetrics::register()),
            body_limit: settings.body_limit_bytes,
            body_timeout: settings.body_read_timeout,
            draining: draining.clone(),
        };
        let router = webhook::router(state.clone())
            .merge(crate::admin::router(state, &settings))
            .layer(RequestContextLayer::new(draining.clone()));
        Self {
            listener,
            router,
            worker,
            store,
            settings,
            draining,
        }
    }

    /// The store this service uses (for `demo` and tests to inspect).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The bound port (useful with `LISTEN_ADDR=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serve until `shutdown` resolves: then stop accepting at once (no drain), finish
    /// in-flight requests, let the worker finish or hand back its claims, and close the
    /// store. For embedders that stop the service themselves (`demo`, tests).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.run(shutdown, std::future::pending(), Duration::ZERO)
            .await
    }

    /// What `serve` runs: the first SIGTERM or SIGINT starts the drain (`DRAIN_SECS`, see
    /// [`crate::shutdown`]), a second cuts it short; then as [`Self::run_until_stopped`].
    pub async fn run_until_signalled(
        self,
        signals: crate::shutdown::Signals,
    ) -> anyhow::Result<()> {
        let (begin, hurry) = signals.stages();
        let drain = self.settings.drain;
        self.run(begin.cancelled_owned(), hurry.cancelled_owned(), drain)
            .await
    }

    /// Serve; when `begin` resolves, drain for `drain` (or until `hurry`), then stop.
    async fn run(
        self,
        begin: impl Future<Output = ()> + Send + 'static,
        hurry: impl Future<Output = ()> + Send + 'static,
        drain: Duration,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let worker = tokio::spawn(self.worker.clone().run(stop.clone()));
        let purger = tokio::spawn(run_purger(
            self.store.clone(),
            self.settings.retention,
            self.settings.audit_retention,
            self.settings.purge_interval,
            stop.clone(),
        ));
        tracing::info!(addr = %self.listener.local_addr()?, "listening");
        let stop_server = stop.clone();
        let limits = crate::server::Limits::from_settings(&self.settings);
        let draining = self.draining.clone();
        crate::server::serve(self.listener, self.router, limits, async move {
            crate::shutdown::drain_then_stop(begin, hurry, drain, draining).await;
            tracing::info!("shutting down: no new connections, finishing requests in flight");
            stop_server.cancel();
        })
        .await;
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
        let _ = purger.await;
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

//! PostgreSQL: how the store connects (a `statement_timeout` on every connection, so one
//! stuck statement cannot stall the write queue) and its own migrations, run under sqlx's
//! advisory lock so replicas starting together do not race.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use super::{StoreError, StoreOptions};

/// Connect and migrate; one pool serves reads and writes.
pub(super) async fn open(url: &str, opts: &StoreOptions) -> Result<AnyPool, StoreError> {
    let timeout_ms = opts.statement_timeout.as_millis().min(i32::MAX as u128);
    let pool = AnyPoolOptions::new()
        // Short: while the database is away, deliveries get a prompt 503 (Svix gives about
        // 15 s per attempt) rather than hanging.
        .acquire_timeout(Duration::from_secs(3))
        .min_connections(0)
        .max_connections(16)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let set = format!("SET statement_timeout = {timeout_ms}");
                conn.execute(set.as_str()).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

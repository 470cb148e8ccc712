//! PostgreSQL: how the store connects (a `statement_timeout` on every connection, so one
//! stuck statement cannot stall the write queue), its own migrations, run under sqlx's
//! advisory lock so replicas starting together do not race, and how one group-commit
//! batch is committed: the deliveries, then the worker's part inside a savepoint, as on
//! SQLite's writer ([`super::sqlite_writer`]), so a completion that fails for a reason of
//! its own (a constraint, a rule of ours) is rolled back alone and cannot turn the
//! deliveries or the other results of its batch away.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor};

use super::apply::{self, Outcomes};
use super::batch::WriteOp;
use super::sqlx_tx::SqlxTx;
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

/// Commit a batch. A deadlock or serialization failure (replicas writing the same ids at
/// once) is retried whole, since the database rolled everything back; any other failure
/// of the database fails the batch.
pub(super) async fn commit(
    conn: &mut AnyConnection,
    ops: &[WriteOp],
) -> Result<Outcomes, sqlx::Error> {
    let mut tries = 0;
    loop {
        match commit_once(conn, ops).await {
            Err(sqlx::Error::Database(e))
                if tries < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tries += 1;
                tracing::warn!(code = ?e.code(), "batched commit hit a transient conflict; retrying");
            }
            other => return other,
        }
    }
}

async fn commit_once(conn: &mut AnyConnection, ops: &[WriteOp]) -> Result<Outcomes, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut out = apply::answers(ops);
    apply::deliveries(
        &mut SqlxTx { conn: &mut tx },
        ops,
        super::now_ms(),
        &mut out,
    )
    .await?;
    let failed = apply::work_apart(&mut SqlxTx { conn: &mut tx }, ops, &mut out).await?;
    tx.commit().await?;
    let failed = failed
        .into_iter()
        .map(|(i, e)| (i, StoreError::Database(e)));
    Ok(apply::outcomes(out, failed.collect()))
}

#[cfg(all(test, pg_tests))]
mod tests {
    use sqlx::{AnyConnection, Connection, Row};

    use super::*;
    use crate::store::batch::WriteOut;
    use crate::store::test_ops::{
        bad_completion, event, failed_alone, good_completion, unstorable_completion,
    };
    use crate::store::{InsertOutcome, Store};

    #[tokio::test]
    async fn a_failing_worker_part_is_rolled_back_while_the_deliveries_of_its_batch_commit() {
        // Refused before any statement: the transaction never saw an error.
        worker_part_fails_alone(bad_completion(), "recipient hashes").await;
    }

    #[tokio::test]
    async fn a_worker_statement_the_database_refuses_is_rolled_back_alone() {
        // Refused by PostgreSQL (SQLSTATE 22021) after the event's row was already marked
        // done: the transaction is aborted until it rolls back to the savepoint.
        worker_part_fails_alone(unstorable_completion(), "0x00").await;
    }

    /// A batch of one delivery and the completion `bad`: the delivery commits, `bad` is
    /// answered with an error naming `why`, and nothing of it is kept.
    async fn worker_part_fails_alone(bad: WriteOp, why: &str) {
        let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL is set");
        let name = format!("gn_unit_{}", uuid::Uuid::new_v4().simple());
        let mut root = sqlx::PgConnection::connect(&admin).await.unwrap();
        root.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let store = Store::connect(url.as_str()).await.unwrap();
        let mut conn = AnyConnection::connect(url.as_str()).await.unwrap();

        let setup = commit(&mut conn, &[event("evt_claimed"), event("evt_good")])
            .await
            .unwrap();
        assert!(matches!(
            setup[0],
            Ok(WriteOut::Inserted(InsertOutcome::Stored))
        ));
        conn.execute(
            "UPDATE events SET claim_token = 'wkr_test', lease_until = 9000000000000000 \
             WHERE id IN ('evt_claimed', 'evt_good')",
        )
        .await
        .unwrap();

        let out = commit(
            &mut conn,
            &[event("evt_delivered"), bad, good_completion("evt_good")],
        )
        .await
        .expect("the batch commits");

        let err = failed_alone(&out, why);
        assert_eq!(err.class(), crate::store::ErrorClass::Bug, "{err}");
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM events WHERE id = 'evt_delivered') AS delivered, \
             (SELECT state FROM events WHERE id = 'evt_claimed') AS state, \
             (SELECT COUNT(*) FROM notices WHERE event_id = 'evt_claimed') \
             + (SELECT COUNT(*) FROM notice_audit WHERE event_id = 'evt_claimed') AS notices, \
             (SELECT state FROM events WHERE id = 'evt_good') AS good, \
             (SELECT COUNT(*) FROM notices WHERE event_id = 'evt_good') AS good_notices",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(row.get::<i64, _>("delivered"), 1, "the delivery committed");
        assert_eq!(
            (
                row.get::<String, _>("state").as_str(),
                row.get::<i64, _>("notices")
            ),
            ("pending", 0),
            "nothing of the completion was kept"
        );
        assert_eq!(
            (
                row.get::<String, _>("good").as_str(),
                row.get::<i64, _>("good_notices")
            ),
            ("done", 1),
            "the completion beside it was"
        );

        conn.close().await.unwrap();
        store.close().await;
        root.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
    }
}

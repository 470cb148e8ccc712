//! What operators and the purger do with the store: queue depths, dead letters (list,
//! show, retry, purge) and retention. Off the hot path, so plain statements on the pools.

use sqlx::Row;

use super::state::State;
use super::{audit, DeadLetter, Queue, Store, StoreError};

impl Store {
    /// Rows per queue and state (for metrics and operators).
    pub async fn depth(&self) -> Result<Vec<(Queue, String, i64)>, StoreError> {
        let mut out = Vec::new();
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "SELECT state, COUNT(*) AS n FROM {} GROUP BY state",
                queue.table()
            );
            for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                out.push((queue, row.try_get("state")?, row.try_get("n")?));
            }
        }
        Ok(out)
    }

    /// Rows that still have work (pending), across both queues.
    pub async fn pending(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT (SELECT COUNT(*) FROM events WHERE state = {p}) + \
             (SELECT COUNT(*) FROM notices WHERE state = {p}) AS n",
            p = State::Pending.sql()
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Every dead letter, newest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_matching(None).await
    }

    /// One dead letter, by event or notice id.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self.dead_letters_matching(Some(id)).await?.pop())
    }

    async fn dead_letters_matching(&self, id: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for (queue, sql) in [
            (
                Queue::Events,
                "SELECT id, event_type AS kind, id AS event_id, attempts, last_error, finished_at \
                 FROM events WHERE state = ",
            ),
            (
                Queue::Notices,
                "SELECT id, kind, event_id, attempts, last_error, finished_at FROM notices \
                 WHERE state = ",
            ),
        ] {
            let sql = format!("{sql}{}", State::Dead.sql());
            let rows = match id {
                Some(id) => {
                    sqlx::query(&format!("{sql} AND id = $1"))
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?
                }
                None => sqlx::query(&sql).fetch_all(&self.pool).await?,
            };
            for row in rows {
                out.push(DeadLetter {
                    queue: queue.name(),
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    event_id: row.try_get("event_id")?,
                    attempts: row.try_get("attempts")?,
                    last_error: row.try_get("last_error")?,
                    finished_at: row.try_get("finished_at")?,
                });
            }
        }
        out.sort_by(|a, b| b.finished_at.cmp(&a.finished_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// (notice id, event id) of every stored notice, oldest first (for `demo`).
    pub async fn notice_index(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, event_id FROM notices ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("event_id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The stored payload of an event (for `dead-letters show`; mask before printing).
    pub async fn event_payload(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT payload FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("payload")).transpose()?)
    }

    /// Put a dead letter back in its queue, due now, with a fresh age budget.
    /// `id` may name an event or a notice. Returns whether anything was dead under that id.
    pub async fn retry_dead_letter(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let _turn = self.take_turn().await?;
        let mut n = 0;
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "UPDATE {} SET state = {pending}, next_attempt_at = $1, attempts_since = $1, \
                 attempts = 0, lease_until = 0, claim_token = NULL, finished_at = NULL \
                 WHERE id = $2 AND state = {dead}",
                queue.table(),
                pending = State::Pending.sql(),
                dead = State::Dead.sql()
            );
            let requeued = sqlx::query(&sql)
                .bind(now)
                .bind(id)
                .execute(&self.write)
                .await?
                .rows_affected();
            if queue == Queue::Notices && requeued > 0 {
                audit::reopen(&self.write, id).await?;
            }
            n += requeued;
        }
        Ok(n > 0)
    }

    /// Delete a dead letter for good (an operator decided it needs no delivery); its
    /// stored payload goes with it. Returns whether anything was dead under that id.
    pub async fn purge_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let _turn = self.take_turn().await?;
        let mut n = 0;
        for queue in [Queue::Events, Queue::Notices] {
            let sql = format!(
                "DELETE FROM {} WHERE id = $1 AND state = {}",
                queue.table(),
                State::Dead.sql()
            );
            n += sqlx::query(&sql)
                .bind(id)
                .execute(&self.write)
                .await?
                .rows_affected();
        }
        Ok(n > 0)
    }

    /// Delete processed events and sent notices finished before `before` (dead letters
    /// stay until an operator deals with them). Returns (events, notices) deleted. Their
    /// audit records stay: see [`Store::purge_audit`].
    pub async fn purge(&self, before: i64) -> Result<(u64, u64), StoreError> {
        let _turn = self.take_turn().await?;
        let sent = format!(
            "DELETE FROM notices WHERE state = {} AND finished_at < $1",
            State::Sent.sql()
        );
        let notices = sqlx::query(&sent)
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected();
        // An event stays while any of its notices is still pending or dead, so its
        // payload is there for an operator's `show` and its id still deduplicates.
        let done = format!(
            "DELETE FROM events WHERE state = {} AND finished_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM notices WHERE notices.event_id = events.id)",
            State::Done.sql()
        );
        let events = sqlx::query(&done)
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok((events, notices))
    }
}

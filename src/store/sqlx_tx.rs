//! The batch statements through sqlx, for PostgreSQL (numbered `$n` parameters, multi-row
//! statements: every statement is a network round trip, so a batch makes as few as it
//! can). Claims take `FOR UPDATE SKIP LOCKED`, so replicas never claim the same row.

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::apply::{BatchTx, QueuedNotice};
use super::batch::{ClaimRequest, InsertOutcome};
use super::complete::{Claimed, Completion};
use super::sql::{param_list, values_list};
use super::state::State;
use super::{ClaimedEvent, ClaimedNotice, NewEvent, Queue};
use crate::audit::AttemptRecord;

/// An open transaction on a sqlx connection.
pub(super) struct SqlxTx<'c> {
    pub conn: &'c mut AnyConnection,
}

impl BatchTx for SqlxTx<'_> {
    type Error = sqlx::Error;

    async fn probe(&mut self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// One multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id`: the ids that come back
    /// were new.
    async fn insert_events(
        &mut self,
        events: &[&NewEvent],
    ) -> Result<Vec<InsertOutcome>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // received_at (4th parameter of a row) doubles as the first due time and the start
        // of the age budget.
        let sql = format!(
            "INSERT INTO events (id, event_type, payload, next_attempt_at, received_at, \
             attempts_since) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
            values_list(events.len(), &[1, 2, 3, 4, 4, 4])
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for e in events {
            q = q
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(&e.payload)
                .bind(e.received_at);
        }
        let stored: HashSet<String> = q.fetch_all(&mut *self.conn).await?.into_iter().collect();
        let mut seen = HashSet::new();
        Ok(events
            .iter()
            .map(|e| {
                if stored.contains(&e.id) && seen.insert(e.id.as_str()) {
                    InsertOutcome::Stored
                } else {
                    InsertOutcome::Duplicate
                }
            })
            .collect())
    }

    async fn finish(
        &mut self,
        queue: Queue,
        token: &str,
        now: i64,
        ids: &[&str],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let sql = format!(
            "UPDATE {} SET state = {}, finished_at = $1, lease_until = 0, claim_token = NULL, \
             last_error = NULL WHERE claim_token = $2 AND state = {} AND id IN ({}) RETURNING id",
            queue.table(),
            queue.finished_state().sql(),
            State::Pending.sql(),
            param_list(3, ids.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(now).bind(token);
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(&mut *self.conn).await?.into_iter().collect())
    }

    /// The audit records in one statement per 256, the notices in another.
    async fn queue_notices(&mut self, rows: &[QueuedNotice<'_>]) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(256) {
            let sql = format!(
                "INSERT INTO notice_audit (notice_id, event_id, event_type, kind, \
                 subscription_id, user_id, recipient_hash, created_at) VALUES {} \
                 ON CONFLICT (notice_id) DO NOTHING",
                values_list(chunk.len(), &[1, 2, 3, 4, 5, 6, 7, 8])
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(&r.notice.id)
                    .bind(r.event_id)
                    .bind(&r.notice.event_type)
                    .bind(r.notice.kind)
                    .bind(&r.notice.subscription_id)
                    .bind(&r.notice.user_id)
                    .bind(r.recipient_hash)
                    .bind(r.now);
            }
            q.execute(&mut *self.conn).await?;
        }
        for chunk in rows.chunks(256) {
            let sql = format!(
                "INSERT INTO notices (id, event_id, kind, recipient, subject, content, html, \
                 next_attempt_at, created_at, attempts_since, event_received_at) VALUES {} \
                 ON CONFLICT (id) DO NOTHING",
                values_list(chunk.len(), &[1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 9])
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                let n = r.notice;
                q = q
                    .bind(&n.id)
                    .bind(r.event_id)
                    .bind(n.kind)
                    .bind(&n.recipient)
                    .bind(&n.subject)
                    .bind(&n.content)
                    .bind(&n.html)
                    .bind(r.now)
                    .bind(r.event_received_at);
            }
            q.execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    /// The attempts, then the records' outcome, count and message id, one statement each.
    async fn record_sent(
        &mut self,
        now: i64,
        sent: &[(&str, Option<&AttemptRecord>)],
    ) -> Result<(), sqlx::Error> {
        let attempts: Vec<(&str, &AttemptRecord)> = sent
            .iter()
            .filter_map(|(id, a)| Some((*id, (*a)?)))
            .collect();
        self.insert_attempts(&attempts).await?;
        let sql = format!(
            "UPDATE notice_audit SET outcome = 'sent', finished_at = $1, attempts = attempts + 1, \
             message_id = COALESCE((SELECT t.message_id FROM notice_attempts t WHERE \
             t.notice_id = notice_audit.notice_id AND t.message_id IS NOT NULL \
             ORDER BY t.attempt DESC LIMIT 1), message_id) WHERE notice_id IN ({})",
            param_list(2, sent.len())
        );
        let mut q = sqlx::query(&sql).bind(now);
        for (id, _) in sent {
            q = q.bind(*id);
        }
        q.execute(&mut *self.conn).await?;
        Ok(())
    }

    async fn settle(&mut self, op: &Claimed) -> Result<bool, sqlx::Error> {
        let (queue, id, set, value) = match &op.completion {
            Completion::Retry {
                queue,
                id,
                next_attempt_at,
                error,
            } => (
                *queue,
                id,
                "next_attempt_at = $1, last_error = $2".to_string(),
                (*next_attempt_at, error),
            ),
            Completion::Dead { queue, id, error } => (
                *queue,
                id,
                format!(
                    "finished_at = $1, last_error = $2, state = {}",
                    State::Dead.sql()
                ),
                (op.now, error),
            ),
            Completion::EventDone { .. } | Completion::NoticeSent { .. } => {
                return Err(Self::refused("successes are written in bulk"))
            }
        };
        let sql = format!(
            "UPDATE {} SET {set}, lease_until = 0, claim_token = NULL \
             WHERE id = $3 AND claim_token = $4 AND state = {}",
            queue.table(),
            State::Pending.sql()
        );
        let n = sqlx::query(&sql)
            .bind(value.0)
            .bind(value.1)
            .bind(id)
            .bind(&op.token)
            .execute(&mut *self.conn)
            .await?
            .rows_affected();
        if n > 0 && queue == Queue::Notices {
            let dead = matches!(op.completion, Completion::Dead { .. });
            if let Some(a) = op.attempt.as_ref() {
                self.insert_attempts(&[(id, a)]).await?;
            }
            let q = if dead {
                sqlx::query(
                    "UPDATE notice_audit SET attempts = attempts + 1, outcome = 'dead', \
                     finished_at = $1 WHERE notice_id = $2",
                )
                .bind(op.now)
                .bind(id)
            } else {
                sqlx::query("UPDATE notice_audit SET attempts = attempts + 1 WHERE notice_id = $1")
                    .bind(id)
            };
            q.execute(&mut *self.conn).await?;
        }
        Ok(n > 0)
    }

    async fn claim(
        &mut self,
        req: &ClaimRequest,
    ) -> Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>), sqlx::Error> {
        let mut notices = Vec::new();
        if req.notices > 0 {
            let rows = self
                .claim_rows(req, Queue::Notices, req.notices, &req.busy_recipients)
                .await?;
            for r in rows {
                notices.push(ClaimedNotice {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    kind: r.try_get("kind")?,
                    recipient: r.try_get("recipient")?,
                    subject: r.try_get("subject")?,
                    content: r.try_get("content")?,
                    html: r.try_get("html")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    event_received_at: r.try_get("event_received_at")?,
                    attempts_since: r.try_get("attempts_since")?,
                });
            }
        }
        let mut events = Vec::new();
        if req.events > 0 {
            for r in self.claim_rows(req, Queue::Events, req.events, &[]).await? {
                events.push(ClaimedEvent {
                    id: r.try_get("id")?,
                    event_type: r.try_get("event_type")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                    received_at: r.try_get("received_at")?,
                    attempts_since: r.try_get("attempts_since")?,
                });
            }
        }
        Ok((events, notices))
    }

    fn refused(why: &'static str) -> sqlx::Error {
        // Not `Protocol`, which a broken connection also reports: the batch tells the two
        // apart (see `fails_alone`).
        sqlx::Error::InvalidArgument(why.to_string())
    }

    /// A rule of ours, a row that does not decode, a data exception, a broken constraint,
    /// bad SQL. Deadlocks, serialization failures, a lost connection, a full disk and the
    /// like fail the whole batch.
    fn fails_alone(e: &sqlx::Error) -> bool {
        super::error::sqlx_class(e) == super::ErrorClass::Bug
    }

    async fn savepoint(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::Executor::execute(&mut *self.conn, sql)
            .await
            .map(drop)
    }
}

impl SqlxTx<'_> {
    /// Claim up to `limit` due rows of `queue`, skipping notices to `busy` recipients.
    async fn claim_rows(
        &mut self,
        req: &ClaimRequest,
        queue: Queue,
        limit: i64,
        busy: &[String],
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let extra = if busy.is_empty() {
            String::new()
        } else {
            format!(" AND recipient NOT IN ({})", param_list(5, busy.len()))
        };
        let sql = format!(
            "UPDATE {table} SET lease_until = $1, claim_token = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM {table} WHERE state = {pending} AND next_attempt_at <= $3 \
             AND lease_until <= $3{extra} ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {columns}",
            table = queue.table(),
            pending = State::Pending.sql(),
            columns = super::sql::claimed_columns(queue),
        );
        let mut q = sqlx::query(&sql)
            .bind(req.lease_until)
            .bind(&req.token)
            .bind(req.now)
            .bind(limit);
        for r in busy {
            q = q.bind(r);
        }
        q.fetch_all(&mut *self.conn).await
    }

    /// Add attempt entries, numbered after the attempts the record has counted so far (or,
    /// for a notice without a record, after its entries).
    async fn insert_attempts(
        &mut self,
        attempts: &[(&str, &AttemptRecord)],
    ) -> Result<(), sqlx::Error> {
        for chunk in attempts.chunks(256) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = |c: usize| format!("${}", i * 6 + c);
                    format!(
                        "({id}, COALESCE((SELECT attempts FROM notice_audit WHERE notice_id = {id}), \
                         (SELECT COUNT(*) FROM notice_attempts WHERE notice_id = {id})) + 1, \
                         {}, {}, {}, {}, {})",
                        p(2),
                        p(3),
                        p(4),
                        p(5),
                        p(6),
                        id = p(1)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO notice_attempts (notice_id, attempt, attempted_at, outcome, \
                 http_status, reason, message_id) VALUES {} \
                 ON CONFLICT (notice_id, attempt) DO NOTHING",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (id, a) in chunk {
                q = q
                    .bind(*id)
                    .bind(a.at)
                    .bind(a.outcome.as_str())
                    .bind(a.http_status.map(i64::from))
                    .bind(a.reason.as_deref())
                    .bind(a.message_id.as_deref());
            }
            q.execute(&mut *self.conn).await?;
        }
        Ok(())
    }
}

//! The batch statements for SQLite, run by its writer thread ([`super::sqlite_writer`])
//! through rusqlite: in-process calls, not round trips, so each is a cached prepared
//! statement run row by row (no statement text built per batch size). SQLite has one
//! writer, so a claim needs no row locks.

use std::collections::HashSet;

use rusqlite::types::ToSql;
use rusqlite::{params, Row, Transaction};

use super::apply::{BatchTx, QueuedNotice};
use super::batch::{ClaimRequest, InsertOutcome};
use super::complete::{Claimed, Completion};
use super::state::State;
use super::{ClaimedEvent, ClaimedNotice, NewEvent, Queue};
use crate::audit::AttemptRecord;

/// The batch's open `BEGIN IMMEDIATE` transaction.
pub(super) struct SqliteTx<'t, 'c> {
    pub tx: &'t Transaction<'c>,
}

impl BatchTx for SqliteTx<'_, '_> {
    type Error = rusqlite::Error;

    async fn probe(&mut self, now: i64) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            )?
            .execute([now])?;
        Ok(())
    }

    async fn insert_events(
        &mut self,
        events: &[&NewEvent],
    ) -> rusqlite::Result<Vec<InsertOutcome>> {
        // received_at doubles as the first due time and the start of the age budget.
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO events (id, event_type, payload, next_attempt_at, received_at, \
             attempts_since) VALUES (?1, ?2, ?3, ?4, ?4, ?4) ON CONFLICT (id) DO NOTHING",
        )?;
        events
            .iter()
            .map(|e| {
                let stored =
                    insert.execute(params![e.id, e.event_type, e.payload, e.received_at])?;
                Ok(if stored == 1 {
                    InsertOutcome::Stored
                } else {
                    InsertOutcome::Duplicate
                })
            })
            .collect()
    }

    async fn finish(
        &mut self,
        queue: Queue,
        token: &str,
        now: i64,
        ids: &[&str],
    ) -> rusqlite::Result<HashSet<String>> {
        let mut update = self.tx.prepare_cached(&format!(
            "UPDATE {} SET state = {}, finished_at = ?1, lease_until = 0, claim_token = NULL, \
             last_error = NULL WHERE id = ?3 AND claim_token = ?2 AND state = {}",
            queue.table(),
            queue.finished_state().sql(),
            State::Pending.sql()
        ))?;
        let mut held = HashSet::with_capacity(ids.len());
        for id in ids {
            if update.execute(params![now, token, id])? == 1 {
                held.insert((*id).to_string());
            }
        }
        Ok(held)
    }

    async fn queue_notices(&mut self, rows: &[QueuedNotice<'_>]) -> rusqlite::Result<()> {
        let mut record = self.tx.prepare_cached(
            "INSERT INTO notice_audit (notice_id, event_id, event_type, kind, subscription_id, \
             user_id, recipient_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (notice_id) DO NOTHING",
        )?;
        let mut notice = self.tx.prepare_cached(
            "INSERT INTO notices (id, event_id, kind, recipient, subject, content, html, \
             next_attempt_at, created_at, attempts_since, event_received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8, ?9) ON CONFLICT (id) DO NOTHING",
        )?;
        for r in rows {
            let n = r.notice;
            record.execute(params![
                n.id,
                r.event_id,
                n.event_type,
                n.kind,
                n.subscription_id,
                n.user_id,
                r.recipient_hash,
                r.now
            ])?;
            notice.execute(params![
                n.id,
                r.event_id,
                n.kind,
                n.recipient,
                n.subject,
                n.content,
                n.html,
                r.now,
                r.event_received_at
            ])?;
        }
        Ok(())
    }

    async fn record_sent(
        &mut self,
        now: i64,
        sent: &[(&str, Option<&AttemptRecord>)],
    ) -> rusqlite::Result<()> {
        let mut update = self.tx.prepare_cached(
            "UPDATE notice_audit SET outcome = 'sent', finished_at = ?1, attempts = attempts + 1, \
             message_id = COALESCE((SELECT t.message_id FROM notice_attempts t WHERE \
             t.notice_id = notice_audit.notice_id AND t.message_id IS NOT NULL \
             ORDER BY t.attempt DESC LIMIT 1), message_id) WHERE notice_id = ?2",
        )?;
        for (id, attempt) in sent {
            if let Some(a) = attempt {
                self.insert_attempt(id, a)?;
            }
            update.execute(params![now, id])?;
        }
        Ok(())
    }

    async fn settle(&mut self, op: &Claimed) -> rusqlite::Result<bool> {
        let (queue, id, changed) = match &op.completion {
            Completion::Retry {
                queue,
                id,
                next_attempt_at,
                error,
            } => {
                let sql = format!(
                    "UPDATE {} SET next_attempt_at = ?1, last_error = ?2, lease_until = 0, \
                     claim_token = NULL WHERE id = ?3 AND claim_token = ?4 AND state = {}",
                    queue.table(),
                    State::Pending.sql()
                );
                let n = self.tx.prepare_cached(&sql)?.execute(params![
                    next_attempt_at,
                    error,
                    id,
                    op.token
                ])?;
                (*queue, id, n)
            }
            Completion::Dead { queue, id, error } => {
                let sql = format!(
                    "UPDATE {} SET finished_at = ?1, last_error = ?2, state = {}, lease_until = 0, \
                     claim_token = NULL WHERE id = ?3 AND claim_token = ?4 AND state = {}",
                    queue.table(),
                    State::Dead.sql(),
                    State::Pending.sql()
                );
                let n = self
                    .tx
                    .prepare_cached(&sql)?
                    .execute(params![op.now, error, id, op.token])?;
                (*queue, id, n)
            }
            Completion::EventDone { .. } | Completion::NoticeSent { .. } => {
                return Err(Self::refused("successes are written in bulk"))
            }
        };
        if changed > 0 && queue == Queue::Notices {
            if let Some(a) = op.attempt.as_ref() {
                self.insert_attempt(id, a)?;
            }
            if matches!(op.completion, Completion::Dead { .. }) {
                self.tx
                    .prepare_cached(
                        "UPDATE notice_audit SET attempts = attempts + 1, outcome = 'dead', \
                         finished_at = ?1 WHERE notice_id = ?2",
                    )?
                    .execute(params![op.now, id])?;
            } else {
                self.tx
                    .prepare_cached(
                        "UPDATE notice_audit SET attempts = attempts + 1 WHERE notice_id = ?1",
                    )?
                    .execute([id])?;
            }
        }
        Ok(changed > 0)
    }

    async fn claim(
        &mut self,
        req: &ClaimRequest,
    ) -> rusqlite::Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>)> {
        let notices = if req.notices > 0 {
            self.claim_rows(
                req,
                Queue::Notices,
                req.notices,
                &req.busy_recipients,
                |r| {
                    Ok(ClaimedNotice {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        kind: r.get(2)?,
                        recipient: r.get(3)?,
                        subject: r.get(4)?,
                        content: r.get(5)?,
                        html: r.get(6)?,
                        attempts: r.get(7)?,
                        created_at: r.get(8)?,
                        event_received_at: r.get(9)?,
                        attempts_since: r.get(10)?,
                    })
                },
            )?
        } else {
            Vec::new()
        };
        let events = if req.events > 0 {
            self.claim_rows(req, Queue::Events, req.events, &[], |r| {
                Ok(ClaimedEvent {
                    id: r.get(0)?,
                    event_type: r.get(1)?,
                    payload: r.get(2)?,
                    attempts: r.get(3)?,
                    received_at: r.get(4)?,
                    attempts_since: r.get(5)?,
                })
            })?
        } else {
            Vec::new()
        };
        Ok((events, notices))
    }

    fn refused(why: &'static str) -> rusqlite::Error {
        // Carried as a failed conversion: rusqlite's one variant for an error of the caller's.
        rusqlite::Error::ToSqlConversionFailure(Box::new(Refused(why)))
    }

    /// A failure of the database itself (full, I/O, read-only, interrupted) is not: the
    /// transaction cannot be trusted past it.
    fn fails_alone(e: &rusqlite::Error) -> bool {
        super::error::sqlite_class(e) == super::ErrorClass::Bug
    }

    async fn savepoint(&mut self, sql: &'static str) -> rusqlite::Result<()> {
        self.tx.execute_batch(sql)
    }
}

impl SqliteTx<'_, '_> {
    /// Claim up to `limit` due rows of `queue`, skipping notices to `busy` recipients; each
    /// row read by `read` (columns in [`super::sql::claimed_columns`] order).
    fn claim_rows<T>(
        &self,
        req: &ClaimRequest,
        queue: Queue,
        limit: i64,
        busy: &[String],
        read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let extra = if busy.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (5..5 + busy.len()).map(|i| format!("?{i}")).collect();
            format!(" AND recipient NOT IN ({})", list.join(", "))
        };
        let sql = format!(
            "UPDATE {table} SET lease_until = ?1, claim_token = ?2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM {table} WHERE state = {pending} AND next_attempt_at <= ?3 \
             AND lease_until <= ?3{extra} ORDER BY next_attempt_at LIMIT ?4) RETURNING {columns}",
            table = queue.table(),
            pending = State::Pending.sql(),
            columns = super::sql::claimed_columns(queue),
        );
        let mut values: Vec<&dyn ToSql> = vec![&req.lease_until, &req.token, &req.now, &limit];
        values.extend(busy.iter().map(|r| r as &dyn ToSql));
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(values.as_slice(), read)?;
        rows.collect()
    }

    /// One attempt entry, numbered after the attempts its record has counted so far (or,
    /// for a notice without a record, after its entries).
    fn insert_attempt(&self, id: &str, a: &AttemptRecord) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO notice_attempts (notice_id, attempt, attempted_at, outcome, \
                 http_status, reason, message_id) VALUES (?1, COALESCE((SELECT attempts FROM \
                 notice_audit WHERE notice_id = ?1), (SELECT COUNT(*) FROM notice_attempts \
                 WHERE notice_id = ?1)) + 1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (notice_id, attempt) DO NOTHING",
            )?
            .execute(params![
                id,
                a.at,
                a.outcome.as_str(),
                a.http_status.map(i64::from),
                a.reason,
                a.message_id
            ])?;
        Ok(())
    }
}

/// A batch that breaks a rule of ours.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(&'static str);

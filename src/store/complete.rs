//! Finished work, written in bulk inside a group-commit batch: events done with their
//! notices (and the notices' audit records) queued in the same transaction, notices sent,
//! retries and dead letters; each only if its claim is still held.

use sqlx::AnyConnection;

use super::state::State;
use super::NewNotice;

/// The end of one piece of claimed work.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Event processed: mark it done and queue its notices.
    EventDone {
        id: String,
        received_at: i64,
        notices: Vec<NewNotice>,
    },
    /// Notice accepted by the mail service.
    NoticeSent { id: String },
    /// Try again at `next_attempt_at`.
    Retry {
        queue: super::Queue,
        id: String,
        next_attempt_at: i64,
        error: String,
    },
    /// Give up: dead letter with the reason.
    Dead {
        queue: super::Queue,
        id: String,
        error: String,
    },
}

/// A completion under the claim it belongs to.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub token: String,
    pub now: i64,
    pub completion: Completion,
    /// A notice's send attempt, for its audit trail (written only if the claim is held).
    pub attempt: Option<crate::audit::AttemptRecord>,
    /// For `EventDone`: the keyed hash of each notice's recipient, in order.
    pub recipient_hashes: Vec<String>,
}

/// Whether each claim was still held (otherwise nothing was written for it).
/// Successes (the bulk) are written with one statement per queue: a multi-row
/// `UPDATE … WHERE id IN (…) RETURNING id` and one multi-row insert of the new notices.
/// Retries and dead letters are rare and go one by one.
pub(super) async fn complete_many(
    conn: &mut AnyConnection,
    ops: &[&Claimed],
) -> Result<Vec<bool>, sqlx::Error> {
    {
        let mut out = vec![false; ops.len()];
        let mut groups: std::collections::HashMap<(super::Queue, &str), Vec<usize>> =
            Default::default();
        for (i, op) in ops.iter().enumerate() {
            let queue = match op.completion {
                Completion::EventDone { .. } => super::Queue::Events,
                Completion::NoticeSent { .. } => super::Queue::Notices,
                _ => {
                    out[i] = apply_one(conn, op).await?;
                    continue;
                }
            };
            groups
                .entry((queue, op.token.as_str()))
                .or_default()
                .push(i);
        }
        for ((queue, token), indexes) in groups {
            for chunk in indexes.chunks(256) {
                let held = finish_many(conn, queue, token, ops, chunk).await?;
                for &i in chunk {
                    out[i] = held.contains(completion_id(&ops[i].completion));
                }
                if queue == super::Queue::Notices {
                    let now = chunk.iter().map(|&i| ops[i].now).max().unwrap_or(0);
                    let sent: Vec<_> = chunk
                        .iter()
                        .map(|&i| ops[i])
                        .filter(|op| held.contains(completion_id(&op.completion)))
                        .map(|op| (completion_id(&op.completion), op.attempt.as_ref()))
                        .collect();
                    super::audit::record_sent(conn, now, &sent).await?;
                }
                if queue == super::Queue::Events {
                    let done: Vec<&Claimed> = chunk
                        .iter()
                        .map(|&i| ops[i])
                        .filter(|op| held.contains(completion_id(&op.completion)))
                        .collect();
                    insert_notices(conn, &done).await?;
                }
            }
        }
        Ok(out)
    }
}

fn completion_id(c: &Completion) -> &str {
    match c {
        Completion::EventDone { id, .. }
        | Completion::NoticeSent { id }
        | Completion::Retry { id, .. }
        | Completion::Dead { id, .. } => id,
    }
}

/// Mark the rows at `chunk` finished, if `token` still holds them; returns the ids it did.
async fn finish_many(
    conn: &mut AnyConnection,
    queue: super::Queue,
    token: &str,
    ops: &[&Claimed],
    chunk: &[usize],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let (table, state) = match queue {
        super::Queue::Events => ("events", State::Done.sql()),
        super::Queue::Notices => ("notices", State::Sent.sql()),
    };
    let pending = State::Pending.sql();
    let sql = format!(
        "UPDATE {table} SET state = {state}, finished_at = $1, lease_until = 0, claim_token = NULL, \
         last_error = NULL WHERE claim_token = $2 AND state = {pending} AND id IN ({}) RETURNING id",
        super::sql::param_list(3, chunk.len())
    );
    let now = chunk.iter().map(|&i| ops[i].now).max().unwrap_or(0);
    let mut q = sqlx::query_scalar::<_, String>(&sql).bind(now).bind(token);
    for &i in chunk {
        q = q.bind(completion_id(&ops[i].completion));
    }
    Ok(q.fetch_all(&mut *conn).await?.into_iter().collect())
}

/// Queue the notices of finished events, in one statement, and their audit records in
/// another.
async fn insert_notices(conn: &mut AnyConnection, done: &[&Claimed]) -> Result<(), sqlx::Error> {
    let rows: Vec<(&str, i64, i64, &NewNotice)> = done
        .iter()
        .filter_map(|op| match &op.completion {
            Completion::EventDone {
                id,
                received_at,
                notices,
            } => Some(
                notices
                    .iter()
                    .map(move |n| (id.as_str(), *received_at, op.now, n)),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let mut records = Vec::with_capacity(rows.len());
    for op in done {
        if let Completion::EventDone { id, notices, .. } = &op.completion {
            // `Store::complete_attempt` makes one hash per notice; a notice without one would
            // go unrecorded, so a mismatch is refused rather than written.
            if op.recipient_hashes.len() != notices.len() {
                return Err(sqlx::Error::Protocol(
                    "notices queued without their recipient hashes".to_string(),
                ));
            }
            for (notice, hash) in notices.iter().zip(&op.recipient_hashes) {
                records.push(super::audit::Queued {
                    event_id: id,
                    now: op.now,
                    notice,
                    recipient_hash: hash,
                });
            }
        }
    }
    super::audit::insert_records(conn, &records).await?;
    for chunk in rows.chunks(256) {
        let mut sql = format!(
            "INSERT INTO notices (id, event_id, kind, recipient, subject, content, html, \
             next_attempt_at, created_at, attempts_since, event_received_at) VALUES {}",
            super::sql::values_list(chunk.len(), &[1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 9])
        );
        sql.push_str(" ON CONFLICT (id) DO NOTHING");
        let mut q = sqlx::query(&sql);
        for (event_id, received_at, now, n) in chunk {
            q = q
                .bind(&n.id)
                .bind(*event_id)
                .bind(n.kind)
                .bind(&n.recipient)
                .bind(&n.subject)
                .bind(&n.content)
                .bind(&n.html)
                .bind(*now)
                .bind(*received_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A retry or a dead letter, one statement.
async fn apply_one(conn: &mut AnyConnection, op: &Claimed) -> Result<bool, sqlx::Error> {
    let (queue, id, set, value) = match &op.completion {
        Completion::Retry {
            queue,
            id,
            next_attempt_at,
            error,
        } => (
            queue,
            id,
            "next_attempt_at = $1, last_error = $2".to_string(),
            (*next_attempt_at, error),
        ),
        Completion::Dead { queue, id, error } => (
            queue,
            id,
            format!(
                "finished_at = $1, last_error = $2, state = {}",
                State::Dead.sql()
            ),
            (op.now, error),
        ),
        Completion::EventDone { .. } | Completion::NoticeSent { .. } => {
            unreachable!("successes are written in bulk")
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
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n > 0 && *queue == super::Queue::Notices {
        let dead = matches!(op.completion, Completion::Dead { .. });
        super::audit::record_failure(conn, id, op.now, op.attempt.as_ref(), dead).await?;
    }
    Ok(n > 0)
}

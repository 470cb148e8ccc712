//! SQL the hot paths share (one dialect for both backends through sqlx `Any`): the claim,
//! whose only backend fork is PostgreSQL's `FOR UPDATE SKIP LOCKED`, and parameter lists.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::batch::ClaimRequest;
use super::state::State;
use super::{Backend, ClaimedEvent, ClaimedNotice, Queue};

/// `extra` is appended to the due-row filter (the recipient exclusion for notices).
fn claim_sql(backend: Backend, queue: Queue, columns: &str, extra: &str) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let table = queue.table();
    let pending = State::Pending.sql();
    format!(
        "UPDATE {table} SET lease_until = $1, claim_token = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM {table} WHERE state = {pending} AND next_attempt_at <= $3 \
         AND lease_until <= $3{extra} ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING {columns}"
    )
}

/// Claim up to `limit` due rows of `queue` inside the batch transaction `conn`, skipping
/// notices to `busy` recipients.
async fn claim_rows(
    conn: &mut sqlx::AnyConnection,
    req: &ClaimRequest,
    queue: Queue,
    columns: &str,
    limit: i64,
    busy: &[String],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let extra = if busy.is_empty() {
        String::new()
    } else {
        format!(" AND recipient NOT IN ({})", param_list(5, busy.len()))
    };
    let sql = claim_sql(req.backend, queue, columns, &extra);
    let mut q = sqlx::query(&sql)
        .bind(req.lease_until)
        .bind(&req.token)
        .bind(req.now)
        .bind(limit);
    for r in busy {
        q = q.bind(r);
    }
    q.fetch_all(&mut *conn).await
}

/// Run a claim inside the batch transaction `conn`: notices and events, each up to its own
/// limit.
pub(super) async fn claim_in(
    conn: &mut sqlx::AnyConnection,
    req: &ClaimRequest,
) -> Result<(Vec<ClaimedEvent>, Vec<ClaimedNotice>), sqlx::Error> {
    const NOTICE_COLUMNS: &str = "id, event_id, kind, recipient, subject, content, html, \
                                  attempts, created_at, event_received_at, attempts_since";
    const EVENT_COLUMNS: &str = "id, event_type, payload, attempts, received_at, attempts_since";
    let mut notices = Vec::new();
    if req.notices > 0 {
        for r in claim_rows(
            conn,
            req,
            Queue::Notices,
            NOTICE_COLUMNS,
            req.notices,
            &req.busy_recipients,
        )
        .await?
        {
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
        for r in claim_rows(conn, req, Queue::Events, EVENT_COLUMNS, req.events, &[]).await? {
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

/// `($1, $2, …), ($7, …)` for `rows` rows. Each row's columns take the parameters named in
/// `columns` (1-based within the row), so one bound value can fill several columns.
pub(super) fn values_list(rows: usize, columns: &[usize]) -> String {
    let per_row = columns.iter().copied().max().unwrap_or(0);
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = columns
                .iter()
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, …` (`n` parameters), for `IN (…)` lists.
pub(super) fn param_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_number_rows_and_reuse_values() {
        assert_eq!(values_list(2, &[1, 2, 2]), "($1, $2, $2), ($3, $4, $4)");
        assert_eq!(param_list(3, 3), "$3, $4, $5");
        assert_eq!(param_list(3, 0), "");
    }
}

//! SQL of the proof-of-notice trail (see [`crate::audit`]) outside the hot path: the key,
//! reads, reopening and the audit purge, through the pools. Its hot writes run inside the
//! group commit, in the same transaction as the notices or results they record (each
//! backend's batch room), so the trail and the queue never disagree.

use sqlx::{AnyPool, Row};

use super::{param_list, Store, StoreError};
use crate::audit::{AttemptEntry, AuditKey, AuditKeys, Filter, NoticeRecord};

/// The audit keys of this database. `configured` (`AUDIT_HASH_KEY`) hashes new records when
/// set; otherwise a key kept in the `audit_key` table does, made at random on first use. A
/// kept key still serves lookups after `AUDIT_HASH_KEY` is set, for the records it hashed.
pub(super) async fn keys(
    pool: &AnyPool,
    configured: Option<AuditKey>,
) -> Result<AuditKeys, StoreError> {
    let stored = stored_key(pool).await?;
    if let Some(write) = configured {
        return Ok(AuditKeys {
            write,
            older: stored,
        });
    }
    if let Some(write) = stored {
        return Ok(AuditKeys { write, older: None });
    }
    let fresh: [u8; 32] = rand::random();
    // Replicas starting together: the first insert wins and everyone reads back the same key.
    sqlx::query("INSERT INTO audit_key (id, hash_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(hex::encode(fresh))
        .execute(pool)
        .await?;
    let write = stored_key(pool)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok(AuditKeys { write, older: None })
}

async fn stored_key(pool: &AnyPool) -> Result<Option<AuditKey>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT hash_key FROM audit_key WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    text.map(|t| {
        hex::decode(t.trim())
            .map(|bytes| AuditKey::new(&bytes))
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
    })
    .transpose()
}

/// Hash the recipients of records made by the migration for notices queued before the
/// trail existed (SQL cannot hash: it has no key). Cheap once done: an index lookup.
pub(super) async fn fill_missing_hashes(
    pool: &AnyPool,
    keys: &AuditKeys,
) -> Result<u64, StoreError> {
    const CHUNK: usize = 256;
    let mut filled = 0;
    loop {
        // Read, then write each row on its own: a read transaction upgraded to a write gets
        // SQLITE_BUSY at once (no busy wait) while the running service holds the lock.
        let rows = sqlx::query(
            "SELECT a.notice_id, n.recipient FROM notice_audit a JOIN notices n \
             ON n.id = a.notice_id WHERE a.recipient_hash IS NULL LIMIT 256",
        )
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let id: String = row.try_get("notice_id")?;
            let recipient: String = row.try_get("recipient")?;
            filled += sqlx::query(
                "UPDATE notice_audit SET recipient_hash = $1 WHERE notice_id = $2 \
                 AND recipient_hash IS NULL",
            )
            .bind(keys.hash(&recipient))
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected();
        }
        if rows.len() < CHUNK {
            return Ok(filled);
        }
    }
}

/// A dead letter put back in its queue is pending again.
pub(super) async fn reopen(pool: &AnyPool, id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notice_audit SET outcome = 'pending', finished_at = NULL \
         WHERE notice_id = $1 AND outcome = 'dead'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// Audit records matching `filter`, newest first, each with its attempts.
    pub async fn notice_audit(&self, filter: &Filter) -> Result<Vec<NoticeRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        let mut add = |column: &str, values: Vec<Bind>| {
            let first = binds.len() + 1;
            conditions.push(format!("{column} IN ({})", param_list(first, values.len())));
            binds.extend(values);
        };
        let text = |v: &Option<String>| v.as_ref().map(|s| vec![Bind::Text(s.trim().to_string())]);
        if let Some(v) = text(&filter.user) {
            add("user_id", v);
        }
        if let Some(email) = &filter.email {
            let hashes = self.audit.lookup_hashes(email);
            add(
                "recipient_hash",
                hashes.into_iter().map(Bind::Text).collect(),
            );
        }
        if let Some(v) = text(&filter.subscription) {
            add("subscription_id", v);
        }
        if let Some(v) = text(&filter.kind) {
            add("kind", v);
        }
        let mut sql = String::from(
            "SELECT notice_id, event_id, event_type, kind, subscription_id, user_id, created_at, \
             outcome, finished_at, message_id, attempts FROM notice_audit WHERE 1 = 1",
        );
        for c in &conditions {
            sql.push_str(" AND ");
            sql.push_str(c);
        }
        if let Some(since) = filter.since {
            binds.push(Bind::Int(since));
            sql.push_str(&format!(" AND created_at >= ${}", binds.len()));
        }
        binds.push(Bind::Int(filter.limit.max(1)));
        sql.push_str(&format!(
            " ORDER BY created_at DESC, notice_id DESC LIMIT ${}",
            binds.len()
        ));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(n) => q.bind(n),
            };
        }
        let mut records = Vec::new();
        for r in q.fetch_all(&self.pool).await? {
            records.push(NoticeRecord {
                notice_id: r.try_get("notice_id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                kind: r.try_get("kind")?,
                user_id: r.try_get("user_id")?,
                subscription_id: r.try_get("subscription_id")?,
                created_at: r.try_get("created_at")?,
                outcome: r.try_get("outcome")?,
                finished_at: r.try_get("finished_at")?,
                message_id: r.try_get("message_id")?,
                attempts: r.try_get("attempts")?,
                history: Vec::new(),
            });
        }
        self.attach_history(&mut records).await?;
        Ok(records)
    }

    async fn attach_history(&self, records: &mut [NoticeRecord]) -> Result<(), StoreError> {
        let mut index = std::collections::HashMap::new();
        for (i, r) in records.iter().enumerate() {
            index.insert(r.notice_id.clone(), i);
        }
        let ids: Vec<String> = index.keys().cloned().collect();
        for chunk in ids.chunks(256) {
            let sql = format!(
                "SELECT notice_id, attempt, attempted_at, outcome, http_status, reason \
                 FROM notice_attempts WHERE notice_id IN ({}) ORDER BY notice_id, attempt",
                param_list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let id: String = r.try_get("notice_id")?;
                if let Some(&i) = index.get(&id) {
                    records[i].history.push(AttemptEntry {
                        attempt: r.try_get("attempt")?,
                        at: r.try_get("attempted_at")?,
                        outcome: r.try_get("outcome")?,
                        http_status: r.try_get("http_status")?,
                        reason: r.try_get("reason")?,
                    });
                }
            }
        }
        Ok(())
    }

    /// Delete audit records (and their attempts) finished before `before`; a record stays
    /// while its notice is still stored (a dead letter an operator has not dealt with).
    /// Returns (records, attempts) deleted.
    pub async fn purge_audit(&self, before: i64) -> Result<(u64, u64), StoreError> {
        let _turn = self.take_turn().await?;
        let mut tx = self.write.begin().await?;
        let records = sqlx::query(
            "DELETE FROM notice_audit WHERE finished_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM notices WHERE notices.id = notice_audit.notice_id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let attempts = sqlx::query(
            "DELETE FROM notice_attempts WHERE attempted_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM notice_audit WHERE notice_audit.notice_id = notice_attempts.notice_id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((records, attempts))
    }
}

-- Proof of notice: one record per notice, kept after the notice itself is purged
-- (RETENTION_DAYS) until AUDIT_RETENTION_DAYS. No address and no text: the recipient is
-- only a keyed hash (HMAC-SHA256 of the lower-cased address under the audit key).
CREATE TABLE notice_audit (
    notice_id       TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subscription_id TEXT,
    user_id         TEXT,
    -- NULL only for notices queued before this table existed, until the service fills it
    -- in at its next start (hashing needs the key, which SQL does not have).
    recipient_hash  TEXT,
    created_at      BIGINT NOT NULL,
    -- 'pending', 'sent' or 'dead'.
    outcome         TEXT NOT NULL DEFAULT 'pending',
    finished_at     BIGINT,
    message_id      TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX notice_audit_user ON notice_audit (user_id);
CREATE INDEX notice_audit_recipient ON notice_audit (recipient_hash);
CREATE INDEX notice_audit_subscription ON notice_audit (subscription_id);
CREATE INDEX notice_audit_created ON notice_audit (created_at);
CREATE INDEX notice_audit_finished ON notice_audit (finished_at);

-- Each send attempt whose result was recorded: outcome class ('accepted', 'retryable',
-- 'permanent', 'transport', 'internal'), the HTTP status if there was an answer, and a short
-- reason that names the call and status only.
CREATE TABLE notice_attempts (
    notice_id    TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    http_status  BIGINT,
    reason       TEXT,
    message_id   TEXT,
    PRIMARY KEY (notice_id, attempt)
);
CREATE INDEX notice_attempts_at ON notice_attempts (attempted_at);

-- The audit hash key when AUDIT_HASH_KEY is not set: made once, at random, so lookups by
-- address work across restarts and from the CLI. One row (id = 1), hex.
CREATE TABLE audit_key (
    id       INTEGER PRIMARY KEY,
    hash_key TEXT NOT NULL
);

-- Notices queued before this migration get their record now (hash filled in at start).
INSERT INTO notice_audit (notice_id, event_id, event_type, kind, created_at, outcome,
                          finished_at, attempts)
SELECT n.id, n.event_id, COALESCE(e.event_type, ''), n.kind, n.created_at, n.state,
       n.finished_at, n.attempts
FROM notices n LEFT JOIN events e ON e.id = n.event_id;

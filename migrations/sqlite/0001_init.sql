-- Inbox of verified events (dedup on the Gigs event id) and the notices they produce.
-- Times are Unix milliseconds. A row is due when state = 'pending', next_attempt_at has
-- passed and no live lease holds it (lease_until in the past).
CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    claim_token     TEXT,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    attempts_since  INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX events_due ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX events_finished ON events (finished_at) WHERE state = 'done';

CREATE TABLE notices (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    content         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    claim_token     TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    -- When the event behind this notice was acknowledged (end-to-end latency).
    event_received_at INTEGER NOT NULL,
    attempts_since  INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX notices_due ON notices (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notices_finished ON notices (finished_at) WHERE state = 'sent';
CREATE INDEX notices_event ON notices (event_id);

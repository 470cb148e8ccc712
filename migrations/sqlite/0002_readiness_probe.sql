-- One row that `/readyz` rewrites: a real committed write, so readiness fails exactly when
-- a delivery could not be stored.
CREATE TABLE readiness_probe (
    id         INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);

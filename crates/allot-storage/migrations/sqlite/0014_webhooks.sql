-- Webhooks (issue 8): registered endpoints that receive every event of the log (or of the
-- types they filter on) by POST, in seq order, at least once.
CREATE TABLE webhook_endpoints (
    id                 INTEGER PRIMARY KEY,
    url                TEXT    NOT NULL,
    description        TEXT,
    -- A JSON array of event type names; NULL: every type.
    event_types        TEXT    CHECK (event_types IS NULL OR json_valid(event_types)),
    -- The HMAC key of the signatures, sealed under the data key like personal data
    -- (v1.<key id>.<...>, bound to this row's id): the server must sign with it, so it cannot
    -- be a hash. Returned once, at registration, never by a read.
    secret_enc         TEXT    NOT NULL,
    active             INTEGER NOT NULL DEFAULT 1,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL,
    -- The last seq acknowledged (or skipped by the filter): delivery resumes after it.
    cursor_seq         INTEGER NOT NULL CHECK (cursor_seq >= 0),
    -- Failed attempts at the event after the cursor, and when the next one is due.
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    -- Unused on SQLite (one process); kept so both dialects have the same columns.
    lease_owner        TEXT,
    lease_until_ms     INTEGER
);

-- The delivery log: one row per attempt, written with the cursor in one transaction.
CREATE TABLE webhook_deliveries (
    id                 INTEGER PRIMARY KEY,
    endpoint_id        INTEGER NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq          INTEGER NOT NULL,
    attempt            INTEGER NOT NULL CHECK (attempt >= 1),
    attempted_at_ms    INTEGER NOT NULL,
    -- The HTTP status, or NULL when there was none (timeout, connection error: see error).
    status             INTEGER,
    error              TEXT,
    duration_ms        INTEGER NOT NULL,
    delivered          INTEGER NOT NULL,
    -- When the next attempt is due after a failure; NULL once delivered.
    next_attempt_at_ms INTEGER
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (attempted_at_ms);

-- Idempotency keys of state-changing REST requests (issue 7). The PostgreSQL twin of
-- migrations/sqlite/0008. status IS NULL while the first request is being served.
CREATE TABLE idempotency_keys (
    key           TEXT    NOT NULL,
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER CHECK (status IS NULL OR status BETWEEN 100 AND 599),
    content_type  TEXT,
    body          BYTEA,
    started_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (key, method, path)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (started_at_ms);

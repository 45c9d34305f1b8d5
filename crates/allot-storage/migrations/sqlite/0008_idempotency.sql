-- Idempotency keys of state-changing REST requests (issue 7): a retry with the same key gets
-- the first answer back and changes nothing. A key is scoped to its method and path; the
-- request's hash tells a retry from a different request reusing the key.
-- status IS NULL while the first request is being served.
CREATE TABLE idempotency_keys (
    key           TEXT    NOT NULL,
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER CHECK (status IS NULL OR status BETWEEN 100 AND 599),
    content_type  TEXT,
    body          BLOB,
    started_at_ms INTEGER NOT NULL,
    PRIMARY KEY (key, method, path)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (started_at_ms);

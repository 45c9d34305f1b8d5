-- One-time discount codes (issue 2). The PostgreSQL twin of migrations/sqlite/0001.
-- The code is the primary key, so the database refuses a second copy of any code ever issued.

CREATE TABLE discount_code_batches (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    length        INTEGER NOT NULL CHECK (length IN (7, 8)),
    count         INTEGER NOT NULL CHECK (count BETWEEN 1 AND 2000),
    created_at_ms BIGINT  NOT NULL
);

CREATE TABLE discount_codes (
    code       TEXT   NOT NULL PRIMARY KEY CHECK (char_length(code) IN (7, 8)),
    batch_id   BIGINT NOT NULL REFERENCES discount_code_batches (id),
    -- NULL until the code is used; set once, never cleared.
    used_at_ms BIGINT
);

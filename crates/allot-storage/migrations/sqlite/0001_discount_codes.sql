-- One-time discount codes (issue 2).
-- A code is the primary key, so the database itself refuses a second copy of any code ever
-- issued, used or not. WITHOUT ROWID keeps the table a single b-tree keyed by the code.

-- One row per Generate call, for audit: when, how many, how long.
CREATE TABLE discount_code_batches (
    id            INTEGER PRIMARY KEY,
    length        INTEGER NOT NULL CHECK (length IN (7, 8)),
    count         INTEGER NOT NULL CHECK (count BETWEEN 1 AND 2000),
    created_at_ms INTEGER NOT NULL
);

-- Rows are kept small (creation time lives on the batch): generating codes inserts random
-- keys, so every byte per row is paid again in each page a commit dirties.
CREATE TABLE discount_codes (
    code       TEXT    NOT NULL PRIMARY KEY CHECK (length(code) IN (7, 8)),
    batch_id   INTEGER NOT NULL REFERENCES discount_code_batches (id),
    -- NULL until the code is used; set once, never cleared.
    used_at_ms INTEGER
) WITHOUT ROWID;

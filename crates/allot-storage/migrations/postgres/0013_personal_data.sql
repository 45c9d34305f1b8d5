-- Personal data at rest (issue 8). The PostgreSQL twin of migrations/sqlite/0013, which says
-- what each column holds and why the plaintext columns are renamed and overwritten (here too:
-- the UNIQUE constraint carries over to the blind index, and both dialects stay alike). Rows
-- written before this migration are sealed by the store at its first open with a key, under
-- an advisory lock, in the transaction that writes data_key_check; old row versions then
-- linger until PostgreSQL vacuums the tables (docs/DEPLOYMENT.md says to run VACUUM FULL).
ALTER TABLE users RENAME COLUMN email TO email_index;
ALTER TABLE users RENAME CONSTRAINT users_email_key TO users_email_index_key;
ALTER TABLE users ADD COLUMN email_enc TEXT NOT NULL DEFAULT '';
ALTER TABLE orders RENAME COLUMN shipping_address TO shipping_address_enc;

CREATE TABLE data_key_check (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    key_id        TEXT    NOT NULL,
    check_value   TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL
);

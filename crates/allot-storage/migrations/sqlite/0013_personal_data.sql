-- Personal data at rest (issue 8): emails, shipping addresses and stored idempotent answers are
-- sealed with the data key (allot_storage::crypto); SQL cannot encrypt, so this migration only
-- reshapes the columns and the store finishes the job in Rust when it opens:
--
-- * users.email becomes users.email_index: it keeps its NOT NULL UNIQUE constraint and from now
--   on holds the blind index of the email (HMAC-SHA256, hex), which lookups and uniqueness use.
--   users.email_enc holds the sealed email.
-- * orders.shipping_address becomes orders.shipping_address_enc, holding the sealed address.
-- * idempotency_keys.body holds the sealed answer.
--
-- Rows written before this migration still hold plaintext in those columns. The store seals
-- them, overwriting the plaintext in place, in the same transaction that writes the key check
-- below, i.e. exactly once, on the first open with a key. The plaintext columns are renamed and
-- overwritten rather than dropped: SQLite cannot drop a UNIQUE column without rebuilding the
-- table (which users' foreign keys make awkward inside a migration), and the renamed column
-- carries the uniqueness over to the blind index unchanged. After sealing, the store vacuums
-- the database so the old plaintext does not linger in free pages.
ALTER TABLE users RENAME COLUMN email TO email_index;
ALTER TABLE users ADD COLUMN email_enc TEXT NOT NULL DEFAULT '';
ALTER TABLE orders RENAME COLUMN shipping_address TO shipping_address_enc;

-- One row: the key id and a known value sealed under the key, written at the first open with
-- a key. A later open with another key cannot open it and refuses to start.
CREATE TABLE data_key_check (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    key_id        TEXT    NOT NULL,
    check_value   TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

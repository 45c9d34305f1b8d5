-- Issue 13: idempotency keys belong to their caller, and revocation takes effect.
--
-- 1. A stored answer is kept per owner (the principal: `user:<id>`, `api_key:<id>`, or
--    `anonymous@<ip>` for an anonymous caller), so another caller reusing a key runs its own
--    request instead of being handed the first caller's answer. The answers kept so far have
--    no owner and would be replayed to anyone: they keep the empty owner, which no caller has,
--    so none is replayed again (purged within a day; a retry of one runs again, as after a
--    claim gone stale).
CREATE TABLE idempotency_keys_owned (
    owner         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER CHECK (status IS NULL OR status BETWEEN 100 AND 599),
    content_type  TEXT,
    body          BLOB,
    started_at_ms INTEGER NOT NULL,
    PRIMARY KEY (owner, key, method, path)
) WITHOUT ROWID;
INSERT INTO idempotency_keys_owned
       (owner, key, method, path, request_hash, status, content_type, body, started_at_ms)
SELECT '', key, method, path, request_hash, status, content_type, body, started_at_ms
  FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_owned RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (started_at_ms);

-- 2. Orders and campaign issues record their key in their own transaction; from now on it is
--    stored as '<owner> <key>' (a key has no white space, so the two cannot run together). A
--    key kept so far is taken to be its customer's own (the usual case: a customer placing its
--    order), so that customer's retry still finds it and nobody else's does.
UPDATE orders SET idempotency_key = 'user:' || customer || ' ' || idempotency_key
 WHERE idempotency_key IS NOT NULL;
UPDATE campaign_coupons
   SET idempotency_key = COALESCE('user:' || user_id, 'anonymous') || ' ' || idempotency_key
 WHERE idempotency_key IS NOT NULL;

-- 3. Access tokens carry their user's token generation; a token of an older generation is
--    refused (within the per-instance cache's 5 s). Deactivating, changing the role and
--    changing the password bump it, whoever makes the change (the server or SQL by hand).
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER users_token_generation
AFTER UPDATE OF active, role, password_hash ON users
WHEN OLD.active IS NOT NEW.active OR OLD.role IS NOT NEW.role
  OR OLD.password_hash IS NOT NEW.password_hash
BEGIN
    UPDATE users SET token_generation = token_generation + 1 WHERE id = NEW.id;
END;

-- 4. A refresh token family (a sign-in and its rotations) ends a fixed time after the sign-in
--    that started it, however often it is rotated. Tokens so far start their family at their
--    own creation.
ALTER TABLE refresh_tokens ADD COLUMN family_started_at_ms INTEGER;
UPDATE refresh_tokens SET family_started_at_ms = created_at_ms;

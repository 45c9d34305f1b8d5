-- Issue 15: accounts managed without the CLI (self sign-up, email verification, password reset
-- by email).
--
-- 1. A user who signed up cannot sign in until it proved its address: email_verified_at_ms is
--    NULL until then. Every user so far was made by an admin or the CLI, who vouched for the
--    address: they count as verified from their creation.
ALTER TABLE users ADD COLUMN email_verified_at_ms INTEGER;
UPDATE users SET email_verified_at_ms = created_at_ms;

-- 2. One-time tokens sent by email, stored as the SHA-256 (hex) of the secret, never the
--    secret. A user holds at most one live token per purpose: asking again replaces it, so
--    the table stays as small as the number of users and only the newest link works.
CREATE TABLE account_tokens (
    token_hash    TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    purpose       TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);

-- 3. The users list filters by role and active flag, paged by id.
CREATE INDEX users_by_role ON users (role, id);

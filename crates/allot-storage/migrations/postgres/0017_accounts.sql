-- Issue 15: accounts managed without the CLI. The PostgreSQL twin of migrations/sqlite/0017
-- (see there for why).
ALTER TABLE users ADD COLUMN email_verified_at_ms BIGINT;
UPDATE users SET email_verified_at_ms = created_at_ms;

CREATE TABLE account_tokens (
    token_hash    TEXT   PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    purpose       TEXT   NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);

CREATE INDEX users_by_role ON users (role, id);

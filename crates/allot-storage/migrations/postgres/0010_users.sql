-- Users, refresh tokens and API keys (issue 8). The PostgreSQL twin of
-- migrations/sqlite/0010. Secrets are stored only as hashes.
CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'marketing', 'warehouse',
                                                   'support', 'customer')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);

CREATE TABLE refresh_tokens (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT  NOT NULL REFERENCES users (id),
    token_hash    TEXT    NOT NULL UNIQUE,
    expires_at_ms BIGINT  NOT NULL,
    revoked_at_ms BIGINT,
    created_at_ms BIGINT  NOT NULL,
    replaced_by   BIGINT  REFERENCES refresh_tokens (id)
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id) WHERE revoked_at_ms IS NULL;

CREATE TABLE api_keys (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    NOT NULL,
    key_hash      TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'marketing', 'warehouse',
                                                   'support', 'customer')),
    created_at_ms BIGINT  NOT NULL,
    revoked_at_ms BIGINT
);

-- Users, refresh tokens and API keys (issue 8). Passwords are stored as Argon2id PHC strings;
-- refresh tokens and API keys only as the SHA-256 (hex) of the random secret, never the secret.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'marketing', 'warehouse',
                                                   'support', 'customer')),
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- A refresh token is used once: refreshing revokes it and points replaced_by at its successor.
-- Presenting a revoked one again (reuse) revokes every token of the user.
CREATE TABLE refresh_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    token_hash    TEXT    NOT NULL UNIQUE,
    expires_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    replaced_by   INTEGER REFERENCES refresh_tokens (id)
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id) WHERE revoked_at_ms IS NULL;

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    key_hash      TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'marketing', 'warehouse',
                                                   'support', 'customer')),
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);

-- Campaign issuance (issue 3). The PostgreSQL twin of migrations/sqlite/0002.

CREATE TABLE campaigns (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT    NOT NULL,
    starts_at_ms   BIGINT  NOT NULL,
    ends_at_ms     BIGINT  CHECK (ends_at_ms IS NULL OR ends_at_ms > starts_at_ms),
    total          BIGINT  NOT NULL CHECK (total >= 1),
    per_user_limit INTEGER CHECK (per_user_limit IS NULL OR per_user_limit >= 1),
    -- Over-issue is impossible whatever the code above does.
    issued         BIGINT  NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= total),
    created_at_ms  BIGINT  NOT NULL
);

CREATE TABLE campaign_coupons (
    campaign_id     BIGINT NOT NULL REFERENCES campaigns (id),
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    code            TEXT   NOT NULL,
    user_id         TEXT,
    idempotency_key TEXT,
    issued_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);

CREATE UNIQUE INDEX campaign_coupons_by_code ON campaign_coupons (code);
CREATE UNIQUE INDEX campaign_coupons_by_idempotency_key
    ON campaign_coupons (campaign_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX campaign_coupons_by_user
    ON campaign_coupons (campaign_id, user_id) WHERE user_id IS NOT NULL;

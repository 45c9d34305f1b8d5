-- Campaign issuance (issue 3): N coupon codes handed out first come, first served.

CREATE TABLE campaigns (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL,
    starts_at_ms   INTEGER NOT NULL,
    ends_at_ms     INTEGER CHECK (ends_at_ms IS NULL OR ends_at_ms > starts_at_ms),
    total          INTEGER NOT NULL CHECK (total >= 1),
    per_user_limit INTEGER CHECK (per_user_limit IS NULL OR per_user_limit >= 1),
    -- How many codes were issued. The CHECK makes over-issue impossible whatever the code
    -- above it does: an issue that would pass `total` fails and rolls back.
    issued         INTEGER NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= total),
    created_at_ms  INTEGER NOT NULL
);

-- Every issued code. The code is the primary key, so it is unique across all campaigns;
-- (campaign_id, seq) is unique too, and seq runs 1..=issued in issue order.
CREATE TABLE campaign_coupons (
    code            TEXT    NOT NULL PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    user_id         TEXT,
    idempotency_key TEXT,
    issued_at_ms    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE UNIQUE INDEX campaign_coupons_by_seq ON campaign_coupons (campaign_id, seq);
CREATE UNIQUE INDEX campaign_coupons_by_idempotency_key
    ON campaign_coupons (campaign_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX campaign_coupons_by_user
    ON campaign_coupons (campaign_id, user_id) WHERE user_id IS NOT NULL;

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

-- Every issued code, stored in issue order: the key (campaign_id, seq) only grows, so issues
-- append at the end of the table. seq runs 1..=issued. The unique index on code makes codes
-- unique across all campaigns; codes are k-sortable (an ordering prefix, then random symbols),
-- so that index grows at its end too instead of taking writes all over its pages.
CREATE TABLE campaign_coupons (
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    code            TEXT    NOT NULL,
    user_id         TEXT,
    idempotency_key TEXT,
    issued_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, seq)
) WITHOUT ROWID;

CREATE UNIQUE INDEX campaign_coupons_by_code ON campaign_coupons (code);
CREATE UNIQUE INDEX campaign_coupons_by_idempotency_key
    ON campaign_coupons (campaign_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX campaign_coupons_by_user
    ON campaign_coupons (campaign_id, user_id) WHERE user_id IS NOT NULL;

-- Coupon management (issue 4). The PostgreSQL twin of migrations/sqlite/0003.

CREATE TABLE coupon_uploads (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    count         INTEGER NOT NULL CHECK (count >= 1),
    created_at_ms BIGINT  NOT NULL
);

CREATE TABLE coupons (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            TEXT    NOT NULL UNIQUE,
    type            TEXT    CHECK (type IN ('FREE', 'STANDARD', 'MEGADEAL')),
    discount_kind   TEXT    NOT NULL CHECK (discount_kind IN ('FLAT', 'PERCENTAGE')),
    discount_amount BIGINT  NOT NULL CHECK (discount_amount >= 0
                        AND (discount_kind = 'FLAT' OR discount_amount <= 100)),
    expires_at_ms   BIGINT  NOT NULL,
    max_uses        INTEGER NOT NULL CHECK (max_uses >= 1),
    uses            INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    allocated_to    TEXT,
    allocated_at_ms BIGINT,
    upload_id       BIGINT  NOT NULL REFERENCES coupon_uploads (id),
    created_at_ms   BIGINT  NOT NULL
);

-- PostgreSQL cannot use an index for "type IS NOT DISTINCT FROM $1", so untyped coupons get
-- their own partial index and typed ones theirs.
CREATE INDEX coupons_free_by_type ON coupons (type, id) WHERE allocated_to IS NULL;
CREATE INDEX coupons_free_untyped ON coupons (id) WHERE allocated_to IS NULL AND type IS NULL;
CREATE INDEX coupons_by_holder ON coupons (allocated_to, type) WHERE allocated_to IS NOT NULL;
CREATE INDEX coupons_by_expiry ON coupons (expires_at_ms);

CREATE TABLE coupon_allocations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            TEXT   NOT NULL,
    type            TEXT,
    user_id         TEXT   NOT NULL,
    allocated_at_ms BIGINT NOT NULL
);

CREATE TABLE coupon_redemptions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code           TEXT   NOT NULL,
    type           TEXT,
    user_id        TEXT   NOT NULL,
    redeemed_at_ms BIGINT NOT NULL
);
CREATE INDEX coupon_redemptions_by_user ON coupon_redemptions (user_id, id);
CREATE INDEX coupon_redemptions_by_code ON coupon_redemptions (code, id);

CREATE TABLE coupon_purges (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purged_at_ms BIGINT NOT NULL,
    trigger      TEXT   NOT NULL,
    count        BIGINT NOT NULL
);

CREATE TABLE coupon_counters (
    type      TEXT   PRIMARY KEY CHECK (type IN ('NONE', 'FREE', 'STANDARD', 'MEGADEAL')),
    created   BIGINT NOT NULL DEFAULT 0,
    allocated BIGINT NOT NULL DEFAULT 0,
    redeemed  BIGINT NOT NULL DEFAULT 0,
    purged    BIGINT NOT NULL DEFAULT 0
);
INSERT INTO coupon_counters (type) VALUES ('NONE'), ('FREE'), ('STANDARD'), ('MEGADEAL');

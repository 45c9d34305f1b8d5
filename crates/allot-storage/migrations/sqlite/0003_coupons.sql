-- Coupon management (issue 4): uploaded coupons, allocation to users, redemption, purge.

-- One row per upload request, for audit.
CREATE TABLE coupon_uploads (
    id            INTEGER PRIMARY KEY,
    count         INTEGER NOT NULL CHECK (count >= 1),
    created_at_ms INTEGER NOT NULL
);

-- id is the upload order: allocation hands out the oldest first.
CREATE TABLE coupons (
    id              INTEGER PRIMARY KEY,
    code            TEXT    NOT NULL UNIQUE,
    -- NULL: untyped.
    type            TEXT    CHECK (type IN ('FREE', 'STANDARD', 'MEGADEAL')),
    discount_kind   TEXT    NOT NULL CHECK (discount_kind IN ('FLAT', 'PERCENTAGE')),
    discount_amount INTEGER NOT NULL CHECK (discount_amount >= 0
                        AND (discount_kind = 'FLAT' OR discount_amount <= 100)),
    expires_at_ms   INTEGER NOT NULL,
    max_uses        INTEGER NOT NULL CHECK (max_uses >= 1),
    -- Never above max_uses, whatever the code above does.
    uses            INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    allocated_to    TEXT,
    allocated_at_ms INTEGER,
    upload_id       INTEGER NOT NULL REFERENCES coupon_uploads (id),
    created_at_ms   INTEGER NOT NULL
);

-- Allocation: the oldest free coupon of a type.
CREATE INDEX coupons_free_by_type ON coupons (type, id) WHERE allocated_to IS NULL;
-- "Does this user already hold an unredeemed coupon of this type?"
CREATE INDEX coupons_by_holder ON coupons (allocated_to, type) WHERE allocated_to IS NOT NULL;
-- Purge (unused expired coupons) and the "expired" counter.
CREATE INDEX coupons_by_expiry ON coupons (expires_at_ms);

-- Every allocation, kept.
CREATE TABLE coupon_allocations (
    id              INTEGER PRIMARY KEY,
    code            TEXT    NOT NULL,
    type            TEXT,
    user_id         TEXT    NOT NULL,
    allocated_at_ms INTEGER NOT NULL
);

-- The record of every use: code, type, user, time. Kept when the coupon is purged.
CREATE TABLE coupon_redemptions (
    id             INTEGER PRIMARY KEY,
    code           TEXT    NOT NULL,
    type           TEXT,
    user_id        TEXT    NOT NULL,
    redeemed_at_ms INTEGER NOT NULL
);
CREATE INDEX coupon_redemptions_by_user ON coupon_redemptions (user_id, id);
CREATE INDEX coupon_redemptions_by_code ON coupon_redemptions (code, id);

-- Every purge, with how many coupons of each type it removed.
CREATE TABLE coupon_purges (
    id            INTEGER PRIMARY KEY,
    purged_at_ms  INTEGER NOT NULL,
    trigger       TEXT    NOT NULL,
    count         INTEGER NOT NULL
);

-- Counters per type ('NONE' for untyped), changed in the same transaction as what they count.
CREATE TABLE coupon_counters (
    type      TEXT    PRIMARY KEY CHECK (type IN ('NONE', 'FREE', 'STANDARD', 'MEGADEAL')),
    created   INTEGER NOT NULL DEFAULT 0,
    allocated INTEGER NOT NULL DEFAULT 0,
    redeemed  INTEGER NOT NULL DEFAULT 0,
    purged    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO coupon_counters (type) VALUES ('NONE'), ('FREE'), ('STANDARD'), ('MEGADEAL');

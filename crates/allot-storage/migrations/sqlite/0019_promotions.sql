-- Promotions (issue 16): rules that discount carts, the codes that reach them, and the holds
-- that spend their budgets. Every counter sits beside the limit that bounds it, copied from
-- the spec, so a CHECK can hold it: an update that would spend past a budget or a limit fails
-- and its transaction rolls back, whatever the code above does.
CREATE TABLE promotions (
    id                           INTEGER PRIMARY KEY,
    trigger                      TEXT    NOT NULL CHECK (trigger IN ('automatic', 'code')),
    active                       INTEGER NOT NULL CHECK (active IN (0, 1)),
    -- Raised by every change of the spec or the flag, not of the counters.
    version                      INTEGER NOT NULL CHECK (version >= 1),
    -- The PromotionSpec as JSON, checked again (Promotion::parse) whenever it is read.
    spec                         TEXT    NOT NULL,
    -- The spec's limits (NULL: none), copied here for the CHECKs below.
    budget_minor                 INTEGER CHECK (budget_minor >= 0),
    redemptions_max              INTEGER CHECK (redemptions_max >= 0),
    per_customer_budget_minor    INTEGER CHECK (per_customer_budget_minor >= 0),
    per_customer_redemptions_max INTEGER CHECK (per_customer_redemptions_max >= 0),
    -- Spent by redeemed holds, and set aside by holds not yet redeemed, released or expired.
    redeemed_minor               INTEGER NOT NULL DEFAULT 0 CHECK (redeemed_minor >= 0),
    redemptions                  INTEGER NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    held_minor                   INTEGER NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
    held                         INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    created_at_ms                INTEGER NOT NULL,
    updated_at_ms                INTEGER NOT NULL,
    CHECK (budget_minor IS NULL OR redeemed_minor + held_minor <= budget_minor),
    CHECK (redemptions_max IS NULL OR redemptions + held <= redemptions_max)
);
-- The server reloads the active automatic promotions; the API lists by trigger.
CREATE INDEX promotions_by_trigger ON promotions (trigger, active, id);

-- One row per promotion and customer (account id) that ever held it, with the per-customer
-- limits copied (and rewritten when the spec changes) so the same CHECKs hold per customer.
CREATE TABLE promotion_customers (
    promotion_id    INTEGER NOT NULL REFERENCES promotions (id),
    customer        TEXT    NOT NULL,
    budget_minor    INTEGER CHECK (budget_minor >= 0),
    redemptions_max INTEGER CHECK (redemptions_max >= 0),
    redeemed_minor  INTEGER NOT NULL DEFAULT 0 CHECK (redeemed_minor >= 0),
    redemptions     INTEGER NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    held_minor      INTEGER NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
    held            INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    CHECK (budget_minor IS NULL OR redeemed_minor + held_minor <= budget_minor),
    CHECK (redemptions_max IS NULL OR redemptions + held <= redemptions_max),
    PRIMARY KEY (promotion_id, customer)
) WITHOUT ROWID;

-- A code bound to a promotion: a coupon (its max_uses copied), a discount code (one use), or
-- a code of a bound campaign (its row made on its first hold, one use). `uses` counts holds
-- held or redeemed; a code is bound to one promotion at most (the key).
CREATE TABLE promotion_codes (
    code          TEXT    NOT NULL PRIMARY KEY,
    promotion_id  INTEGER NOT NULL REFERENCES promotions (id),
    source        TEXT    NOT NULL CHECK (source IN ('coupon', 'discount_code', 'campaign')),
    max_uses      INTEGER NOT NULL CHECK (max_uses >= 1),
    uses          INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX promotion_codes_by_promotion ON promotion_codes (promotion_id);

-- Every code a campaign issues, now or later, reaches the promotion.
CREATE TABLE promotion_campaigns (
    campaign_id   INTEGER PRIMARY KEY REFERENCES campaigns (id),
    promotion_id  INTEGER NOT NULL REFERENCES promotions (id),
    created_at_ms INTEGER NOT NULL
);

-- What the engine gave a cart, set aside until it is redeemed (an order, or an outside
-- reference), released, or expired; a redeemed hold may be rolled back once.
CREATE TABLE promotion_holds (
    id                      INTEGER PRIMARY KEY,
    status                  TEXT    NOT NULL CHECK (status IN ('held', 'redeemed', 'released',
                                                               'expired', 'rolled_back')),
    customer                TEXT,
    currency                TEXT    NOT NULL,
    cart_fingerprint        TEXT    NOT NULL,
    -- The engine's whole answer (JSON), shown back with the hold.
    evaluation              TEXT    NOT NULL,
    discount_minor          INTEGER NOT NULL CHECK (discount_minor >= 0),
    shipping_discount_minor INTEGER NOT NULL CHECK (shipping_discount_minor >= 0),
    -- A retried create with this key answers this hold; the index decides under any race.
    idempotency_key         TEXT    UNIQUE,
    reference               TEXT,
    created_at_ms           INTEGER NOT NULL,
    expires_at_ms           INTEGER NOT NULL,
    updated_at_ms           INTEGER NOT NULL
);
-- The expiry job walks only held holds, oldest expiry first.
CREATE INDEX promotion_holds_to_expire ON promotion_holds (expires_at_ms, id)
    WHERE status = 'held';

-- Each promotion a hold spends: the amount it counts against the budgets, and the code that
-- reached it.
CREATE TABLE promotion_hold_items (
    hold_id      INTEGER NOT NULL REFERENCES promotion_holds (id),
    position     INTEGER NOT NULL CHECK (position >= 0),
    promotion_id INTEGER NOT NULL REFERENCES promotions (id),
    code         TEXT,
    source       TEXT    CHECK (source IN ('coupon', 'discount_code', 'campaign')),
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    CHECK ((code IS NULL) = (source IS NULL)),
    PRIMARY KEY (hold_id, position)
) WITHOUT ROWID;
-- A promotion's holds, newest first (the console).
CREATE INDEX promotion_hold_items_by_promotion ON promotion_hold_items (promotion_id, hold_id);

-- Raised by every write of a promotion (create, update, bind): a server keeps the active
-- promotions parsed and reloads them when it moves.
CREATE TABLE promotions_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO promotions_generation (id, generation) VALUES (1, 0);

-- Promotions (issue 16), the PostgreSQL twin of migrations/sqlite/0019: rules that discount
-- carts, the codes that reach them, and the holds that spend their budgets. Every counter
-- sits beside the limit that bounds it, copied from the spec, so a CHECK can hold it: an
-- update that would spend past a budget or a limit fails and its transaction rolls back,
-- whatever the code above does.
CREATE TABLE promotions (
    id                           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger                      TEXT    NOT NULL CHECK (trigger IN ('automatic', 'code')),
    active                       BOOLEAN NOT NULL,
    -- Raised by every change of the spec or the flag, not of the counters.
    version                      BIGINT  NOT NULL CHECK (version >= 1),
    -- The PromotionSpec as JSON, checked again (Promotion::parse) whenever it is read.
    spec                         TEXT    NOT NULL,
    -- The spec's limits (NULL: none), copied here for the CHECKs below.
    budget_minor                 BIGINT  CHECK (budget_minor >= 0),
    redemptions_max              BIGINT  CHECK (redemptions_max >= 0),
    per_customer_budget_minor    BIGINT  CHECK (per_customer_budget_minor >= 0),
    per_customer_redemptions_max BIGINT  CHECK (per_customer_redemptions_max >= 0),
    -- Spent by redeemed holds, and set aside by holds not yet redeemed, released or expired.
    redeemed_minor               BIGINT  NOT NULL DEFAULT 0 CHECK (redeemed_minor >= 0),
    redemptions                  BIGINT  NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    held_minor                   BIGINT  NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
    held                         BIGINT  NOT NULL DEFAULT 0 CHECK (held >= 0),
    created_at_ms                BIGINT  NOT NULL,
    updated_at_ms                BIGINT  NOT NULL,
    CHECK (budget_minor IS NULL OR redeemed_minor + held_minor <= budget_minor),
    CHECK (redemptions_max IS NULL OR redemptions + held <= redemptions_max)
);
-- The server reloads the active automatic promotions; the API lists by trigger.
CREATE INDEX promotions_by_trigger ON promotions (trigger, active, id);

-- One row per promotion and customer (account id) that ever held it, with the per-customer
-- limits copied (and rewritten when the spec changes) so the same CHECKs hold per customer.
CREATE TABLE promotion_customers (
    promotion_id    BIGINT  NOT NULL REFERENCES promotions (id),
    customer        TEXT    NOT NULL,
    budget_minor    BIGINT  CHECK (budget_minor >= 0),
    redemptions_max BIGINT  CHECK (redemptions_max >= 0),
    redeemed_minor  BIGINT  NOT NULL DEFAULT 0 CHECK (redeemed_minor >= 0),
    redemptions     BIGINT  NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    held_minor      BIGINT  NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
    held            BIGINT  NOT NULL DEFAULT 0 CHECK (held >= 0),
    CHECK (budget_minor IS NULL OR redeemed_minor + held_minor <= budget_minor),
    CHECK (redemptions_max IS NULL OR redemptions + held <= redemptions_max),
    PRIMARY KEY (promotion_id, customer)
);

-- A code bound to a promotion: a coupon (its max_uses copied), a discount code (one use), or
-- a code of a bound campaign (its row made on its first hold, one use). `uses` counts holds
-- held or redeemed; a code is bound to one promotion at most (the key).
CREATE TABLE promotion_codes (
    code          TEXT    NOT NULL PRIMARY KEY,
    promotion_id  BIGINT  NOT NULL REFERENCES promotions (id),
    source        TEXT    NOT NULL CHECK (source IN ('coupon', 'discount_code', 'campaign')),
    max_uses      BIGINT  NOT NULL CHECK (max_uses >= 1),
    uses          BIGINT  NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX promotion_codes_by_promotion ON promotion_codes (promotion_id);

-- Every code a campaign issues, now or later, reaches the promotion.
CREATE TABLE promotion_campaigns (
    campaign_id   BIGINT  PRIMARY KEY REFERENCES campaigns (id),
    promotion_id  BIGINT  NOT NULL REFERENCES promotions (id),
    created_at_ms BIGINT  NOT NULL
);

-- What the engine gave a cart, set aside until it is redeemed (an order, or an outside
-- reference), released, or expired; a redeemed hold may be rolled back once.
CREATE TABLE promotion_holds (
    id                      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status                  TEXT    NOT NULL CHECK (status IN ('held', 'redeemed', 'released',
                                                               'expired', 'rolled_back')),
    customer                TEXT,
    currency                TEXT    NOT NULL,
    cart_fingerprint        TEXT    NOT NULL,
    -- The engine's whole answer (JSON), shown back with the hold.
    evaluation              TEXT    NOT NULL,
    discount_minor          BIGINT  NOT NULL CHECK (discount_minor >= 0),
    shipping_discount_minor BIGINT  NOT NULL CHECK (shipping_discount_minor >= 0),
    -- A retried create with this key answers this hold; the index decides under any race.
    idempotency_key         TEXT    UNIQUE,
    reference               TEXT,
    created_at_ms           BIGINT  NOT NULL,
    expires_at_ms           BIGINT  NOT NULL,
    updated_at_ms           BIGINT  NOT NULL
);
-- The expiry job walks only held holds, oldest expiry first.
CREATE INDEX promotion_holds_to_expire ON promotion_holds (expires_at_ms, id)
    WHERE status = 'held';

-- Each promotion a hold spends: the amount it counts against the budgets, and the code that
-- reached it.
CREATE TABLE promotion_hold_items (
    hold_id      BIGINT  NOT NULL REFERENCES promotion_holds (id),
    position     BIGINT  NOT NULL CHECK (position >= 0),
    promotion_id BIGINT  NOT NULL REFERENCES promotions (id),
    code         TEXT,
    source       TEXT    CHECK (source IN ('coupon', 'discount_code', 'campaign')),
    amount_minor BIGINT  NOT NULL CHECK (amount_minor >= 0),
    CHECK ((code IS NULL) = (source IS NULL)),
    PRIMARY KEY (hold_id, position)
);
-- A promotion's holds, newest first (the console).
CREATE INDEX promotion_hold_items_by_promotion ON promotion_hold_items (promotion_id, hold_id);

-- Raised by every write of a promotion (create, update, bind): a server keeps the active
-- promotions parsed and reloads them when it moves.
CREATE TABLE promotions_generation (
    id         BIGINT  PRIMARY KEY CHECK (id = 1),
    generation BIGINT  NOT NULL
);
INSERT INTO promotions_generation (id, generation) VALUES (1, 0);

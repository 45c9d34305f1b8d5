-- Flash sales (issue 5): a sale every hour on the hour, checkout then purchase.

-- One sale per hour: the UNIQUE start makes a second opening (another instance, a restart)
-- a no-op.
CREATE TABLE sales (
    id            INTEGER PRIMARY KEY,
    starts_at_ms  INTEGER NOT NULL UNIQUE,
    ends_at_ms    INTEGER NOT NULL CHECK (ends_at_ms > starts_at_ms),
    items_total   INTEGER NOT NULL CHECK (items_total >= 1),
    -- Never above items_total, whatever the code above does.
    sold          INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0 AND sold <= items_total),
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE sale_items (
    id            INTEGER PRIMARY KEY,
    sale_id       INTEGER NOT NULL REFERENCES sales (id),
    name          TEXT    NOT NULL,
    image_url     TEXT    NOT NULL,
    -- Set once, by the purchase that sold it.
    sold_to       TEXT,
    sold_at_ms    INTEGER,
    sold_by_code  TEXT
);
CREATE INDEX sale_items_by_sale ON sale_items (sale_id, id);
CREATE INDEX sale_items_by_buyer ON sale_items (sale_id, sold_to) WHERE sold_to IS NOT NULL;

-- Checkout codes. outcome is NULL until the first purchase of the code decides it; later
-- purchases of the same code answer that outcome again.
CREATE TABLE sale_checkouts (
    code          TEXT    NOT NULL PRIMARY KEY,
    sale_id       INTEGER NOT NULL REFERENCES sales (id),
    item_id       INTEGER NOT NULL REFERENCES sale_items (id),
    user_id       TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    outcome       TEXT    CHECK (outcome IN ('sold', 'item_sold', 'user_limit_reached', 'sale_over')),
    decided_at_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX sale_checkouts_open ON sale_checkouts (sale_id, user_id, item_id) WHERE outcome IS NULL;

-- Every checkout attempt, successful or not, kept after the purchase.
CREATE TABLE sale_checkout_attempts (
    id       INTEGER PRIMARY KEY,
    sale_id  INTEGER,
    item_id  INTEGER NOT NULL,
    user_id  TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    outcome  TEXT    NOT NULL,
    code     TEXT
);

-- Items each user bought in each sale, for the per-user limit.
CREATE TABLE sale_user_counts (
    sale_id INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    bought  INTEGER NOT NULL CHECK (bought >= 1),
    PRIMARY KEY (sale_id, user_id)
) WITHOUT ROWID;

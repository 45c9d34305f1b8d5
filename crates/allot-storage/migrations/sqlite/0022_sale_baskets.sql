-- The flash sale's design checkout (issue 18, seed 002): one open checkout code per user and
-- sale collects items (not reserved); its purchase buys every one still unsold, once.

-- purchased_at_ms is NULL while the code is open; the purchase sets it, and the user's next
-- checkout opens a new code. One open code per (sale, user), whatever the code above does.
CREATE TABLE sale_baskets (
    code            TEXT    NOT NULL PRIMARY KEY,
    sale_id         INTEGER NOT NULL REFERENCES sales (id),
    user_id         TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    purchased_at_ms INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX sale_baskets_one_open ON sale_baskets (sale_id, user_id)
    WHERE purchased_at_ms IS NULL;

-- The items on a code, each once. outcome is NULL until the purchase decides the item; a
-- repeated purchase answers these outcomes again.
CREATE TABLE sale_basket_items (
    code        TEXT    NOT NULL REFERENCES sale_baskets (code),
    item_id     INTEGER NOT NULL REFERENCES sale_items (id),
    added_at_ms INTEGER NOT NULL,
    outcome     TEXT    CHECK (outcome IN ('sold', 'item_sold', 'user_limit_reached', 'sale_over')),
    PRIMARY KEY (code, item_id)
) WITHOUT ROWID;

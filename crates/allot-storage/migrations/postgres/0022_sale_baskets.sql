-- The flash sale's design checkout (issue 18, seed 002). The PostgreSQL twin of
-- migrations/sqlite/0021.

CREATE TABLE sale_baskets (
    code            TEXT   NOT NULL PRIMARY KEY,
    sale_id         BIGINT NOT NULL REFERENCES sales (id),
    user_id         TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    purchased_at_ms BIGINT
);
CREATE UNIQUE INDEX sale_baskets_one_open ON sale_baskets (sale_id, user_id)
    WHERE purchased_at_ms IS NULL;

CREATE TABLE sale_basket_items (
    code        TEXT   NOT NULL REFERENCES sale_baskets (code),
    item_id     BIGINT NOT NULL REFERENCES sale_items (id),
    added_at_ms BIGINT NOT NULL,
    outcome     TEXT   CHECK (outcome IN ('sold', 'item_sold', 'user_limit_reached', 'sale_over')),
    PRIMARY KEY (code, item_id)
);

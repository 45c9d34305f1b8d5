-- Flash sales (issue 5). The PostgreSQL twin of migrations/sqlite/0004.

CREATE TABLE sales (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    starts_at_ms  BIGINT  NOT NULL UNIQUE,
    ends_at_ms    BIGINT  NOT NULL CHECK (ends_at_ms > starts_at_ms),
    items_total   INTEGER NOT NULL CHECK (items_total >= 1),
    sold          INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0 AND sold <= items_total),
    created_at_ms BIGINT  NOT NULL
);

CREATE TABLE sale_items (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sale_id      BIGINT NOT NULL REFERENCES sales (id),
    name         TEXT   NOT NULL,
    image_url    TEXT   NOT NULL,
    sold_to      TEXT,
    sold_at_ms   BIGINT,
    sold_by_code TEXT
);
CREATE INDEX sale_items_by_sale ON sale_items (sale_id, id);
CREATE INDEX sale_items_by_buyer ON sale_items (sale_id, sold_to) WHERE sold_to IS NOT NULL;

CREATE TABLE sale_checkouts (
    code          TEXT   NOT NULL PRIMARY KEY,
    sale_id       BIGINT NOT NULL REFERENCES sales (id),
    item_id       BIGINT NOT NULL REFERENCES sale_items (id),
    user_id       TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    outcome       TEXT   CHECK (outcome IN ('sold', 'item_sold', 'user_limit_reached', 'sale_over')),
    decided_at_ms BIGINT
);
CREATE INDEX sale_checkouts_open ON sale_checkouts (sale_id, user_id, item_id) WHERE outcome IS NULL;

CREATE TABLE sale_checkout_attempts (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sale_id BIGINT,
    item_id BIGINT NOT NULL,
    user_id TEXT   NOT NULL,
    at_ms   BIGINT NOT NULL,
    outcome TEXT   NOT NULL,
    code    TEXT
);

-- Unlike SQLite's, rows may hold 0: a purchase creates the row first, to lock it, so that one
-- user's purchases serialise across instances.
CREATE TABLE sale_user_counts (
    sale_id BIGINT  NOT NULL,
    user_id TEXT    NOT NULL,
    bought  INTEGER NOT NULL CHECK (bought >= 0),
    PRIMARY KEY (sale_id, user_id)
);

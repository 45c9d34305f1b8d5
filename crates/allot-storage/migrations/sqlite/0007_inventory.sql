-- Inventory (issue 7): stock per product per warehouse, its append-only ledger, reservations
-- and low-stock alerts. Every change of a balance writes its ledger row, and any alert it
-- raises or clears, in the same transaction, so the ledger's sums always equal the balances.

-- available = on_hand - reserved, never negative: the CHECK stands behind every operation.
CREATE TABLE stock_levels (
    product_id        INTEGER NOT NULL REFERENCES products (id),
    warehouse_id      INTEGER NOT NULL REFERENCES warehouses (id),
    on_hand           INTEGER NOT NULL,
    reserved          INTEGER NOT NULL,
    reorder_threshold INTEGER,
    reorder_quantity  INTEGER,
    -- An alert row with cleared_at_ms NULL exists exactly when this is 1.
    low_alert_open    INTEGER NOT NULL DEFAULT 0 CHECK (low_alert_open IN (0, 1)),
    updated_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (product_id, warehouse_id),
    CHECK (reserved >= 0 AND reserved <= on_hand),
    CHECK (reorder_threshold IS NULL OR reorder_threshold >= 0),
    CHECK (reorder_quantity IS NULL OR reorder_quantity > 0)
) WITHOUT ROWID;
CREATE INDEX stock_levels_by_warehouse ON stock_levels (warehouse_id, product_id);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE stock_movements (
    id             INTEGER PRIMARY KEY,
    product_id     INTEGER NOT NULL,
    warehouse_id   INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('stock_in', 'stock_out', 'reservation',
                                                    'release', 'adjustment', 'expiry')),
    on_hand_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    reservation_id INTEGER,
    reason         TEXT,
    at_ms          INTEGER NOT NULL,
    FOREIGN KEY (product_id, warehouse_id) REFERENCES stock_levels (product_id, warehouse_id)
);
CREATE INDEX stock_movements_by_product ON stock_movements (product_id, id);

CREATE TABLE reservations (
    id            INTEGER PRIMARY KEY,
    product_id    INTEGER NOT NULL,
    warehouse_id  INTEGER NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    holder        TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed', 'released',
                                                     'expired')),
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    FOREIGN KEY (product_id, warehouse_id) REFERENCES stock_levels (product_id, warehouse_id)
);
CREATE INDEX reservations_by_status_expiry ON reservations (status, expires_at_ms);

CREATE TABLE stock_alerts (
    id            INTEGER PRIMARY KEY,
    product_id    INTEGER NOT NULL,
    warehouse_id  INTEGER NOT NULL,
    available     INTEGER NOT NULL,
    threshold     INTEGER NOT NULL,
    raised_at_ms  INTEGER NOT NULL,
    cleared_at_ms INTEGER,
    FOREIGN KEY (product_id, warehouse_id) REFERENCES stock_levels (product_id, warehouse_id)
);
-- At most one open alert per product and warehouse.
CREATE UNIQUE INDEX stock_alerts_open ON stock_alerts (product_id, warehouse_id)
    WHERE cleared_at_ms IS NULL;
CREATE INDEX stock_alerts_open_by_id ON stock_alerts (id) WHERE cleared_at_ms IS NULL;

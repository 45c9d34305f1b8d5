-- Inventory (issue 7). The PostgreSQL twin of migrations/sqlite/0007.

CREATE TABLE stock_levels (
    product_id        BIGINT  NOT NULL REFERENCES products (id),
    warehouse_id      BIGINT  NOT NULL REFERENCES warehouses (id),
    on_hand           BIGINT  NOT NULL,
    reserved          BIGINT  NOT NULL,
    reorder_threshold BIGINT,
    reorder_quantity  BIGINT,
    low_alert_open    BOOLEAN NOT NULL DEFAULT false,
    updated_at_ms     BIGINT  NOT NULL,
    PRIMARY KEY (product_id, warehouse_id),
    CHECK (reserved >= 0 AND reserved <= on_hand),
    CHECK (reorder_threshold IS NULL OR reorder_threshold >= 0),
    CHECK (reorder_quantity IS NULL OR reorder_quantity > 0)
);
CREATE INDEX stock_levels_by_warehouse ON stock_levels (warehouse_id, product_id);

CREATE TABLE stock_movements (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id     BIGINT NOT NULL,
    warehouse_id   BIGINT NOT NULL,
    kind           TEXT   NOT NULL CHECK (kind IN ('stock_in', 'stock_out', 'reservation',
                                                   'release', 'adjustment', 'expiry')),
    on_hand_delta  BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    reservation_id BIGINT,
    reason         TEXT,
    at_ms          BIGINT NOT NULL,
    FOREIGN KEY (product_id, warehouse_id) REFERENCES stock_levels (product_id, warehouse_id)
);
CREATE INDEX stock_movements_by_product ON stock_movements (product_id, id);

CREATE TABLE reservations (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id    BIGINT NOT NULL,
    warehouse_id  BIGINT NOT NULL,
    quantity      BIGINT NOT NULL CHECK (quantity > 0),
    holder        TEXT   NOT NULL,
    status        TEXT   NOT NULL CHECK (status IN ('pending', 'confirmed', 'released',
                                                    'expired')),
    expires_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    FOREIGN KEY (product_id, warehouse_id) REFERENCES stock_levels (product_id, warehouse_id)
);
CREATE INDEX reservations_by_status_expiry ON reservations (status, expires_at_ms);

CREATE TABLE stock_alerts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id    BIGINT NOT NULL,
    warehouse_id  BIGINT NOT NULL,
    available     BIGINT NOT NULL,
    threshold     BIGINT NOT NULL,
    raised_at_ms  BIGINT NOT NULL,
    cleared_at_ms BIGINT,
    FOREIGN KEY (product_id, warehouse_id) REFERENCES stock_levels (product_id, warehouse_id)
);
CREATE UNIQUE INDEX stock_alerts_open ON stock_alerts (product_id, warehouse_id)
    WHERE cleared_at_ms IS NULL;
CREATE INDEX stock_alerts_open_by_id ON stock_alerts (id) WHERE cleared_at_ms IS NULL;

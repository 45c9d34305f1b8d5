-- Orders (issue 7). The PostgreSQL twin of migrations/sqlite/0009.

-- discount_codes.used_at_ms (migration 0001 says "set once, never cleared"): from this
-- migration on it is cleared again when the order that used the code is cancelled, which
-- gives the code back.
COMMENT ON COLUMN discount_codes.used_at_ms IS
    'NULL until used; cleared again when the order that used the code is cancelled';

CREATE TABLE orders (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer         TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed', 'fulfilled',
                                                        'delivered', 'cancelled',
                                                        'return_requested', 'returned')),
    currency         TEXT    NOT NULL CHECK (length(currency) = 3),
    shipping_address TEXT    NOT NULL,
    subtotal_minor   BIGINT  NOT NULL CHECK (subtotal_minor >= 0),
    coupon_code      TEXT,
    coupon_minor     BIGINT  CHECK (coupon_minor >= 0),
    discount_code    TEXT,
    discount_minor   BIGINT  CHECK (discount_minor >= 0),
    total_minor      BIGINT  NOT NULL CHECK (total_minor >= 0 AND total_minor <= subtotal_minor),
    idempotency_key  TEXT    UNIQUE,
    created_at_ms    BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer, id);
CREATE INDEX orders_by_status ON orders (status, id);
CREATE INDEX orders_by_created ON orders (created_at_ms, id);

CREATE TABLE order_lines (
    order_id         BIGINT  NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    product_id       BIGINT  NOT NULL REFERENCES products (id),
    sku              TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    quantity         BIGINT  NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT  NOT NULL CHECK (unit_price_minor >= 0),
    line_total_minor BIGINT  NOT NULL CHECK (line_total_minor >= 0),
    warehouse_id     BIGINT  NOT NULL,
    reservation_id   BIGINT  NOT NULL REFERENCES reservations (id),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_status_history (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     BIGINT NOT NULL REFERENCES orders (id),
    from_status  TEXT,
    to_status    TEXT   NOT NULL,
    reason       TEXT,
    warehouse_id BIGINT,
    at_ms        BIGINT NOT NULL
);
CREATE INDEX order_status_history_by_order ON order_status_history (order_id, id);

ALTER TABLE coupon_redemptions ADD COLUMN order_id BIGINT;
ALTER TABLE coupon_redemptions ADD COLUMN reversed_at_ms BIGINT;
CREATE INDEX coupon_redemptions_by_order ON coupon_redemptions (order_id)
    WHERE order_id IS NOT NULL;

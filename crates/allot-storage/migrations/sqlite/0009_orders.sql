-- Orders (issue 7): an order's lines reserve stock and its codes are used in the same
-- transaction that stores it; the status workflow is allot_domain::order::OrderStatus.

-- discount_codes.used_at_ms (migration 0001 says "set once, never cleared"): from this
-- migration on it is cleared again when the order that used the code is cancelled, which
-- gives the code back.

CREATE TABLE orders (
    id               INTEGER PRIMARY KEY,
    customer         TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed', 'fulfilled',
                                                        'delivered', 'cancelled',
                                                        'return_requested', 'returned')),
    currency         TEXT    NOT NULL CHECK (length(currency) = 3),
    -- JSON object: name, line1, line2, city, postal_code, country.
    shipping_address TEXT    NOT NULL,
    subtotal_minor   INTEGER NOT NULL CHECK (subtotal_minor >= 0),
    coupon_code      TEXT,
    coupon_minor     INTEGER CHECK (coupon_minor >= 0),
    discount_code    TEXT,
    discount_minor   INTEGER CHECK (discount_minor >= 0),
    total_minor      INTEGER NOT NULL CHECK (total_minor >= 0 AND total_minor <= subtotal_minor),
    -- A retried create with this key answers this order; the index decides under any race.
    idempotency_key  TEXT    UNIQUE,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer, id);
CREATE INDEX orders_by_status ON orders (status, id);
CREATE INDEX orders_by_created ON orders (created_at_ms, id);

-- One line per product; each held by one reservation in one warehouse.
CREATE TABLE order_lines (
    order_id         INTEGER NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    product_id       INTEGER NOT NULL REFERENCES products (id),
    sku              TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    line_total_minor INTEGER NOT NULL CHECK (line_total_minor >= 0),
    warehouse_id     INTEGER NOT NULL,
    reservation_id   INTEGER NOT NULL REFERENCES reservations (id),
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

-- Every status an order took, the first (pending) included.
CREATE TABLE order_status_history (
    id           INTEGER PRIMARY KEY,
    order_id     INTEGER NOT NULL REFERENCES orders (id),
    from_status  TEXT,
    to_status    TEXT    NOT NULL,
    reason       TEXT,
    warehouse_id INTEGER,
    at_ms        INTEGER NOT NULL
);
CREATE INDEX order_status_history_by_order ON order_status_history (order_id, id);

-- A coupon use made by an order, and its reversal when the order is cancelled.
ALTER TABLE coupon_redemptions ADD COLUMN order_id INTEGER;
ALTER TABLE coupon_redemptions ADD COLUMN reversed_at_ms INTEGER;
CREATE INDEX coupon_redemptions_by_order ON coupon_redemptions (order_id)
    WHERE order_id IS NOT NULL;

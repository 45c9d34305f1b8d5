-- Issue 19: shipments of an order's lines (partial fulfilment) and returns of shipped lines.
-- The rules are allot_domain::shipment's, decided under the order's lock (the single writer on
-- SQLite); the CHECKs stand behind them.

-- How much of each line has shipped; the order is fulfilled when every line has shipped whole.
ALTER TABLE order_lines ADD COLUMN shipped_quantity BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT order_lines_shipped_quantity
        CHECK (shipped_quantity >= 0 AND shipped_quantity <= quantity);

-- A shipment; carrier and tracking number are null for the whole-order move to fulfilled.
CREATE TABLE order_shipments (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        BIGINT NOT NULL REFERENCES orders (id),
    carrier         TEXT,
    tracking_number TEXT,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX order_shipments_by_order ON order_shipments (order_id, id);

CREATE TABLE order_shipment_lines (
    shipment_id BIGINT NOT NULL REFERENCES order_shipments (id),
    line_no     BIGINT NOT NULL,
    product_id  BIGINT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, line_no)
);

-- A return of shipped lines: requested -> approved | rejected; approved -> received (then
-- warehouse and disposition are set).
CREATE TABLE order_returns (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id      BIGINT NOT NULL REFERENCES orders (id),
    status        TEXT    NOT NULL
                  CHECK (status IN ('requested', 'approved', 'rejected', 'received')),
    reason        TEXT    NOT NULL,
    warehouse_id  BIGINT,
    disposition   TEXT    CHECK (disposition IN ('restock', 'write_off')),
    -- Refunded with the receipt (the refund itself is in order_refunds).
    refunded_minor BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX order_returns_by_order ON order_returns (order_id, id);

CREATE TABLE order_return_lines (
    return_id  BIGINT NOT NULL REFERENCES order_returns (id),
    line_no    BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (return_id, line_no)
);

-- The customer hears of each shipment with its carrier and tracking number.
INSERT INTO notification_templates
    (name, email_subject, email_body, in_app_title, in_app_body, created_at_ms, updated_at_ms)
VALUES
    ('order_shipped',
     'Your order {{ order_id }} has shipped',
     'Hello,

items of your order {{ order_id }} are on their way{% if carrier %} with {{ carrier }}{% endif %}.{% if tracking_number %}
Tracking number: {{ tracking_number }}{% endif %}
',
     'Order {{ order_id }} shipped',
     'Items of your order {{ order_id }} are on their way{% if carrier %} with {{ carrier }}{% endif %}{% if tracking_number %}, tracking number {{ tracking_number }}{% endif %}.',
     0, 0);

INSERT INTO notification_rules (name, event_type, recipients, template, channels, updated_at_ms)
VALUES
    ('order_shipped', 'OrderShipped', 'order_customer', 'order_shipped', 'email,in_app', 0);

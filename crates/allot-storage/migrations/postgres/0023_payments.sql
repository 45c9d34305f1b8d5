-- Issue 19: payments and refunds of orders, as the shop's payment provider reports them (no
-- card data, ever). An order is paid (confirmed) when its captured payments cover its total;
-- refunds never add up to more than was captured (the rule in allot_domain::payment, each
-- payment's own CHECK behind it).
CREATE TABLE order_payments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id       BIGINT NOT NULL REFERENCES orders (id),
    provider       TEXT    NOT NULL,
    -- The provider's id of the payment; one payment per provider and reference, so that a
    -- report sent twice (a webhook retried) is recorded once.
    reference      TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('authorized', 'captured', 'failed')),
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    currency       TEXT    NOT NULL CHECK (length(currency) = 3),
    refunded_minor BIGINT NOT NULL DEFAULT 0
                   CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    UNIQUE (provider, reference)
);
CREATE INDEX order_payments_by_order ON order_payments (order_id, id);

-- A refund, one row per captured payment it was taken from.
CREATE TABLE order_refunds (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id       BIGINT NOT NULL REFERENCES orders (id),
    payment_id     BIGINT NOT NULL REFERENCES order_payments (id),
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    reason         TEXT,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX order_refunds_by_order ON order_refunds (order_id, id);

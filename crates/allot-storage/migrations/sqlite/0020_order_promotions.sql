-- Issue 16: Allot's own orders through the promotion engine, and a shipping amount.
--
-- An order may consume a promotion hold (migration 0019) made for its very lines: the hold's
-- line discount comes first, then the coupon and the discount code on what is left, then the
-- shipping less the hold's shipping discount.
--
-- total_minor keeps its meaning and its CHECK: what the goods cost after every discount,
-- never above the subtotal. The order's total adds shipping_minor less
-- shipping_discount_minor. (Changing total_minor's CHECK would mean rebuilding the orders
-- table, which order_lines and order_status_history reference, inside the migration's
-- transaction with foreign keys on: not worth it for a sum the reader makes.)
ALTER TABLE orders ADD COLUMN shipping_minor INTEGER NOT NULL DEFAULT 0
    CHECK (shipping_minor >= 0);
ALTER TABLE orders ADD COLUMN shipping_discount_minor INTEGER NOT NULL DEFAULT 0
    CHECK (shipping_discount_minor >= 0 AND shipping_discount_minor <= shipping_minor);
-- Off the lines by the hold's promotions (their shipping discount is the column above).
ALTER TABLE orders ADD COLUMN promotion_minor INTEGER NOT NULL DEFAULT 0
    CHECK (promotion_minor >= 0 AND promotion_minor <= subtotal_minor);
-- The hold the order consumed (redeemed with the reference 'order-<id>'), rolled back when
-- the order is cancelled. A hold is consumed by one order at most.
ALTER TABLE orders ADD COLUMN promotion_hold_id INTEGER;
CREATE UNIQUE INDEX orders_by_promotion_hold ON orders (promotion_hold_id)
    WHERE promotion_hold_id IS NOT NULL;
-- JSON array of the hold's promotions as the order shows them:
-- [{"promotion_id": 1, "code": "SPRING10" or null, "amount_minor": 250}].
ALTER TABLE orders ADD COLUMN promotions TEXT NOT NULL DEFAULT '[]';

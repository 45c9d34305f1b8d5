-- Issue 16: Allot's own orders through the promotion engine, and a shipping amount. The
-- PostgreSQL twin of migrations/sqlite/0020.
--
-- total_minor keeps its meaning and its CHECK (the goods after every discount, never above
-- the subtotal), as on SQLite where changing a CHECK means rebuilding the table; the
-- order's total adds shipping_minor less shipping_discount_minor.
ALTER TABLE orders ADD COLUMN shipping_minor BIGINT NOT NULL DEFAULT 0
    CHECK (shipping_minor >= 0);
ALTER TABLE orders ADD COLUMN shipping_discount_minor BIGINT NOT NULL DEFAULT 0
    CHECK (shipping_discount_minor >= 0 AND shipping_discount_minor <= shipping_minor);
ALTER TABLE orders ADD COLUMN promotion_minor BIGINT NOT NULL DEFAULT 0
    CHECK (promotion_minor >= 0 AND promotion_minor <= subtotal_minor);
ALTER TABLE orders ADD COLUMN promotion_hold_id BIGINT;
CREATE UNIQUE INDEX orders_by_promotion_hold ON orders (promotion_hold_id)
    WHERE promotion_hold_id IS NOT NULL;
ALTER TABLE orders ADD COLUMN promotions TEXT NOT NULL DEFAULT '[]';

-- A coupon bound to a promotion is used through that promotion only (its holds and their
-- redemptions count the uses, in promotion_codes): the coupon API and an order's coupon_code
-- refuse it (409 coupon_bound), so a use is never counted in two places. The binding sets the
-- column under the coupon row's write (a row lock on PostgreSQL), so a redemption racing it
-- either came first (and the binding takes only the uses left) or sees the binding.
ALTER TABLE coupons ADD COLUMN promotion_id INTEGER REFERENCES promotions (id);
UPDATE coupons SET promotion_id = (
    SELECT b.promotion_id FROM promotion_codes b WHERE b.code = coupons.code AND b.source = 'coupon')
WHERE code IN (SELECT code FROM promotion_codes WHERE source = 'coupon');

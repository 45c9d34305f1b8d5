-- Allocation by type (issue 20's soak): the first free coupon of a type, in id order, is read
-- through a partial index of the free coupons. With `ORDER BY id` the planner could read the
-- primary key instead and filter: coupons are allocated in id order, so that walks every coupon
-- allocated so far (26 ms and 24,267 buffers per allocation at 30,000 allocated, in the
-- PostgreSQL soak, whenever the statistics said few were allocated), while every allocation
-- waits for the one before on the type's counter row. The free coupons are now ordered by
-- `id + 0`, which no other index gives: a plan without these indexes would sort every free
-- coupon, so the planner takes them whatever the statistics say.
DROP INDEX coupons_free_by_type;
CREATE INDEX coupons_free_by_type ON coupons (type, (id + 0)) WHERE allocated_to IS NULL;
DROP INDEX coupons_free_untyped;
CREATE INDEX coupons_free_untyped ON coupons ((id + 0)) WHERE allocated_to IS NULL AND type IS NULL;

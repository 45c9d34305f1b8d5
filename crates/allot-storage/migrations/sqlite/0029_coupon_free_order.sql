-- Allocation by type: on PostgreSQL the free coupons' partial indexes are remade on `id + 0`
-- so that the planner cannot read the primary key instead. SQLite's planner takes the partial
-- index of 0003 for `type IS ?1 ... ORDER BY id` (the SQLite soak held its latency): nothing
-- to change.
SELECT 1;

-- Coupon counters off the one row per type (issue 21). Every allocation and redemption of a
-- type updated that type's one `coupon_counters` row and held its lock until its commit, across
-- the WAL flush: all of them, on every connection of every instance, committed one at a time
-- (the commonest wait of the PostgreSQL soaks). Each type now has 16 slots; a transaction adds
-- to the slot of its connection, `coupon_counter_slot()` (the backend's pid modulo 16: one
-- slot for every type within a transaction, so it locks no more rows than before), and readers
-- add the slots up. A slot alone may go below zero (a redemption counted in one slot, given
-- back in another); the sum per type stays exact.
ALTER TABLE coupon_counters ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0
    CHECK (slot >= 0 AND slot < 16);
ALTER TABLE coupon_counters DROP CONSTRAINT coupon_counters_pkey;
ALTER TABLE coupon_counters ADD PRIMARY KEY (type, slot);
-- The counts so far stay in slot 0; the other slots start at zero.
INSERT INTO coupon_counters (type, slot)
SELECT k.type, s.slot FROM coupon_counters k CROSS JOIN generate_series(1, 15) AS s(slot);
ALTER TABLE coupon_counters ALTER COLUMN slot DROP DEFAULT;

CREATE FUNCTION coupon_counter_slot() RETURNS SMALLINT
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT (pg_backend_pid() % 16)::smallint $$;

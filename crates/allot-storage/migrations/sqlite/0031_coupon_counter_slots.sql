-- Coupon counters off the one row per type (issue 21): on PostgreSQL each type's counters are
-- spread over 16 slots that readers add up. SQLite's single writer serializes every write
-- anyway, and the readers' `SUM ... GROUP BY type` reads its one row per type: nothing to
-- change.
SELECT 1;

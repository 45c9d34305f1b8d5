-- The PostgreSQL event log written once (issue 21): its wide rows are no longer updated to be
-- numbered. SQLite's single writer numbers each event as it inserts it (`seq` INTEGER PRIMARY
-- KEY, in commit order): nothing to change.
SELECT 1;

-- Where each change came from (issue 8): `actor` now names the real principal (`user:<id>`,
-- `api_key:<id>`, `anonymous`, `system:<job>`) and `source` the client's IP address (NULL for
-- jobs and for events written before this migration). Text, as on SQLite: it is only shown
-- and matched whole, never computed on.
ALTER TABLE events ADD COLUMN source TEXT;
-- The audit log filters by actor and walks by seq.
CREATE INDEX events_by_actor ON events (actor, seq);

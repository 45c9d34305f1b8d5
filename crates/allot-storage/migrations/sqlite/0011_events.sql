-- The event log (issue 8): every state change appends its event(s) in the same savepoint as
-- the change. The single writer assigns `seq` (the rowid) in commit order, so a reader that
-- has seen every event up to N never sees a later-committed event below N.
-- Append-only: nothing updates or deletes a row.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,
    type           TEXT    NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    -- A JSON object; its fields per type are in docs/EVENTS.md.
    payload        TEXT    NOT NULL CHECK (json_valid(payload))
);
CREATE INDEX events_by_type ON events (type, seq);

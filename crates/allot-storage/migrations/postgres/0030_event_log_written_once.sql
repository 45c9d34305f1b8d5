-- The event log written once (issue 21). Until now writers inserted each event with `seq` NULL
-- and the sequencer numbered it with an UPDATE: the wide row (payload JSONB) was written twice,
-- and every one of its five indexes (`id`, UNIQUE `seq`, the unnumbered rows, `(type, seq)`,
-- `(actor, seq)`) was written by the writer and again by the update (not HOT: `seq` is
-- indexed). Now the log is three tables:
--   event_rows        the wide rows, written once by the writers; one index, the primary key.
--   event_unnumbered  one narrow row per append statement (the ids it inserted), no index:
--                     what the sequencer has left to number. Written with the event, in the
--                     writer's transaction; deleted by the sequencer in the transaction that
--                     numbers its events.
--   event_numbers     `(seq, id, type, actor)`, written by the sequencer only: the public order,
--                     with the walks by type and by actor in seq order.
-- Why `seq` is given after commit is unchanged (0011, docs/ARCHITECTURE.md "Events"); the view
-- `events` shows the log as one table again (tests and diagnosis read it; nothing writes it).
--
-- Existing events are carried over in this transaction with set-based statements (a few
-- passes over the log, sorted once for the unnumbered ones): the numbered keep their `seq`,
-- the unnumbered (all committed: the lock below waits for every writer) are numbered after
-- them in id order, as the sequencer would. Dropping `seq` does not rewrite the table.
LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
ALTER TABLE events RENAME TO event_rows;
ALTER INDEX events_pkey RENAME TO event_rows_pkey;
ALTER SEQUENCE events_id_seq RENAME TO event_rows_id_seq;

CREATE TABLE event_numbers (
    seq   BIGINT NOT NULL,
    id    BIGINT NOT NULL,
    type  TEXT   NOT NULL,
    actor TEXT   NOT NULL
);
INSERT INTO event_numbers (seq, id, type, actor)
SELECT seq, id, type, actor FROM event_rows WHERE seq IS NOT NULL;
INSERT INTO event_numbers (seq, id, type, actor)
SELECT top.s + row_number() OVER (ORDER BY r.id), r.id, r.type, r.actor
FROM event_rows r, (SELECT coalesce(max(seq), 0) AS s FROM event_rows) top
WHERE r.seq IS NULL;
-- Indexes built after the copy: one sort each instead of one insert per row.
ALTER TABLE event_numbers ADD CONSTRAINT event_numbers_pkey PRIMARY KEY (seq);
-- No index on `id`: nothing looks a number up by event, and an event cannot be numbered twice
-- (its ids come from its marker, which one sequencer run deletes; a second delete finds none).
-- A UNIQUE (id) to say so again cost 72 bytes of WAL per event (444 -> 372 without it).
CREATE INDEX event_numbers_by_type ON event_numbers (type, seq);
CREATE INDEX event_numbers_by_actor ON event_numbers (actor, seq);

-- Drops `seq`'s unique constraint and the three indexes on it with it.
ALTER TABLE event_rows DROP COLUMN seq;

-- Emptied by every read of the log: vacuumed after a thousand deletes rather than after a
-- fifth of the table, so the sequencer's scan stays a few pages. No index, so a replica
-- identity of the whole (narrow) row, in case the database is published logically.
CREATE TABLE event_unnumbered (
    ids BIGINT[] NOT NULL
) WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0);
ALTER TABLE event_unnumbered REPLICA IDENTITY FULL;

CREATE VIEW events AS
SELECT n.seq, r.id, r.type, r.occurred_at_ms, r.actor, r.source, r.payload, r.tx
FROM event_rows r LEFT JOIN event_numbers n ON n.id = r.id;

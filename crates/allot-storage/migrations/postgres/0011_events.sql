-- The event log (issue 8): every state change appends its event(s) in the same transaction as
-- the change. An identity taken at insert time is not commit-ordered (a transaction holding 10
-- may commit after one holding 11), so the public `seq` is not assigned by the writers: they
-- insert with `seq` NULL (`id` only orders events of one transaction), and a sequencer numbers
-- the committed, unnumbered rows under a transaction-scoped advisory lock, one run at a time,
-- continuing from the highest `seq` (docs/ARCHITECTURE.md, "Events"). Every number a reader
-- sees was given after every smaller one had committed, so `after=SEQ` never misses an event.
CREATE TABLE events (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq            BIGINT  UNIQUE,
    type           TEXT    NOT NULL,
    occurred_at_ms BIGINT  NOT NULL,
    actor          TEXT    NOT NULL,
    payload        JSONB   NOT NULL,
    -- The writing transaction, for diagnosis (which transaction wrote what).
    tx             xid8    NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX events_unnumbered ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_type ON events (type, seq);

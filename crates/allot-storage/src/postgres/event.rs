//! The event log on PostgreSQL, in three tables (migration 0030): writers insert each event's
//! wide row into `event_rows` once, with one narrow marker row per statement in
//! `event_unnumbered` (the ids it inserted), in the transaction of their change (one statement
//! per call, however many events); readers first number the committed, unnumbered events
//! ([`sequence`], waiting for a run in progress), which writes `(seq, id, type, actor)` into
//! `event_numbers` and deletes the markers, then read numbers joined to rows by id: so every
//! event of a write answered before a read starts is in that read.
//!
//! Why not an identity as the public sequence: identities are taken at insert, not at commit,
//! so a transaction holding 10 can commit after one holding 11 and a reader that saw 11 would
//! skip 10 forever. Filtering on `tx < pg_snapshot_xmin(...)` alone does not fix that either
//! (a transaction with a lower xid can take a higher number than one still running). The
//! sequencer runs under a transaction-scoped advisory lock, so runs never overlap and each
//! starts after the previous committed; each gives numbers above every number given before.
//! A reader's snapshot therefore always holds a prefix of the numbered log.
//!
//! Why three tables: numbering by an UPDATE of the wide row wrote the row (payload and all)
//! twice, and every index twice, on the writers' table. Now a writer writes the wide row, its
//! primary key entry and a marker row without an index; the indexes readers walk (by seq, type
//! and actor) are on the narrow numbers, written once, by the sequencer, off the writers' path.

use super::conn::{Conn, Db};
use allot_domain::UnixMillis;
use allot_domain::event::NewEvent;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::event::{AuditQuery, Event, EventQuery, EventStore};

/// The advisory lock key of the sequencer ("allot-ev").
const SEQUENCER_LOCK: i64 = 0x616c_6c6f_742d_6576;
/// Markers (append statements, each with its events) the first sequencer statement of a read
/// numbers at most. A statement appends at most a writer's batch of events, so a run numbers a
/// bounded number. Under a steady load the markers left between two reads (the notification
/// consumer reads every 500 ms) fit in one statement.
const SEQUENCE_BATCH_APPENDS: i64 = 5_000;
/// A backlog (no reader for a while) is taken in statements twice as large each time up to
/// this: each statement scans every marker left, so a fixed size would scan a backlog of a
/// million markers two hundred times.
const SEQUENCE_BATCH_APPENDS_MAX: i64 = 80_000;
/// Sequencer statements one read runs at most (a backlog of more than a million append
/// statements); past it the read answers what is numbered and the next read goes on.
const SEQUENCE_ROUNDS_MAX: usize = 20;

/// Is anything committed left to number? No marker in a snapshot taken now means that every
/// event committed before it has its number committed too (a marker is deleted in the
/// transaction that numbers its events).
pub(super) const UNNUMBERED_PROBE: &str = "SELECT 1 FROM event_unnumbered LIMIT 1";

/// The highest number given (0 for an empty log): the end of what a reader can see.
pub(super) const LOG_END: &str = "SELECT coalesce(max(seq), 0) FROM event_numbers";

/// Appends the events unnested from `$1..$5` (type, time, actor, source, payload) in order and
/// the marker of their ids: in one statement, so a write pays one round trip for its events.
/// Public for the measurement in `tests/event_log.rs`.
pub const APPEND_EVENTS: &str = "WITH logged AS (
         INSERT INTO event_rows (type, occurred_at_ms, actor, source, payload)
         SELECT k, t, a, s, p::jsonb
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[])
             WITH ORDINALITY AS u(k, t, a, s, p, n) ORDER BY n
         RETURNING id)
     INSERT INTO event_unnumbered (ids) SELECT array_agg(id ORDER BY id) FROM logged";

/// One sequencer run: the first markers by their first id (so the markers of one transaction
/// are taken in their order), their events numbered after the highest number in id order, and
/// the markers deleted (`$1`: markers at most). Answers the markers taken, the ids they name
/// and the events numbered. Public for the measurement in `tests/event_log.rs`.
pub const NUMBER_EVENTS: &str =
    "WITH top AS (SELECT coalesce(max(seq), 0) AS s FROM event_numbers),
          taken AS (DELETE FROM event_unnumbered WHERE ctid IN (
                        SELECT ctid FROM event_unnumbered ORDER BY ids[1] LIMIT $1)
                    RETURNING ids),
          todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n
                   FROM taken, unnest(taken.ids) AS id),
          numbered AS (INSERT INTO event_numbers (seq, id, type, actor)
                       SELECT top.s + todo.n, todo.id, r.type, r.actor
                       FROM todo CROSS JOIN top
                       -- One primary-key probe per event, never a hash of the whole log
                       -- (the planner guesses ten ids per marker): LIMIT keeps it a lateral.
                       CROSS JOIN LATERAL (SELECT type, actor FROM event_rows
                                           WHERE id = todo.id LIMIT 1) r
                       RETURNING 1)
     SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM todo),
            (SELECT count(*) FROM numbered)";

/// Appends `events` in order, in one statement; call it in the transaction of the change.
pub(super) async fn append_events(tx: &impl Db, events: &[NewEvent]) -> Result<(), StorageError> {
    if events.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|e| e.at.as_millis()).collect();
    let origins: Vec<_> = events.iter().map(crate::origin::resolve).collect();
    let actors: Vec<String> = origins.iter().map(|o| o.actor.to_string()).collect();
    let sources: Vec<Option<String>> = origins
        .iter()
        .map(|o| o.source.map(|ip| ip.to_string()))
        .collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    tx.execute(APPEND_EVENTS, &[&kinds, &at, &actors, &sources, &payloads])
        .await?;
    Ok(())
}

/// Appends one event.
pub(super) async fn append(tx: &impl Db, event: NewEvent) -> Result<(), StorageError> {
    append_events(tx, std::slice::from_ref(&event)).await
}

/// Numbers every committed event not numbered yet (those its markers name), in insertion
/// (id) order, after every number given before, so that the read that follows sees every
/// event of every write answered before this call, whichever instance answered it. A run in progress elsewhere is awaited rather than skipped: it may
/// have taken its snapshot before that write committed.
///
/// Nothing to number (no write since the last run) costs one look at the (emptied) marker
/// table and no lock, so reads of a quiet log stay cheap; under writes, reads queue on the
/// lock, never the writes.
async fn sequence(client: &mut Conn) -> Result<(), StorageError> {
    let mut batch = SEQUENCE_BATCH_APPENDS;
    for _ in 0..SEQUENCE_ROUNDS_MAX {
        let waiting = client.query_opt(UNNUMBERED_PROBE, &[]).await?;
        if waiting.is_none() {
            return Ok(());
        }
        let tx = client.transaction().await?;
        // No JIT for the run: a backlog's estimates pass `jit_above_cost`, and compiling costs
        // more than the statement saves.
        tx.execute(
            "SELECT set_config('jit', 'off', true), pg_advisory_xact_lock($1)",
            &[&SEQUENCER_LOCK],
        )
        .await?;
        // A new statement, so its snapshot sees every earlier run's numbers and every event
        // committed before this call.
        let run = tx.query_one(NUMBER_EVENTS, &[&batch]).await?;
        let (taken, named, numbered): (i64, i64, i64) =
            (run.try_get(0)?, run.try_get(1)?, run.try_get(2)?);
        if numbered != named {
            // A marker names an event that is not there: the log is not what was written.
            // Dropping `tx` rolls the run back.
            return Err(StorageError::Corrupt(format!(
                "the event log's sequencer found {numbered} of the {named} events its markers name"
            )));
        }
        super::commit(tx).await?;
        if taken < batch {
            return Ok(());
        }
        batch = (batch * 2).min(SEQUENCE_BATCH_APPENDS_MAX);
    }
    Ok(())
}

fn row(r: &tokio_postgres::Row) -> Event {
    Event {
        seq: r.get(0),
        kind: r.get(1),
        occurred_at: UnixMillis::from_millis(r.get(2)),
        actor: r.get(3),
        source: r.get(4),
        payload: r.get(5),
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn events(&self, q: EventQuery) -> Result<Vec<Event>, StorageError> {
        let mut client = self.client().await?;
        sequence(&mut client).await?;
        let limit = i64::from(q.limit);
        let kind = q.kind.map(|k| k.as_str());
        let rows = client
            .query(
                "SELECT n.seq, r.type, r.occurred_at_ms, r.actor, r.source, r.payload::text
                 FROM event_numbers n JOIN event_rows r ON r.id = n.id
                 WHERE n.seq > $1 AND ($3::text IS NULL OR n.type = $3) ORDER BY n.seq LIMIT $2",
                &[&q.after, &limit, &kind],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    async fn audit(&self, q: AuditQuery) -> Result<Vec<Event>, StorageError> {
        let mut client = self.client().await?;
        sequence(&mut client).await?;
        let limit = i64::from(q.limit);
        let kind = q.kind.map(|k| k.as_str());
        let since = q.since.map(|t| t.as_millis());
        let until = q.until.map(|t| t.as_millis());
        // An unnamed statement is planned with its values, so an absent filter costs nothing
        // and `event_numbers_by_actor` or `event_numbers_by_type` serve the given one.
        let rows = client
            .query(
                "SELECT n.seq, r.type, r.occurred_at_ms, r.actor, r.source, r.payload::text
                 FROM event_numbers n JOIN event_rows r ON r.id = n.id
                 WHERE n.seq > $1
                   AND ($3::text IS NULL OR n.actor = $3)
                   AND ($4::text IS NULL OR n.type = $4)
                   AND ($5::int8 IS NULL OR r.occurred_at_ms >= $5)
                   AND ($6::int8 IS NULL OR r.occurred_at_ms < $6)
                 ORDER BY n.seq LIMIT $2",
                &[&q.after, &limit, &q.actor, &kind, &since, &until],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    async fn log_end(&self) -> Result<i64, StorageError> {
        let mut client = self.client().await?;
        // Numbered first, like every read: the end is the end of what a reader can see.
        sequence(&mut client).await?;
        let row = client.query_one(LOG_END, &[]).await?;
        Ok(row.try_get(0)?)
    }
}

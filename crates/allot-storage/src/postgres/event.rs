//! The event log on PostgreSQL. Writers append events with `seq` NULL in the transaction of
//! their change (one `unnest` insert per call, however many events); readers first number the
//! committed, unnumbered events ([`sequence`], waiting for a run in progress), then read by
//! `seq`: so every event of a write answered before a read starts is in that read.
//!
//! Why not an identity as the public sequence: identities are taken at insert, not at commit,
//! so a transaction holding 10 can commit after one holding 11 and a reader that saw 11 would
//! skip 10 forever. Filtering on `tx < pg_snapshot_xmin(...)` alone does not fix that either
//! (a transaction with a lower xid can take a higher number than one still running). The
//! sequencer runs under a transaction-scoped advisory lock, so runs never overlap and each
//! starts after the previous committed; each gives numbers above every number given before.
//! A reader's snapshot therefore always holds a prefix of the numbered log.

use allot_domain::UnixMillis;
use allot_domain::event::NewEvent;
use async_trait::async_trait;
use tokio_postgres::{Client, GenericClient};

use super::PgStore;
use crate::StorageError;
use crate::event::{AuditQuery, Event, EventQuery, EventStore};

/// The advisory lock key of the sequencer ("allot-ev").
const SEQUENCER_LOCK: i64 = 0x616c_6c6f_742d_6576;
/// Events numbered per sequencer statement at most.
const SEQUENCE_BATCH: i64 = 10_000;
/// Sequencer statements one read runs at most (a backlog of a million events); past it the
/// read answers what is numbered and the next read goes on.
const SEQUENCE_ROUNDS_MAX: usize = 100;

/// Appends `events` in order, in one statement; call it in the transaction of the change.
pub(super) async fn append_events(
    tx: &impl GenericClient,
    events: &[NewEvent],
) -> Result<(), StorageError> {
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
    tx.execute(
        "INSERT INTO events (type, occurred_at_ms, actor, source, payload)
         SELECT k, t, a, s, p::jsonb
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[])
             WITH ORDINALITY AS u(k, t, a, s, p, n) ORDER BY n",
        &[&kinds, &at, &actors, &sources, &payloads],
    )
    .await?;
    Ok(())
}

/// Appends one event.
pub(super) async fn append(tx: &impl GenericClient, event: NewEvent) -> Result<(), StorageError> {
    append_events(tx, std::slice::from_ref(&event)).await
}

/// Numbers every committed event that has no `seq` yet, in insertion order, so that the read
/// that follows sees every event of every write answered before this call, whichever
/// instance answered it. A run in progress elsewhere is awaited rather than skipped: it may
/// have taken its snapshot before that write committed.
///
/// Nothing to number (no write since the last run) costs one index probe and no lock, so
/// reads of a quiet log stay cheap; under writes, reads queue on the lock, never the writes.
async fn sequence(client: &mut Client) -> Result<(), StorageError> {
    for _ in 0..SEQUENCE_ROUNDS_MAX {
        // In a snapshot taken now, no unnumbered row means that every event committed before
        // this call has its number committed too.
        let waiting = client
            .query_opt("SELECT 1 FROM events WHERE seq IS NULL LIMIT 1", &[])
            .await?;
        if waiting.is_none() {
            return Ok(());
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SEQUENCER_LOCK])
            .await?;
        // A new statement, so its snapshot sees every earlier run's numbers and every event
        // committed before this call.
        let numbered = tx
            .execute(
                "WITH top AS (SELECT coalesce(max(seq), 0) AS s FROM events),
                      todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n
                               FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT $1) x)
                 UPDATE events e SET seq = top.s + todo.n FROM todo, top WHERE e.id = todo.id",
                &[&SEQUENCE_BATCH],
            )
            .await?;
        super::commit(tx).await?;
        if numbered < SEQUENCE_BATCH as u64 {
            return Ok(());
        }
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
                "SELECT seq, type, occurred_at_ms, actor, source, payload::text FROM events
                 WHERE seq > $1 AND ($3::text IS NULL OR type = $3) ORDER BY seq LIMIT $2",
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
        // and `events_by_actor` or `events_by_type` serve the given one.
        let rows = client
            .query(
                "SELECT seq, type, occurred_at_ms, actor, source, payload::text FROM events
                 WHERE seq > $1
                   AND ($3::text IS NULL OR actor = $3)
                   AND ($4::text IS NULL OR type = $4)
                   AND ($5::int8 IS NULL OR occurred_at_ms >= $5)
                   AND ($6::int8 IS NULL OR occurred_at_ms < $6)
                 ORDER BY seq LIMIT $2",
                &[&q.after, &limit, &q.actor, &kind, &since, &until],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    async fn log_end(&self) -> Result<i64, StorageError> {
        let mut client = self.client().await?;
        // Numbered first, like every read: the end is the end of what a reader can see.
        sequence(&mut client).await?;
        let row = client
            .query_one("SELECT coalesce(max(seq), 0) FROM events", &[])
            .await?;
        Ok(row.try_get(0)?)
    }
}

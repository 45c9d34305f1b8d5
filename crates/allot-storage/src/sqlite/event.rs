//! The event log on SQLite: appended by the single writer inside each operation's savepoint,
//! so `seq` (the rowid) follows commit order.

use allot_domain::UnixMillis;
use allot_domain::event::NewEvent;
use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::StorageError;
use crate::event::{Event, EventQuery, EventStore};

/// Appends `events` in order; call it in the savepoint of the change they describe.
pub(super) fn append_events(conn: &Connection, events: &[NewEvent]) -> Result<(), StorageError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (type, occurred_at_ms, actor, payload) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in events {
        insert.execute(params![
            e.kind.as_str(),
            e.at.as_millis(),
            e.actor,
            e.payload
        ])?;
    }
    Ok(())
}

/// Appends one event.
pub(super) fn append(conn: &Connection, event: NewEvent) -> Result<(), StorageError> {
    append_events(conn, std::slice::from_ref(&event))
}

fn events(conn: &Connection, q: &EventQuery) -> Result<Vec<Event>, StorageError> {
    let map = |r: &rusqlite::Row<'_>| {
        Ok(Event {
            seq: r.get(0)?,
            kind: r.get(1)?,
            occurred_at: UnixMillis::from_millis(r.get(2)?),
            actor: r.get(3)?,
            payload: r.get(4)?,
        })
    };
    let rows = match q.kind {
        Some(kind) => conn
            .prepare_cached(
                "SELECT seq, type, occurred_at_ms, actor, payload FROM events \
                 WHERE type = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![kind.as_str(), q.after, q.limit], map)?
            .collect::<Result<Vec<_>, _>>()?,
        None => conn
            .prepare_cached(
                "SELECT seq, type, occurred_at_ms, actor, payload FROM events \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![q.after, q.limit], map)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn events(&self, query: EventQuery) -> Result<Vec<Event>, StorageError> {
        self.read(move |conn| events(conn, &query)).await
    }
}

//! The event log on SQLite: appended by the single writer inside each operation's savepoint,
//! so `seq` (the rowid) follows commit order.

use allot_domain::UnixMillis;
use allot_domain::event::NewEvent;
use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::StorageError;
use crate::event::{AuditQuery, Event, EventQuery, EventStore};

/// Appends `events` in order; call it in the savepoint of the change they describe.
pub(super) fn append_events(conn: &Connection, events: &[NewEvent]) -> Result<(), StorageError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (type, occurred_at_ms, actor, source, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in events {
        let origin = crate::origin::resolve(e);
        insert.execute(params![
            e.kind.as_str(),
            e.at.as_millis(),
            origin.actor.to_string(),
            origin.source.map(|ip| ip.to_string()),
            e.payload
        ])?;
    }
    Ok(())
}

/// Appends one event.
pub(super) fn append(conn: &Connection, event: NewEvent) -> Result<(), StorageError> {
    append_events(conn, std::slice::from_ref(&event))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: r.get(0)?,
        kind: r.get(1)?,
        occurred_at: UnixMillis::from_millis(r.get(2)?),
        actor: r.get(3)?,
        source: r.get(4)?,
        payload: r.get(5)?,
    })
}

fn events(conn: &Connection, q: &EventQuery) -> Result<Vec<Event>, StorageError> {
    let map = row;
    let rows = match q.kind {
        Some(kind) => conn
            .prepare_cached(
                "SELECT seq, type, occurred_at_ms, actor, source, payload FROM events \
                 WHERE type = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![kind.as_str(), q.after, q.limit], map)?
            .collect::<Result<Vec<_>, _>>()?,
        None => conn
            .prepare_cached(
                "SELECT seq, type, occurred_at_ms, actor, source, payload FROM events \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![q.after, q.limit], map)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows)
}

/// Only the filters given become predicates, so the planner can use `events_by_actor` or
/// `events_by_type` (a handful of statement shapes, each prepared once).
fn audit(conn: &Connection, q: &AuditQuery) -> Result<Vec<Event>, StorageError> {
    let mut sql = String::from(
        "SELECT seq, type, occurred_at_ms, actor, source, payload FROM events WHERE seq > ?",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![q.after.into()];
    if let Some(actor) = &q.actor {
        sql.push_str(" AND actor = ?");
        args.push(actor.clone().into());
    }
    if let Some(kind) = q.kind {
        sql.push_str(" AND type = ?");
        args.push(kind.as_str().to_owned().into());
    }
    if let Some(since) = q.since {
        sql.push_str(" AND occurred_at_ms >= ?");
        args.push(since.as_millis().into());
    }
    if let Some(until) = q.until {
        sql.push_str(" AND occurred_at_ms < ?");
        args.push(until.as_millis().into());
    }
    sql.push_str(" ORDER BY seq LIMIT ?");
    args.push(i64::from(q.limit).into());
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args), row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn events(&self, query: EventQuery) -> Result<Vec<Event>, StorageError> {
        self.read(move |conn| events(conn, &query)).await
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<Event>, StorageError> {
        self.read(move |conn| audit(conn, &query)).await
    }

    async fn log_end(&self) -> Result<i64, StorageError> {
        self.read(super::webhook::log_end).await
    }
}

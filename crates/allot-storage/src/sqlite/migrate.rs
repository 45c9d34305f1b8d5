//! Applies the SQLite side of [`crate::migrations`], once each, in order, at start.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::StorageError;
use crate::migrations::{now_ms, pending};

pub(super) fn apply(conn: &mut Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS allot_migrations (
             version       INTEGER PRIMARY KEY,
             name          TEXT    NOT NULL,
             applied_at_ms INTEGER NOT NULL
         )",
    )?;
    // IMMEDIATE takes the write lock first, so a second process can never apply the same
    // migration beside us.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let newest: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM allot_migrations",
        [],
        |r| r.get(0),
    )?;
    let now_ms = now_ms();
    for m in pending(newest)? {
        tx.execute_batch(m.sqlite)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO allot_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
                    params![m.version, m.name, now_ms],
                )
                .map(|_| ())
            })
            .map_err(|e| StorageError::Migration {
                version: m.version,
                name: m.name,
                source: Box::new(e.into()),
            })?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    tx.commit()?;
    Ok(())
}

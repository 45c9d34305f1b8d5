//! Versioned migrations, embedded in the binary and applied once each, in order, at start.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};

use crate::StorageError;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "discount_codes",
        sql: include_str!("../../migrations/sqlite/0001_discount_codes.sql"),
    },
    Migration {
        version: 2,
        name: "campaigns",
        sql: include_str!("../../migrations/sqlite/0002_campaigns.sql"),
    },
    Migration {
        version: 3,
        name: "coupons",
        sql: include_str!("../../migrations/sqlite/0003_coupons.sql"),
    },
    Migration {
        version: 4,
        name: "sales",
        sql: include_str!("../../migrations/sqlite/0004_sales.sql"),
    },
    Migration {
        version: 5,
        name: "job_runs",
        sql: include_str!("../../migrations/sqlite/0005_job_runs.sql"),
    },
];

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
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if newest > known {
        return Err(StorageError::Corrupt(format!(
            "the database is at migration {newest}, newer than this allot knows ({known}); \
             run the newer allot"
        )));
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for m in MIGRATIONS.iter().filter(|m| m.version > newest) {
        tx.execute_batch(m.sql)
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

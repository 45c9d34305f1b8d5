//! Versioned migrations for PostgreSQL: the same versions and names as the SQLite ones, in
//! PostgreSQL's dialect. Several instances may start at the same moment: a transaction-scoped
//! advisory lock lets one apply what is missing while the others wait, then find nothing to do.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

use crate::StorageError;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "discount_codes",
        sql: include_str!("../../migrations/postgres/0001_discount_codes.sql"),
    },
    Migration {
        version: 2,
        name: "campaigns",
        sql: include_str!("../../migrations/postgres/0002_campaigns.sql"),
    },
    Migration {
        version: 3,
        name: "coupons",
        sql: include_str!("../../migrations/postgres/0003_coupons.sql"),
    },
    Migration {
        version: 4,
        name: "sales",
        sql: include_str!("../../migrations/postgres/0004_sales.sql"),
    },
    Migration {
        version: 5,
        name: "job_runs",
        sql: include_str!("../../migrations/postgres/0005_job_runs.sql"),
    },
];

/// The advisory lock key that serialises migration runs across instances ("allot" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0061_6c6c_6f74;

/// Applies every migration not applied yet, in order, in one transaction.
pub async fn apply(client: &mut Client) -> Result<Vec<i64>, StorageError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS allot_migrations (
             version       BIGINT PRIMARY KEY,
             name          TEXT   NOT NULL,
             applied_at_ms BIGINT NOT NULL
         )",
    )
    .await?;
    let newest: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM allot_migrations",
            &[],
        )
        .await?
        .get(0);
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
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > newest) {
        let step = async {
            tx.batch_execute(m.sql).await?;
            tx.execute(
                "INSERT INTO allot_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &now_ms],
            )
            .await?;
            Ok::<_, StorageError>(())
        };
        step.await.map_err(|e| StorageError::Migration {
            version: m.version,
            name: m.name,
            source: Box::new(e),
        })?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied postgres migration"
        );
        applied.push(m.version);
    }
    tx.commit().await?;
    Ok(applied)
}

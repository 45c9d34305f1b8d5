//! Versioned migrations for PostgreSQL: the same versions and names as the SQLite ones, in
//! PostgreSQL's dialect. Several instances may start at the same moment: a transaction-scoped
//! advisory lock lets one apply what is missing while the others wait, then find nothing to do.

use tokio_postgres::Client;

use crate::StorageError;
use crate::migrations::{now_ms, pending};

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
    let now_ms = now_ms();
    let mut applied = Vec::new();
    for m in pending(newest)? {
        let step = async {
            tx.batch_execute(m.postgres).await?;
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
    super::commit_raw(tx).await?;
    Ok(applied)
}

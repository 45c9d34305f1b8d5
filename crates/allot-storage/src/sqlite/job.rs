//! Job claims on SQLite: one statement in the writer.

use allot_domain::UnixMillis;
use async_trait::async_trait;

use super::SqliteStore;
use crate::StorageError;
use crate::job::JobStore;

#[async_trait]
impl JobStore for SqliteStore {
    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError> {
        self.write_one(move |conn, _| {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO job_runs (job, last_run_ms) VALUES (?1, ?2)
                     ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms
                     WHERE job_runs.last_run_ms <= ?2 - ?3",
                )?
                .execute(rusqlite::params![job, now.as_millis(), spacing_ms])?;
            Ok(changed == 1)
        })
        .await
    }
}

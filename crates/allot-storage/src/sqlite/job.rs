//! Job claims on SQLite: one statement in the writer.

use allot_domain::UnixMillis;
use async_trait::async_trait;

use super::SqliteStore;
use crate::StorageError;
use crate::job::{CLAIM_SQL, JobStore};
use rusqlite::OptionalExtension;

#[async_trait]
impl JobStore for SqliteStore {
    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError> {
        self.write_one(move |conn, _| {
            let claimed = conn
                .prepare_cached(CLAIM_SQL)?
                .query_row(rusqlite::params![job, now.as_millis(), spacing_ms], |_| {
                    Ok(())
                })
                .optional()?;
            Ok(claimed.is_some())
        })
        .await
    }
}

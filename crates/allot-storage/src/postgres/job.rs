//! Job claims on PostgreSQL: one conditional upsert, atomic across instances.

use allot_domain::UnixMillis;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::job::JobStore;

#[async_trait]
impl JobStore for PgStore {
    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let claimed = client
            .query_opt(
                "INSERT INTO job_runs (job, last_run_ms) VALUES ($1, $2)
                 ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms
                 WHERE job_runs.last_run_ms <= $2 - $3
                 RETURNING 1",
                &[&job, &now.as_millis(), &spacing_ms],
            )
            .await?;
        Ok(claimed.is_some())
    }
}

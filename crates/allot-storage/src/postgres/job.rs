//! Job claims on PostgreSQL: one conditional upsert, atomic across instances.

use super::conn::Db;
use allot_domain::UnixMillis;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::job::{CLAIM_SQL, JobStore};

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
            .query_opt(CLAIM_SQL, &[&job, &now.as_millis(), &spacing_ms])
            .await?;
        Ok(claimed.is_some())
    }
}

//! Background jobs' part of the storage interface: who runs a job now, when several instances
//! share one database.

use allot_domain::UnixMillis;
use async_trait::async_trait;

use crate::StorageError;

#[async_trait]
pub trait JobStore {
    /// Claims the run of `job` at `now` if no instance ran it within `spacing`: true means this
    /// instance runs it now. Atomic across instances sharing the database.
    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError>;
}

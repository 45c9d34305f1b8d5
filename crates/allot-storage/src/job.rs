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

/// Claims a run (see [`JobStore::claim_job_run`]): a row back means this instance runs it.
/// Both backends run it as it is (parameters in the order SQLite numbers them).
pub(crate) const CLAIM_SQL: &str = "INSERT INTO job_runs (job, last_run_ms) VALUES ($1, $2)
     ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms
     WHERE job_runs.last_run_ms <= $2 - $3
     RETURNING 1";

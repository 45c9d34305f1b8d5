//! Idempotency keys for state-changing REST requests: the storage side of the
//! `Idempotency-Key` header. The first request with a key claims it; its answer is stored when
//! it has one; a retry finds that answer.

use allot_domain::UnixMillis;
use async_trait::async_trait;

use crate::StorageError;

/// Which request a key belongs to: its caller's, for one method and path. Keys of different
/// owners never meet, so one caller's answer is never replayed to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    /// Who sent it: `user:<id>`, `api_key:<id>` or `anonymous@<ip>`.
    pub owner: String,
    pub key: String,
    pub method: String,
    pub path: String,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its first request was abandoned long ago): serve the request.
    Claimed,
    /// The first request was answered: this is its answer.
    Completed(StoredResponse),
    /// The first request is still being served.
    InProgress,
    /// The key was used for a different request (another body or query).
    Mismatch,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `scope` for a request whose hash is `hash`. A claim left unanswered since before
    /// `stale_before` (its server died mid-request) may be claimed again.
    async fn claim_idempotency_key(
        &self,
        scope: IdempotencyScope,
        hash: String,
        now: UnixMillis,
        stale_before: UnixMillis,
    ) -> Result<Claim, StorageError>;

    /// Stores the answer of a claimed key.
    async fn complete_idempotency_key(
        &self,
        scope: IdempotencyScope,
        response: StoredResponse,
    ) -> Result<(), StorageError>;

    /// Gives up a claim without an answer (the request failed in a way worth retrying).
    async fn abandon_idempotency_key(&self, scope: IdempotencyScope) -> Result<(), StorageError>;

    /// Forgets keys claimed before `before`; returns how many.
    async fn purge_idempotency_keys(&self, before: UnixMillis) -> Result<u64, StorageError>;
}

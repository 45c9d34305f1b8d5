//! Idempotency keys on PostgreSQL: the primary key decides which of several concurrent first
//! requests (on any instance) claims a key; the others see it in progress.

use super::conn::Db;
use allot_domain::UnixMillis;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::crypto::{open_claim, seal_answer};
use crate::idempotency::{Claim, IdempotencyScope, IdempotencyStore, StoredResponse};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency_key(
        &self,
        scope: IdempotencyScope,
        hash: String,
        now: UnixMillis,
        stale_before: UnixMillis,
    ) -> Result<Claim, StorageError> {
        let client = self.client().await?;
        let claimed = client
            .query_opt(
                "INSERT INTO idempotency_keys (key, method, path, request_hash, started_at_ms, owner)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
                &[
                    &scope.key,
                    &scope.method,
                    &scope.path,
                    &hash,
                    &now.as_millis(),
                    &scope.owner,
                ],
            )
            .await?;
        if claimed.is_some() {
            return Ok(Claim::Claimed);
        }
        let Some(row) = client
            .query_opt(
                "SELECT request_hash, status, content_type, body FROM idempotency_keys
                 WHERE key = $1 AND method = $2 AND path = $3 AND owner = $4",
                &[&scope.key, &scope.method, &scope.path, &scope.owner],
            )
            .await?
        else {
            // Purged between the two statements: as good as in progress; the client retries.
            return Ok(Claim::InProgress);
        };
        if row.get::<_, String>(0) != hash {
            return Ok(Claim::Mismatch);
        }
        if let Some(status) = row.get::<_, Option<i32>>(1) {
            let found = Claim::Completed(StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| StorageError::Corrupt(format!("stored status {status}")))?,
                content_type: row.get(2),
                body: row.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
            });
            return open_claim(&self.cipher, &scope, found);
        }
        // Abandoned by a server that died mid-request: one retry takes it over.
        let taken = client
            .query_opt(
                "UPDATE idempotency_keys SET started_at_ms = $4
                 WHERE key = $1 AND method = $2 AND path = $3 AND status IS NULL
                   AND started_at_ms < $5 AND owner = $6
                 RETURNING 1",
                &[
                    &scope.key,
                    &scope.method,
                    &scope.path,
                    &now.as_millis(),
                    &stale_before.as_millis(),
                    &scope.owner,
                ],
            )
            .await?;
        Ok(if taken.is_some() {
            Claim::Claimed
        } else {
            Claim::InProgress
        })
    }

    async fn complete_idempotency_key(
        &self,
        scope: IdempotencyScope,
        response: StoredResponse,
    ) -> Result<(), StorageError> {
        let response = seal_answer(&self.cipher, &scope, response);
        let client = self.client().await?;
        client
            .execute(
                "UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6
                 WHERE key = $1 AND method = $2 AND path = $3 AND owner = $7",
                &[
                    &scope.key,
                    &scope.method,
                    &scope.path,
                    &i32::from(response.status),
                    &response.content_type,
                    &response.body,
                    &scope.owner,
                ],
            )
            .await?;
        Ok(())
    }

    async fn abandon_idempotency_key(&self, scope: IdempotencyScope) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM idempotency_keys
                 WHERE key = $1 AND method = $2 AND path = $3 AND status IS NULL
                   AND owner = $4",
                &[&scope.key, &scope.method, &scope.path, &scope.owner],
            )
            .await?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, before: UnixMillis) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let purged = client
            .execute(
                "DELETE FROM idempotency_keys WHERE started_at_ms < $1",
                &[&before.as_millis()],
            )
            .await?;
        for forget in [
            crate::discount::sql::FORGET_KEYS,
            crate::coupon::sql::FORGET_KEYS,
        ] {
            client.execute(forget, &[&before.as_millis()]).await?;
        }
        Ok(purged)
    }
}

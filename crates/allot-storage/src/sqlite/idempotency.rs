//! Idempotency keys on SQLite: claims go through the single writer, so a claim and the check
//! before it cannot interleave with another claim of the same key.

use allot_domain::UnixMillis;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::StorageError;
use crate::crypto::{open_claim, seal_answer};
use crate::idempotency::{Claim, IdempotencyScope, IdempotencyStore, StoredResponse};

fn claim(
    conn: &Connection,
    scope: &IdempotencyScope,
    hash: &str,
    now: UnixMillis,
    stale_before: UnixMillis,
) -> Result<Claim, StorageError> {
    let found = conn
        .prepare_cached(
            "SELECT request_hash, status, content_type, body, started_at_ms FROM idempotency_keys
             WHERE owner = ?4 AND key = ?1 AND method = ?2 AND path = ?3",
        )?
        .query_row(
            params![scope.key, scope.method, scope.path, scope.owner],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<u16>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    match found {
        None => {
            conn.prepare_cached(
                "INSERT INTO idempotency_keys (key, method, path, request_hash, started_at_ms, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                scope.key,
                scope.method,
                scope.path,
                hash,
                now.as_millis(),
                scope.owner
            ])?;
            Ok(Claim::Claimed)
        }
        Some((stored_hash, _, _, _, _)) if stored_hash != hash => Ok(Claim::Mismatch),
        Some((_, Some(status), content_type, body, _)) => Ok(Claim::Completed(StoredResponse {
            status,
            content_type,
            body: body.unwrap_or_default(),
        })),
        Some((_, None, _, _, started)) if started < stale_before.as_millis() => {
            conn.prepare_cached(
                "UPDATE idempotency_keys SET started_at_ms = ?4
                 WHERE owner = ?5 AND key = ?1 AND method = ?2 AND path = ?3",
            )?
            .execute(params![
                scope.key,
                scope.method,
                scope.path,
                now.as_millis(),
                scope.owner
            ])?;
            Ok(Claim::Claimed)
        }
        Some(_) => Ok(Claim::InProgress),
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        scope: IdempotencyScope,
        hash: String,
        now: UnixMillis,
        stale_before: UnixMillis,
    ) -> Result<Claim, StorageError> {
        let key = scope.clone();
        let claimed = self
            .write(1, move |conn, _| {
                claim(conn, &scope, &hash, now, stale_before)
            })
            .await?;
        open_claim(&self.cipher, &key, claimed)
    }

    async fn complete_idempotency_key(
        &self,
        scope: IdempotencyScope,
        response: StoredResponse,
    ) -> Result<(), StorageError> {
        let response = seal_answer(&self.cipher, &scope, response);
        self.write_one(move |conn, _| {
            conn.prepare_cached(
                "UPDATE idempotency_keys SET status = ?4, content_type = ?5, body = ?6
                 WHERE owner = ?7 AND key = ?1 AND method = ?2 AND path = ?3",
            )?
            .execute(params![
                scope.key,
                scope.method,
                scope.path,
                response.status,
                response.content_type,
                response.body,
                scope.owner
            ])?;
            Ok(())
        })
        .await
    }

    async fn abandon_idempotency_key(&self, scope: IdempotencyScope) -> Result<(), StorageError> {
        self.write_one(move |conn, _| {
            conn.prepare_cached(
                "DELETE FROM idempotency_keys
                 WHERE owner = ?4 AND key = ?1 AND method = ?2 AND path = ?3
                   AND status IS NULL",
            )?
            .execute(params![scope.key, scope.method, scope.path, scope.owner])?;
            Ok(())
        })
        .await
    }

    async fn purge_idempotency_keys(&self, before: UnixMillis) -> Result<u64, StorageError> {
        self.write(1, move |conn, _| {
            let n = conn
                .prepare_cached("DELETE FROM idempotency_keys WHERE started_at_ms < ?1")?
                .execute(params![before.as_millis()])?;
            for forget in [
                crate::discount::sql::FORGET_KEYS,
                crate::coupon::sql::FORGET_KEYS,
            ] {
                conn.prepare_cached(forget)?
                    .execute(params![before.as_millis()])?;
            }
            Ok(n as u64)
        })
        .await
    }
}

//! Discount codes on SQLite: writes in the writer's batch transaction, reads on a reader.

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::user::IdempotencyKey;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::event::append;
use crate::StorageError;
use crate::discount::{
    DiscountCodeRecord, DiscountStore, Draws, GeneratedBatch, kept_codes, not_used, record,
    replayed, returned_event, sql,
};

fn generate(
    conn: &Connection,
    length: CodeLength,
    count: GenerateCount,
    now: UnixMillis,
    key: Option<&IdempotencyKey>,
) -> Result<GeneratedBatch, StorageError> {
    let mut draws = Draws::new(count, length);
    let key_text = key.map(IdempotencyKey::as_str);
    let batch_id: Option<i64> = conn
        .prepare_cached(sql::NEW_BATCH)?
        .query_row(
            params![length.get(), draws.count(), now.as_millis(), key_text],
            |r| r.get(0),
        )
        .optional()?;
    let Some(batch_id) = batch_id else {
        // No row: the key's batch exists (the writer is alone, so it is committed).
        let key = key.ok_or_else(|| {
            StorageError::Corrupt("a batch without a key was not made".to_owned())
        })?;
        let kept: Option<String> = conn
            .prepare_cached(sql::BATCH_BY_KEY)?
            .query_row(params![key.as_str()], |r| r.get(0))?;
        return replayed(key, kept);
    };

    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO discount_codes (code, batch_id) VALUES (?1, ?2)")?;
    let mut codes = Vec::with_capacity(draws.count());
    loop {
        let wanted = draws.next(codes.len())?;
        if wanted == 0 {
            break;
        }
        for code in draws.draw(wanted) {
            // A collision (with any stored code, or one drawn earlier in this batch) inserts
            // nothing; it is drawn again in the next round.
            if insert.execute(params![code.as_str(), batch_id])? == 1 {
                codes.push(code);
            }
        }
    }
    if key.is_some() {
        conn.prepare_cached(sql::KEEP_CODES)?
            .execute(params![kept_codes(&codes), batch_id])?;
    }
    append(conn, draws.finished(batch_id, now))?;
    Ok(GeneratedBatch {
        codes,
        replayed: false,
    })
}

pub(super) fn use_code(
    conn: &Connection,
    code: &DiscountCode,
    now: UnixMillis,
    order: Option<i64>,
) -> Result<UseOutcome, StorageError> {
    let changed = conn
        .prepare_cached(
            "UPDATE discount_codes SET used_at_ms = ?2 WHERE code = ?1 AND used_at_ms IS NULL",
        )?
        .execute(params![code.as_str(), now.as_millis()])?;
    if changed == 1 {
        append(
            conn,
            crate::event::discount_used_event(code.as_str(), order, now),
        )?;
        return Ok(UseOutcome::Used);
    }
    let exists = conn
        .prepare_cached(sql::EXISTS)?
        .exists(params![code.as_str()])?;
    Ok(not_used(exists))
}

/// Makes a used code unused again (an order that used it was cancelled).
pub(super) fn give_back(
    conn: &Connection,
    code: &str,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let changed = conn
        .prepare_cached(sql::GIVE_BACK)?
        .execute(params![code])?;
    if changed == 1 {
        append(conn, returned_event(code, order, now))?;
    }
    Ok(())
}

fn get(conn: &Connection, code: &DiscountCode) -> Result<Option<DiscountCodeRecord>, StorageError> {
    let row = conn
        .prepare_cached(sql::RECORD)?
        .query_row(params![code.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })
        .optional()?;
    Ok(row.map(|(created, used)| record(code, created, used)))
}

#[async_trait]
impl DiscountStore for SqliteStore {
    async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
        key: Option<IdempotencyKey>,
    ) -> Result<GeneratedBatch, StorageError> {
        self.write(count.get() as usize, move |conn, _| {
            generate(conn, length, count, now, key.as_ref())
        })
        .await
    }

    async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError> {
        let code = code.clone();
        self.write(1, move |conn, _| use_code(conn, &code, now, None))
            .await
    }

    async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError> {
        let code = code.clone();
        self.read(move |conn| get(conn, &code)).await
    }
}

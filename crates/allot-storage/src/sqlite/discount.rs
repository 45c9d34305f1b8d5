//! Discount-code operations, run inside the writer's batch transaction or on a reader.

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::event::{EventType, NewEvent};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::event::append;

use crate::{DiscountCodeRecord, StorageError};

/// Draws allowed per requested code before giving up. With 32^7 codes a collision is rare
/// (about 40 per 10 million draws at 8 symbols), so hitting this bound means the code space is
/// close to full, which an operator must hear about rather than loop forever.
const DRAWS_PER_CODE_MAX: usize = 16;

pub(super) fn generate(
    conn: &Connection,
    length: CodeLength,
    count: GenerateCount,
    now: UnixMillis,
) -> Result<Vec<DiscountCode>, StorageError> {
    let count = count.get() as usize;
    conn.prepare_cached(
        "INSERT INTO discount_code_batches (length, count, created_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![length.get(), count, now.as_millis()])?;
    let batch_id = conn.last_insert_rowid();

    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO discount_codes (code, batch_id) VALUES (?1, ?2)")?;
    let mut rng = rand::rng();
    let mut codes = Vec::with_capacity(count);
    let mut draws = 0;
    let draws_max = count * DRAWS_PER_CODE_MAX;
    // Draw what is missing, insert it in key order (neighbouring keys share b-tree pages, so
    // sorted inserts walk the tree once instead of jumping around it), and draw again for any
    // collision until the batch is full.
    let mut wanted = count;
    while wanted > 0 {
        if draws + wanted > draws_max {
            return Err(StorageError::Corrupt(format!(
                "{draws} draws found only {} unused codes of length {}: the code space is nearly full",
                codes.len(),
                length.get()
            )));
        }
        draws += wanted;
        let mut drawn: Vec<DiscountCode> = (0..wanted)
            .map(|_| DiscountCode::generate(&mut rng, length))
            .collect();
        drawn.sort_unstable();
        for code in drawn {
            // A collision (with any stored code, or one drawn earlier in this batch) inserts
            // nothing; it is drawn again in the next round.
            if insert.execute(params![code.as_str(), batch_id])? == 1 {
                codes.push(code);
            }
        }
        wanted = count - codes.len();
    }
    // One summary event for the batch, never one per code.
    let payload = json!({"batch_id": batch_id, "count": count, "length": length.get()});
    append(
        conn,
        NewEvent::api(EventType::DiscountCodesGenerated, now, payload.to_string()),
    )?;
    if draws > count {
        tracing::info!(
            collisions = draws - count,
            "discount code collisions redrawn"
        );
    }
    Ok(codes)
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
        .prepare_cached("SELECT 1 FROM discount_codes WHERE code = ?1")?
        .exists(params![code.as_str()])?;
    Ok(if exists {
        UseOutcome::AlreadyUsed
    } else {
        UseOutcome::Invalid
    })
}

/// Makes a used code unused again (an order that used it was cancelled).
pub(super) fn give_back(
    conn: &Connection,
    code: &str,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let changed = conn
        .prepare_cached("UPDATE discount_codes SET used_at_ms = NULL WHERE code = ?1")?
        .execute(params![code])?;
    if changed == 1 {
        let payload = json!({"code": code, "order_id": order});
        append(
            conn,
            NewEvent::api(EventType::DiscountCodeReturned, now, payload.to_string()),
        )?;
    }
    Ok(())
}

pub(super) fn get(
    conn: &Connection,
    code: &DiscountCode,
) -> Result<Option<DiscountCodeRecord>, StorageError> {
    let row = conn
        .prepare_cached(
            "SELECT b.created_at_ms, c.used_at_ms FROM discount_codes c \
             JOIN discount_code_batches b ON b.id = c.batch_id WHERE c.code = ?1",
        )?
        .query_row(params![code.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })
        .optional()?;
    Ok(row.map(|(created, used)| DiscountCodeRecord {
        code: code.clone(),
        created_at: UnixMillis::from_millis(created),
        used_at: used.map(UnixMillis::from_millis),
    }))
}

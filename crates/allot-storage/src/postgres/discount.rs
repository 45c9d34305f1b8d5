//! Discount codes on PostgreSQL. A batch is one transaction: codes are drawn, inserted with
//! `ON CONFLICT DO NOTHING RETURNING`, and any that collided are drawn again, so a collision
//! never fails the call and a failure leaves nothing. Using a code is one conditional UPDATE,
//! atomic across any number of instances.

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::event::{EventType, NewEvent};
use tokio_postgres::{Client, GenericClient};

use crate::{DiscountCodeRecord, StorageError};

const DRAWS_PER_CODE_MAX: usize = 16;

pub(super) async fn generate(
    client: &mut Client,
    length: CodeLength,
    count: GenerateCount,
    now: UnixMillis,
) -> Result<Vec<DiscountCode>, StorageError> {
    let count = count.get() as usize;
    let tx = client.transaction().await?;
    let batch_id: i64 = tx
        .query_one(
            "INSERT INTO discount_code_batches (length, count, created_at_ms) VALUES ($1, $2, $3) RETURNING id",
            &[&i32::from(length.get()), &(count as i32), &now.as_millis()],
        )
        .await?
        .get(0);
    let insert = tx
        .prepare(
            "INSERT INTO discount_codes (code, batch_id)
             SELECT unnest($1::text[]), $2 ON CONFLICT (code) DO NOTHING RETURNING code",
        )
        .await?;
    let mut codes = Vec::with_capacity(count);
    let mut draws = 0;
    while codes.len() < count {
        let wanted = count - codes.len();
        if draws + wanted > count * DRAWS_PER_CODE_MAX {
            return Err(StorageError::Corrupt(format!(
                "{draws} draws found only {} unused codes: the code space is nearly full",
                codes.len()
            )));
        }
        draws += wanted;
        let drawn: Vec<String> = {
            let mut rng = rand::rng();
            let mut d: Vec<String> = (0..wanted)
                .map(|_| DiscountCode::generate(&mut rng, length).into_string())
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        };
        for row in tx.query(&insert, &[&drawn, &batch_id]).await? {
            let code: String = row.get(0);
            codes.push(
                DiscountCode::parse(&code)
                    .map_err(|e| StorageError::Corrupt(format!("inserted code {code:?}: {e}")))?,
            );
        }
    }
    // One summary event for the batch, never one per code.
    let payload = serde_json::json!({"batch_id": batch_id, "count": count, "length": length.get()});
    let event = NewEvent::api(EventType::DiscountCodesGenerated, now, payload.to_string());
    super::event::append(&tx, event).await?;
    tx.commit().await?;
    Ok(codes)
}

pub(super) async fn use_code(
    client: &impl GenericClient,
    code: &DiscountCode,
    now: UnixMillis,
) -> Result<UseOutcome, StorageError> {
    // The use and its event in one statement: atomic without a transaction's round trips.
    let event = crate::event::discount_used_event(code.as_str(), None, now);
    let origin = crate::origin::resolve(&event);
    let used = client
        .query_opt(
            "WITH used AS (
                 UPDATE discount_codes SET used_at_ms = $2 WHERE code = $1 AND used_at_ms IS NULL
                 RETURNING 1
             ), logged AS (
                 INSERT INTO events (type, occurred_at_ms, actor, source, payload)
                 SELECT $3, $2, $4, $6, $5::text::jsonb FROM used
             )
             SELECT 1 FROM used",
            &[
                &code.as_str(),
                &now.as_millis(),
                &event.kind.as_str(),
                &origin.actor.to_string(),
                &event.payload,
                &origin.source.map(|ip| ip.to_string()),
            ],
        )
        .await?;
    if used.is_some() {
        return Ok(UseOutcome::Used);
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM discount_codes WHERE code = $1",
            &[&code.as_str()],
        )
        .await?;
    Ok(if exists.is_some() {
        UseOutcome::AlreadyUsed
    } else {
        UseOutcome::Invalid
    })
}

/// Makes a used code unused again (an order that used it was cancelled).
pub(super) async fn give_back(
    tx: &impl GenericClient,
    code: &str,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let changed = tx
        .execute(
            "UPDATE discount_codes SET used_at_ms = NULL WHERE code = $1",
            &[&code],
        )
        .await?;
    if changed == 1 {
        let payload = serde_json::json!({"code": code, "order_id": order});
        let event = NewEvent::api(EventType::DiscountCodeReturned, now, payload.to_string());
        super::event::append(tx, event).await?;
    }
    Ok(())
}

pub(super) async fn get(
    client: &Client,
    code: &DiscountCode,
) -> Result<Option<DiscountCodeRecord>, StorageError> {
    let row = client
        .query_opt(
            "SELECT b.created_at_ms, c.used_at_ms FROM discount_codes c
             JOIN discount_code_batches b ON b.id = c.batch_id WHERE c.code = $1",
            &[&code.as_str()],
        )
        .await?;
    Ok(row.map(|r| DiscountCodeRecord {
        code: code.clone(),
        created_at: UnixMillis::from_millis(r.get(0)),
        used_at: r.get::<_, Option<i64>>(1).map(UnixMillis::from_millis),
    }))
}

//! Discount codes on PostgreSQL. A batch is one transaction: codes are drawn, inserted with
//! `ON CONFLICT DO NOTHING RETURNING`, and any that collided are drawn again, so a collision
//! never fails the call and a failure leaves nothing. Using a code is one conditional UPDATE,
//! atomic across any number of instances.

use super::conn::{Conn, Db};
use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::user::IdempotencyKey;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::discount::{
    DiscountCodeRecord, DiscountStore, Draws, GeneratedBatch, kept_codes, not_used, record,
    replayed, returned_event, sql,
};

async fn generate(
    client: &mut Conn,
    length: CodeLength,
    count: GenerateCount,
    now: UnixMillis,
    key: Option<&IdempotencyKey>,
) -> Result<GeneratedBatch, StorageError> {
    let mut draws = Draws::new(count, length);
    let tx = client.transaction().await?;
    let key_text = key.map(IdempotencyKey::as_str);
    let batch_id: Option<i64> = tx
        .query_opt(
            sql::NEW_BATCH,
            &[
                &i32::from(length.get()),
                &(draws.count() as i32),
                &now.as_millis(),
                &key_text,
            ],
        )
        .await?
        .map(|r| r.get(0));
    let Some(batch_id) = batch_id else {
        // No row: the key's batch is committed (a concurrent first call was waited for).
        let key = key.ok_or_else(|| {
            StorageError::Corrupt("a batch without a key was not made".to_owned())
        })?;
        let kept: Option<String> = tx
            .query_one(sql::BATCH_BY_KEY, &[&key.as_str()])
            .await?
            .get(0);
        return replayed(key, kept);
    };
    let insert = "INSERT INTO discount_codes (code, batch_id)
                  SELECT unnest($1::text[]), $2 ON CONFLICT (code) DO NOTHING RETURNING code";
    let mut codes = Vec::with_capacity(draws.count());
    loop {
        let wanted = draws.next(codes.len())?;
        if wanted == 0 {
            break;
        }
        let mut drawn = draws.draw(wanted);
        // One statement may not insert a code twice: a code drawn twice is drawn again.
        drawn.dedup();
        let drawn: Vec<&str> = drawn.iter().map(DiscountCode::as_str).collect();
        for row in tx.query(insert, &[&drawn, &batch_id]).await? {
            let code: String = row.get(0);
            codes.push(
                DiscountCode::parse(&code)
                    .map_err(|e| StorageError::Corrupt(format!("inserted code {code:?}: {e}")))?,
            );
        }
    }
    if key.is_some() {
        tx.execute(sql::KEEP_CODES, &[&kept_codes(&codes), &batch_id])
            .await?;
    }
    super::event::append(&tx, draws.finished(batch_id, now)).await?;
    super::commit(tx).await?;
    Ok(GeneratedBatch {
        codes,
        replayed: false,
    })
}

async fn use_code(
    client: &impl Db,
    code: &DiscountCode,
    now: UnixMillis,
) -> Result<UseOutcome, StorageError> {
    // The use, its event and the event's marker (postgres/event.rs) in one statement: atomic
    // without a transaction's round trips.
    let event = crate::event::discount_used_event(code.as_str(), None, now);
    let origin = crate::origin::resolve(&event);
    let used = client
        .query_opt(
            "WITH used AS (
                 UPDATE discount_codes SET used_at_ms = $2 WHERE code = $1 AND used_at_ms IS NULL
                 RETURNING 1
             ), logged AS (
                 INSERT INTO event_rows (type, occurred_at_ms, actor, source, payload)
                 SELECT $3, $2, $4, $6, $5::text::jsonb FROM used
                 RETURNING id
             ), marked AS (
                 INSERT INTO event_unnumbered (ids) SELECT ARRAY[id] FROM logged
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
        .await
        .map_err(super::sent_write)?;
    if used.is_some() {
        return Ok(UseOutcome::Used);
    }
    let exists = client.query_opt(sql::EXISTS, &[&code.as_str()]).await?;
    Ok(not_used(exists.is_some()))
}

/// Makes a used code unused again (an order that used it was cancelled).
pub(super) async fn give_back(
    tx: &impl Db,
    code: &str,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let changed = tx.execute(sql::GIVE_BACK, &[&code]).await?;
    if changed == 1 {
        super::event::append(tx, returned_event(code, order, now)).await?;
    }
    Ok(())
}

async fn get(
    client: &Conn,
    code: &DiscountCode,
) -> Result<Option<DiscountCodeRecord>, StorageError> {
    let row = client.query_opt(sql::RECORD, &[&code.as_str()]).await?;
    Ok(row.map(|r| record(code, r.get(0), r.get(1))))
}

#[async_trait]
impl DiscountStore for PgStore {
    async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
        key: Option<IdempotencyKey>,
    ) -> Result<GeneratedBatch, StorageError> {
        let mut client = self.client().await?;
        generate(&mut client, length, count, now, key.as_ref()).await
    }

    async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError> {
        let client = self.client().await?;
        use_code(&*client, code, now).await
    }

    async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError> {
        let client = self.client().await?;
        get(&client, code).await
    }
}

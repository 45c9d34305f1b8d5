//! The design checkout on PostgreSQL, correct across instances. Every transaction of a user
//! takes its locks in one order, the user's count row, then the code's row, then the items
//! in id order (the same order as a one-item purchase: count row, then item), so none can
//! deadlock another:
//! - a checkout locks the user's count row, so the user's open code, its items and bought
//!   items are read and added to by one transaction at a time (one open code, the limit);
//! - a purchase locks the count row, then the code's row (decided once), then its items
//!   (each sold once).

use allot_domain::UnixMillis;
use allot_domain::event::{EventType, NewEvent};
use allot_domain::sale::CheckoutCode;
use tokio_postgres::{Client, GenericClient};

use super::event::append_events;
use super::sale::{by_id, lock_user_count};
use crate::StorageError;
use crate::row::Columns;
use crate::sale::{SaleItem, code_event, item_of, parse_checkout_code, sql as sale_sql};
use crate::sale_basket::{
    BasketCheckoutOutcome, BasketCheckoutRequest, BasketPurchase, BasketPurchaseOutcome,
    CHECKOUT_DRAWS_MAX, LineOutcome, attempt_label, basket_item, basket_room, checkout_event,
    decide_lines, line_of, mark_sold, replayed, sold_count, sql,
};

const LINES_LOCKED: &str = concat!(
    "SELECT i.id, i.sale_id, i.name, i.image_url, i.sold_to, b.outcome ",
    "FROM sale_basket_items b JOIN sale_items i ON i.id = b.item_id ",
    "WHERE b.code = $1 ORDER BY i.id FOR UPDATE OF i"
);
const CODE_LOCKED: &str = "SELECT purchased_at_ms FROM sale_baskets WHERE code = $1 FOR UPDATE";
const SELL_ITEMS: &str = "UPDATE sale_items SET sold_to = $1, sold_at_ms = $2, sold_by_code = $3 \
     WHERE id = ANY($4) AND sold_to IS NULL";
const DECIDE_LINES: &str = "UPDATE sale_basket_items b SET outcome = u.o \
     FROM unnest($2::bigint[], $3::text[]) AS u(id, o) WHERE b.code = $1 AND b.item_id = u.id";
const COUNT_BOUGHT: &str =
    "UPDATE sale_user_counts SET bought = bought + $3 WHERE sale_id = $1 AND user_id = $2";

pub(super) async fn checkout(
    client: &mut Client,
    req: &BasketCheckoutRequest,
) -> Result<BasketCheckoutOutcome, StorageError> {
    let tx = client.transaction().await?;
    let (outcome, event) = decide_checkout(&tx, req).await?;
    if let Some(event) = event {
        append_events(&tx, std::slice::from_ref(&event)).await?;
    }
    let (label, code) = attempt_label(&outcome);
    tx.execute(
        sale_sql::RECORD_ATTEMPT,
        &[
            &req.sale.id,
            &req.item.get(),
            &req.user.as_str(),
            &req.now.as_millis(),
            &label,
            &code,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn decide_checkout(
    tx: &impl GenericClient,
    req: &BasketCheckoutRequest,
) -> Result<(BasketCheckoutOutcome, Option<NewEvent>), StorageError> {
    let user = req.user.as_str();
    let found = tx
        .query_opt(sale_sql::ITEM_BY_ID, &[&req.item.get()])
        .await?
        .map(|r| item_of(&r))
        .transpose()?;
    let it = match basket_item(found, req.sale.id) {
        Ok(it) => it,
        Err(refusal) => return Ok((refusal, None)),
    };
    let bought = lock_user_count(tx, req.sale.id, user).await?;
    let open = tx
        .query_opt(sql::OPEN_CODE, &[&req.sale.id, &user])
        .await?
        .map(|r| r.text(0))
        .transpose()?;
    let on_code: Vec<i64> = match &open {
        Some(code) => tx
            .query(sql::ITEMS_ON_CODE, &[code])
            .await?
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    if let Err(refusal) = basket_room(it.id, &on_code, bought, req.user_limit) {
        return Ok((refusal, None));
    }
    let code = match open {
        Some(code) => parse_checkout_code(&code)?,
        None => new_code(tx, req).await?,
    };
    tx.execute(
        sql::ADD_ITEM,
        &[&code.as_str(), &it.id, &req.now.as_millis()],
    )
    .await?;
    let items_count = on_code.len() as u32 + 1;
    let event = checkout_event(req, it.id, &code, items_count);
    Ok((
        BasketCheckoutOutcome::Added {
            code,
            items_count,
            item: it,
        },
        Some(event),
    ))
}

async fn new_code(
    tx: &impl GenericClient,
    req: &BasketCheckoutRequest,
) -> Result<CheckoutCode, StorageError> {
    for _ in 0..CHECKOUT_DRAWS_MAX {
        let code = CheckoutCode::generate(&mut rand::rng());
        let inserted = tx
            .execute(
                sql::NEW_CODE,
                &[
                    &code.as_str(),
                    &req.sale.id,
                    &req.user.as_str(),
                    &req.now.as_millis(),
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(code);
        }
    }
    Err(StorageError::Corrupt(format!(
        "{CHECKOUT_DRAWS_MAX} checkout codes in a row collided"
    )))
}

async fn lines(
    tx: &impl GenericClient,
    statement: &str,
    code: &CheckoutCode,
) -> Result<Vec<(SaleItem, Option<String>)>, StorageError> {
    tx.query(statement, &[&code.as_str()])
        .await?
        .iter()
        .map(line_of)
        .collect()
}

pub(super) async fn purchase(
    client: &mut Client,
    code: &CheckoutCode,
    user_limit: u32,
    now: UnixMillis,
) -> Result<BasketPurchase, StorageError> {
    let tx = client.transaction().await?;
    let Some(row) = tx.query_opt(sql::BASKET, &[&code.as_str()]).await? else {
        return Ok(BasketPurchase {
            outcome: BasketPurchaseOutcome::UnknownCode,
            replayed: false,
        });
    };
    let (sale_id, user, purchased_at) = (row.int(0)?, row.text(1)?, row.opt_int(2)?);
    // A decided code never changes again: its answer needs no lock.
    if purchased_at.is_some() {
        return replayed(sale_id, user, lines(&tx, sql::LINES, code).await?);
    }
    let bought = lock_user_count(&tx, sale_id, &user).await?;
    let decided = tx.query_one(CODE_LOCKED, &[&code.as_str()]).await?;
    if decided.opt_int(0)?.is_some() {
        return replayed(sale_id, user, lines(&tx, sql::LINES, code).await?);
    }
    let items = lines(&tx, LINES_LOCKED, code)
        .await?
        .into_iter()
        .map(|(item, _)| item)
        .collect();
    let sale = by_id(&tx, sale_id)
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing sale")))?;
    let mut decided = decide_lines(now, &sale, items, bought, user_limit);
    let sold_ids: Vec<i64> = decided
        .iter()
        .filter(|l| l.outcome == LineOutcome::Sold)
        .map(|l| l.item.id)
        .collect();
    let sold = sold_count(&decided);
    if sold > 0 {
        let changed = tx
            .execute(
                SELL_ITEMS,
                &[&user, &now.as_millis(), &code.as_str(), &sold_ids],
            )
            .await?;
        if changed != sold_ids.len() as u64 {
            return Err(StorageError::Corrupt(format!(
                "items of checkout {code} changed under their locks"
            )));
        }
        let sold = i32::try_from(sold)
            .map_err(|_| StorageError::Corrupt(format!("{sold} items on one code")))?;
        tx.execute(sql::COUNT_SOLD, &[&sold, &sale_id]).await?;
        tx.execute(COUNT_BOUGHT, &[&sale_id, &user, &sold]).await?;
        let events: Vec<NewEvent> = sold_ids
            .iter()
            .map(|&id| code_event(EventType::SalePurchased, sale_id, id, &user, code, now))
            .collect();
        append_events(&tx, &events).await?;
    }
    let ids: Vec<i64> = decided.iter().map(|l| l.item.id).collect();
    let labels: Vec<&str> = decided.iter().map(|l| l.outcome.label()).collect();
    tx.execute(DECIDE_LINES, &[&code.as_str(), &ids, &labels])
        .await?;
    tx.execute(sql::CLOSE, &[&now.as_millis(), &code.as_str()])
        .await?;
    tx.commit().await?;
    mark_sold(&mut decided, &user);
    Ok(BasketPurchase {
        outcome: BasketPurchaseOutcome::Decided {
            sale_id,
            user_id: user,
            lines: decided,
        },
        replayed: false,
    })
}

//! The design checkout on PostgreSQL, correct across instances. Every transaction of a user
//! takes its locks in one order, the user's count row, then the code's row, then the items
//! in id order (the same order as a one-item purchase: count row, then item), so none can
//! deadlock another:
//! - a checkout locks the user's count row, so the user's open code, its items and bought
//!   items are read and added to by one transaction at a time (one open code, the limit);
//! - a purchase locks the count row, then the code's row (decided once), then its items
//!   (each sold once).
//!
//! Statements that do not depend on each other's answers are sent together (pipelined on the
//! connection): a transaction waits for a few round trips, not one per statement.

use super::conn::{Conn, Db};
use allot_domain::UnixMillis;
use allot_domain::event::{EventType, NewEvent};
use allot_domain::sale::CheckoutCode;

use super::event::append_events;
use super::sale::{by_id, lock_user_count};
use crate::StorageError;
use crate::row::Columns;
use crate::sale::{SaleItem, code_event, item_of, parse_checkout_code, sql as sale_sql};
use crate::sale_basket::{
    BasketCheckoutOutcome, BasketCheckoutRequest, BasketPurchase, BasketPurchaseOutcome,
    CHECKOUT_DRAWS_MAX, LineOutcome, attempt_label, basket_item, basket_room, checkout_event,
    decide_lines, line_of, mark_sold, open_code, replayed, sold_count, sql,
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
    client: &mut Conn,
    req: &BasketCheckoutRequest,
) -> Result<BasketCheckoutOutcome, StorageError> {
    // The item is read outside the transaction: a checkout reserves nothing, so an item sold
    // a moment after this read is no different from one sold after the answer. Most refused
    // checkouts (an item sold) are then one read and one insert, without the user's lock.
    let found = client
        .query_opt(sale_sql::ITEM_BY_ID, &[&req.item.get()])
        .await?
        .map(|r| item_of(&r))
        .transpose()?;
    let item = match basket_item(found, req.sale.id) {
        Ok(item) => item,
        Err(refusal) => {
            record_attempt(&*client, req, &refusal).await?;
            return Ok(refusal);
        }
    };
    let tx = client.transaction().await?;
    let outcome = decide_checkout(&tx, req, item).await?;
    // The writes that follow the decision go out together (pipelined on the connection).
    match &outcome {
        BasketCheckoutOutcome::Added {
            code,
            items_count,
            item,
        } => {
            let add = async {
                tx.execute(
                    sql::ADD_ITEM,
                    &[&code.as_str(), &item.id, &req.now.as_millis()],
                )
                .await
                .map_err(StorageError::from)
            };
            let event = checkout_event(req, item.id, code, *items_count);
            tokio::try_join!(
                add,
                append_events(&tx, std::slice::from_ref(&event)),
                record_attempt(&tx, req, &outcome)
            )?;
        }
        refusal => record_attempt(&tx, req, refusal).await?,
    }
    super::commit(tx).await?;
    Ok(outcome)
}

async fn record_attempt(
    client: &impl Db,
    req: &BasketCheckoutRequest,
    outcome: &BasketCheckoutOutcome,
) -> Result<(), StorageError> {
    let (label, code) = attempt_label(outcome);
    client
        .execute(
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
    Ok(())
}

/// The outcome of a checkout of an item that may be sold, under the user's lock.
async fn decide_checkout(
    tx: &impl Db,
    req: &BasketCheckoutRequest,
    item: SaleItem,
) -> Result<BasketCheckoutOutcome, StorageError> {
    let user = req.user.as_str();
    let bought = lock_user_count(tx, req.sale.id, user).await?;
    let (open, on_code) = open_code(
        tx.query(sql::OPEN_CODE, &[&req.sale.id, &user])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.opt_int(1)?)))
            .collect::<Result<_, StorageError>>()?,
    );
    if let Err(refusal) = basket_room(item.id, &on_code, bought, req.user_limit) {
        return Ok(refusal);
    }
    let code = match open {
        Some(code) => parse_checkout_code(&code)?,
        None => new_code(tx, req).await?,
    };
    Ok(BasketCheckoutOutcome::Added {
        code,
        items_count: on_code.len() as u32 + 1,
        item,
    })
}

async fn new_code(tx: &impl Db, req: &BasketCheckoutRequest) -> Result<CheckoutCode, StorageError> {
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
    tx: &impl Db,
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
    client: &mut Conn,
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
    let (rows, sale) = tokio::try_join!(lines(&tx, LINES_LOCKED, code), by_id(&tx, sale_id))?;
    let sale =
        sale.ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing sale")))?;
    let items = rows.into_iter().map(|(item, _)| item).collect();
    let mut decided = decide_lines(now, &sale, items, bought, user_limit);
    let sold_ids: Vec<i64> = decided
        .iter()
        .filter(|l| l.outcome == LineOutcome::Sold)
        .map(|l| l.item.id)
        .collect();
    let ids: Vec<i64> = decided.iter().map(|l| l.item.id).collect();
    let labels: Vec<&str> = decided.iter().map(|l| l.outcome.label()).collect();
    let sold = i32::try_from(sold_count(&decided))
        .map_err(|_| StorageError::Corrupt(format!("too many items on checkout {code}")))?;
    // The writes of the decision go out together (pipelined on the connection); the sale's
    // row, which every selling purchase updates, is held only from here to the commit.
    let sell = async {
        if sold == 0 {
            return Ok(());
        }
        let changed = tx
            .execute(
                SELL_ITEMS,
                &[&user, &now.as_millis(), &code.as_str(), &sold_ids],
            )
            .await?;
        if changed == sold_ids.len() as u64 {
            Ok(())
        } else {
            Err(StorageError::Corrupt(format!(
                "items of checkout {code} changed under their locks"
            )))
        }
    };
    let counts = async {
        if sold == 0 {
            return Ok(());
        }
        let events: Vec<NewEvent> = sold_ids
            .iter()
            .map(|&id| code_event(EventType::SalePurchased, sale_id, id, &user, code, now))
            .collect();
        tokio::try_join!(
            async {
                tx.execute(COUNT_BOUGHT, &[&sale_id, &user, &sold])
                    .await
                    .map_err(StorageError::from)
            },
            append_events(&tx, &events),
            async {
                tx.execute(sql::COUNT_SOLD, &[&sold, &sale_id])
                    .await
                    .map_err(StorageError::from)
            },
        )
        .map(|_| ())
    };
    let decide = async {
        tx.execute(DECIDE_LINES, &[&code.as_str(), &ids, &labels])
            .await
            .map_err(StorageError::from)
    };
    let close = async {
        tx.execute(sql::CLOSE, &[&now.as_millis(), &code.as_str()])
            .await
            .map_err(StorageError::from)
    };
    tokio::try_join!(sell, decide, close, counts)?;
    super::commit(tx).await?;
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

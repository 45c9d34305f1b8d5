//! Flash sales on SQLite. Checkout and purchase run in the writer, so each decides on an
//! exact view: an item is sold once, a user never passes the limit, a code decides once.

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use allot_domain::sale::{CheckoutCode, item_name_and_image};
use allot_domain::user::UserId;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::event::append;
use crate::StorageError;
use crate::row::collect;
use crate::sale::{
    CHECKOUT_DRAWS_MAX, CheckoutOutcome, CheckoutRequest, NewSale, Purchase, PurchaseOutcome, Sale,
    SaleItem, SaleStore, attempt_label, checkout_item, checkout_within_limit, code_event,
    decide_purchase, item_of, opened_event, parse_checkout_code, purchase_label, replayed, sale_of,
    sql,
};
use crate::sale_basket::{BasketCheckoutOutcome, BasketCheckoutRequest, BasketPurchase};

/// Opens the sale of the hour with its items, in one savepoint; a sale already open for the
/// hour (this process earlier, another instance) is returned as it is.
fn open(conn: &Connection, new: NewSale, now: UnixMillis) -> Result<Sale, StorageError> {
    let inserted: Option<i64> = conn
        .prepare_cached(sql::OPEN)?
        .query_row(
            params![
                new.hour.starts_at().as_millis(),
                new.hour.ends_at().as_millis(),
                new.items,
                now.as_millis()
            ],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(sale_id) = inserted {
        let mut insert = conn.prepare_cached(
            "INSERT INTO sale_items (sale_id, name, image_url) VALUES (?1, ?2, ?3)",
        )?;
        for n in 1..=new.items {
            let (name, image) = item_name_and_image(new.hour, n);
            insert.execute(params![sale_id, name, image])?;
        }
        append(conn, opened_event(sale_id, new, now))?;
        tracing::info!(sale = sale_id, items = new.items, "sale opened");
    }
    by_start(conn, new.hour.starts_at())?
        .ok_or_else(|| StorageError::Corrupt("the sale just opened is missing".to_owned()))
}

fn by_start(conn: &Connection, start: UnixMillis) -> Result<Option<Sale>, StorageError> {
    conn.prepare_cached(sql::SALE_BY_START)?
        .query_row(params![start.as_millis()], |r| Ok(sale_of(r)))
        .optional()?
        .transpose()
}

pub(super) fn by_id(conn: &Connection, id: i64) -> Result<Option<Sale>, StorageError> {
    conn.prepare_cached(sql::SALE_BY_ID)?
        .query_row(params![id], |r| Ok(sale_of(r)))
        .optional()?
        .transpose()
}

fn list(conn: &Connection, before_id: Option<i64>, limit: u32) -> Result<Vec<Sale>, StorageError> {
    let mut stmt = conn.prepare_cached(sql::SALES)?;
    collect(stmt.query_map(
        params![crate::campaign::first_page(before_id), limit],
        |r| Ok(sale_of(r)),
    )?)
}

pub(super) fn item(conn: &Connection, id: i64) -> Result<Option<SaleItem>, StorageError> {
    conn.prepare_cached(sql::ITEM_BY_ID)?
        .query_row(params![id], |r| Ok(item_of(r)))
        .optional()?
        .transpose()
}

pub(super) fn bought(conn: &Connection, sale_id: i64, user: &str) -> Result<i64, StorageError> {
    Ok(conn
        .prepare_cached(sql::BOUGHT)?
        .query_row(params![sale_id, user], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Decides a checkout and records the attempt, whatever its outcome.
fn checkout(conn: &Connection, req: &CheckoutRequest) -> Result<CheckoutOutcome, StorageError> {
    let user = req.user.as_str();
    let outcome = decide_checkout(conn, req)?;
    let (label, code) = attempt_label(&outcome);
    conn.prepare_cached(sql::RECORD_ATTEMPT)?.execute(params![
        req.sale.id,
        req.item.get(),
        user,
        req.now.as_millis(),
        label,
        code
    ])?;
    Ok(outcome)
}

/// The outcome of a checkout, by the shared rules on what this writer reads.
fn decide_checkout(
    conn: &Connection,
    req: &CheckoutRequest,
) -> Result<CheckoutOutcome, StorageError> {
    let user = req.user.as_str();
    let it = match checkout_item(item(conn, req.item.get())?, req.sale.id) {
        Ok(it) => it,
        Err(refusal) => return Ok(refusal),
    };
    if let Err(refusal) = checkout_within_limit(bought(conn, req.sale.id, user)?, req.user_limit) {
        return Ok(refusal);
    }
    // The same user checking out the same item again gets the same open code.
    let open: Option<String> = conn
        .prepare_cached(sql::OPEN_CODE)?
        .query_row(params![req.sale.id, user, it.id], |r| r.get(0))
        .optional()?;
    let code = match open {
        Some(code) => parse_checkout_code(&code)?,
        None => new_code(conn, req, it.id)?,
    };
    Ok(CheckoutOutcome::Code { code, item: it })
}

fn new_code(
    conn: &Connection,
    req: &CheckoutRequest,
    item_id: i64,
) -> Result<CheckoutCode, StorageError> {
    let mut insert = conn.prepare_cached(sql::NEW_CODE)?;
    let mut rng = rand::rng();
    for _ in 0..CHECKOUT_DRAWS_MAX {
        let code = CheckoutCode::generate(&mut rng);
        if insert.execute(params![
            code.as_str(),
            req.sale.id,
            item_id,
            req.user.as_str(),
            req.now.as_millis()
        ])? == 1
        {
            append(
                conn,
                code_event(
                    EventType::SaleCheckout,
                    req.sale.id,
                    item_id,
                    req.user.as_str(),
                    &code,
                    req.now,
                ),
            )?;
            return Ok(code);
        }
    }
    Err(StorageError::Corrupt(format!(
        "{CHECKOUT_DRAWS_MAX} checkout codes in a row collided"
    )))
}

/// Decides a purchase once per code: the item goes to the code's user if it is unsold, the
/// sale is on and the user is below the limit; a repeated purchase answers the first outcome.
fn purchase(
    conn: &Connection,
    code: &CheckoutCode,
    of_sale: i64,
    user_limit: u32,
    now: UnixMillis,
) -> Result<Purchase, StorageError> {
    let row: Option<(i64, i64, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT sale_id, item_id, user_id, outcome FROM sale_checkouts WHERE code = ?1",
        )?
        .query_row(params![code.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((sale_id, item_id, user, decided)) = row.filter(|r| r.0 == of_sale) else {
        return Ok(Purchase {
            outcome: PurchaseOutcome::UnknownCode,
            replayed: false,
        });
    };
    let the_item = item(conn, item_id)?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing item")))?;
    if let Some(decided) = decided {
        return Ok(replayed(&decided, the_item, user));
    }
    let sale = by_id(conn, sale_id)?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing sale")))?;
    let bought = bought(conn, sale_id, &user)?;
    let outcome = match decide_purchase(now, &sale, &the_item, bought, user_limit) {
        Err(refusal) => refusal,
        Ok(()) => {
            let sold = conn.prepare_cached(sql::SELL_ITEM)?.execute(params![
                user,
                now.as_millis(),
                code.as_str(),
                item_id
            ])?;
            if sold != 1 {
                return Err(StorageError::Corrupt(format!(
                    "item {item_id} changed under the writer"
                )));
            }
            conn.prepare_cached(sql::COUNT_SOLD)?
                .execute(params![sale_id])?;
            conn.prepare_cached(
                "INSERT INTO sale_user_counts (sale_id, user_id, bought) VALUES (?1, ?2, 1)
                 ON CONFLICT (sale_id, user_id) DO UPDATE SET bought = bought + 1",
            )?
            .execute(params![sale_id, user])?;
            append(
                conn,
                code_event(EventType::SalePurchased, sale_id, item_id, &user, code, now),
            )?;
            let mut it = the_item;
            it.sold_to = Some(user.clone());
            PurchaseOutcome::Sold {
                item: it,
                user_id: user,
            }
        }
    };
    let label = purchase_label(&outcome);
    conn.prepare_cached(sql::DECIDE_CODE)?.execute(params![
        label,
        now.as_millis(),
        code.as_str()
    ])?;
    Ok(Purchase {
        outcome,
        replayed: false,
    })
}

fn items(
    conn: &Connection,
    sale_id: i64,
    after_id: i64,
    limit: u32,
) -> Result<Vec<SaleItem>, StorageError> {
    let mut stmt = conn.prepare_cached(sql::ITEMS)?;
    collect(stmt.query_map(params![sale_id, after_id, limit], |r| Ok(item_of(r)))?)
}

fn purchases(conn: &Connection, sale_id: i64, user: &str) -> Result<Vec<SaleItem>, StorageError> {
    let mut stmt = conn.prepare_cached(sql::PURCHASES)?;
    collect(stmt.query_map(params![sale_id, user], |r| Ok(item_of(r)))?)
}

#[async_trait]
impl SaleStore for SqliteStore {
    async fn open_sale(&self, new: NewSale, now: UnixMillis) -> Result<Sale, StorageError> {
        self.write(new.items as usize, move |conn, _| open(conn, new, now))
            .await
    }

    async fn sale_starting_at(&self, start: UnixMillis) -> Result<Option<Sale>, StorageError> {
        self.read(move |conn| by_start(conn, start)).await
    }

    async fn sale(&self, id: i64) -> Result<Option<Sale>, StorageError> {
        self.read(move |conn| by_id(conn, id)).await
    }

    async fn sales(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<Sale>, StorageError> {
        self.read(move |conn| list(conn, before_id, limit)).await
    }

    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutOutcome, StorageError> {
        self.write(1, move |conn, _| checkout(conn, &request)).await
    }

    async fn purchase(
        &self,
        code: CheckoutCode,
        sale_id: i64,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<Purchase, StorageError> {
        self.write(1, move |conn, _| {
            purchase(conn, &code, sale_id, user_limit, now)
        })
        .await
    }

    async fn basket_checkout(
        &self,
        request: BasketCheckoutRequest,
    ) -> Result<BasketCheckoutOutcome, StorageError> {
        self.write(1, move |conn, _| {
            super::sale_basket::checkout(conn, &request)
        })
        .await
    }

    async fn basket_purchase(
        &self,
        code: CheckoutCode,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<BasketPurchase, StorageError> {
        // Weighed by the items a code may hold (the limit), which it may all sell.
        self.write(user_limit as usize, move |conn, _| {
            super::sale_basket::purchase(conn, &code, user_limit, now)
        })
        .await
    }

    async fn sale_items(
        &self,
        sale_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, StorageError> {
        self.read(move |conn| items(conn, sale_id, after_id, limit))
            .await
    }

    async fn sale_purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, StorageError> {
        self.read(move |conn| purchases(conn, sale_id, user.as_str()))
            .await
    }
}

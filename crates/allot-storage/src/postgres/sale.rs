//! Flash sales on PostgreSQL, correct across instances:
//! - one sale per hour: `INSERT ... ON CONFLICT (starts_at_ms) DO NOTHING`; only the instance
//!   whose insert went in adds the items, in the same transaction;
//! - a purchase locks its checkout row (a code decides once), then the user's count row (the
//!   limit holds), then the item's row (sold once), in one transaction: the count row before
//!   the item, the order of the design checkout too (`sale_basket`).

use super::conn::{Conn, Db};
use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use allot_domain::sale::{CheckoutCode, item_name_and_image};
use allot_domain::user::UserId;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::row::Columns;
use crate::sale::{
    CHECKOUT_DRAWS_MAX, CheckoutOutcome, CheckoutRequest, NewSale, Purchase, PurchaseOutcome, Sale,
    SaleItem, SaleStore, attempt_label, checkout_item, checkout_within_limit, code_event,
    decide_purchase, item_of, opened_event, parse_checkout_code, purchase_label, replayed, sale_of,
    sql,
};
use crate::sale_basket::{BasketCheckoutOutcome, BasketCheckoutRequest, BasketPurchase};

/// The item by its id, its row locked for the purchase's transaction.
const ITEM_LOCKED: &str = concat!(
    "SELECT ",
    crate::sale::item_columns!(),
    " FROM sale_items WHERE id = $1 FOR UPDATE"
);

async fn open(client: &mut Conn, new: NewSale, now: UnixMillis) -> Result<Sale, StorageError> {
    let tx = client.transaction().await?;
    let inserted = tx
        .query_opt(
            sql::OPEN,
            &[
                &new.hour.starts_at().as_millis(),
                &new.hour.ends_at().as_millis(),
                &(new.items as i32),
                &now.as_millis(),
            ],
        )
        .await?;
    if let Some(row) = inserted {
        let sale_id = row.int(0)?;
        let (names, images): (Vec<String>, Vec<String>) = (1..=new.items)
            .map(|n| item_name_and_image(new.hour, n))
            .unzip();
        tx.execute(
            "INSERT INTO sale_items (sale_id, name, image_url) SELECT $1, n, i FROM unnest($2::text[], $3::text[]) AS u(n, i)",
            &[&sale_id, &names, &images],
        )
        .await?;
        super::event::append(&tx, opened_event(sale_id, new, now)).await?;
        tracing::info!(sale = sale_id, items = new.items, "sale opened");
    }
    super::commit(tx).await?;
    by_start(client, new.hour.starts_at())
        .await?
        .ok_or_else(|| StorageError::Corrupt("the sale just opened is missing".to_owned()))
}

async fn by_start(client: &impl Db, start: UnixMillis) -> Result<Option<Sale>, StorageError> {
    client
        .query_opt(sql::SALE_BY_START, &[&start.as_millis()])
        .await?
        .map(|r| sale_of(&r))
        .transpose()
}

pub(super) async fn by_id(client: &impl Db, id: i64) -> Result<Option<Sale>, StorageError> {
    client
        .query_opt(sql::SALE_BY_ID, &[&id])
        .await?
        .map(|r| sale_of(&r))
        .transpose()
}

/// Locks the user's count row of a sale (made first, with 0, if the user bought nothing yet)
/// and answers what it counts, in one statement: the upsert's update takes the row lock, and
/// waits for a holder to commit, then answers its count. The user's purchases and design
/// checkouts serialise on it, across instances.
pub(super) async fn lock_user_count(
    tx: &impl Db,
    sale_id: i64,
    user: &str,
) -> Result<i64, StorageError> {
    tx.query_one(
        "INSERT INTO sale_user_counts (sale_id, user_id, bought) VALUES ($1, $2, 0)
         ON CONFLICT (sale_id, user_id) DO UPDATE SET bought = sale_user_counts.bought
         RETURNING bought",
        &[&sale_id, &user],
    )
    .await?
    .int(0)
}

pub(super) async fn bought(
    client: &impl Db,
    sale_id: i64,
    user: &str,
) -> Result<i64, StorageError> {
    client
        .query_opt(sql::BOUGHT, &[&sale_id, &user])
        .await?
        .map_or(Ok(0), |r| r.int(0))
}

async fn checkout(
    client: &mut Conn,
    req: &CheckoutRequest,
) -> Result<CheckoutOutcome, StorageError> {
    let tx = client.transaction().await?;
    let outcome = decide_checkout(&tx, req).await?;
    let (label, code) = attempt_label(&outcome);
    tx.execute(
        sql::RECORD_ATTEMPT,
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
    super::commit(tx).await?;
    Ok(outcome)
}

/// The outcome of a checkout, by the shared rules on what this transaction reads.
async fn decide_checkout(
    tx: &impl Db,
    req: &CheckoutRequest,
) -> Result<CheckoutOutcome, StorageError> {
    let user = req.user.as_str();
    let found = tx
        .query_opt(sql::ITEM_BY_ID, &[&req.item.get()])
        .await?
        .map(|r| item_of(&r))
        .transpose()?;
    let it = match checkout_item(found, req.sale.id) {
        Ok(it) => it,
        Err(refusal) => return Ok(refusal),
    };
    if let Err(refusal) =
        checkout_within_limit(bought(tx, req.sale.id, user).await?, req.user_limit)
    {
        return Ok(refusal);
    }
    // The same user checking out the same item again gets the same open code.
    let open = tx
        .query_opt(sql::OPEN_CODE, &[&req.sale.id, &user, &it.id])
        .await?;
    let code = match open {
        Some(r) => parse_checkout_code(r.try_get(0)?)?,
        None => new_code(tx, req, it.id).await?,
    };
    Ok(CheckoutOutcome::Code { code, item: it })
}

async fn new_code(
    tx: &impl Db,
    req: &CheckoutRequest,
    item_id: i64,
) -> Result<CheckoutCode, StorageError> {
    for _ in 0..CHECKOUT_DRAWS_MAX {
        let code = CheckoutCode::generate(&mut rand::rng());
        let inserted = tx
            .execute(
                sql::NEW_CODE,
                &[
                    &code.as_str(),
                    &req.sale.id,
                    &item_id,
                    &req.user.as_str(),
                    &req.now.as_millis(),
                ],
            )
            .await?;
        if inserted == 1 {
            let user = req.user.as_str();
            let event = code_event(
                EventType::SaleCheckout,
                req.sale.id,
                item_id,
                user,
                &code,
                req.now,
            );
            super::event::append(tx, event).await?;
            return Ok(code);
        }
    }
    Err(StorageError::Corrupt(format!(
        "{CHECKOUT_DRAWS_MAX} checkout codes in a row collided"
    )))
}

async fn purchase(
    client: &mut Conn,
    code: &CheckoutCode,
    of_sale: i64,
    user_limit: u32,
    now: UnixMillis,
) -> Result<Purchase, StorageError> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT sale_id, item_id, user_id, outcome FROM sale_checkouts WHERE code = $1 FOR UPDATE",
            &[&code.as_str()],
        )
        .await?
    else {
        return Ok(Purchase { outcome: PurchaseOutcome::UnknownCode, replayed: false });
    };
    let (sale_id, item_id, user, decided): (i64, i64, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if sale_id != of_sale {
        return Ok(Purchase {
            outcome: PurchaseOutcome::UnknownCode,
            replayed: false,
        });
    }
    if let Some(decided) = decided {
        let the_item = tx
            .query_one(sql::ITEM_BY_ID, &[&item_id])
            .await
            .map(|r| item_of(&r))??;
        return Ok(replayed(&decided, the_item, user));
    }
    let sale = by_id(&tx, sale_id)
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing sale")))?;
    // The user's count row before the item's, the order every sale transaction locks in
    // (`sale_basket`).
    let held = lock_user_count(&tx, sale_id, &user).await?;
    let the_item = tx
        .query_one(ITEM_LOCKED, &[&item_id])
        .await
        .map(|r| item_of(&r))??;
    let outcome = match decide_purchase(now, &sale, &the_item, held, user_limit) {
        Err(refusal) => refusal,
        Ok(()) => {
            tx.execute(
                sql::SELL_ITEM,
                &[&user, &now.as_millis(), &code.as_str(), &item_id],
            )
            .await?;
            tx.execute(sql::COUNT_SOLD, &[&sale_id]).await?;
            tx.execute(
                "UPDATE sale_user_counts SET bought = bought + 1 WHERE sale_id = $1 AND user_id = $2",
                &[&sale_id, &user],
            )
            .await?;
            let event = code_event(EventType::SalePurchased, sale_id, item_id, &user, code, now);
            super::event::append(&tx, event).await?;
            let mut it = the_item;
            it.sold_to = Some(user.clone());
            PurchaseOutcome::Sold {
                item: it,
                user_id: user,
            }
        }
    };
    let label = purchase_label(&outcome);
    tx.execute(
        sql::DECIDE_CODE,
        &[&label, &now.as_millis(), &code.as_str()],
    )
    .await?;
    super::commit(tx).await?;
    Ok(Purchase {
        outcome,
        replayed: false,
    })
}

async fn items(
    client: &Conn,
    sale_id: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<SaleItem>, StorageError> {
    client
        .query(sql::ITEMS, &[&sale_id, &after, &i64::from(limit)])
        .await?
        .iter()
        .map(item_of)
        .collect()
}

async fn purchases(client: &Conn, sale_id: i64, user: &str) -> Result<Vec<SaleItem>, StorageError> {
    client
        .query(sql::PURCHASES, &[&sale_id, &user])
        .await?
        .iter()
        .map(item_of)
        .collect()
}

#[async_trait]
impl SaleStore for PgStore {
    async fn open_sale(&self, new: NewSale, now: UnixMillis) -> Result<Sale, StorageError> {
        let mut client = self.client().await?;
        open(&mut client, new, now).await
    }

    async fn sale_starting_at(&self, start: UnixMillis) -> Result<Option<Sale>, StorageError> {
        let client = self.client().await?;
        by_start(&*client, start).await
    }

    async fn sale(&self, id: i64) -> Result<Option<Sale>, StorageError> {
        let client = self.client().await?;
        by_id(&*client, id).await
    }

    async fn sales(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<Sale>, StorageError> {
        let client = self.client().await?;
        client
            .query(
                sql::SALES,
                &[&crate::campaign::first_page(before_id), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(sale_of)
            .collect()
    }

    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutOutcome, StorageError> {
        let mut client = self.client().await?;
        checkout(&mut client, &request).await
    }

    async fn purchase(
        &self,
        code: CheckoutCode,
        sale_id: i64,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<Purchase, StorageError> {
        let mut client = self.client().await?;
        purchase(&mut client, &code, sale_id, user_limit, now).await
    }

    async fn basket_checkout(
        &self,
        request: BasketCheckoutRequest,
    ) -> Result<BasketCheckoutOutcome, StorageError> {
        let mut client = self.client().await?;
        super::sale_basket::checkout(&mut client, &request).await
    }

    async fn basket_purchase(
        &self,
        code: CheckoutCode,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<BasketPurchase, StorageError> {
        let mut client = self.client().await?;
        super::sale_basket::purchase(&mut client, &code, user_limit, now).await
    }

    async fn sale_items(
        &self,
        sale_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, StorageError> {
        let client = self.client().await?;
        items(&client, sale_id, after_id, limit).await
    }

    async fn sale_purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, StorageError> {
        let client = self.client().await?;
        purchases(&client, sale_id, user.as_str()).await
    }
}

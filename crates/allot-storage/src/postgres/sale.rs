//! Flash sales on PostgreSQL, correct across instances:
//! - one sale per hour: `INSERT ... ON CONFLICT (starts_at_ms) DO NOTHING`; only the instance
//!   whose insert went in adds the items, in the same transaction;
//! - a purchase locks its checkout row (a code decides once), then the item's row (sold once),
//!   then the user's count row (the limit holds), in one transaction.

use allot_domain::UnixMillis;
use allot_domain::event::{ACTOR_SALE_OPENER, EventType, NewEvent};
use allot_domain::sale::{CheckoutCode, item_name_and_image};
use tokio_postgres::{Client, GenericClient, Row};

use crate::{
    CheckoutOutcome, CheckoutRequest, NewSale, Purchase, PurchaseOutcome, Sale, SaleItem,
    StorageError,
};

const SALE_COLUMNS: &str = "id, starts_at_ms, ends_at_ms, items_total, sold";
const ITEM_COLUMNS: &str = "id, sale_id, name, image_url, sold_to";

fn sale(r: &Row) -> Sale {
    Sale {
        id: r.get(0),
        starts_at: UnixMillis::from_millis(r.get(1)),
        ends_at: UnixMillis::from_millis(r.get(2)),
        items_total: i64::from(r.get::<_, i32>(3)),
        sold: i64::from(r.get::<_, i32>(4)),
    }
}

fn item(r: &Row) -> SaleItem {
    SaleItem {
        id: r.get(0),
        sale_id: r.get(1),
        name: r.get(2),
        image_url: r.get(3),
        sold_to: r.get(4),
    }
}

pub(super) async fn open(
    client: &mut Client,
    new: NewSale,
    now: UnixMillis,
) -> Result<Sale, StorageError> {
    let tx = client.transaction().await?;
    let inserted = tx
        .query_opt(
            "INSERT INTO sales (starts_at_ms, ends_at_ms, items_total, created_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (starts_at_ms) DO NOTHING RETURNING id",
            &[
                &new.hour.starts_at().as_millis(),
                &new.hour.ends_at().as_millis(),
                &(new.items as i32),
                &now.as_millis(),
            ],
        )
        .await?;
    if let Some(row) = inserted {
        let sale_id: i64 = row.get(0);
        let (names, images): (Vec<String>, Vec<String>) = (1..=new.items)
            .map(|n| item_name_and_image(new.hour, n))
            .unzip();
        tx.execute(
            "INSERT INTO sale_items (sale_id, name, image_url) SELECT $1, n, i FROM unnest($2::text[], $3::text[]) AS u(n, i)",
            &[&sale_id, &names, &images],
        )
        .await?;
        let payload = serde_json::json!({
            "sale_id": sale_id,
            "starts_at_ms": new.hour.starts_at().as_millis(),
            "ends_at_ms": new.hour.ends_at().as_millis(),
            "items": new.items,
        });
        let event = NewEvent::by(
            ACTOR_SALE_OPENER,
            EventType::SaleOpened,
            now,
            payload.to_string(),
        );
        super::event::append(&tx, event).await?;
        tracing::info!(sale = sale_id, items = new.items, "sale opened");
    }
    tx.commit().await?;
    by_start(client, new.hour.starts_at())
        .await?
        .ok_or_else(|| StorageError::Corrupt("the sale just opened is missing".to_owned()))
}

pub(super) async fn by_start(
    client: &impl GenericClient,
    start: UnixMillis,
) -> Result<Option<Sale>, StorageError> {
    Ok(client
        .query_opt(
            &format!("SELECT {SALE_COLUMNS} FROM sales WHERE starts_at_ms = $1"),
            &[&start.as_millis()],
        )
        .await?
        .map(|r| sale(&r)))
}

pub(super) async fn by_id(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<Sale>, StorageError> {
    Ok(client
        .query_opt(
            &format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| sale(&r)))
}

async fn bought(
    client: &impl GenericClient,
    sale_id: i64,
    user: &str,
) -> Result<i64, StorageError> {
    Ok(client
        .query_opt(
            "SELECT bought FROM sale_user_counts WHERE sale_id = $1 AND user_id = $2",
            &[&sale_id, &user],
        )
        .await?
        .map_or(0, |r| i64::from(r.get::<_, i32>(0))))
}

pub(super) async fn checkout(
    client: &mut Client,
    req: &CheckoutRequest,
) -> Result<CheckoutOutcome, StorageError> {
    let user = req.user.as_str();
    let tx = client.transaction().await?;
    let found = tx
        .query_opt(
            &format!("SELECT {ITEM_COLUMNS} FROM sale_items WHERE id = $1"),
            &[&req.item.get()],
        )
        .await?
        .map(|r| item(&r));
    let outcome = match found {
        None => CheckoutOutcome::UnknownItem,
        Some(it) if it.sale_id != req.sale.id => CheckoutOutcome::NotInCurrentSale,
        Some(it) if it.sold_to.is_some() => CheckoutOutcome::ItemSold,
        Some(_) if bought(&tx, req.sale.id, user).await? >= i64::from(req.user_limit) => {
            CheckoutOutcome::UserLimitReached
        }
        Some(it) => {
            let open = tx
                .query_opt(
                    "SELECT code FROM sale_checkouts WHERE sale_id = $1 AND user_id = $2 AND item_id = $3 AND outcome IS NULL LIMIT 1",
                    &[&req.sale.id, &user, &it.id],
                )
                .await?;
            let code = match open {
                Some(r) => CheckoutCode::parse(r.get(0))
                    .map_err(|e| StorageError::Corrupt(e.to_string()))?,
                None => loop {
                    let code = CheckoutCode::generate(&mut rand::rng());
                    let done = tx
                        .execute(
                            "INSERT INTO sale_checkouts (code, sale_id, item_id, user_id, created_at_ms)
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING",
                            &[&code.as_str(), &req.sale.id, &it.id, &user, &req.now.as_millis()],
                        )
                        .await?;
                    if done == 1 {
                        let payload = serde_json::json!({
                            "sale_id": req.sale.id,
                            "item_id": it.id,
                            "user_id": user,
                            "code": code.as_str(),
                        });
                        let event =
                            NewEvent::api(EventType::SaleCheckout, req.now, payload.to_string());
                        super::event::append(&tx, event).await?;
                        break code;
                    }
                },
            };
            CheckoutOutcome::Code { code, item: it }
        }
    };
    let (label, code) = match &outcome {
        CheckoutOutcome::Code { code, .. } => ("ok", Some(code.as_str().to_owned())),
        CheckoutOutcome::UnknownItem => ("unknown_item", None),
        CheckoutOutcome::NotInCurrentSale => ("not_in_current_sale", None),
        CheckoutOutcome::ItemSold => ("item_sold", None),
        CheckoutOutcome::UserLimitReached => ("user_limit_reached", None),
    };
    tx.execute(
        "INSERT INTO sale_checkout_attempts (sale_id, item_id, user_id, at_ms, outcome, code) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&req.sale.id, &req.item.get(), &user, &req.now.as_millis(), &label, &code],
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

pub(super) async fn purchase(
    client: &mut Client,
    code: &CheckoutCode,
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
    let the_item = tx
        .query_one(
            &format!("SELECT {ITEM_COLUMNS} FROM sale_items WHERE id = $1 FOR UPDATE"),
            &[&item_id],
        )
        .await
        .map(|r| item(&r))?;
    if let Some(decided) = decided {
        let outcome = match decided.as_str() {
            "sold" => PurchaseOutcome::Sold {
                item: the_item,
                user_id: user,
            },
            "item_sold" => PurchaseOutcome::ItemSold,
            "user_limit_reached" => PurchaseOutcome::UserLimitReached,
            _ => PurchaseOutcome::SaleOver,
        };
        return Ok(Purchase {
            outcome,
            replayed: true,
        });
    }
    let sale = by_id(&tx, sale_id)
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing sale")))?;
    // Lock (creating if needed) the user's count row: purchases of one user serialise here.
    tx.execute(
        "INSERT INTO sale_user_counts (sale_id, user_id, bought) VALUES ($1, $2, 0)
         ON CONFLICT (sale_id, user_id) DO NOTHING",
        &[&sale_id, &user],
    )
    .await?;
    let held: i32 = tx
        .query_opt(
            "SELECT bought FROM sale_user_counts WHERE sale_id = $1 AND user_id = $2 FOR UPDATE",
            &[&sale_id, &user],
        )
        .await?
        .map_or(0, |r| r.get(0));
    let (outcome, label) = if now >= sale.ends_at {
        (PurchaseOutcome::SaleOver, "sale_over")
    } else if the_item.sold_to.is_some() {
        (PurchaseOutcome::ItemSold, "item_sold")
    } else if i64::from(held) >= i64::from(user_limit) {
        (PurchaseOutcome::UserLimitReached, "user_limit_reached")
    } else {
        tx.execute(
            "UPDATE sale_items SET sold_to = $2, sold_at_ms = $3, sold_by_code = $4 WHERE id = $1 AND sold_to IS NULL",
            &[&item_id, &user, &now.as_millis(), &code.as_str()],
        )
        .await?;
        tx.execute(
            "UPDATE sales SET sold = sold + 1 WHERE id = $1",
            &[&sale_id],
        )
        .await?;
        tx.execute(
            "UPDATE sale_user_counts SET bought = bought + 1 WHERE sale_id = $1 AND user_id = $2",
            &[&sale_id, &user],
        )
        .await?;
        let payload = serde_json::json!({
            "sale_id": sale_id,
            "item_id": item_id,
            "user_id": user,
            "code": code.as_str(),
        });
        let event = NewEvent::api(EventType::SalePurchased, now, payload.to_string());
        super::event::append(&tx, event).await?;
        let mut it = the_item;
        it.sold_to = Some(user.clone());
        (
            PurchaseOutcome::Sold {
                item: it,
                user_id: user,
            },
            "sold",
        )
    };
    tx.execute(
        "UPDATE sale_checkouts SET outcome = $2, decided_at_ms = $3 WHERE code = $1",
        &[&code.as_str(), &label, &now.as_millis()],
    )
    .await?;
    tx.commit().await?;
    Ok(Purchase {
        outcome,
        replayed: false,
    })
}

pub(super) async fn items(
    client: &Client,
    sale_id: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<SaleItem>, StorageError> {
    Ok(client
        .query(
            &format!("SELECT {ITEM_COLUMNS} FROM sale_items WHERE sale_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
            &[&sale_id, &after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(item)
        .collect())
}

pub(super) async fn purchases(
    client: &Client,
    sale_id: i64,
    user: &str,
) -> Result<Vec<SaleItem>, StorageError> {
    Ok(client
        .query(
            &format!("SELECT {ITEM_COLUMNS} FROM sale_items WHERE sale_id = $1 AND sold_to = $2 ORDER BY sold_at_ms, id"),
            &[&sale_id, &user],
        )
        .await?
        .iter()
        .map(item)
        .collect())
}

//! Orders on PostgreSQL, correct across instances. Creates are served in batches
//! ([`super::order_batch`]). A status change is one transaction that takes its locks in one
//! order: the order's row, then its reservations and stock rows in (product, warehouse) order,
//! then the coupon's and the discount code's rows. A refusal drops the transaction: nothing of
//! it stays.

use super::conn::{Db, Tx};
use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::order::OrderStatus;
use allot_domain::user::IdempotencyKey;
use async_trait::async_trait;

use super::inventory::{apply, end_in, lock_level, warehouse_exists};
use super::{PgStore, coupon, discount};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::crypto::{open_created, open_order, seal_new_order};
use crate::inventory::{Change, InventoryResult};
use crate::order::sealed::Order;
use crate::order::{
    HISTORY_OF_ORDER, INSERT_HISTORY, LINES_OF_ORDER, LineStep, ORDER_BY_ID, ORDER_ID_BY_KEY,
    OrderQuery, OrderRefusal, OrderResult, OrderStore, SET_ORDER_STATUS, StatusRequest,
    change_from, decide_status_change, inventory_refusal, line_from, order_from,
};

type Refusable<T> = Result<Result<T, OrderRefusal>, StorageError>;

async fn history(
    c: &impl Db,
    id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    reason: Option<&str>,
    warehouse: Option<i64>,
    now: UnixMillis,
) -> Result<(), StorageError> {
    c.execute(
        INSERT_HISTORY,
        &[
            &id,
            &from.map(OrderStatus::as_str),
            &to.as_str(),
            &reason,
            &warehouse,
            &now.as_millis(),
        ],
    )
    .await?;
    Ok(())
}

/// Puts a returned line's quantity back on hand in `w` (`stock_in`).
pub(super) async fn restock(
    tx: &impl Db,
    (product, w): (ProductId, WarehouseId),
    change: Change<'_>,
    now: UnixMillis,
) -> InventoryResult<()> {
    let b = match lock_level(tx, product, w, now).await? {
        Ok(b) => b,
        Err(r) => return Ok(Err(r)),
    };
    apply(tx, product, w, &b, change, now).await?;
    Ok(Ok(()))
}

/// The status change, in `tx`; the caller commits only a success.
pub(super) async fn change(tx: &Tx<'_>, req: &StatusRequest) -> Refusable<Order> {
    let now = req.now;
    let locked = tx
        .query_opt("SELECT id FROM orders WHERE id = $1 FOR UPDATE", &[&req.id])
        .await?;
    if locked.is_none() {
        return Ok(Err(OrderRefusal::OrderNotFound));
    }
    let Some(o) = load(tx, req.id).await? else {
        return Ok(Err(OrderRefusal::OrderNotFound));
    };
    let warehouse_known = match req.warehouse {
        Some(w) => Some(warehouse_exists(tx, w).await?),
        None => None,
    };
    let line_returns = super::shipment::has_line_returns(tx, o.id).await?;
    let plan = match decide_status_change(&o, req, warehouse_known, line_returns)? {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    for step in &plan.steps {
        let done = match *step {
            LineStep::End {
                reservation, how, ..
            } => end_in(tx, reservation, how, now).await?.map(|_| ()),
            LineStep::Restock {
                product,
                warehouse,
                quantity,
                reservation,
            } => {
                let change = Change::stock_in(quantity, reservation, &plan.reason);
                restock(tx, (product, warehouse), change, now).await?
            }
        };
        if let Err(r) = done {
            return Ok(Err(inventory_refusal(r, step.product())?));
        }
    }
    if plan.gives_codes_back {
        if plan.gives_coupon_back {
            coupon::give_back(tx, o.id, now).await?;
        }
        if let Some(code) = &o.discount_code {
            discount::give_back(tx, &code.code, o.id, now).await?;
        }
        // Rolled back at most once, whoever asks first (this order or the hold's own API).
        if let Some(hold) = o.promotion_hold_id
            && let Err(refusal) = super::promotion::roll_back_hold_in(tx, hold, now).await?
        {
            return Err(corrupt(format!(
                "order {} could not roll back its promotion hold {hold}: {refusal:?}",
                o.id
            )));
        }
    }
    // The whole-order move to fulfilled ships what is left (`crate::shipment`).
    if req.to == OrderStatus::Fulfilled {
        super::shipment::ship_rest(tx, o.id, now).await?;
    }
    tx.execute(
        SET_ORDER_STATUS,
        &[&req.to.as_str(), &now.as_millis(), &o.id],
    )
    .await?;
    let return_to = plan.return_to.map(WarehouseId::get);
    history(
        tx,
        o.id,
        Some(o.status),
        req.to,
        req.reason.as_deref(),
        return_to,
        now,
    )
    .await?;
    let event = crate::event::order_status_event(o.id, o.status, req, return_to);
    super::event::append(tx, event).await?;
    if req.to == OrderStatus::Cancelled {
        super::event::append(tx, crate::event::order_cancelled_event(&o, req, &plan)).await?;
    }
    if req.to == OrderStatus::Fulfilled {
        super::shipment::fulfilled(tx, o.id, now).await?;
    }
    let order = load(tx, o.id)
        .await?
        .ok_or_else(|| corrupt("an order just changed is missing"))?;
    Ok(Ok(order))
}

pub(super) async fn load(c: &impl Db, id: i64) -> Result<Option<Order>, StorageError> {
    let Some(r) = c.query_opt(ORDER_BY_ID, &[&id]).await? else {
        return Ok(None);
    };
    let lines = c
        .query(LINES_OF_ORDER, &[&id])
        .await?
        .iter()
        .map(line_from)
        .collect::<Result<_, _>>()?;
    let history = c
        .query(HISTORY_OF_ORDER, &[&id])
        .await?
        .iter()
        .map(change_from)
        .collect::<Result<_, _>>()?;
    Ok(Some(order_from(&r, lines, history)?))
}

#[async_trait]
impl OrderStore for PgStore {
    // The address is sealed on the way in and opened on the way out; inside, the batch and
    // `load` carry the sealed column as is.
    async fn create_order(&self, new: crate::NewOrder) -> OrderResult<crate::Created> {
        let new = seal_new_order(&self.cipher, new);
        let created = self.orders.submit(new).await;
        open_created(&self.cipher, created)
    }

    async fn order(&self, id: i64) -> Result<Option<crate::Order>, StorageError> {
        let client = self.client().await?;
        let order = load(&*client, id).await?;
        order.map(|o| open_order(&self.cipher, o)).transpose()
    }

    async fn order_by_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<crate::Order>, StorageError> {
        let client = self.client().await?;
        let Some(row) = client.query_opt(ORDER_ID_BY_KEY, &[&key.as_str()]).await? else {
            return Ok(None);
        };
        let order = load(&*client, row.try_get(0)?).await?;
        order.map(|o| open_order(&self.cipher, o)).transpose()
    }

    async fn orders(&self, q: OrderQuery) -> Result<Vec<crate::Order>, StorageError> {
        let client = self.client().await?;
        let (statement, bound) = q.page();
        let ids: Vec<i64> = client
            .query(
                statement,
                &[
                    &bound,
                    &q.customer.as_ref().map(|c| c.as_str()),
                    &q.status.map(OrderStatus::as_str),
                    &q.from.map(UnixMillis::as_millis),
                    &q.until.map(UnixMillis::as_millis),
                    &i64::from(q.limit),
                ],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(o) = load(&*client, id).await? {
                out.push(open_order(&self.cipher, o)?);
            }
        }
        Ok(out)
    }

    async fn edit_order(&self, id: i64, new: crate::NewOrder) -> OrderResult<crate::Edited> {
        let new = seal_new_order(&self.cipher, new);
        let mut client = self.client().await?;
        let edited = super::order_batch::edit(&mut client, id, &new).await?;
        Ok(match edited {
            Ok(e) => Ok(crate::Edited {
                before: open_order(&self.cipher, e.before)?,
                after: open_order(&self.cipher, e.after)?,
            }),
            Err(refusal) => Err(refusal),
        })
    }

    async fn change_order_status(&self, request: StatusRequest) -> OrderResult<crate::Order> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = change(&tx, &request).await?;
        if changed.is_ok() {
            super::commit(tx).await?;
        }
        Ok(match changed {
            Ok(o) => Ok(open_order(&self.cipher, o)?),
            Err(refusal) => Err(refusal),
        })
    }
}

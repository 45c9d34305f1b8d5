//! Orders on PostgreSQL, correct across instances. Every operation is one transaction that
//! takes its locks in one order: the order's row (a create claims its idempotency key by
//! inserting the row, so a concurrent retry waits on the unique index and then finds the first
//! order), then stock rows product by product (inventory's own locking), then the coupon's row,
//! then the discount code's. A refusal drops the transaction: nothing of it stays.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::{Discount, DiscountKind};
use allot_domain::discount::UseOutcome;
use allot_domain::inventory::{Holder, MovementKind, ReservationTtl};
use allot_domain::order::{OrderStatus, Transition, price};
use async_trait::async_trait;
use tokio_postgres::GenericClient;

use super::inventory::{Change, End, apply, end_in, lock_level, reserve_in, warehouse_exists};
use super::{PgStore, coupon, discount};
use crate::catalog::corrupt;
use crate::inventory::{InventoryRefusal, NewReservation, product, reservation_id, warehouse_id};
use crate::order::{
    AppliedCode, Created, NewOrder, ORDER_HOLD_UNTIL_MS, Order, OrderLine, OrderQuery,
    OrderRefusal, OrderResult, OrderStore, StatusChange, StatusRequest, holder, order_status,
};
use crate::{RedeemOutcome, StorageError};

type Refusable<T> = Result<Result<T, OrderRefusal>, StorageError>;

fn inventory_refusal(r: InventoryRefusal, p: ProductId) -> Result<OrderRefusal, StorageError> {
    Ok(match r {
        InventoryRefusal::UnknownProduct => OrderRefusal::UnknownProduct { product: p },
        InventoryRefusal::UnknownWarehouse => OrderRefusal::UnknownWarehouse,
        InventoryRefusal::OutOfStock { available_total } => OrderRefusal::OutOfStock {
            product: p,
            available_total,
        },
        InventoryRefusal::NotPending { status } => OrderRefusal::ReservationNotPending { status },
        other => return Err(corrupt(format!("order stock refused: {other:?}"))),
    })
}

struct Priced {
    sku: String,
    name: String,
    price: i64,
    currency: String,
}

async fn by_key(c: &impl GenericClient, key: &str) -> Result<Option<i64>, StorageError> {
    Ok(
        c.query_opt("SELECT id FROM orders WHERE idempotency_key = $1", &[&key])
            .await?
            .map(|r| r.get(0)),
    )
}

async fn replay(c: &impl GenericClient, id: i64) -> Refusable<Created> {
    let order = load(c, id)
        .await?
        .ok_or_else(|| corrupt("an order just found is missing"))?;
    Ok(Ok(Created::Replayed(order)))
}

/// The create, in `tx`; the caller commits only a new order.
async fn create(tx: &impl GenericClient, new: &NewOrder) -> Refusable<Created> {
    let now = new.now;
    let key = new.idempotency_key.as_ref().map(|k| k.as_str());
    if let Some(key) = key
        && let Some(id) = by_key(tx, key).await?
    {
        return replay(tx, id).await;
    }
    let mut products = Vec::with_capacity(new.lines.len());
    for (p, _) in &new.lines {
        let row = tx
            .query_opt(
                "SELECT sku, name, price_minor, currency, active FROM products
                 WHERE id = $1 AND deleted_at_ms IS NULL",
                &[&p.get()],
            )
            .await?;
        let Some(r) = row else {
            return Ok(Err(OrderRefusal::UnknownProduct { product: *p }));
        };
        if !r.try_get::<_, bool>(4)? {
            return Ok(Err(OrderRefusal::InactiveProduct { product: *p }));
        }
        products.push(Priced {
            sku: r.try_get(0)?,
            name: r.try_get(1)?,
            price: r.try_get(2)?,
            currency: r.try_get(3)?,
        });
    }
    let mut currencies: Vec<String> = products.iter().map(|p| p.currency.clone()).collect();
    currencies.sort();
    currencies.dedup();
    let [currency] = currencies.as_slice() else {
        return Ok(Err(OrderRefusal::MixedCurrencies { currencies }));
    };
    // The row first: a concurrent create with the same key waits here until this transaction
    // ends, then inserts nothing and answers the order this one stored.
    let row = tx
        .query_opt(
            "INSERT INTO orders (customer, status, currency, shipping_address, subtotal_minor,
                                 total_minor, idempotency_key, created_at_ms, updated_at_ms)
             VALUES ($1, 'pending', $2, $3, 0, 0, $4, $5, $5)
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            &[
                &new.customer.as_str(),
                currency,
                &new.shipping_address,
                &key,
                &now.as_millis(),
            ],
        )
        .await?;
    let id: i64 = match (row, key) {
        (Some(r), _) => r.try_get(0)?,
        (None, Some(key)) => {
            let id = by_key(tx, key)
                .await?
                .ok_or_else(|| corrupt("an idempotency key clashed with no order"))?;
            return replay(tx, id).await;
        }
        (None, None) => return Err(corrupt("an order without a key was not inserted")),
    };
    let holder = Holder::parse(&holder(id)).map_err(corrupt)?;
    // Lines in product order: the order every transaction locks stock rows in.
    let mut order: Vec<usize> = (0..new.lines.len()).collect();
    order.sort_by_key(|&i| new.lines[i].0);
    let mut held = vec![None; new.lines.len()];
    for i in order {
        let (p, quantity) = new.lines[i];
        let request = NewReservation {
            product: p,
            quantity,
            holder: holder.clone(),
            preferred: None,
            ttl: ReservationTtl::default(),
            now,
        };
        match reserve_in(tx, &request, ORDER_HOLD_UNTIL_MS).await? {
            Ok(r) => held[i] = Some((r.id.get(), r.warehouse_id)),
            Err(refusal) => return Ok(Err(inventory_refusal(refusal, p)?)),
        }
    }
    let mut discounts = Vec::new();
    let coupon_code = match &new.coupon {
        None => None,
        Some(code) => {
            match coupon::redeem_in(tx, code.as_str(), &new.customer, now, Some(id)).await? {
                RedeemOutcome::NotFound => return Ok(Err(OrderRefusal::UnknownCoupon)),
                RedeemOutcome::Refused(r) => return Ok(Err(OrderRefusal::CouponUnusable(r))),
                RedeemOutcome::Redeemed(c) => {
                    let kind = DiscountKind::parse(&c.discount_kind).map_err(corrupt)?;
                    discounts.push(Discount::new(kind, c.discount_amount).map_err(corrupt)?);
                    Some(c.code)
                }
            }
        }
    };
    if let Some(code) = &new.discount_code {
        match discount::use_code(tx, code, now).await? {
            UseOutcome::Used => discounts.push(new.discount_code_value),
            UseOutcome::AlreadyUsed => return Ok(Err(OrderRefusal::DiscountCodeUsed)),
            UseOutcome::Invalid => return Ok(Err(OrderRefusal::UnknownDiscountCode)),
        }
    }
    let units: Vec<(i64, i64)> = new
        .lines
        .iter()
        .zip(&products)
        .map(|((_, q), p)| (p.price, q.get()))
        .collect();
    let Ok(pricing) = price(&units, &discounts) else {
        return Ok(Err(OrderRefusal::TooLarge));
    };
    let mut amounts = pricing.discounts_minor.iter().copied();
    let coupon_minor = coupon_code.as_ref().and_then(|_| amounts.next());
    let discount_minor = new.discount_code.as_ref().and_then(|_| amounts.next());
    tx.execute(
        "UPDATE orders SET subtotal_minor = $2, coupon_code = $3, coupon_minor = $4,
                discount_code = $5, discount_minor = $6, total_minor = $7 WHERE id = $1",
        &[
            &id,
            &pricing.subtotal_minor,
            &coupon_code,
            &coupon_minor,
            &new.discount_code.as_ref().map(|c| c.as_str()),
            &discount_minor,
            &pricing.total_minor,
        ],
    )
    .await?;
    for (i, (((p, _), info), line)) in new
        .lines
        .iter()
        .zip(&products)
        .zip(&pricing.lines)
        .enumerate()
    {
        let (reservation, warehouse) =
            held[i].ok_or_else(|| corrupt("an order line was not reserved"))?;
        tx.execute(
            "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity,
                                      unit_price_minor, line_total_minor, warehouse_id,
                                      reservation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &id,
                &(i as i32),
                &p.get(),
                &info.sku,
                &info.name,
                &line.quantity,
                &line.unit_price_minor,
                &line.line_total_minor,
                &warehouse.get(),
                &reservation,
            ],
        )
        .await?;
    }
    history(tx, id, None, OrderStatus::Pending, None, None, now).await?;
    let order = load(tx, id)
        .await?
        .ok_or_else(|| corrupt("an order just stored is missing"))?;
    Ok(Ok(Created::New(order)))
}

async fn history(
    c: &impl GenericClient,
    id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    reason: Option<&str>,
    warehouse: Option<i64>,
    now: UnixMillis,
) -> Result<(), StorageError> {
    c.execute(
        "INSERT INTO order_status_history (order_id, from_status, to_status, reason,
                                           warehouse_id, at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
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

/// Puts the line's quantity back on hand in the warehouse (`stock_in`).
async fn restock(
    tx: &impl GenericClient,
    line: &OrderLine,
    w: WarehouseId,
    reason: &str,
    now: UnixMillis,
) -> Refusable<()> {
    let b = match lock_level(tx, line.product_id, w, now).await? {
        Ok(b) => b,
        Err(r) => return Ok(Err(inventory_refusal(r, line.product_id)?)),
    };
    let change = Change {
        kind: MovementKind::StockIn,
        on_hand_delta: line.quantity,
        reserved_delta: 0,
        reservation: Some(line.reservation_id),
        reason: Some(reason),
    };
    apply(tx, line.product_id, w, &b, change, now).await?;
    Ok(Ok(()))
}

/// The status change, in `tx`; the caller commits only a success.
async fn change(tx: &impl GenericClient, req: &StatusRequest) -> Refusable<Order> {
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
    let t = match o.status.transition(req.to) {
        Ok(t) => t,
        Err(e) => return Ok(Err(OrderRefusal::Illegal(e))),
    };
    let return_to = match (t, req.warehouse) {
        (Transition::Restock, Some(w)) => {
            if !warehouse_exists(tx, w).await? {
                return Ok(Err(OrderRefusal::UnknownWarehouse));
            }
            Some(w)
        }
        _ => None,
    };
    let reason = req
        .reason
        .clone()
        .unwrap_or_else(|| format!("order {} {}", o.id, req.to));
    let mut lines = o.lines.clone();
    lines.sort_by_key(|l| (l.product_id, return_to.unwrap_or(l.warehouse_id)));
    for line in &lines {
        let id = reservation_id(line.reservation_id)?;
        let done = match t {
            Transition::ConsumeReservations => end_in(tx, id, End::Confirm, now).await?.map(|_| ()),
            Transition::ReleaseReservations => end_in(tx, id, End::Release, now).await?.map(|_| ()),
            Transition::RestockConfirmed | Transition::Restock => {
                let w = return_to.unwrap_or(line.warehouse_id);
                match restock(tx, line, w, &reason, now).await? {
                    Ok(()) => Ok(()),
                    Err(r) => return Ok(Err(r)),
                }
            }
            Transition::StatusOnly => Ok(()),
        };
        if let Err(r) = done {
            return Ok(Err(inventory_refusal(r, line.product_id)?));
        }
    }
    if t.gives_codes_back() {
        coupon::give_back(tx, o.id, now).await?;
        if let Some(code) = &o.discount_code {
            discount::give_back(tx, &code.code).await?;
        }
    }
    tx.execute(
        "UPDATE orders SET status = $2, updated_at_ms = $3 WHERE id = $1",
        &[&o.id, &req.to.as_str(), &now.as_millis()],
    )
    .await?;
    history(
        tx,
        o.id,
        Some(o.status),
        req.to,
        req.reason.as_deref(),
        return_to.map(WarehouseId::get),
        now,
    )
    .await?;
    let order = load(tx, o.id)
        .await?
        .ok_or_else(|| corrupt("an order just changed is missing"))?;
    Ok(Ok(order))
}

async fn load(c: &impl GenericClient, id: i64) -> Result<Option<Order>, StorageError> {
    let Some(r) = c
        .query_opt(
            "SELECT id, customer, status, currency, shipping_address, subtotal_minor, coupon_code,
                    coupon_minor, discount_code, discount_minor, total_minor, idempotency_key,
                    created_at_ms, updated_at_ms
             FROM orders WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let applied = |code: Option<String>, minor: Option<i64>| {
        code.map(|code| AppliedCode {
            code,
            amount_minor: minor.unwrap_or(0),
        })
    };
    let lines = c
        .query(
            "SELECT product_id, sku, name, quantity, unit_price_minor, line_total_minor,
                    warehouse_id, reservation_id
             FROM order_lines WHERE order_id = $1 ORDER BY line_no",
            &[&id],
        )
        .await?
        .iter()
        .map(|l| {
            Ok(OrderLine {
                product_id: product(l.try_get(0)?)?,
                sku: l.try_get(1)?,
                name: l.try_get(2)?,
                quantity: l.try_get(3)?,
                unit_price_minor: l.try_get(4)?,
                line_total_minor: l.try_get(5)?,
                warehouse_id: warehouse_id(l.try_get(6)?)?,
                reservation_id: l.try_get(7)?,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    let history = c
        .query(
            "SELECT from_status, to_status, reason, warehouse_id, at_ms
             FROM order_status_history WHERE order_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|h| {
            let from: Option<String> = h.try_get(0)?;
            let to: String = h.try_get(1)?;
            Ok(StatusChange {
                from: from.as_deref().map(order_status).transpose()?,
                to: order_status(&to)?,
                reason: h.try_get(2)?,
                warehouse_id: h.try_get(3)?,
                at: UnixMillis::from_millis(h.try_get(4)?),
            })
        })
        .collect::<Result<_, StorageError>>()?;
    let status: String = r.try_get(2)?;
    Ok(Some(Order {
        id: r.try_get(0)?,
        customer: r.try_get(1)?,
        status: order_status(&status)?,
        currency: r.try_get(3)?,
        shipping_address: r.try_get(4)?,
        lines,
        subtotal_minor: r.try_get(5)?,
        coupon: applied(r.try_get(6)?, r.try_get(7)?),
        discount_code: applied(r.try_get(8)?, r.try_get(9)?),
        total_minor: r.try_get(10)?,
        idempotency_key: r.try_get(11)?,
        history,
        created_at: UnixMillis::from_millis(r.try_get(12)?),
        updated_at: UnixMillis::from_millis(r.try_get(13)?),
    }))
}

#[async_trait]
impl OrderStore for PgStore {
    async fn create_order(&self, new: NewOrder) -> OrderResult<Created> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let created = create(&tx, &new).await?;
        if matches!(created, Ok(Created::New(_))) {
            tx.commit().await?;
        }
        Ok(created)
    }

    async fn order(&self, id: i64) -> Result<Option<Order>, StorageError> {
        let client = self.client().await?;
        load(&*client, id).await
    }

    async fn orders(&self, q: OrderQuery) -> Result<Vec<Order>, StorageError> {
        let client = self.client().await?;
        let ids: Vec<i64> = client
            .query(
                "SELECT id FROM orders
                 WHERE id > $1 AND ($2::text IS NULL OR customer = $2)
                   AND ($3::text IS NULL OR status = $3)
                   AND ($4::bigint IS NULL OR created_at_ms >= $4)
                   AND ($5::bigint IS NULL OR created_at_ms < $5)
                 ORDER BY id LIMIT $6",
                &[
                    &q.after,
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
            out.extend(load(&*client, id).await?);
        }
        Ok(out)
    }

    async fn change_order_status(&self, request: StatusRequest) -> OrderResult<Order> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = change(&tx, &request).await?;
        if changed.is_ok() {
            tx.commit().await?;
        }
        Ok(changed)
    }
}

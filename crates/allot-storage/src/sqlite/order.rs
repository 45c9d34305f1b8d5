//! Orders on SQLite. Each create and each status change is one operation on the single
//! writer, inside a savepoint of its own that a refusal rolls back whole: no line reserved,
//! no code used by an order that was refused. The writer runs one operation at a time, so a
//! retry with a known idempotency key finds the order the first one stored.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::{Discount, DiscountKind};
use allot_domain::discount::UseOutcome;
use allot_domain::inventory::{Holder, MovementKind, ReservationTtl};
use allot_domain::order::{OrderStatus, Transition, price};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::inventory::{Change, End, apply, end, ensure_level, reserve_until, warehouse_exists};
use super::{coupon, discount};
use crate::catalog::corrupt;
use crate::crypto::{open_created, open_order, seal_new_order};
use crate::inventory::{InventoryRefusal, NewReservation, product, reservation_id, warehouse_id};
use crate::order::sealed::{Created, NewOrder, Order};
use crate::order::{
    AppliedCode, ORDER_HOLD_UNTIL_MS, OrderLine, OrderQuery, OrderRefusal, OrderResult, OrderStore,
    StatusChange, StatusRequest, holder, order_status,
};
use crate::{RedeemOutcome, StorageError};

type Refusable<T> = Result<Result<T, OrderRefusal>, StorageError>;

/// Runs `op` in a savepoint that is rolled back if it fails or refuses.
fn all_or_nothing<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Refusable<T>,
) -> Refusable<T> {
    conn.prepare_cached("SAVEPOINT allot_order")?.execute([])?;
    let result = op(conn);
    if !matches!(result, Ok(Ok(_))) {
        conn.prepare_cached("ROLLBACK TO allot_order")?
            .execute([])?;
    }
    conn.prepare_cached("RELEASE allot_order")?.execute([])?;
    result
}

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

fn create(conn: &Connection, new: &NewOrder) -> Refusable<Created> {
    if let Some(key) = &new.idempotency_key
        && let Some(id) = conn
            .prepare_cached("SELECT id FROM orders WHERE idempotency_key = ?1")?
            .query_row(params![key.as_str()], |r| r.get::<_, i64>(0))
            .optional()?
    {
        let order = load(conn, id)?.ok_or_else(|| corrupt("an order just found is missing"))?;
        return Ok(Ok(Created::Replayed(order)));
    }
    all_or_nothing(conn, |conn| create_inner(conn, new))
}

fn create_inner(conn: &Connection, new: &NewOrder) -> Refusable<Created> {
    let now = new.now;
    let mut products = Vec::with_capacity(new.lines.len());
    for (p, _) in &new.lines {
        let row = conn
            .prepare_cached(
                "SELECT sku, name, price_minor, currency, active FROM products
                 WHERE id = ?1 AND deleted_at_ms IS NULL",
            )?
            .query_row(params![p.get()], |r| {
                Ok((
                    Priced {
                        sku: r.get(0)?,
                        name: r.get(1)?,
                        price: r.get(2)?,
                        currency: r.get(3)?,
                    },
                    r.get::<_, bool>(4)?,
                ))
            })
            .optional()?;
        match row {
            None => return Ok(Err(OrderRefusal::UnknownProduct { product: *p })),
            Some((_, false)) => return Ok(Err(OrderRefusal::InactiveProduct { product: *p })),
            Some((priced, true)) => products.push(priced),
        }
    }
    let mut currencies: Vec<String> = products.iter().map(|p| p.currency.clone()).collect();
    currencies.sort();
    currencies.dedup();
    let [currency] = currencies.as_slice() else {
        return Ok(Err(OrderRefusal::MixedCurrencies { currencies }));
    };
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO orders (customer, status, currency, shipping_address_enc, subtotal_minor,
                                 total_minor, idempotency_key, created_at_ms, updated_at_ms)
             VALUES (?1, 'pending', ?2, ?3, 0, 0, ?4, ?5, ?5) RETURNING id",
        )?
        .query_row(
            params![
                new.customer.as_str(),
                currency,
                new.shipping_address,
                new.idempotency_key.as_ref().map(|k| k.as_str()),
                now.as_millis()
            ],
            |r| r.get(0),
        )?;
    let holder = Holder::parse(&holder(id)).map_err(corrupt)?;
    // Lines in product order (the order PostgreSQL locks stock rows in; here for sameness).
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
        match reserve_until(conn, &request, ORDER_HOLD_UNTIL_MS)? {
            Ok(r) => held[i] = Some((r.id.get(), r.warehouse_id)),
            Err(refusal) => return Ok(Err(inventory_refusal(refusal, p)?)),
        }
    }
    let mut discounts = Vec::new();
    let coupon_code = match &new.coupon {
        None => None,
        Some(code) => match coupon::redeem(conn, code.as_str(), &new.customer, now, Some(id))? {
            RedeemOutcome::NotFound => return Ok(Err(OrderRefusal::UnknownCoupon)),
            RedeemOutcome::Refused(r) => return Ok(Err(OrderRefusal::CouponUnusable(r))),
            RedeemOutcome::Redeemed(c) => {
                let kind = DiscountKind::parse(&c.discount_kind).map_err(corrupt)?;
                discounts.push(Discount::new(kind, c.discount_amount).map_err(corrupt)?);
                Some(c.code)
            }
        },
    };
    if let Some(code) = &new.discount_code {
        match discount::use_code(conn, code, now, Some(id))? {
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
    conn.prepare_cached(
        "UPDATE orders SET subtotal_minor = ?2, coupon_code = ?3, coupon_minor = ?4,
                discount_code = ?5, discount_minor = ?6, total_minor = ?7 WHERE id = ?1",
    )?
    .execute(params![
        id,
        pricing.subtotal_minor,
        coupon_code,
        coupon_minor,
        new.discount_code.as_ref().map(|c| c.as_str()),
        discount_minor,
        pricing.total_minor
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity,
                                  unit_price_minor, line_total_minor, warehouse_id,
                                  reservation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (i, (((p, _), info), line)) in new
        .lines
        .iter()
        .zip(&products)
        .zip(&pricing.lines)
        .enumerate()
    {
        let (reservation, warehouse) =
            held[i].ok_or_else(|| corrupt("an order line was not reserved"))?;
        insert.execute(params![
            id,
            i as i64,
            p.get(),
            info.sku,
            info.name,
            line.quantity,
            line.unit_price_minor,
            line.line_total_minor,
            warehouse.get(),
            reservation
        ])?;
    }
    history(conn, id, None, OrderStatus::Pending, None, None, now)?;
    let order = load(conn, id)?.ok_or_else(|| corrupt("an order just stored is missing"))?;
    super::event::append(conn, crate::event::order_created_event(&order))?;
    Ok(Ok(Created::New(order)))
}

fn history(
    conn: &Connection,
    id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    reason: Option<&str>,
    warehouse: Option<i64>,
    now: UnixMillis,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO order_status_history (order_id, from_status, to_status, reason,
                                           warehouse_id, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        from.map(OrderStatus::as_str),
        to.as_str(),
        reason,
        warehouse,
        now.as_millis()
    ])?;
    Ok(())
}

/// Puts `quantity` back on hand in the warehouse (`stock_in`), creating its level if needed.
fn restock(
    conn: &Connection,
    line: &OrderLine,
    w: WarehouseId,
    reason: &str,
    now: UnixMillis,
) -> Refusable<()> {
    let b = match ensure_level(conn, line.product_id, w, now)? {
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
    apply(conn, line.product_id, w, &b, change, now)?;
    Ok(Ok(()))
}

fn change(conn: &Connection, req: &StatusRequest) -> Refusable<Order> {
    all_or_nothing(conn, |conn| change_inner(conn, req))
}

fn change_inner(conn: &Connection, req: &StatusRequest) -> Refusable<Order> {
    let now = req.now;
    let Some(o) = load(conn, req.id)? else {
        return Ok(Err(OrderRefusal::OrderNotFound));
    };
    let t = match o.status.transition(req.to) {
        Ok(t) => t,
        Err(e) => return Ok(Err(OrderRefusal::Illegal(e))),
    };
    let mut lines = o.lines.clone();
    lines.sort_by_key(|l| (l.product_id, l.warehouse_id));
    let return_to = match (t, req.warehouse) {
        (Transition::Restock, Some(w)) => {
            if !warehouse_exists(conn, w)? {
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
    for line in &lines {
        let id = reservation_id(line.reservation_id)?;
        let done = match t {
            Transition::ConsumeReservations => end(conn, id, End::Confirm, now)?.map(|_| ()),
            Transition::ReleaseReservations => end(conn, id, End::Release, now)?.map(|_| ()),
            Transition::RestockConfirmed => {
                match restock(conn, line, line.warehouse_id, &reason, now)? {
                    Ok(()) => Ok(()),
                    Err(r) => return Ok(Err(r)),
                }
            }
            Transition::Restock => {
                let w = return_to.unwrap_or(line.warehouse_id);
                match restock(conn, line, w, &reason, now)? {
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
        coupon::give_back(conn, o.id, now)?;
        if let Some(code) = &o.discount_code {
            discount::give_back(conn, &code.code, o.id, now)?;
        }
    }
    conn.prepare_cached("UPDATE orders SET status = ?2, updated_at_ms = ?3 WHERE id = ?1")?
        .execute(params![o.id, req.to.as_str(), now.as_millis()])?;
    history(
        conn,
        o.id,
        Some(o.status),
        req.to,
        req.reason.as_deref(),
        return_to.map(WarehouseId::get),
        now,
    )?;
    let event =
        crate::event::order_status_event(o.id, o.status, req, return_to.map(WarehouseId::get));
    super::event::append(conn, event)?;
    let order = load(conn, o.id)?.ok_or_else(|| corrupt("an order just changed is missing"))?;
    Ok(Ok(order))
}

pub(super) fn load(conn: &Connection, id: i64) -> Result<Option<Order>, StorageError> {
    let row = conn
        .prepare_cached(
            "SELECT id, customer, status, currency, shipping_address_enc, subtotal_minor, coupon_code,
                    coupon_minor, discount_code, discount_minor, total_minor, idempotency_key,
                    created_at_ms, updated_at_ms
             FROM orders WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                (r.get::<_, Option<String>>(6)?, r.get::<_, Option<i64>>(7)?),
                (r.get::<_, Option<String>>(8)?, r.get::<_, Option<i64>>(9)?),
                r.get::<_, i64>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, i64>(12)?,
                r.get::<_, i64>(13)?,
            ))
        })
        .optional()?;
    let Some((
        id,
        customer,
        status,
        currency,
        address,
        subtotal,
        c,
        d,
        total,
        key,
        created,
        updated,
    )) = row
    else {
        return Ok(None);
    };
    let applied = |(code, minor): (Option<String>, Option<i64>)| {
        code.map(|code| AppliedCode {
            code,
            amount_minor: minor.unwrap_or(0),
        })
    };
    let mut lines = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT product_id, sku, name, quantity, unit_price_minor, line_total_minor,
                    warehouse_id, reservation_id
             FROM order_lines WHERE order_id = ?1 ORDER BY line_no",
        )?;
        let mut rows = stmt.query(params![id])?;
        while let Some(r) = rows.next()? {
            lines.push(OrderLine {
                product_id: product(r.get(0)?)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                quantity: r.get(3)?,
                unit_price_minor: r.get(4)?,
                line_total_minor: r.get(5)?,
                warehouse_id: warehouse_id(r.get(6)?)?,
                reservation_id: r.get(7)?,
            });
        }
    }
    let mut changes = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT from_status, to_status, reason, warehouse_id, at_ms
             FROM order_status_history WHERE order_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![id])?;
        while let Some(r) = rows.next()? {
            let from: Option<String> = r.get(0)?;
            let to: String = r.get(1)?;
            changes.push(StatusChange {
                from: from.as_deref().map(order_status).transpose()?,
                to: order_status(&to)?,
                reason: r.get(2)?,
                warehouse_id: r.get(3)?,
                at: UnixMillis::from_millis(r.get(4)?),
            });
        }
    }
    Ok(Some(Order {
        id,
        customer,
        status: order_status(&status)?,
        currency,
        shipping_address: address,
        lines,
        subtotal_minor: subtotal,
        coupon: applied(c),
        discount_code: applied(d),
        total_minor: total,
        idempotency_key: key,
        history: changes,
        created_at: UnixMillis::from_millis(created),
        updated_at: UnixMillis::from_millis(updated),
    }))
}

fn list(conn: &Connection, q: &OrderQuery) -> Result<Vec<Order>, StorageError> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM orders
             WHERE id > ?1 AND (?2 IS NULL OR customer = ?2) AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR created_at_ms >= ?4) AND (?5 IS NULL OR created_at_ms < ?5)
             ORDER BY id LIMIT ?6",
        )?
        .query_map(
            params![
                q.after,
                q.customer.as_ref().map(|c| c.as_str()),
                q.status.map(OrderStatus::as_str),
                q.from.map(UnixMillis::as_millis),
                q.until.map(UnixMillis::as_millis),
                i64::from(q.limit)
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(load(conn, id)?);
    }
    Ok(out)
}

#[async_trait]
impl OrderStore for SqliteStore {
    // The address is sealed on the way in and opened on the way out; inside, the writer and
    // `load` carry the sealed column as is.
    async fn create_order(&self, new: crate::NewOrder) -> OrderResult<crate::Created> {
        let weight = new.lines.len() + 1;
        let new = seal_new_order(&self.cipher, new);
        let created = self.write(weight, move |conn, _| create(conn, &new)).await;
        open_created(&self.cipher, created)
    }

    async fn order(&self, id: i64) -> Result<Option<crate::Order>, StorageError> {
        let order = self.read(move |conn| load(conn, id)).await?;
        order.map(|o| open_order(&self.cipher, o)).transpose()
    }

    async fn orders(&self, query: OrderQuery) -> Result<Vec<crate::Order>, StorageError> {
        let orders = self.read(move |conn| list(conn, &query)).await?;
        orders
            .into_iter()
            .map(|o| open_order(&self.cipher, o))
            .collect()
    }

    async fn change_order_status(&self, request: StatusRequest) -> OrderResult<crate::Order> {
        let changed = self.write(2, move |conn, _| change(conn, &request)).await?;
        Ok(match changed {
            Ok(o) => Ok(open_order(&self.cipher, o)?),
            Err(refusal) => Err(refusal),
        })
    }
}

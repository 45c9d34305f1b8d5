//! Orders on SQLite. Each create and each status change is one operation on the single
//! writer, inside a savepoint of its own that a refusal rolls back whole: no line reserved,
//! no code used by an order that was refused. A create reads its facts, lets
//! [`crate::order::decide_order`] decide (the rule PostgreSQL's batch calls too), and writes
//! the plan. The writer runs one operation at a time, so a retry with a known idempotency key
//! finds the order the first one stored.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::discount::UseOutcome;
use allot_domain::order::OrderStatus;
use allot_domain::user::IdempotencyKey;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::inventory::{active_rows, apply, end, ensure_level, hold, warehouse_exists};
use super::{SqliteStore, all_or_nothing};
use super::{coupon, discount};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::crypto::{open_created, open_order, seal_new_order};
use crate::inventory::{Change, InventoryResult};
use crate::order::sealed::{Created, Edited, NewOrder, Order};
use crate::order::{
    HISTORY_OF_ORDER, INSERT_HISTORY, LINES_OF_ORDER, LineStep, ORDER_BY_ID, ORDER_HOLD_UNTIL_MS,
    ORDER_ID_BY_KEY, OrderFacts, OrderQuery, OrderRefusal, OrderResult, OrderStore,
    SET_ORDER_STATUS, StatusRequest, StockRow, change_from, decide_edit, decide_order,
    decide_status_change, hold_refusal, holder, inventory_refusal, line_from, order_from,
    priced_from, promotions_json,
};

type Refusable<T> = Result<Result<T, OrderRefusal>, StorageError>;

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

/// What the order is decided on: its products, their stock rows in active warehouses, its
/// coupon and its discount code, as the database holds them now.
fn facts(conn: &Connection, new: &NewOrder) -> Result<OrderFacts, StorageError> {
    let mut facts = OrderFacts::default();
    for (p, _) in &new.lines {
        let Some(product) = conn
            .prepare_cached(
                "SELECT sku, name, price_minor, currency, active FROM products
                 WHERE id = ?1 AND deleted_at_ms IS NULL",
            )?
            .query_row(params![p.get()], |r| Ok(priced_from(r, 0)))
            .optional()?
            .transpose()?
        else {
            continue;
        };
        // An inactive product refuses the order before any stock is looked at.
        if product.active {
            for (warehouse, balance) in active_rows(conn, *p)? {
                facts.add_stock(StockRow {
                    product: p.get(),
                    warehouse,
                    balance,
                });
            }
        }
        facts.add_product(p.get(), product);
    }
    if let Some(code) = &new.coupon
        && let Some((id, coupon)) = coupon::by_code(conn, code.as_str())?
    {
        facts.add_coupon(id, coupon)?;
    }
    if let Some(code) = &new.discount_code
        && let Some(used) = conn
            .prepare_cached("SELECT used_at_ms IS NOT NULL FROM discount_codes WHERE code = ?1")?
            .query_row(params![code.as_str()], |r| r.get::<_, bool>(0))
            .optional()?
    {
        facts.add_code(code.as_str().to_owned(), used);
    }
    if let Some(id) = new.promotion_hold
        && let Some(hold) = super::promotion::hold_in(conn, id)?
    {
        facts.add_hold(hold);
    }
    Ok(facts)
}

fn create_inner(conn: &Connection, new: &NewOrder) -> Refusable<Created> {
    let facts = facts(conn, new)?;
    let plan = match decide_order(&facts, new) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let now = new.now;
    let coupon_code = plan
        .coupon
        .map(|(c, _)| facts.coupons[c].coupon.code.as_str());
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO orders (customer, status, currency, shipping_address_enc, subtotal_minor,
                                 coupon_code, coupon_minor, discount_code, discount_minor,
                                 total_minor, idempotency_key, created_at_ms, updated_at_ms,
                                 shipping_minor, shipping_discount_minor, promotion_minor,
                                 promotion_hold_id, promotions)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14,
                     ?15, ?16)
             RETURNING id",
        )?
        .query_row(
            params![
                new.customer.as_str(),
                plan.currency,
                new.shipping_address,
                plan.subtotal_minor,
                coupon_code,
                plan.coupon.map(|(_, minor)| minor),
                new.discount_code.as_ref().map(|c| c.as_str()),
                plan.discount_minor,
                plan.goods_minor,
                new.idempotency_key.as_ref().map(|k| k.as_str()),
                now.as_millis(),
                plan.shipping_minor,
                plan.shipping_discount_minor,
                plan.promotion_minor,
                plan.hold,
                promotions_json(&plan.promotions),
            ],
            |r| r.get(0),
        )?;
    let order = match write_plan(conn, id, new, &facts, &plan)? {
        Ok(order) => order,
        Err(refusal) => return Ok(Err(refusal)),
    };
    history(conn, id, None, OrderStatus::Pending, None, None, now)?;
    super::event::append(conn, crate::event::order_created_event(&order))?;
    Ok(Ok(Created::New(order)))
}

/// What a decided order writes besides its own row (stored under `id`): its hold redeemed,
/// its reservations, its coupon's and code's uses, its lines.
fn write_plan(
    conn: &Connection,
    id: i64,
    new: &NewOrder,
    facts: &OrderFacts,
    plan: &crate::order::OrderPlan,
) -> Refusable<Order> {
    let now = new.now;
    // The hold was read in this transaction (the writer runs one operation at a time): it is
    // redeemed as it was decided on, or the order is refused whole.
    if let Some(hold) = plan.hold
        && let Err(refusal) = super::promotion::redeem_hold_in(conn, hold, &holder(id), now)?
    {
        return Ok(Err(OrderRefusal::PromotionHoldUnusable(hold_refusal(
            refusal,
        ))));
    }
    let holder = holder(id);
    let mut reservations = vec![0; plan.lines.len()];
    for &i in &plan.reserve_order {
        let line = &plan.lines[i];
        let row = &facts.stock[line.stock];
        let held = hold(
            conn,
            line.product,
            (row.warehouse, &row.balance),
            line.quantity.get(),
            &holder,
            ORDER_HOLD_UNTIL_MS,
            now,
        )?;
        reservations[i] = held.id.get();
    }
    if let Some((c, _)) = plan.coupon {
        coupon::record_redemption(
            conn,
            facts.coupons[c].id,
            &new.customer,
            now,
            Some(id),
            None,
        )?;
    }
    if let Some(code) = &new.discount_code
        && discount::use_code(conn, code, now, Some(id))? != UseOutcome::Used
    {
        return Err(corrupt("a discount code found unused could not be used"));
    }
    let order = plan.order(id, new, facts, &mut reservations.iter().copied())?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity,
                                  unit_price_minor, line_total_minor, warehouse_id,
                                  reservation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (i, line) in order.lines.iter().enumerate() {
        insert.execute(params![
            id,
            i as i64,
            line.product_id.get(),
            line.sku,
            line.name,
            line.quantity,
            line.unit_price_minor,
            line.line_total_minor,
            line.warehouse_id.get(),
            line.reservation_id
        ])?;
    }
    Ok(Ok(order))
}

fn edit(conn: &Connection, id: i64, new: &NewOrder) -> Refusable<Edited> {
    all_or_nothing(conn, |conn| edit_inner(conn, id, new))
}

/// Undoes what the pending order holds (the cancel rule), then decides and writes the new
/// content as a new order's under the same id; the savepoint makes it all or nothing.
fn edit_inner(conn: &Connection, id: i64, new: &NewOrder) -> Refusable<Edited> {
    let now = new.now;
    let Some(before) = load(conn, id)? else {
        return Ok(Err(OrderRefusal::OrderNotFound));
    };
    let undo = match decide_edit(&before, now)? {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    for step in &undo.steps {
        if let LineStep::End {
            reservation, how, ..
        } = *step
            && let Err(r) = end(conn, reservation, how, now)?
        {
            return Ok(Err(inventory_refusal(r, step.product())?));
        }
    }
    coupon::give_back(conn, id, now)?;
    if let Some(code) = &before.discount_code {
        discount::give_back(conn, &code.code, id, now)?;
    }
    if let Some(hold) = before.promotion_hold_id
        && let Err(refusal) = super::promotion::roll_back_hold_in(conn, hold, now)?
    {
        return Err(corrupt(format!(
            "order {id} could not roll back its promotion hold {hold}: {refusal:?}"
        )));
    }
    conn.prepare_cached("DELETE FROM order_lines WHERE order_id = ?1")?
        .execute(params![id])?;
    let facts = facts(conn, new)?;
    let plan = match decide_order(&facts, new) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let coupon_code = plan
        .coupon
        .map(|(c, _)| facts.coupons[c].coupon.code.as_str());
    conn.prepare_cached(
        "UPDATE orders SET currency = ?2, shipping_address_enc = ?3, subtotal_minor = ?4,
                coupon_code = ?5, coupon_minor = ?6, discount_code = ?7, discount_minor = ?8,
                total_minor = ?9, updated_at_ms = ?10, shipping_minor = ?11,
                shipping_discount_minor = ?12, promotion_minor = ?13, promotion_hold_id = ?14,
                promotions = ?15
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        plan.currency,
        new.shipping_address,
        plan.subtotal_minor,
        coupon_code,
        plan.coupon.map(|(_, minor)| minor),
        new.discount_code.as_ref().map(|c| c.as_str()),
        plan.discount_minor,
        plan.goods_minor,
        now.as_millis(),
        plan.shipping_minor,
        plan.shipping_discount_minor,
        plan.promotion_minor,
        plan.hold,
        promotions_json(&plan.promotions),
    ])?;
    if let Err(refusal) = write_plan(conn, id, new, &facts, &plan)? {
        return Ok(Err(refusal));
    }
    let after = load(conn, id)?.ok_or_else(|| corrupt("an order just edited is missing"))?;
    super::event::append(
        conn,
        crate::event::order_updated_event(&before, &after, now),
    )?;
    Ok(Ok(Edited { before, after }))
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
    conn.prepare_cached(INSERT_HISTORY)?.execute(params![
        id,
        from.map(OrderStatus::as_str),
        to.as_str(),
        reason,
        warehouse,
        now.as_millis()
    ])?;
    Ok(())
}

/// Puts a returned line's quantity back on hand in `w` (`stock_in`), creating its level if
/// needed.
pub(super) fn restock(
    conn: &Connection,
    (product, w): (ProductId, WarehouseId),
    change: Change<'_>,
    now: UnixMillis,
) -> InventoryResult<()> {
    let b = match ensure_level(conn, product, w, now)? {
        Ok(b) => b,
        Err(r) => return Ok(Err(r)),
    };
    apply(conn, product, w, &b, change, now)?;
    Ok(Ok(()))
}

fn change(conn: &Connection, req: &StatusRequest) -> Refusable<Order> {
    all_or_nothing(conn, |conn| change_inner(conn, req))
}

pub(super) fn change_inner(conn: &Connection, req: &StatusRequest) -> Refusable<Order> {
    let now = req.now;
    let Some(o) = load(conn, req.id)? else {
        return Ok(Err(OrderRefusal::OrderNotFound));
    };
    let warehouse_known = match req.warehouse {
        Some(w) => Some(warehouse_exists(conn, w)?),
        None => None,
    };
    let line_returns = super::shipment::has_line_returns(conn, o.id)?;
    let plan = match decide_status_change(&o, req, warehouse_known, line_returns)? {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    for step in &plan.steps {
        let done = match *step {
            LineStep::End {
                reservation, how, ..
            } => end(conn, reservation, how, now)?.map(|_| ()),
            LineStep::Restock {
                product,
                warehouse,
                quantity,
                reservation,
            } => {
                let change = Change::stock_in(quantity, reservation, &plan.reason);
                restock(conn, (product, warehouse), change, now)?
            }
        };
        if let Err(r) = done {
            return Ok(Err(inventory_refusal(r, step.product())?));
        }
    }
    if plan.gives_codes_back {
        if plan.gives_coupon_back {
            coupon::give_back(conn, o.id, now)?;
        }
        if let Some(code) = &o.discount_code {
            discount::give_back(conn, &code.code, o.id, now)?;
        }
        // Rolled back at most once, whoever asks first (this order or the hold's own API).
        if let Some(hold) = o.promotion_hold_id
            && let Err(refusal) = super::promotion::roll_back_hold_in(conn, hold, now)?
        {
            return Err(corrupt(format!(
                "order {} could not roll back its promotion hold {hold}: {refusal:?}",
                o.id
            )));
        }
    }
    // The whole-order move to fulfilled ships what is left (`crate::shipment`).
    if req.to == OrderStatus::Fulfilled {
        super::shipment::ship_rest(conn, o.id, now)?;
    }
    conn.prepare_cached(SET_ORDER_STATUS)?.execute(params![
        req.to.as_str(),
        now.as_millis(),
        o.id
    ])?;
    let return_to = plan.return_to.map(WarehouseId::get);
    history(
        conn,
        o.id,
        Some(o.status),
        req.to,
        req.reason.as_deref(),
        return_to,
        now,
    )?;
    let event = crate::event::order_status_event(o.id, o.status, req, return_to);
    super::event::append(conn, event)?;
    if req.to == OrderStatus::Cancelled {
        super::event::append(conn, crate::event::order_cancelled_event(&o, req, &plan))?;
    }
    if req.to == OrderStatus::Fulfilled {
        super::shipment::fulfilled(conn, o.id, now)?;
    }
    let order = load(conn, o.id)?.ok_or_else(|| corrupt("an order just changed is missing"))?;
    Ok(Ok(order))
}

pub(super) fn load(conn: &Connection, id: i64) -> Result<Option<Order>, StorageError> {
    let mut stmt = conn.prepare_cached(ORDER_BY_ID)?;
    let mut rows = stmt.query(params![id])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let lines = rows_of(conn, LINES_OF_ORDER, id, |r| line_from(r))?;
    let history = rows_of(conn, HISTORY_OF_ORDER, id, |r| change_from(r))?;
    Ok(Some(order_from(r, lines, history)?))
}

/// Every row `sql` answers for the order `id`, mapped.
fn rows_of<T>(
    conn: &Connection,
    sql: &str,
    id: i64,
    map: impl Fn(&rusqlite::Row<'_>) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(map(r)?);
    }
    Ok(out)
}

fn list(conn: &Connection, q: &OrderQuery) -> Result<Vec<Order>, StorageError> {
    let (statement, bound) = q.page();
    let ids: Vec<i64> = conn
        .prepare_cached(statement)?
        .query_map(
            params![
                bound,
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

    async fn order_by_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<crate::Order>, StorageError> {
        let key = key.as_str().to_owned();
        let order = self
            .read(move |conn| {
                let id = conn
                    .prepare_cached(ORDER_ID_BY_KEY)?
                    .query_row(params![key], |r| r.get::<_, i64>(0))
                    .optional()?;
                match id {
                    Some(id) => load(conn, id),
                    None => Ok(None),
                }
            })
            .await?;
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

    async fn edit_order(&self, id: i64, new: crate::NewOrder) -> OrderResult<crate::Edited> {
        let weight = 2 * new.lines.len() + 2;
        let new = seal_new_order(&self.cipher, new);
        let edited = self
            .write(weight, move |conn, _| edit(conn, id, &new))
            .await?;
        Ok(match edited {
            Ok(e) => Ok(crate::Edited {
                before: open_order(&self.cipher, e.before)?,
                after: open_order(&self.cipher, e.after)?,
            }),
            Err(refusal) => Err(refusal),
        })
    }
}

//! Inventory on SQLite. Every write runs on the single writer in its own savepoint: the
//! writer serialises them, so a reservation reads the product's levels, chooses a warehouse
//! and writes without any other write in between. The balance, its ledger row and any alert
//! change go in that one savepoint; `CHECK (reserved >= 0 AND reserved <= on_hand)` stands
//! behind it all.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::inventory::{Adjustment, Reason, Reorder, ReservationId};
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::StorageError;
use crate::inventory::{
    ALERTS_PAGE, AlertQuery, AlertStep, Balance, CHANGE_LEVEL, CLEAR_ALERT, Change,
    END_RESERVATION, ENSURE_LEVEL, End, INSERT_MOVEMENT, InventoryRefusal, InventoryResult,
    InventoryStore, LEVEL_SELECT, LedgerQuery, LevelQuery, MOVEMENTS_OF_PRODUCT, MOVEMENTS_PAGE,
    Movement, NewReservation, PRODUCT_MOVEMENTS, ProductInventory, RAISE_ALERT,
    RESERVATION_COLUMNS, RESERVATIONS_OF_PRODUCT, Reservation, SET_REORDER, StockAlert, StockLevel,
    alert_from, alert_step, balance_from, choose_row, decide_adjustment, decide_end,
    decide_reorder, level_from, movement_from, reservation_from, reservation_id, warehouse_id,
};

type Refusable<T> = Result<Result<T, InventoryRefusal>, StorageError>;

fn level(
    conn: &Connection,
    p: ProductId,
    w: WarehouseId,
) -> Result<Option<StockLevel>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{LEVEL_SELECT} WHERE s.product_id = ?1 AND s.warehouse_id = ?2"
    ))?;
    let mut rows = stmt.query(params![p.get(), w.get()])?;
    rows.next()?.map(level_from).transpose()
}

fn stored_level(conn: &Connection, p: ProductId, w: WarehouseId) -> Refusable<StockLevel> {
    level(conn, p, w)?
        .map(Ok)
        .ok_or_else(|| StorageError::Corrupt("a stock level just written is missing".to_owned()))
}

fn live_product(conn: &Connection, p: ProductId) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM products WHERE id = ?1 AND deleted_at_ms IS NULL")?
        .exists(params![p.get()])?)
}

pub(super) fn warehouse_exists(conn: &Connection, w: WarehouseId) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM warehouses WHERE id = ?1")?
        .exists(params![w.get()])?)
}

/// The level's balance, created empty first if there is none (the product and warehouse must
/// exist: a refusal otherwise).
pub(super) fn ensure_level(
    conn: &Connection,
    p: ProductId,
    w: WarehouseId,
    now: UnixMillis,
) -> Refusable<Balance> {
    if !live_product(conn, p)? {
        return Ok(Err(InventoryRefusal::UnknownProduct));
    }
    if !warehouse_exists(conn, w)? {
        return Ok(Err(InventoryRefusal::UnknownWarehouse));
    }
    conn.prepare_cached(ENSURE_LEVEL)?
        .execute(params![p.get(), w.get(), now.as_millis()])?;
    let b = conn
        .prepare_cached(
            "SELECT on_hand, reserved, reorder_threshold, low_alert_open FROM stock_levels
             WHERE product_id = ?1 AND warehouse_id = ?2",
        )?
        .query_row(params![p.get(), w.get()], |r| Ok(balance_from(r, 0)))??;
    Ok(Ok(b))
}

/// Raises or clears the level's alert as `step` says; answers whether one is open after.
fn apply_alert(
    conn: &Connection,
    p: ProductId,
    w: WarehouseId,
    step: AlertStep,
    now: UnixMillis,
) -> Result<bool, StorageError> {
    let written = match step {
        AlertStep::Raise {
            available,
            threshold,
        } => conn.prepare_cached(RAISE_ALERT)?.execute(params![
            p.get(),
            w.get(),
            available,
            threshold,
            now.as_millis()
        ])?,
        AlertStep::Clear { .. } => {
            conn.prepare_cached(CLEAR_ALERT)?
                .execute(params![now.as_millis(), p.get(), w.get()])?
        }
        AlertStep::Keep { .. } => 0,
    };
    if written > 0
        && let Some(e) = step.event(p, w, now)
    {
        super::event::append(conn, e)?;
    }
    Ok(step.open_after())
}

pub(super) fn apply(
    conn: &Connection,
    p: ProductId,
    w: WarehouseId,
    b: &Balance,
    c: Change<'_>,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let (on_hand, reserved) = c.after(b);
    // The movement's event first, then the alert it raises or clears, if any.
    let (movement, changed) = c.events(p, w, b, now);
    super::event::append(conn, movement)?;
    if let Some(changed) = changed {
        super::event::append(conn, changed)?;
    }
    let open = apply_alert(conn, p, w, alert_step(b, on_hand, reserved), now)?;
    conn.prepare_cached(CHANGE_LEVEL)?.execute(params![
        c.on_hand_delta,
        c.reserved_delta,
        open,
        now.as_millis(),
        p.get(),
        w.get()
    ])?;
    conn.prepare_cached(INSERT_MOVEMENT)?.execute(params![
        p.get(),
        w.get(),
        c.kind.as_str(),
        c.on_hand_delta,
        c.reserved_delta,
        c.reservation,
        c.reason,
        now.as_millis()
    ])?;
    Ok(())
}

fn set_reorder(
    conn: &Connection,
    p: ProductId,
    w: WarehouseId,
    reorder: Option<Reorder>,
    now: UnixMillis,
) -> Refusable<StockLevel> {
    let b = match ensure_level(conn, p, w, now)? {
        Ok(b) => b,
        Err(r) => return Ok(Err(r)),
    };
    let (event, step) = decide_reorder(p, w, &b, reorder, now);
    super::event::append(conn, event)?;
    let open = apply_alert(conn, p, w, step, now)?;
    conn.prepare_cached(SET_REORDER)?.execute(params![
        reorder.map(Reorder::threshold),
        reorder.map(Reorder::quantity),
        open,
        now.as_millis(),
        p.get(),
        w.get()
    ])?;
    stored_level(conn, p, w)
}

fn adjust(
    conn: &Connection,
    p: ProductId,
    w: WarehouseId,
    adjustment: Adjustment,
    reason: &Reason,
    now: UnixMillis,
) -> Refusable<StockLevel> {
    let b = match ensure_level(conn, p, w, now)? {
        Ok(b) => b,
        Err(r) => return Ok(Err(r)),
    };
    let change = match decide_adjustment(adjustment, &b, reason.as_str()) {
        Ok(change) => change,
        Err(r) => return Ok(Err(r)),
    };
    if let Some(change) = change {
        apply(conn, p, w, &b, change, now)?;
    }
    stored_level(conn, p, w)
}

fn reserve(conn: &Connection, new: &NewReservation) -> Refusable<Reservation> {
    let p = new.product;
    if !live_product(conn, p)? {
        return Ok(Err(InventoryRefusal::UnknownProduct));
    }
    if let Some(w) = new.preferred
        && !warehouse_exists(conn, w)?
    {
        return Ok(Err(InventoryRefusal::UnknownWarehouse));
    }
    let rows = active_rows(conn, p)?;
    let (w, b) = match choose_row(&rows, new.preferred, new.quantity)? {
        Ok(chosen) => chosen,
        Err(r) => return Ok(Err(r)),
    };
    let expires_at = new.now.as_millis().saturating_add(new.ttl.as_millis());
    let held = hold(
        conn,
        p,
        (w, &b),
        new.quantity.get(),
        new.holder.as_str(),
        expires_at,
        new.now,
    )?;
    Ok(Ok(held))
}

/// The product's stock rows in active warehouses, in warehouse order.
pub(super) fn active_rows(
    conn: &Connection,
    p: ProductId,
) -> Result<Vec<(WarehouseId, Balance)>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.warehouse_id, s.on_hand, s.reserved, s.reorder_threshold, s.low_alert_open
         FROM stock_levels s JOIN warehouses w ON w.id = s.warehouse_id
         WHERE s.product_id = ?1 AND w.active = 1 ORDER BY s.warehouse_id",
    )?;
    let mut rows = stmt.query(params![p.get()])?;
    let mut levels = Vec::new();
    while let Some(r) = rows.next()? {
        levels.push((warehouse_id(r.get(0)?)?, balance_from(r, 1)?));
    }
    Ok(levels)
}

/// Writes a reservation of `quantity` on the chosen stock row (its balance `b` as read), until
/// `expires_at_ms`, with its ledger row and alert.
pub(super) fn hold(
    conn: &Connection,
    p: ProductId,
    (w, b): (WarehouseId, &Balance),
    quantity: i64,
    holder: &str,
    expires_at_ms: i64,
    now: UnixMillis,
) -> Result<Reservation, StorageError> {
    let reservation = conn
        .prepare_cached(&format!(
            "INSERT INTO reservations (product_id, warehouse_id, quantity, holder, status,
                                       expires_at_ms, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6) RETURNING {RESERVATION_COLUMNS}"
        ))?
        .query_row(
            params![
                p.get(),
                w.get(),
                quantity,
                holder,
                expires_at_ms,
                now.as_millis()
            ],
            |r| Ok(reservation_from(r)),
        )??;
    let change = Change::reservation(quantity, reservation.id.get());
    apply(conn, p, w, b, change, now)?;
    Ok(reservation)
}

fn reservation(conn: &Connection, id: ReservationId) -> Result<Option<Reservation>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?1"
    ))?;
    let mut rows = stmt.query(params![id.get()])?;
    rows.next()?.map(reservation_from).transpose()
}

/// Ends a pending reservation as [`decide_end`] says.
pub(super) fn end(
    conn: &Connection,
    id: ReservationId,
    how: End,
    now: UnixMillis,
) -> Refusable<Reservation> {
    let Some(r) = reservation(conn, id)? else {
        return Ok(Err(InventoryRefusal::ReservationNotFound));
    };
    let ending = match decide_end(&r, how, now) {
        Ok(e) => e,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let b = conn
        .prepare_cached(
            "SELECT on_hand, reserved, reorder_threshold, low_alert_open FROM stock_levels
             WHERE product_id = ?1 AND warehouse_id = ?2",
        )?
        .query_row(params![r.product_id.get(), r.warehouse_id.get()], |row| {
            Ok(balance_from(row, 0))
        })??;
    apply(
        conn,
        r.product_id,
        r.warehouse_id,
        &b,
        ending.change(&r),
        now,
    )?;
    conn.prepare_cached(END_RESERVATION)?.execute(params![
        ending.status.as_str(),
        now.as_millis(),
        id.get()
    ])?;
    Ok(ending.answer(r, now))
}

fn expire(conn: &Connection, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM reservations WHERE status = 'pending' AND expires_at_ms <= ?1
             ORDER BY expires_at_ms, id LIMIT ?2",
        )?
        .query_map(params![now.as_millis(), i64::from(limit)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut expired = 0;
    for id in ids {
        if end(conn, reservation_id(id)?, End::Expire, now)?.is_ok() {
            expired += 1;
        }
    }
    Ok(expired)
}

fn levels(conn: &Connection, q: &LevelQuery) -> Result<Vec<StockLevel>, StorageError> {
    let mut sql = format!("{LEVEL_SELECT} WHERE p.deleted_at_ms IS NULL");
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    if let Some(w) = q.warehouse {
        sql.push_str(&format!(
            " AND s.warehouse_id = {}",
            arg(Value::Integer(w.get()))
        ));
    }
    if q.low_only {
        sql.push_str(
            " AND s.reorder_threshold IS NOT NULL AND s.on_hand - s.reserved <= s.reorder_threshold",
        );
    }
    if let Some(sku) = &q.sku {
        sql.push_str(&format!(" AND p.sku_key = {}", arg(Value::Text(sku.key()))));
    }
    if let Some((p, w)) = q.after {
        let (p, w) = (arg(Value::Integer(p.get())), arg(Value::Integer(w.get())));
        sql.push_str(&format!(" AND (s.product_id, s.warehouse_id) > ({p}, {w})"));
    }
    let limit = arg(Value::Integer(i64::from(q.limit)));
    sql.push_str(&format!(
        " ORDER BY s.product_id, s.warehouse_id LIMIT {limit}"
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(level_from(r)?);
    }
    Ok(out)
}

fn product_inventory(conn: &Connection, p: ProductId) -> Result<ProductInventory, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{LEVEL_SELECT} WHERE s.product_id = ?1 ORDER BY s.warehouse_id"
    ))?;
    let mut rows = stmt.query(params![p.get()])?;
    let mut levels = Vec::new();
    while let Some(r) = rows.next()? {
        levels.push(level_from(r)?);
    }
    let mut stmt = conn.prepare_cached(MOVEMENTS_OF_PRODUCT)?;
    let mut rows = stmt.query(params![p.get(), i64::from(PRODUCT_MOVEMENTS)])?;
    let mut movements = Vec::new();
    while let Some(r) = rows.next()? {
        movements.push(movement_from(r)?);
    }
    Ok(ProductInventory { levels, movements })
}

fn alerts(conn: &Connection, q: &AlertQuery) -> Result<Vec<StockAlert>, StorageError> {
    let mut stmt = conn.prepare_cached(ALERTS_PAGE)?;
    let mut rows = stmt.query(params![q.after, q.open_only, i64::from(q.limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(alert_from(r)?);
    }
    Ok(out)
}

fn movements(conn: &Connection, q: &LedgerQuery) -> Result<Vec<Movement>, StorageError> {
    let mut stmt = conn.prepare_cached(MOVEMENTS_PAGE)?;
    let mut rows = stmt.query(params![q.product.get(), q.below(), i64::from(q.limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(movement_from(r)?);
    }
    Ok(out)
}

fn product_reservations(
    conn: &Connection,
    q: &LedgerQuery,
) -> Result<Vec<(i64, Reservation)>, StorageError> {
    let mut stmt = conn.prepare_cached(RESERVATIONS_OF_PRODUCT)?;
    let mut rows = stmt.query(params![q.product.get(), q.below(), i64::from(q.limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push((r.get::<_, i64>(9)?, reservation_from(r)?));
    }
    Ok(out)
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn set_reorder(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        reorder: Option<Reorder>,
        now: UnixMillis,
    ) -> InventoryResult<StockLevel> {
        self.write(1, move |conn, _| {
            set_reorder(conn, product, warehouse, reorder, now)
        })
        .await
    }

    async fn adjust(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        adjustment: Adjustment,
        reason: Reason,
        now: UnixMillis,
    ) -> InventoryResult<StockLevel> {
        // The level is made before the adjustment is decided: a refusal must not keep it.
        self.write(1, move |conn, _| {
            super::all_or_nothing(conn, |conn| {
                adjust(conn, product, warehouse, adjustment, &reason, now)
            })
        })
        .await
    }

    async fn reserve(&self, new: NewReservation) -> InventoryResult<Reservation> {
        self.write(1, move |conn, _| reserve(conn, &new)).await
    }

    async fn release(&self, id: ReservationId, now: UnixMillis) -> InventoryResult<Reservation> {
        self.write(1, move |conn, _| end(conn, id, End::Release, now))
            .await
    }

    async fn confirm(&self, id: ReservationId, now: UnixMillis) -> InventoryResult<Reservation> {
        self.write(1, move |conn, _| end(conn, id, End::Confirm, now))
            .await
    }

    async fn expire_reservations(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
        self.write(limit as usize, move |conn, _| expire(conn, now, limit))
            .await
    }

    async fn reservation(&self, id: ReservationId) -> Result<Option<Reservation>, StorageError> {
        self.read(move |conn| reservation(conn, id)).await
    }

    async fn stock_levels(&self, query: LevelQuery) -> Result<Vec<StockLevel>, StorageError> {
        self.read(move |conn| levels(conn, &query)).await
    }

    async fn product_inventory(
        &self,
        product: ProductId,
    ) -> Result<ProductInventory, StorageError> {
        self.read(move |conn| product_inventory(conn, product))
            .await
    }

    async fn stock_alerts(&self, query: AlertQuery) -> Result<Vec<StockAlert>, StorageError> {
        self.read(move |conn| alerts(conn, &query)).await
    }

    async fn movements(&self, query: LedgerQuery) -> Result<Vec<Movement>, StorageError> {
        self.read(move |conn| movements(conn, &query)).await
    }

    async fn product_reservations(
        &self,
        query: LedgerQuery,
    ) -> Result<Vec<(i64, Reservation)>, StorageError> {
        self.read(move |conn| product_reservations(conn, &query))
            .await
    }
}

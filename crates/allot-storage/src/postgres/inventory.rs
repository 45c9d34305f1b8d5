//! Inventory on PostgreSQL, correct across instances:
//! - a reservation locks every stock row of its product (`SELECT ... FOR UPDATE`, in warehouse
//!   order), chooses a warehouse on what it read, then writes: concurrent reservations of one
//!   product take turns, and each sees what the previous one left;
//! - release and confirm lock the reservation's row first, then its stock row;
//! - expiry takes batches of due reservations with `FOR UPDATE SKIP LOCKED`, so instances that
//!   run it at once take disjoint batches, and locks their stock rows in (product, warehouse)
//!   order, the order every other operation locks them in, so no two transactions deadlock;
//! - the balance, its ledger row and any alert change commit together;
//!   `CHECK (reserved >= 0 AND reserved <= on_hand)` stands behind it all.

use super::conn::Db;
use std::collections::BTreeMap;

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::inventory::{Adjustment, Reason, Reorder, ReservationId};
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::inventory::{
    ALERTS_PAGE, AlertQuery, AlertStep, Balance, CHANGE_LEVEL, CLEAR_ALERT, Change,
    END_RESERVATION, ENSURE_LEVEL, End, INSERT_MOVEMENT, InventoryRefusal, InventoryResult,
    InventoryStore, LEVEL_SELECT, LedgerQuery, LevelQuery, MOVEMENTS_OF_PRODUCT, MOVEMENTS_PAGE,
    Movement, NewReservation, PRODUCT_MOVEMENTS, ProductInventory, RAISE_ALERT,
    RESERVATION_COLUMNS, RESERVATIONS_OF_PRODUCT, Reservation, SET_REORDER, StockAlert, StockLevel,
    alert_from, alert_step, balance_from, choose_row, decide_adjustment, decide_end,
    decide_reorder, level_from, movement_from, product, reservation_from, warehouse_id,
};

type Refusable<T> = Result<Result<T, InventoryRefusal>, StorageError>;

async fn level(
    c: &impl Db,
    p: ProductId,
    w: WarehouseId,
) -> Result<Option<StockLevel>, StorageError> {
    c.query_opt(
        &format!("{LEVEL_SELECT} WHERE s.product_id = $1 AND s.warehouse_id = $2"),
        &[&p.get(), &w.get()],
    )
    .await?
    .as_ref()
    .map(level_from)
    .transpose()
}

async fn stored_level(c: &impl Db, p: ProductId, w: WarehouseId) -> Refusable<StockLevel> {
    level(c, p, w)
        .await?
        .map(Ok)
        .ok_or_else(|| StorageError::Corrupt("a stock level just written is missing".to_owned()))
}

async fn live_product(c: &impl Db, p: ProductId) -> Result<bool, StorageError> {
    Ok(c.query_opt(
        "SELECT 1 FROM products WHERE id = $1 AND deleted_at_ms IS NULL",
        &[&p.get()],
    )
    .await?
    .is_some())
}

pub(super) async fn warehouse_exists(c: &impl Db, w: WarehouseId) -> Result<bool, StorageError> {
    Ok(
        c.query_opt("SELECT 1 FROM warehouses WHERE id = $1", &[&w.get()])
            .await?
            .is_some(),
    )
}

/// Locks the level's row (creating it empty first if there is none) and reads its balance.
pub(super) async fn lock_level(
    c: &impl Db,
    p: ProductId,
    w: WarehouseId,
    now: UnixMillis,
) -> Refusable<Balance> {
    if !live_product(c, p).await? {
        return Ok(Err(InventoryRefusal::UnknownProduct));
    }
    if !warehouse_exists(c, w).await? {
        return Ok(Err(InventoryRefusal::UnknownWarehouse));
    }
    c.execute(ENSURE_LEVEL, &[&p.get(), &w.get(), &now.as_millis()])
        .await?;
    let row = c
        .query_one(
            "SELECT on_hand, reserved, reorder_threshold, low_alert_open FROM stock_levels
             WHERE product_id = $1 AND warehouse_id = $2 FOR UPDATE",
            &[&p.get(), &w.get()],
        )
        .await?;
    Ok(Ok(balance_from(&row, 0)?))
}

/// Raises or clears the level's alert as `step` says; answers whether one is open after.
async fn apply_alert(
    c: &impl Db,
    p: ProductId,
    w: WarehouseId,
    step: AlertStep,
    now: UnixMillis,
) -> Result<bool, StorageError> {
    let written = match step {
        AlertStep::Raise {
            available,
            threshold,
        } => {
            c.execute(
                RAISE_ALERT,
                &[&p.get(), &w.get(), &available, &threshold, &now.as_millis()],
            )
            .await?
        }
        AlertStep::Clear { .. } => {
            c.execute(CLEAR_ALERT, &[&now.as_millis(), &p.get(), &w.get()])
                .await?
        }
        AlertStep::Keep { .. } => 0,
    };
    if written > 0
        && let Some(e) = step.event(p, w, now)
    {
        super::event::append(c, e).await?;
    }
    Ok(step.open_after())
}

/// One change of a locked level: the balance, its ledger row and its alert.
pub(super) async fn apply(
    c: &impl Db,
    p: ProductId,
    w: WarehouseId,
    b: &Balance,
    ch: Change<'_>,
    now: UnixMillis,
) -> Result<Balance, StorageError> {
    let (on_hand, reserved) = ch.after(b);
    // The movement's event first, then the alert it raises or clears, if any.
    // One insert for the movement's event and its InventoryChanged twin.
    let (movement, changed) = ch.events(p, w, b, now);
    let events: Vec<_> = std::iter::once(movement).chain(changed).collect();
    super::event::append_events(c, &events).await?;
    let open = apply_alert(c, p, w, alert_step(b, on_hand, reserved), now).await?;
    c.execute(
        CHANGE_LEVEL,
        &[
            &ch.on_hand_delta,
            &ch.reserved_delta,
            &open,
            &now.as_millis(),
            &p.get(),
            &w.get(),
        ],
    )
    .await?;
    c.execute(
        INSERT_MOVEMENT,
        &[
            &p.get(),
            &w.get(),
            &ch.kind.as_str(),
            &ch.on_hand_delta,
            &ch.reserved_delta,
            &ch.reservation,
            &ch.reason,
            &now.as_millis(),
        ],
    )
    .await?;
    Ok(Balance {
        on_hand,
        reserved,
        threshold: b.threshold,
        alert_open: open,
    })
}

impl PgStore {
    async fn end_reservation(
        &self,
        id: ReservationId,
        how: End,
        now: UnixMillis,
    ) -> Refusable<Reservation> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ended = end_in(&tx, id, how, now).await?;
        super::commit(tx).await?;
        Ok(ended)
    }
}

/// Ends a pending reservation inside the caller's transaction: the reservation's row is
/// locked first, then its stock row. One past its lifetime is expired, whatever was asked, and
/// answered `NotPending { Expired }` (the caller commits that expiry).
pub(super) async fn end_in(
    tx: &impl Db,
    id: ReservationId,
    how: End,
    now: UnixMillis,
) -> Refusable<Reservation> {
    let Some(row) = tx
        .query_opt(
            &format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1 FOR UPDATE"),
            &[&id.get()],
        )
        .await?
    else {
        return Ok(Err(InventoryRefusal::ReservationNotFound));
    };
    let r = reservation_from(&row)?;
    let ending = match decide_end(&r, how, now) {
        Ok(e) => e,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let row = tx
        .query_one(
            "SELECT on_hand, reserved, reorder_threshold, low_alert_open FROM stock_levels
                 WHERE product_id = $1 AND warehouse_id = $2 FOR UPDATE",
            &[&r.product_id.get(), &r.warehouse_id.get()],
        )
        .await?;
    let b = balance_from(&row, 0)?;
    apply(tx, r.product_id, r.warehouse_id, &b, ending.change(&r), now).await?;
    tx.execute(
        END_RESERVATION,
        &[&ending.status.as_str(), &now.as_millis(), &id.get()],
    )
    .await?;
    Ok(ending.answer(r, now))
}

/// Reserves inside the caller's transaction, the reservation lasting until `expires_at_ms`:
/// every stock row of the product is locked in warehouse order, a warehouse chosen, then
/// written. `new.ttl` is not read.
pub(super) async fn reserve_in(
    tx: &impl Db,
    new: &NewReservation,
    expires_at_ms: i64,
) -> Refusable<Reservation> {
    let p = new.product;
    if !live_product(tx, p).await? {
        return Ok(Err(InventoryRefusal::UnknownProduct));
    }
    if let Some(w) = new.preferred
        && !warehouse_exists(tx, w).await?
    {
        return Ok(Err(InventoryRefusal::UnknownWarehouse));
    }
    // Every stock row of the product, locked in warehouse order (the order every
    // operation locks stock rows in): the choice below sees the latest balances, and
    // nobody changes them before this transaction ends.
    let rows = tx
        .query(
            "SELECT s.warehouse_id, s.on_hand, s.reserved, s.reorder_threshold,
                        s.low_alert_open
                 FROM stock_levels s JOIN warehouses w ON w.id = s.warehouse_id
                 WHERE s.product_id = $1 AND w.active
                 ORDER BY s.warehouse_id FOR UPDATE OF s",
            &[&p.get()],
        )
        .await?;
    let mut levels = Vec::with_capacity(rows.len());
    for r in &rows {
        levels.push((warehouse_id(r.try_get(0)?)?, balance_from(r, 1)?));
    }
    let (w, b) = match choose_row(&levels, new.preferred, new.quantity)? {
        Ok(chosen) => chosen,
        Err(r) => return Ok(Err(r)),
    };
    let now = new.now.as_millis();
    let q = new.quantity.get();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO reservations (product_id, warehouse_id, quantity, holder, status,
                                               expires_at_ms, created_at_ms, updated_at_ms)
                     VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6)
                     RETURNING {RESERVATION_COLUMNS}"
            ),
            &[
                &p.get(),
                &w.get(),
                &q,
                &new.holder.as_str(),
                &expires_at_ms,
                &now,
            ],
        )
        .await?;
    let reservation = reservation_from(&row)?;
    let change = Change::reservation(q, reservation.id.get());
    apply(tx, p, w, &b, change, new.now).await?;
    Ok(Ok(reservation))
}

#[async_trait]
impl InventoryStore for PgStore {
    async fn set_reorder(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        reorder: Option<Reorder>,
        now: UnixMillis,
    ) -> InventoryResult<StockLevel> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let b = match lock_level(&tx, product, warehouse, now).await? {
            Ok(b) => b,
            Err(r) => return Ok(Err(r)),
        };
        let (event, step) = decide_reorder(product, warehouse, &b, reorder, now);
        super::event::append(&tx, event).await?;
        let open = apply_alert(&tx, product, warehouse, step, now).await?;
        tx.execute(
            SET_REORDER,
            &[
                &reorder.map(Reorder::threshold),
                &reorder.map(Reorder::quantity),
                &open,
                &now.as_millis(),
                &product.get(),
                &warehouse.get(),
            ],
        )
        .await?;
        let level = stored_level(&tx, product, warehouse).await?;
        super::commit(tx).await?;
        Ok(level)
    }

    async fn adjust(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        adjustment: Adjustment,
        reason: Reason,
        now: UnixMillis,
    ) -> InventoryResult<StockLevel> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let b = match lock_level(&tx, product, warehouse, now).await? {
            Ok(b) => b,
            Err(r) => return Ok(Err(r)),
        };
        let change = match decide_adjustment(adjustment, &b, reason.as_str()) {
            Ok(change) => change,
            Err(r) => return Ok(Err(r)),
        };
        if let Some(change) = change {
            apply(&tx, product, warehouse, &b, change, now).await?;
        }
        let level = stored_level(&tx, product, warehouse).await?;
        super::commit(tx).await?;
        Ok(level)
    }

    async fn reserve(&self, new: NewReservation) -> InventoryResult<Reservation> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let expires_at = new.now.as_millis().saturating_add(new.ttl.as_millis());
        let reserved = reserve_in(&tx, &new, expires_at).await?;
        if reserved.is_ok() {
            super::commit(tx).await?;
        }
        Ok(reserved)
    }

    async fn release(&self, id: ReservationId, now: UnixMillis) -> InventoryResult<Reservation> {
        self.end_reservation(id, End::Release, now).await
    }

    async fn confirm(&self, id: ReservationId, now: UnixMillis) -> InventoryResult<Reservation> {
        self.end_reservation(id, End::Confirm, now).await
    }

    async fn expire_reservations(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Due reservations another transaction holds (a release, another instance's expiry)
        // are skipped: they are being ended already, or will be at the next run.
        let rows = tx
            .query(
                "SELECT id, product_id, warehouse_id, quantity FROM reservations
                 WHERE status = 'pending' AND expires_at_ms <= $1
                 ORDER BY expires_at_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&now.as_millis(), &i64::from(limit)],
            )
            .await?;
        let mut by_level: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
        for r in &rows {
            by_level
                .entry((r.try_get(1)?, r.try_get(2)?))
                .or_default()
                .push((r.try_get(0)?, r.try_get(3)?));
        }
        let mut ids = Vec::with_capacity(rows.len());
        // In (product, warehouse) order, the order every operation locks stock rows in.
        for ((p, w), due) in by_level {
            let (p, w) = (product(p)?, warehouse_id(w)?);
            let row = tx
                .query_one(
                    "SELECT on_hand, reserved, reorder_threshold, low_alert_open
                     FROM stock_levels WHERE product_id = $1 AND warehouse_id = $2 FOR UPDATE",
                    &[&p.get(), &w.get()],
                )
                .await?;
            let mut b = balance_from(&row, 0)?;
            for (id, quantity) in due {
                b = apply(&tx, p, w, &b, End::Expire.change(quantity, id), now).await?;
                ids.push(id);
            }
        }
        let expired = tx
            .execute(
                "UPDATE reservations SET status = 'expired', updated_at_ms = $2
                 WHERE id = ANY($1)",
                &[&ids, &now.as_millis()],
            )
            .await?;
        super::commit(tx).await?;
        Ok(expired)
    }

    async fn reservation(&self, id: ReservationId) -> Result<Option<Reservation>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1"),
                &[&id.get()],
            )
            .await?
            .as_ref()
            .map(reservation_from)
            .transpose()
    }

    async fn stock_levels(&self, q: LevelQuery) -> Result<Vec<StockLevel>, StorageError> {
        let client = self.client().await?;
        let (after_p, after_w) = q.after.map_or((0, 0), |(p, w)| (p.get(), w.get()));
        let rows = client
            .query(
                &format!(
                    "{LEVEL_SELECT} WHERE p.deleted_at_ms IS NULL
                       AND ($1::bigint IS NULL OR s.warehouse_id = $1)
                       AND (NOT $2 OR (s.reorder_threshold IS NOT NULL
                                       AND s.on_hand - s.reserved <= s.reorder_threshold))
                       AND ($3::text IS NULL OR p.sku_key = $3)
                       AND (s.product_id, s.warehouse_id) > ($4, $5)
                     ORDER BY s.product_id, s.warehouse_id LIMIT $6"
                ),
                &[
                    &q.warehouse.map(WarehouseId::get),
                    &q.low_only,
                    &q.sku.as_ref().map(|s| s.key()),
                    &after_p,
                    &after_w,
                    &i64::from(q.limit),
                ],
            )
            .await?;
        rows.iter().map(level_from).collect()
    }

    async fn product_inventory(
        &self,
        product_id: ProductId,
    ) -> Result<ProductInventory, StorageError> {
        let client = self.client().await?;
        let levels = client
            .query(
                &format!("{LEVEL_SELECT} WHERE s.product_id = $1 ORDER BY s.warehouse_id"),
                &[&product_id.get()],
            )
            .await?
            .iter()
            .map(level_from)
            .collect::<Result<_, _>>()?;
        let movements = client
            .query(
                MOVEMENTS_OF_PRODUCT,
                &[&product_id.get(), &i64::from(PRODUCT_MOVEMENTS)],
            )
            .await?
            .iter()
            .map(movement_from)
            .collect::<Result<_, _>>()?;
        Ok(ProductInventory { levels, movements })
    }

    async fn stock_alerts(&self, q: AlertQuery) -> Result<Vec<StockAlert>, StorageError> {
        let client = self.client().await?;
        client
            .query(ALERTS_PAGE, &[&q.after, &q.open_only, &i64::from(q.limit)])
            .await?
            .iter()
            .map(alert_from)
            .collect()
    }

    async fn movements(&self, q: LedgerQuery) -> Result<Vec<Movement>, StorageError> {
        let client = self.client().await?;
        client
            .query(
                MOVEMENTS_PAGE,
                &[&q.product.get(), &q.below(), &i64::from(q.limit)],
            )
            .await?
            .iter()
            .map(movement_from)
            .collect()
    }

    async fn product_reservations(
        &self,
        q: LedgerQuery,
    ) -> Result<Vec<(i64, Reservation)>, StorageError> {
        let client = self.client().await?;
        client
            .query(
                RESERVATIONS_OF_PRODUCT,
                &[&q.product.get(), &q.below(), &i64::from(q.limit)],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<_, i64>(9)?, reservation_from(r)?)))
            .collect()
    }
}

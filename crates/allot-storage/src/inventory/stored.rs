//! How inventory is stored: the statements whose text both backends share (SQLite binds `$n`
//! by first appearance, so each statement names its parameters in ascending order), and the
//! mapping from their rows to records.

use allot_domain::UnixMillis;

use super::{Balance, Movement, Reservation, StockAlert, StockLevel};
use super::{kind, product, reservation_id, status, warehouse_id};
use crate::StorageError;
use crate::row::Columns;

/// A level with its product's SKU and its warehouse's code; callers add the conditions.
pub(crate) const LEVEL_SELECT: &str = "SELECT s.product_id, p.sku, s.warehouse_id, w.code, s.on_hand, \
    s.reserved, s.reorder_threshold, s.reorder_quantity, s.low_alert_open, s.updated_at_ms \
    FROM stock_levels s JOIN products p ON p.id = s.product_id \
    JOIN warehouses w ON w.id = s.warehouse_id";

pub(crate) const RESERVATION_COLUMNS: &str = "id, product_id, warehouse_id, quantity, holder, status, \
                                   expires_at_ms, created_at_ms, updated_at_ms";

/// The product's latest movements, newest first: product, limit.
pub(crate) const MOVEMENTS_OF_PRODUCT: &str =
    "SELECT id, product_id, warehouse_id, kind, on_hand_delta, reserved_delta, \
            reservation_id, reason, at_ms
     FROM stock_movements WHERE product_id = $1 ORDER BY id DESC LIMIT $2";

/// A page of the product's ledger, newest first: product, below this id, limit. Walks
/// stock_movements_by_product (product_id, id) backwards from the cursor.
pub(crate) const MOVEMENTS_PAGE: &str =
    "SELECT id, product_id, warehouse_id, kind, on_hand_delta, reserved_delta, \
            reservation_id, reason, at_ms
     FROM stock_movements WHERE product_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

/// A page of the product's reservations, newest first, each found through the `reservation`
/// movement that made it (every reservation has exactly one): product, below this movement
/// id, limit. The reservation's columns as [`reservation_from`] reads them, then the
/// movement's id (the cursor). Walks the ledger's index by product, so it needs no index of
/// reservations by product.
pub(crate) const RESERVATIONS_OF_PRODUCT: &str =
    "SELECT r.id, r.product_id, r.warehouse_id, r.quantity, r.holder, r.status, \
            r.expires_at_ms, r.created_at_ms, r.updated_at_ms, m.id
     FROM stock_movements m JOIN reservations r ON r.id = m.reservation_id
     WHERE m.product_id = $1 AND m.kind = 'reservation' AND m.id < $2
     ORDER BY m.id DESC LIMIT $3";

/// A page of alerts: after, open only, limit.
pub(crate) const ALERTS_PAGE: &str =
    "SELECT id, product_id, warehouse_id, available, threshold, raised_at_ms, cleared_at_ms
     FROM stock_alerts WHERE id > $1 AND (NOT $2 OR cleared_at_ms IS NULL)
     ORDER BY id LIMIT $3";

/// An empty level unless there is one: product, warehouse, time.
pub(crate) const ENSURE_LEVEL: &str =
    "INSERT INTO stock_levels (product_id, warehouse_id, on_hand, reserved, updated_at_ms)
     VALUES ($1, $2, 0, 0, $3) ON CONFLICT DO NOTHING";

/// A change of a level: on hand delta, reserved delta, alert open, time, product, warehouse.
pub(crate) const CHANGE_LEVEL: &str =
    "UPDATE stock_levels SET on_hand = on_hand + $1, reserved = reserved + $2,
            low_alert_open = $3, updated_at_ms = $4
     WHERE product_id = $5 AND warehouse_id = $6";

/// A reorder point: threshold, quantity, alert open, time, product, warehouse.
pub(crate) const SET_REORDER: &str =
    "UPDATE stock_levels SET reorder_threshold = $1, reorder_quantity = $2,
            low_alert_open = $3, updated_at_ms = $4
     WHERE product_id = $5 AND warehouse_id = $6";

pub(crate) const INSERT_MOVEMENT: &str =
    "INSERT INTO stock_movements (product_id, warehouse_id, kind, on_hand_delta, reserved_delta,
                                  reservation_id, reason, at_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// product, warehouse, available, threshold, time.
pub(crate) const RAISE_ALERT: &str =
    "INSERT INTO stock_alerts (product_id, warehouse_id, available, threshold, raised_at_ms)
     VALUES ($1, $2, $3, $4, $5)";

/// time, product, warehouse.
pub(crate) const CLEAR_ALERT: &str = "UPDATE stock_alerts SET cleared_at_ms = $1
     WHERE product_id = $2 AND warehouse_id = $3 AND cleared_at_ms IS NULL";

/// status, time, id.
pub(crate) const END_RESERVATION: &str =
    "UPDATE reservations SET status = $1, updated_at_ms = $2 WHERE id = $3";

pub(crate) fn level_from(r: &impl Columns) -> Result<StockLevel, StorageError> {
    Ok(StockLevel {
        product_id: product(r.int(0)?)?,
        sku: r.text(1)?,
        warehouse_id: warehouse_id(r.int(2)?)?,
        warehouse_code: r.text(3)?,
        on_hand: r.int(4)?,
        reserved: r.int(5)?,
        reorder_threshold: r.opt_int(6)?,
        reorder_quantity: r.opt_int(7)?,
        low_alert_open: r.flag(8)?,
        updated_at: UnixMillis::from_millis(r.int(9)?),
    })
}

pub(crate) fn reservation_from(r: &impl Columns) -> Result<Reservation, StorageError> {
    Ok(Reservation {
        id: reservation_id(r.int(0)?)?,
        product_id: product(r.int(1)?)?,
        warehouse_id: warehouse_id(r.int(2)?)?,
        quantity: r.int(3)?,
        holder: r.text(4)?,
        status: status(&r.text(5)?)?,
        expires_at: UnixMillis::from_millis(r.int(6)?),
        created_at: UnixMillis::from_millis(r.int(7)?),
        updated_at: UnixMillis::from_millis(r.int(8)?),
    })
}

pub(crate) fn movement_from(r: &impl Columns) -> Result<Movement, StorageError> {
    Ok(Movement {
        id: r.int(0)?,
        product_id: product(r.int(1)?)?,
        warehouse_id: warehouse_id(r.int(2)?)?,
        kind: kind(&r.text(3)?)?,
        on_hand_delta: r.int(4)?,
        reserved_delta: r.int(5)?,
        reservation_id: r.opt_int(6)?,
        reason: r.opt_text(7)?,
        at: UnixMillis::from_millis(r.int(8)?),
    })
}

pub(crate) fn alert_from(r: &impl Columns) -> Result<StockAlert, StorageError> {
    Ok(StockAlert {
        id: r.int(0)?,
        product_id: product(r.int(1)?)?,
        warehouse_id: warehouse_id(r.int(2)?)?,
        available: r.int(3)?,
        threshold: r.int(4)?,
        raised_at: UnixMillis::from_millis(r.int(5)?),
        cleared_at: r.opt_int(6)?.map(UnixMillis::from_millis),
    })
}

/// A balance from four columns starting at `first`: on hand, reserved, reorder threshold,
/// alert open.
pub(crate) fn balance_from(r: &impl Columns, first: usize) -> Result<Balance, StorageError> {
    Ok(Balance {
        on_hand: r.int(first)?,
        reserved: r.int(first + 1)?,
        threshold: r.opt_int(first + 2)?,
        alert_open: r.flag(first + 3)?,
    })
}

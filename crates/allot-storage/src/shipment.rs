//! Shipments and returns of an order's lines: the trait, its records, the statements both
//! backends run and the events they append, so each backend keeps only its I/O. The rules are
//! `allot_domain::shipment`'s, decided on the order's lines read under the order's lock (the
//! single writer on SQLite, `FOR UPDATE` of the order's row on PostgreSQL, the lock every
//! status change and payment of the order takes first): two shipments of the last units take
//! turns, and the second finds nothing left.
//!
//! A shipment that completes the order moves it to fulfilled in the same transaction
//! (`OrderShipped`, then `OrderStatusChanged` and `OrderFulfilled`). The whole-order move to
//! fulfilled (`PUT /status`) ships whatever is left in one shipment without carrier, so both
//! paths agree on every line's `shipped_quantity`.

use allot_domain::UnixMillis;
use allot_domain::catalog::WarehouseId;
use allot_domain::event::{EventType, NewEvent};
use allot_domain::payment::Amount;
use allot_domain::shipment::{
    Carrier, Disposition, LineRef, LineState, ReturnReason, ReturnStatus, ShipmentRefusal,
    TrackingNumber,
};
use async_trait::async_trait;

use crate::StorageError;
use crate::catalog::corrupt;
use crate::row::Columns;

/// A line of a shipment or a return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLine {
    pub line_id: i64,
    pub product_id: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub id: i64,
    pub order_id: i64,
    /// None for the whole-order move to fulfilled.
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub lines: Vec<ItemLine>,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct NewShipment {
    pub order_id: i64,
    /// Positive quantities (checked at the edge).
    pub lines: Vec<(LineRef, i64)>,
    pub carrier: Carrier,
    pub tracking_number: TrackingNumber,
    pub now: UnixMillis,
}

/// A shipment made, and whether it completed the order (then fulfilled with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentMade {
    pub shipment: Shipment,
    pub fulfilled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderReturn {
    pub id: i64,
    pub order_id: i64,
    pub status: ReturnStatus,
    pub reason: String,
    /// Set on receipt.
    pub warehouse_id: Option<i64>,
    pub disposition: Option<Disposition>,
    /// Refunded with the receipt, through the order's refunds.
    pub refunded_minor: i64,
    pub lines: Vec<ItemLine>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct NewReturn {
    pub order_id: i64,
    pub lines: Vec<(LineRef, i64)>,
    pub reason: ReturnReason,
    pub now: UnixMillis,
}

/// A move of a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnMove {
    Approve,
    Reject,
    Receive {
        warehouse: WarehouseId,
        disposition: Disposition,
        /// Refunded in the receipt's transaction, by the order's refund rules.
        refund: Option<Amount>,
    },
}

impl ReturnMove {
    pub fn to(self) -> ReturnStatus {
        match self {
            ReturnMove::Approve => ReturnStatus::Approved,
            ReturnMove::Reject => ReturnStatus::Rejected,
            ReturnMove::Receive { .. } => ReturnStatus::Received,
        }
    }
}

pub type ShipmentResult<T> = Result<Result<T, ShipmentRefusal>, StorageError>;

#[async_trait]
pub trait ShipmentStore {
    /// Ships the lines, never past what is left of each; fulfils the order when every line
    /// has shipped whole, all in one transaction.
    async fn ship(&self, new: NewShipment) -> ShipmentResult<ShipmentMade>;

    /// `None` if the order does not exist; oldest first.
    async fn shipments(&self, order_id: i64) -> Result<Option<Vec<Shipment>>, StorageError>;

    /// Opens a return of shipped lines not already coming back.
    async fn open_return(&self, new: NewReturn) -> ShipmentResult<OrderReturn>;

    /// Approves, rejects or receives a return (restocking or writing off its lines).
    async fn move_return(
        &self,
        return_id: i64,
        to: ReturnMove,
        now: UnixMillis,
    ) -> ShipmentResult<OrderReturn>;

    /// `None` if the order does not exist; oldest first.
    async fn returns(&self, order_id: i64) -> Result<Option<Vec<OrderReturn>>, StorageError>;

    /// The order a return belongs to, if the return exists.
    async fn return_order(&self, return_id: i64) -> Result<Option<i64>, StorageError>;
}

/// A line as the rules see it, with what the backends need to restock it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineRow {
    pub state: LineState,
    pub reservation_id: i64,
}

/// The statements, one text for both backends (`$N` numbered by first appearance).
pub(crate) mod sql {
    pub(crate) const ORDER_STATUS: &str = "SELECT status FROM orders WHERE id = $1";
    pub(crate) const LOCK_ORDER_STATUS: &str = "SELECT status FROM orders WHERE id = $1 FOR UPDATE";
    /// Each line: number, product, ordered, shipped, held by returns not rejected,
    /// reservation.
    pub(crate) const LINE_ROWS: &str = "SELECT l.line_no, l.product_id, l.quantity, \
         l.shipped_quantity, \
         CAST(coalesce((SELECT sum(rl.quantity) FROM order_return_lines rl \
                        JOIN order_returns r ON r.id = rl.return_id \
                        WHERE r.order_id = l.order_id AND rl.line_no = l.line_no \
                          AND r.status <> 'rejected'), 0) AS BIGINT), \
         l.reservation_id \
         FROM order_lines l WHERE l.order_id = $1 ORDER BY l.line_no";
    /// order, carrier, tracking number, now.
    pub(crate) const INSERT_SHIPMENT: &str = "INSERT INTO order_shipments \
         (order_id, carrier, tracking_number, created_at_ms) VALUES ($1, $2, $3, $4) RETURNING id";
    /// shipment, line, product, quantity.
    pub(crate) const INSERT_SHIPMENT_LINE: &str = "INSERT INTO order_shipment_lines \
         (shipment_id, line_no, product_id, quantity) VALUES ($1, $2, $3, $4)";
    /// quantity, order, line; the CHECK stands behind the rule.
    pub(crate) const ADD_SHIPPED: &str = "UPDATE order_lines \
         SET shipped_quantity = shipped_quantity + $1 \
         WHERE order_id = $2 AND line_no = CAST($3 AS BIGINT)";
    pub(crate) const SHIPMENTS_OF_ORDER: &str = "SELECT id, order_id, carrier, tracking_number, \
         created_at_ms FROM order_shipments WHERE order_id = $1 ORDER BY id";
    /// shipment, line, product, quantity.
    pub(crate) const SHIPMENT_LINES_OF_ORDER: &str = "SELECT sl.shipment_id, sl.line_no, \
         sl.product_id, sl.quantity FROM order_shipment_lines sl \
         JOIN order_shipments s ON s.id = sl.shipment_id \
         WHERE s.order_id = $1 ORDER BY sl.shipment_id, sl.line_no";
    /// order, reason, now.
    pub(crate) const INSERT_RETURN: &str = "INSERT INTO order_returns \
         (order_id, status, reason, created_at_ms, updated_at_ms) \
         VALUES ($1, 'requested', $2, $3, $3) RETURNING id";
    /// return, line, product, quantity.
    pub(crate) const INSERT_RETURN_LINE: &str = "INSERT INTO order_return_lines \
         (return_id, line_no, product_id, quantity) VALUES ($1, $2, $3, $4)";
    pub(crate) const RETURN_BY_ID: &str = "SELECT id, order_id, status, reason, warehouse_id, \
         disposition, created_at_ms, updated_at_ms, refunded_minor FROM order_returns \
         WHERE id = $1";
    pub(crate) const RETURNS_OF_ORDER: &str = "SELECT id, order_id, status, reason, \
         warehouse_id, disposition, created_at_ms, updated_at_ms, refunded_minor \
         FROM order_returns WHERE order_id = $1 ORDER BY id";
    pub(crate) const RETURN_LINES: &str = "SELECT return_id, line_no, product_id, quantity \
         FROM order_return_lines WHERE return_id = $1 ORDER BY line_no";
    /// status, warehouse, disposition, now, refunded, id.
    pub(crate) const SET_RETURN: &str = "UPDATE order_returns SET status = $1, \
         warehouse_id = $2, disposition = $3, updated_at_ms = $4, refunded_minor = $5 \
         WHERE id = $6";
    /// Returns of the order that are not rejected (the whole-order return moves refuse them).
    pub(crate) const LINE_RETURNS_OF_ORDER: &str = "SELECT count(*) FROM order_returns \
         WHERE order_id = $1 AND status <> 'rejected'";
    pub(crate) const SHIPMENT_IDS_OF_ORDER: &str =
        "SELECT id FROM order_shipments WHERE order_id = $1 ORDER BY id";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        ORDER_STATUS,
        LINE_ROWS,
        INSERT_SHIPMENT,
        INSERT_SHIPMENT_LINE,
        ADD_SHIPPED,
        SHIPMENTS_OF_ORDER,
        SHIPMENT_LINES_OF_ORDER,
        INSERT_RETURN,
        INSERT_RETURN_LINE,
        RETURN_BY_ID,
        RETURNS_OF_ORDER,
        RETURN_LINES,
        SET_RETURN,
        LINE_RETURNS_OF_ORDER,
        SHIPMENT_IDS_OF_ORDER,
    ];
}

pub(crate) fn line_row_of(r: &impl Columns) -> Result<LineRow, StorageError> {
    Ok(LineRow {
        state: LineState {
            line_id: r.int(0)?,
            product_id: r.int(1)?,
            ordered: r.int(2)?,
            shipped: r.int(3)?,
            returning: r.int(4)?,
        },
        reservation_id: r.int(5)?,
    })
}

/// A shipment's or a return's line, from (owner id, line, product, quantity).
pub(crate) fn item_line_of(r: &impl Columns) -> Result<(i64, ItemLine), StorageError> {
    Ok((
        r.int(0)?,
        ItemLine {
            line_id: r.int(1)?,
            product_id: r.int(2)?,
            quantity: r.int(3)?,
        },
    ))
}

pub(crate) fn shipment_of(r: &impl Columns) -> Result<Shipment, StorageError> {
    Ok(Shipment {
        id: r.int(0)?,
        order_id: r.int(1)?,
        carrier: r.opt_text(2)?,
        tracking_number: r.opt_text(3)?,
        lines: Vec::new(),
        created_at: UnixMillis::from_millis(r.int(4)?),
    })
}

pub(crate) fn return_of(r: &impl Columns) -> Result<OrderReturn, StorageError> {
    let status = r.text(2)?;
    Ok(OrderReturn {
        id: r.int(0)?,
        order_id: r.int(1)?,
        status: ReturnStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("a return's status {status:?}")))?,
        reason: r.text(3)?,
        warehouse_id: r.opt_int(4)?,
        disposition: r
            .opt_text(5)?
            .map(|d| Disposition::parse(&d).map_err(corrupt))
            .transpose()?,
        refunded_minor: r.int(8)?,
        lines: Vec::new(),
        created_at: UnixMillis::from_millis(r.int(6)?),
        updated_at: UnixMillis::from_millis(r.int(7)?),
    })
}

/// Gives each shipment its lines (`lines` as [`sql::SHIPMENT_LINES_OF_ORDER`] reads them).
pub(crate) fn attach(shipments: &mut [Shipment], lines: Vec<(i64, ItemLine)>) {
    for (id, line) in lines {
        if let Some(s) = shipments.iter_mut().find(|s| s.id == id) {
            s.lines.push(line);
        }
    }
}

/// The item lines of `plan` (`(line_id, quantity)`) with their products.
pub(crate) fn items(rows: &[LineRow], plan: &[(i64, i64)]) -> Vec<ItemLine> {
    plan.iter()
        .filter_map(|(id, q)| {
            rows.iter()
                .find(|r| r.state.line_id == *id)
                .map(|r| ItemLine {
                    line_id: *id,
                    product_id: r.state.product_id,
                    quantity: *q,
                })
        })
        .collect()
}

pub(crate) fn states(rows: &[LineRow]) -> Vec<LineState> {
    rows.iter().map(|r| r.state).collect()
}

/// The reason written on the stock movements of a return's restock.
pub(crate) fn restock_reason(r: &OrderReturn) -> String {
    format!("return {} of order {}", r.id, r.order_id)
}

/// The refund a receipt asks for, taken by the order's refund rules.
pub(crate) fn receipt_refund(r: &OrderReturn, amount: Amount, now: UnixMillis) -> crate::NewRefund {
    crate::NewRefund {
        order_id: r.order_id,
        target: crate::RefundTarget::Amount(amount),
        reason: Some(format!("return {}", r.id)),
        now,
    }
}

/// The status request of the move to fulfilled a completing shipment makes.
pub(crate) fn fulfil_request(order_id: i64, now: UnixMillis) -> crate::StatusRequest {
    crate::StatusRequest {
        id: order_id,
        to: allot_domain::order::OrderStatus::Fulfilled,
        reason: Some("every line shipped".to_owned()),
        warehouse: None,
        return_coupon: true,
        now,
    }
}

fn lines_json(lines: &[ItemLine]) -> serde_json::Value {
    lines
        .iter()
        .map(|l| {
            serde_json::json!({"line_id": l.line_id, "product_id": l.product_id,
                               "quantity": l.quantity})
        })
        .collect()
}

/// `OrderShipped`.
pub(crate) fn shipped_event(s: &Shipment, fully_shipped: bool) -> NewEvent {
    let payload = serde_json::json!({
        "order_id": s.order_id,
        "shipment_id": s.id,
        "carrier": s.carrier,
        "tracking_number": s.tracking_number,
        "lines": lines_json(&s.lines),
        "fully_shipped": fully_shipped,
    });
    NewEvent::api(EventType::OrderShipped, s.created_at, payload.to_string())
}

/// `OrderFulfilled`.
pub(crate) fn fulfilled_event(order_id: i64, shipment_ids: &[i64], now: UnixMillis) -> NewEvent {
    let payload = serde_json::json!({"order_id": order_id, "shipment_ids": shipment_ids});
    NewEvent::api(EventType::OrderFulfilled, now, payload.to_string())
}

/// `ReturnRequested`, `ReturnApproved`, `ReturnRejected` or `ReturnReceived`, by the status.
pub(crate) fn return_event(r: &OrderReturn) -> NewEvent {
    let kind = match r.status {
        ReturnStatus::Requested => EventType::ReturnRequested,
        ReturnStatus::Approved => EventType::ReturnApproved,
        ReturnStatus::Rejected => EventType::ReturnRejected,
        ReturnStatus::Received => EventType::ReturnReceived,
    };
    let payload = serde_json::json!({
        "return_id": r.id,
        "order_id": r.order_id,
        "status": r.status.as_str(),
        "reason": r.reason,
        "lines": lines_json(&r.lines),
        "warehouse_id": r.warehouse_id,
        "disposition": r.disposition.map(Disposition::as_str),
        "refunded_minor": r.refunded_minor,
    });
    NewEvent::api(kind, r.updated_at, payload.to_string())
}

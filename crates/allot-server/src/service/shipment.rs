//! Shipments and returns of an order's lines: checked input in, the storage's decision out
//! (`allot_storage::shipment`, the rules of `allot_domain::shipment`).

use allot_domain::DomainError;
use allot_domain::catalog::WarehouseId;
use allot_domain::order::LINES_MAX;
use allot_domain::payment::Amount;
use allot_domain::shipment::{
    Carrier, Disposition, LineRef, ReturnReason, ShipmentRefusal, TrackingNumber,
};
use allot_storage::{NewReturn, NewShipment, OrderReturn, ReturnMove, Shipment, ShipmentMade};

use super::order::Orders;
use crate::ServiceError;

/// Most units of one line of a shipment or a return (as an order line's quantity).
pub const LINE_QUANTITY_MAX: i64 = 1_000_000;

/// A line of a request as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct LineInput {
    pub line_id: Option<i64>,
    pub product_id: Option<i64>,
    pub quantity: i64,
}

fn refused<T>(r: Result<T, ShipmentRefusal>) -> Result<T, ServiceError> {
    r.map_err(|r| match r {
        // A refund with a receipt answers as the refunds endpoint does.
        ShipmentRefusal::Refund(p) => ServiceError::Payment(p),
        other => ServiceError::Shipment(other),
    })
}

/// 1 to [`LINES_MAX`] lines, each naming a line (`line_id`) or a product, not both, with 1 to
/// [`LINE_QUANTITY_MAX`] units.
pub fn parse_lines(lines: &[LineInput]) -> Result<Vec<(LineRef, i64)>, ServiceError> {
    if lines.is_empty() || lines.len() > LINES_MAX {
        return Err(
            DomainError::invalid("lines", format!("must hold 1 to {LINES_MAX} lines")).into(),
        );
    }
    lines
        .iter()
        .map(|l| {
            let r = match (l.line_id, l.product_id) {
                (Some(id), None) if id >= 0 => LineRef::Line(id),
                (None, Some(p)) if p >= 1 => LineRef::Product(p),
                (Some(_), None) => {
                    return Err(DomainError::invalid("lines.line_id", "must be 0 or more"));
                }
                (None, Some(_)) => {
                    return Err(DomainError::invalid(
                        "lines.product_id",
                        "must be a positive integer",
                    ));
                }
                _ => {
                    return Err(DomainError::invalid(
                        "lines",
                        "each line names line_id or product_id, one of them",
                    ));
                }
            };
            if !(1..=LINE_QUANTITY_MAX).contains(&l.quantity) {
                return Err(DomainError::invalid(
                    "lines.quantity",
                    format!("must be 1 to {LINE_QUANTITY_MAX}"),
                ));
            }
            Ok((r, l.quantity))
        })
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}

impl Orders {
    /// Ships lines of a confirmed order; the shipment that completes it fulfils it.
    pub async fn ship(
        &self,
        order_id: i64,
        lines: &[LineInput],
        carrier: &str,
        tracking_number: &str,
    ) -> Result<ShipmentMade, ServiceError> {
        let new = NewShipment {
            order_id,
            lines: parse_lines(lines)?,
            carrier: Carrier::parse(carrier)?,
            tracking_number: TrackingNumber::parse(tracking_number)?,
            now: self.clock().now(),
        };
        let made = refused(self.store().ship(new).await?)?;
        tracing::info!(
            op = "orders.ship",
            order = order_id,
            shipment = made.shipment.id,
            fulfilled = made.fulfilled
        );
        Ok(made)
    }

    pub async fn shipments(&self, order_id: i64) -> Result<Vec<Shipment>, ServiceError> {
        self.store()
            .shipments(order_id)
            .await?
            .ok_or(ServiceError::NotFound { what: "order" })
    }

    /// Opens a return of shipped lines.
    pub async fn open_return(
        &self,
        order_id: i64,
        lines: &[LineInput],
        reason: &str,
    ) -> Result<OrderReturn, ServiceError> {
        let new = NewReturn {
            order_id,
            lines: parse_lines(lines)?,
            reason: ReturnReason::parse(reason)?,
            now: self.clock().now(),
        };
        let made = refused(self.store().open_return(new).await?)?;
        tracing::info!(op = "orders.return", order = order_id, r#return = made.id);
        Ok(made)
    }

    /// Approves, rejects or receives a return.
    pub async fn move_return(
        &self,
        return_id: i64,
        to: ReturnMove,
    ) -> Result<OrderReturn, ServiceError> {
        let moved = refused(
            self.store()
                .move_return(return_id, to, self.clock().now())
                .await?,
        )?;
        tracing::info!(
            op = "orders.return_move",
            r#return = return_id,
            status = moved.status.as_str()
        );
        Ok(moved)
    }

    /// The move of a receipt, from what the client sent; `refund_minor` is refunded with it.
    pub fn receipt(
        warehouse_id: i64,
        disposition: &str,
        refund_minor: Option<i64>,
    ) -> Result<ReturnMove, ServiceError> {
        Ok(ReturnMove::Receive {
            warehouse: WarehouseId::parse(warehouse_id)
                .map_err(|_| DomainError::invalid("warehouse_id", "must be a positive integer"))?,
            disposition: Disposition::parse(disposition)?,
            refund: refund_minor
                .map(|m| Amount::parse("refund_minor", m))
                .transpose()?,
        })
    }

    pub async fn returns(&self, order_id: i64) -> Result<Vec<OrderReturn>, ServiceError> {
        self.store()
            .returns(order_id)
            .await?
            .ok_or(ServiceError::NotFound { what: "order" })
    }

    /// The order of a return (for the caller's check), or 404 `return not found`.
    pub async fn return_order(&self, return_id: i64) -> Result<i64, ServiceError> {
        self.store()
            .return_order(return_id)
            .await?
            .ok_or(ServiceError::NotFound { what: "return" })
    }
}

//! Shipments and returns of an order's lines (issue 19): what may ship, what may come back,
//! and the return's own small workflow. Decided here once; both backends read the order's
//! lines (under the order's lock) and call these rules.
//!
//! ```text
//!   shipments: confirmed ──ship part──▶ confirmed ──ship the rest──▶ fulfilled
//!   a return:  requested ──approve──▶ approved ──receive──▶ received
//!                  └──────reject───▶ rejected
//! ```
//!
//! A line never ships more than was ordered; it never comes back more than shipped, counting
//! what returns still open (requested or approved) or received already hold.

use std::fmt;

use crate::DomainError;
use crate::order::OrderStatus;
use crate::payment::PaymentRefusal;

/// Most characters of a carrier's name.
pub const CARRIER_MAX_CHARS: usize = 64;
/// Most characters of a tracking number.
pub const TRACKING_NUMBER_MAX_CHARS: usize = 128;
/// Most characters of a return's reason.
pub const RETURN_REASON_MAX_CHARS: usize = 500;

/// A trimmed, printable text of 1 to `max` characters (the length as sent).
fn text(raw: &str, field: &'static str, max: usize) -> Result<String, DomainError> {
    let v = raw.trim();
    if v.is_empty() || raw.chars().count() > max || v.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {max} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Who carries a shipment (`UPS`, `La Poste`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier(String);

impl Carrier {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        text(raw, "carrier", CARRIER_MAX_CHARS).map(Carrier)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The carrier's tracking number of a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingNumber(String);

impl TrackingNumber {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        text(raw, "tracking_number", TRACKING_NUMBER_MAX_CHARS).map(TrackingNumber)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why the customer sends items back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnReason(String);

impl ReturnReason {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        text(raw, "reason", RETURN_REASON_MAX_CHARS).map(ReturnReason)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What happens to received items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Back on hand in the chosen warehouse, through the stock ledger (`stock_in`).
    Restock,
    /// Recorded as received, not put back in stock (damaged, unsellable).
    WriteOff,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Restock => "restock",
            Disposition::WriteOff => "write_off",
        }
    }
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "restock" => Ok(Disposition::Restock),
            "write_off" => Ok(Disposition::WriteOff),
            _ => Err(DomainError::invalid(
                "disposition",
                "must be restock or write_off",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnStatus {
    Requested,
    Approved,
    Rejected,
    Received,
}

impl ReturnStatus {
    pub const ALL: [ReturnStatus; 4] = [
        ReturnStatus::Requested,
        ReturnStatus::Approved,
        ReturnStatus::Rejected,
        ReturnStatus::Received,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Requested => "requested",
            ReturnStatus::Approved => "approved",
            ReturnStatus::Rejected => "rejected",
            ReturnStatus::Received => "received",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether a return may move from this status to `to`.
    pub fn may_become(self, to: ReturnStatus) -> bool {
        use ReturnStatus::*;
        matches!(
            (self, to),
            (Requested, Approved) | (Requested, Rejected) | (Approved, Received)
        )
    }

    /// Whether the return's lines count against what may still come back.
    pub fn holds_lines(self) -> bool {
        self != ReturnStatus::Rejected
    }
}

impl fmt::Display for ReturnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line of the order as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineState {
    /// The line's number in the order (from 0): its `line_id`.
    pub line_id: i64,
    pub product_id: i64,
    pub ordered: i64,
    pub shipped: i64,
    /// Held by returns requested, approved or received.
    pub returning: i64,
}

/// A line of a request: by `line_id`, or by the product (each product is on one line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRef {
    Line(i64),
    Product(i64),
}

/// Why a shipment or a return was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipmentRefusal {
    OrderNotFound,
    ReturnNotFound,
    /// Only a confirmed (paid) order ships.
    OrderNotShippable {
        status: OrderStatus,
    },
    /// Nothing of a pending, cancelled or whole-order-returned order comes back by line.
    OrderNotReturnable {
        status: OrderStatus,
    },
    /// A request's line names no line of the order (its position in `lines`).
    UnknownLine {
        index: usize,
    },
    /// More than is left to ship of the line.
    ExceedsRemaining {
        line_id: i64,
        product_id: i64,
        remaining: i64,
    },
    /// More than was shipped and is not already coming back.
    ExceedsReturnable {
        line_id: i64,
        product_id: i64,
        returnable: i64,
    },
    /// The return cannot move from its status to the one asked.
    ReturnStatusConflict {
        from: ReturnStatus,
        to: ReturnStatus,
    },
    UnknownWarehouse,
    /// Cancelling a confirmed order is refused once part of it shipped.
    PartlyShipped,
    /// The whole-order return moves are refused once returns of lines exist.
    HasLineReturns,
    /// The refund asked with a receipt is refused (the receipt with it).
    Refund(PaymentRefusal),
}

/// The `(line_id, quantity)` of each requested line, quantities of the same line summed, in
/// line order; refused if a line is unknown or `within` refuses it. Quantities are positive
/// (checked at the edge).
fn resolve(
    lines: &[LineState],
    asked: &[(LineRef, i64)],
    within: impl Fn(&LineState, i64) -> Result<(), ShipmentRefusal>,
) -> Result<Vec<(i64, i64)>, ShipmentRefusal> {
    let mut totals: Vec<i64> = vec![0; lines.len()];
    for (index, (r, quantity)) in asked.iter().enumerate() {
        let at = lines.iter().position(|l| match r {
            LineRef::Line(id) => l.line_id == *id,
            LineRef::Product(p) => l.product_id == *p,
        });
        let Some(at) = at else {
            return Err(ShipmentRefusal::UnknownLine { index });
        };
        totals[at] = totals[at].saturating_add(*quantity);
    }
    let mut out = Vec::new();
    for (line, total) in lines.iter().zip(totals) {
        if total > 0 {
            within(line, total)?;
            out.push((line.line_id, total));
        }
    }
    Ok(out)
}

/// What a shipment takes of each line; only for a confirmed order, never past what is left.
pub fn plan_shipment(
    status: OrderStatus,
    lines: &[LineState],
    asked: &[(LineRef, i64)],
) -> Result<Vec<(i64, i64)>, ShipmentRefusal> {
    if status != OrderStatus::Confirmed {
        return Err(ShipmentRefusal::OrderNotShippable { status });
    }
    resolve(lines, asked, |l, q| {
        let remaining = l.ordered - l.shipped;
        if q > remaining {
            return Err(ShipmentRefusal::ExceedsRemaining {
                line_id: l.line_id,
                product_id: l.product_id,
                remaining,
            });
        }
        Ok(())
    })
}

/// Everything left to ship (the whole-order move to fulfilled ships it in one shipment).
pub fn remaining(lines: &[LineState]) -> Vec<(i64, i64)> {
    lines
        .iter()
        .filter(|l| l.ordered > l.shipped)
        .map(|l| (l.line_id, l.ordered - l.shipped))
        .collect()
}

/// Whether every line has shipped whole, once `shipping` is added.
pub fn fully_shipped(lines: &[LineState], shipping: &[(i64, i64)]) -> bool {
    lines.iter().all(|l| {
        let more: i64 = shipping
            .iter()
            .filter(|(id, _)| *id == l.line_id)
            .map(|(_, q)| q)
            .sum();
        l.shipped + more >= l.ordered
    })
}

/// What a return takes back of each line: shipped quantities not already coming back, of an
/// order that shipped something and was not returned whole.
pub fn plan_return(
    status: OrderStatus,
    lines: &[LineState],
    asked: &[(LineRef, i64)],
) -> Result<Vec<(i64, i64)>, ShipmentRefusal> {
    if !matches!(
        status,
        OrderStatus::Confirmed | OrderStatus::Fulfilled | OrderStatus::Delivered
    ) {
        return Err(ShipmentRefusal::OrderNotReturnable { status });
    }
    resolve(lines, asked, |l, q| {
        let returnable = l.shipped - l.returning;
        if q > returnable {
            return Err(ShipmentRefusal::ExceedsReturnable {
                line_id: l.line_id,
                product_id: l.product_id,
                returnable,
            });
        }
        Ok(())
    })
}

/// A move of a return, if its workflow allows it.
pub fn check_return_move(from: ReturnStatus, to: ReturnStatus) -> Result<(), ShipmentRefusal> {
    if from.may_become(to) {
        Ok(())
    } else {
        Err(ShipmentRefusal::ReturnStatusConflict { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<LineState> {
        vec![
            LineState {
                line_id: 0,
                product_id: 10,
                ordered: 3,
                shipped: 1,
                returning: 0,
            },
            LineState {
                line_id: 1,
                product_id: 11,
                ordered: 2,
                shipped: 2,
                returning: 1,
            },
        ]
    }

    #[test]
    fn a_shipment_never_passes_what_is_left_and_only_a_confirmed_order_ships() {
        let l = lines();
        let c = OrderStatus::Confirmed;
        assert_eq!(
            plan_shipment(c, &l, &[(LineRef::Product(10), 1), (LineRef::Line(0), 1)]),
            Ok(vec![(0, 2)])
        );
        assert_eq!(
            plan_shipment(c, &l, &[(LineRef::Line(0), 3)]),
            Err(ShipmentRefusal::ExceedsRemaining {
                line_id: 0,
                product_id: 10,
                remaining: 2
            })
        );
        assert_eq!(
            plan_shipment(c, &l, &[(LineRef::Line(1), 1)]),
            Err(ShipmentRefusal::ExceedsRemaining {
                line_id: 1,
                product_id: 11,
                remaining: 0
            })
        );
        assert_eq!(
            plan_shipment(c, &l, &[(LineRef::Product(99), 1)]),
            Err(ShipmentRefusal::UnknownLine { index: 0 })
        );
        assert_eq!(
            plan_shipment(OrderStatus::Pending, &l, &[(LineRef::Line(0), 1)]),
            Err(ShipmentRefusal::OrderNotShippable {
                status: OrderStatus::Pending
            })
        );
        assert_eq!(remaining(&l), vec![(0, 2)]);
        assert!(!fully_shipped(&l, &[(0, 1)]));
        assert!(fully_shipped(&l, &[(0, 2)]));
    }

    #[test]
    fn a_return_takes_only_what_shipped_and_is_not_coming_back_already() {
        let l = lines();
        let f = OrderStatus::Fulfilled;
        assert_eq!(
            plan_return(f, &l, &[(LineRef::Line(1), 1)]),
            Ok(vec![(1, 1)])
        );
        assert_eq!(
            plan_return(f, &l, &[(LineRef::Line(1), 2)]),
            Err(ShipmentRefusal::ExceedsReturnable {
                line_id: 1,
                product_id: 11,
                returnable: 1
            })
        );
        assert_eq!(
            plan_return(OrderStatus::Returned, &l, &[(LineRef::Line(0), 1)]),
            Err(ShipmentRefusal::OrderNotReturnable {
                status: OrderStatus::Returned
            })
        );
    }

    #[test]
    fn a_return_moves_only_forward() {
        use ReturnStatus::*;
        for from in ReturnStatus::ALL {
            for to in ReturnStatus::ALL {
                let legal = matches!(
                    (from, to),
                    (Requested, Approved) | (Requested, Rejected) | (Approved, Received)
                );
                assert_eq!(check_return_move(from, to).is_ok(), legal, "{from} -> {to}");
            }
            assert_eq!(ReturnStatus::parse(from.as_str()), Some(from));
        }
        assert!(!Rejected.holds_lines() && Received.holds_lines());
        assert!(Carrier::parse(" ").is_err());
        assert!(TrackingNumber::parse(&"x".repeat(TRACKING_NUMBER_MAX_CHARS + 1)).is_err());
        assert_eq!(Carrier::parse(" UPS ").unwrap().as_str(), "UPS");
        assert_eq!(Disposition::parse("write_off"), Ok(Disposition::WriteOff));
    }
}

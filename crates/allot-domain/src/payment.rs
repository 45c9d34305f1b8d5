//! Payments and refunds of orders: what the shop's payment provider reports (Allot never sees
//! card data), and the rules that decide a payment and a refund, which both backends call.
//!
//! An order is paid when its captured payments cover its total; refunds, in part or in full,
//! never add up to more than was captured, whatever their number or concurrency.

use std::fmt;

use crate::DomainError;
use crate::order::{ORDER_TOTAL_MAX, OrderStatus};

/// Most characters of a provider's name and of a reference.
pub const PROVIDER_MAX_CHARS: usize = 32;
pub const REFERENCE_MAX_CHARS: usize = 255;
/// Most characters of a refund's reason.
pub const REASON_MAX_CHARS: usize = 500;

/// Where a payment comes from: `stripe`, `cash_on_delivery`, `bank_transfer`, ...: 1 to 32 of
/// `a-z`, `0-9`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provider(String);

impl Provider {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let p = raw.trim().to_ascii_lowercase();
        if p.is_empty()
            || raw.chars().count() > PROVIDER_MAX_CHARS
            || !p
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(DomainError::invalid(
                "provider",
                format!("must be 1 to {PROVIDER_MAX_CHARS} of a-z, 0-9, _ and -"),
            ));
        }
        Ok(Provider(p))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The provider's own id of a payment (a Stripe PaymentIntent `pi_...`, a bank transfer's
/// reference): 1 to 255 printable characters, unique per provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference(String);

impl Reference {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let r = raw.trim();
        if r.is_empty()
            || raw.chars().count() > REFERENCE_MAX_CHARS
            || r.chars().any(char::is_control)
        {
            return Err(DomainError::invalid(
                field,
                format!("must be 1 to {REFERENCE_MAX_CHARS} printable characters"),
            ));
        }
        Ok(Reference(r.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount of money in minor units: 1 to [`ORDER_TOTAL_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    pub fn parse(field: &'static str, minor: i64) -> Result<Self, DomainError> {
        if (1..=ORDER_TOTAL_MAX).contains(&minor) {
            Ok(Amount(minor))
        } else {
            Err(DomainError::invalid(
                field,
                format!("must be 1 to {ORDER_TOTAL_MAX} minor units"),
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// The provider holds the money for the shop; not yet taken.
    Authorized,
    /// Taken: counts towards the order's total.
    Captured,
    Failed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 3] = [
        PaymentStatus::Authorized,
        PaymentStatus::Captured,
        PaymentStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                DomainError::invalid("status", "must be one of authorized, captured, failed")
            })
    }

    /// Whether a payment stored with this status may be reported again as `to` (the same
    /// report again, or an authorization captured or failing later).
    pub fn may_become(self, to: PaymentStatus) -> bool {
        self == to || (self == PaymentStatus::Authorized && to != PaymentStatus::Authorized)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payment or a refund was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRefusal {
    OrderNotFound,
    /// The payment's currency is not the order's.
    CurrencyMismatch {
        order_currency: String,
    },
    /// A cancelled (or returned) order takes no new capture.
    OrderNotPayable {
        status: OrderStatus,
    },
    /// Captures would pass the order's total: at most `payable_minor` more.
    ExceedsTotal {
        payable_minor: i64,
    },
    /// Refunds would pass what was captured: at most `refundable_minor` more.
    ExceedsCapture {
        refundable_minor: i64,
    },
    /// The provider's reference names another order's payment, or another amount.
    ReferenceConflict,
    /// A payment may not go back (captured to authorized, failed to captured).
    StatusConflict {
        status: PaymentStatus,
    },
    /// No captured payment of the order has this provider and reference.
    UnknownPayment,
}

/// What the order's payments add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paid {
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

/// Whether a capture of `amount` may be recorded for an order of `total_minor` in `status`
/// that has `paid` so far.
pub fn check_capture(
    status: OrderStatus,
    total_minor: i64,
    paid: Paid,
    amount: Amount,
) -> Result<(), PaymentRefusal> {
    if matches!(status, OrderStatus::Cancelled | OrderStatus::Returned) {
        return Err(PaymentRefusal::OrderNotPayable { status });
    }
    let payable = (total_minor - paid.captured_minor).max(0);
    if amount.get() > payable {
        return Err(PaymentRefusal::ExceedsTotal {
            payable_minor: payable,
        });
    }
    Ok(())
}

/// Whether an order in `status` whose captures reach `captured_minor` of `total_minor` moves
/// to confirmed (paid) now.
pub fn becomes_paid(status: OrderStatus, total_minor: i64, captured_minor: i64) -> bool {
    status == OrderStatus::Pending && captured_minor >= total_minor
}

/// One captured payment as a refund sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refundable {
    pub payment_id: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

/// How a refund of `amount` is taken from the captured payments (oldest first, as given):
/// each payment's part, never more than it has left; refused as a whole when they have less
/// in all.
pub fn split_refund(
    payments: &[Refundable],
    amount: Amount,
) -> Result<Vec<(i64, i64)>, PaymentRefusal> {
    let left: i64 = payments
        .iter()
        .map(|p| p.captured_minor - p.refunded_minor)
        .sum();
    if amount.get() > left {
        return Err(PaymentRefusal::ExceedsCapture {
            refundable_minor: left,
        });
    }
    let mut owed = amount.get();
    let mut parts = Vec::new();
    for p in payments {
        if owed == 0 {
            break;
        }
        let part = owed.min(p.captured_minor - p.refunded_minor);
        if part > 0 {
            parts.push((p.payment_id, part));
            owed -= part;
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(n: i64) -> Amount {
        Amount::parse("amount_minor", n).unwrap()
    }

    #[test]
    fn values_parse_at_the_edge() {
        assert_eq!(Provider::parse(" Stripe ").unwrap().as_str(), "stripe");
        assert!(Provider::parse("").is_err());
        assert!(Provider::parse("pay pal").is_err());
        assert!(Reference::parse("reference", "pi_123").is_ok());
        assert!(Reference::parse("reference", "a\nb").is_err());
        assert!(Amount::parse("amount_minor", 0).is_err());
        assert!(Amount::parse("amount_minor", ORDER_TOTAL_MAX + 1).is_err());
        assert_eq!(
            PaymentStatus::parse("captured"),
            Ok(PaymentStatus::Captured)
        );
        assert!(PaymentStatus::parse("paid").is_err());
    }

    #[test]
    fn a_capture_never_passes_the_total_and_a_cancelled_order_takes_none() {
        let paid = Paid {
            captured_minor: 600,
            refunded_minor: 0,
        };
        assert_eq!(
            check_capture(OrderStatus::Pending, 1000, paid, amount(400)),
            Ok(())
        );
        assert_eq!(
            check_capture(OrderStatus::Pending, 1000, paid, amount(401)),
            Err(PaymentRefusal::ExceedsTotal { payable_minor: 400 })
        );
        assert_eq!(
            check_capture(OrderStatus::Cancelled, 1000, paid, amount(1)),
            Err(PaymentRefusal::OrderNotPayable {
                status: OrderStatus::Cancelled
            })
        );
        assert!(becomes_paid(OrderStatus::Pending, 1000, 1000));
        assert!(!becomes_paid(OrderStatus::Pending, 1000, 999));
        assert!(!becomes_paid(OrderStatus::Confirmed, 1000, 1000));
    }

    #[test]
    fn a_refund_is_split_oldest_first_and_never_above_the_capture() {
        let payments = [
            Refundable {
                payment_id: 1,
                captured_minor: 500,
                refunded_minor: 400,
            },
            Refundable {
                payment_id: 2,
                captured_minor: 300,
                refunded_minor: 0,
            },
        ];
        assert_eq!(
            split_refund(&payments, amount(250)),
            Ok(vec![(1, 100), (2, 150)])
        );
        assert_eq!(
            split_refund(&payments, amount(400)),
            Ok(vec![(1, 100), (2, 300)])
        );
        assert_eq!(
            split_refund(&payments, amount(401)),
            Err(PaymentRefusal::ExceedsCapture {
                refundable_minor: 400
            })
        );
    }

    #[test]
    fn a_payment_moves_forward_only() {
        use PaymentStatus::*;
        assert!(Authorized.may_become(Captured));
        assert!(Authorized.may_become(Failed));
        assert!(Captured.may_become(Captured));
        assert!(!Captured.may_become(Authorized));
        assert!(!Failed.may_become(Captured));
    }
}

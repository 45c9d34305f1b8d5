//! Payments and refunds of orders: the trait, its records, the statements both backends run
//! and what they decide alike ([`decide_payment`], and the domain's rules), so that each
//! backend keeps only its I/O. A payment, and the move to paid it may cause, is one
//! transaction; so is a refund.

use allot_domain::UnixMillis;
use allot_domain::event::{EventType, NewEvent};
use allot_domain::order::OrderStatus;
use allot_domain::payment::{
    Amount, Paid, PaymentRefusal, PaymentStatus, Provider, Reference, Refundable, check_capture,
    split_refund,
};
use async_trait::async_trait;

use crate::StorageError;
use crate::catalog::corrupt;
use crate::row::Columns;

/// A payment as the provider (or staff) reports it.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub order_id: i64,
    pub provider: Provider,
    pub reference: Reference,
    pub status: PaymentStatus,
    pub amount: Amount,
    /// ISO 4217, upper case, as the order's.
    pub currency: String,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: i64,
    pub order_id: i64,
    pub provider: String,
    pub reference: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub refunded_minor: i64,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A payment recorded, or the same report again (`replayed`: nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecorded {
    pub payment: Payment,
    pub replayed: bool,
    /// The payment completed the order's total: the order moved to confirmed with it.
    pub order_paid: bool,
}

#[derive(Debug, Clone)]
pub struct NewRefund {
    pub order_id: i64,
    pub target: RefundTarget,
    pub reason: Option<String>,
    pub now: UnixMillis,
}

/// How much a refund takes.
#[derive(Debug, Clone)]
pub enum RefundTarget {
    /// This amount, from the oldest captured payments first.
    Amount(Amount),
    /// What the provider reports refunded of one of its payments in all (a Stripe charge's
    /// `amount_refunded`): the part not recorded yet, from that payment, decided under the
    /// order's lock, so a report delivered twice or out of order refunds nothing more.
    UpTo {
        provider: Provider,
        reference: Reference,
        refunded_minor: i64,
    },
}

/// A refund's part taken from one captured payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: i64,
    pub order_id: i64,
    pub payment_id: i64,
    pub amount_minor: i64,
    pub reason: Option<String>,
    pub created_at: UnixMillis,
}

/// An order's payments and refunds, oldest first, and what they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPayments {
    pub total_minor: i64,
    pub currency: String,
    pub paid: Paid,
    pub payments: Vec<Payment>,
    pub refunds: Vec<Refund>,
}

pub type PaymentResult<T> = Result<Result<T, PaymentRefusal>, StorageError>;

#[async_trait]
pub trait PaymentStore {
    /// Records a payment report: a new payment, an authorization captured or failed, or the
    /// same report again (answered as it was, nothing written). A capture that completes the
    /// order's total moves a pending order to confirmed in the same transaction.
    async fn record_payment(&self, new: NewPayment) -> PaymentResult<PaymentRecorded>;

    /// Refunds `amount` of the order's captured payments, oldest first; refused as a whole
    /// when less is left to refund. Concurrent refunds together never pass the capture.
    async fn refund_order(&self, new: NewRefund) -> PaymentResult<Vec<Refund>>;

    /// `None` if the order does not exist.
    async fn order_payments(&self, order_id: i64) -> Result<Option<OrderPayments>, StorageError>;
}

/// What the backends read of the order before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderFacts {
    pub status: OrderStatus,
    pub total_minor: i64,
    pub currency: String,
}

/// What to write for a payment report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PaymentPlan {
    /// The same report again: answer the stored payment.
    Replay(Payment),
    Insert,
    /// A stored authorization captured or failed.
    Update {
        id: i64,
    },
}

/// Decides a payment report on the facts read (the order's row locked on PostgreSQL).
pub(crate) fn decide_payment(
    order: Option<&OrderFacts>,
    existing: Option<Payment>,
    paid: Paid,
    new: &NewPayment,
) -> Result<PaymentPlan, PaymentRefusal> {
    let Some(order) = order else {
        return Err(PaymentRefusal::OrderNotFound);
    };
    if new.currency != order.currency {
        return Err(PaymentRefusal::CurrencyMismatch {
            order_currency: order.currency.clone(),
        });
    }
    let captures = |paid: Paid| {
        if new.status == PaymentStatus::Captured {
            check_capture(order.status, order.total_minor, paid, new.amount)
        } else {
            Ok(())
        }
    };
    match existing {
        Some(p) if p.order_id != new.order_id || p.amount_minor != new.amount.get() => {
            Err(PaymentRefusal::ReferenceConflict)
        }
        Some(p) if p.status == new.status => Ok(PaymentPlan::Replay(p)),
        Some(p) if !p.status.may_become(new.status) => {
            Err(PaymentRefusal::StatusConflict { status: p.status })
        }
        Some(p) => {
            captures(paid)?;
            Ok(PaymentPlan::Update { id: p.id })
        }
        None => {
            captures(paid)?;
            Ok(PaymentPlan::Insert)
        }
    }
}

/// The parts of a refund, each `(payment id, minor units)`, from the order's payments (oldest
/// first); none when a provider's report asks for nothing more.
pub(crate) fn refund_parts(
    payments: &[Payment],
    target: &RefundTarget,
) -> Result<Vec<(i64, i64)>, PaymentRefusal> {
    let refundable = |p: &Payment| Refundable {
        payment_id: p.id,
        captured_minor: p.amount_minor,
        refunded_minor: p.refunded_minor,
    };
    let mut captured = payments
        .iter()
        .filter(|p| p.status == PaymentStatus::Captured);
    match target {
        RefundTarget::Amount(amount) => {
            let all: Vec<Refundable> = captured.map(refundable).collect();
            split_refund(&all, *amount)
        }
        RefundTarget::UpTo {
            provider,
            reference,
            refunded_minor,
        } => {
            let Some(p) = captured
                .find(|p| p.provider == provider.as_str() && p.reference == reference.as_str())
            else {
                return Err(PaymentRefusal::UnknownPayment);
            };
            let more = refunded_minor - p.refunded_minor;
            if more <= 0 {
                return Ok(Vec::new());
            }
            let amount = Amount::parse("amount_refunded", more).map_err(|_| {
                PaymentRefusal::ExceedsCapture {
                    refundable_minor: p.amount_minor - p.refunded_minor,
                }
            })?;
            split_refund(&[refundable(p)], amount)
        }
    }
}

macro_rules! payment_columns {
    () => {
        "id, order_id, provider, reference, status, amount_minor, currency, refunded_minor, \
         created_at_ms, updated_at_ms"
    };
}

macro_rules! refund_columns {
    () => {
        "id, order_id, payment_id, amount_minor, reason, created_at_ms"
    };
}

/// The statements both backends run as they are. Parameters are numbered in the order they
/// first appear, since that is how SQLite numbers `$N`.
pub(crate) mod sql {
    pub(crate) const ORDER_FACTS: &str =
        "SELECT status, total_minor, currency FROM orders WHERE id = $1";
    pub(crate) const PAYMENT_BY_REFERENCE: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM order_payments WHERE provider = $1 AND reference = $2"
    );
    pub(crate) const PAYMENT_BY_ID: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM order_payments WHERE id = $1"
    );
    pub(crate) const PAYMENTS_OF_ORDER: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM order_payments WHERE order_id = $1 ORDER BY id"
    );
    pub(crate) const REFUNDS_OF_ORDER: &str = concat!(
        "SELECT ",
        refund_columns!(),
        " FROM order_refunds WHERE order_id = $1 ORDER BY id"
    );
    /// Captured and refunded, in all, of an order's captured payments.
    pub(crate) const PAID: &str = "SELECT CAST(coalesce(sum(amount_minor), 0) AS BIGINT), \
         CAST(coalesce(sum(refunded_minor), 0) AS BIGINT) \
         FROM order_payments WHERE order_id = $1 AND status = 'captured'";
    /// order, provider, reference, status, amount, currency, now.
    pub(crate) const INSERT_PAYMENT: &str = "INSERT INTO order_payments \
         (order_id, provider, reference, status, amount_minor, currency, created_at_ms, \
          updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
    /// status, now, id.
    pub(crate) const SET_PAYMENT_STATUS: &str =
        "UPDATE order_payments SET status = $1, updated_at_ms = $2 WHERE id = $3";
    /// part, now, id; the CHECK stands behind the rule.
    pub(crate) const TAKE_REFUND: &str = "UPDATE order_payments \
         SET refunded_minor = refunded_minor + $1, updated_at_ms = $2 WHERE id = $3";
    /// order, payment, amount, reason, now.
    pub(crate) const INSERT_REFUND: &str = concat!(
        "INSERT INTO order_refunds (order_id, payment_id, amount_minor, reason, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) RETURNING ",
        refund_columns!()
    );

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        ORDER_FACTS,
        PAYMENT_BY_REFERENCE,
        PAYMENT_BY_ID,
        PAYMENTS_OF_ORDER,
        REFUNDS_OF_ORDER,
        PAID,
        INSERT_PAYMENT,
        SET_PAYMENT_STATUS,
        TAKE_REFUND,
        INSERT_REFUND,
    ];
}

pub(crate) fn order_facts_of(r: &impl Columns) -> Result<OrderFacts, StorageError> {
    Ok(OrderFacts {
        status: crate::order::order_status(&r.text(0)?)?,
        total_minor: r.int(1)?,
        currency: r.text(2)?,
    })
}

pub(crate) fn payment_of(r: &impl Columns) -> Result<Payment, StorageError> {
    Ok(Payment {
        id: r.int(0)?,
        order_id: r.int(1)?,
        provider: r.text(2)?,
        reference: r.text(3)?,
        status: PaymentStatus::parse(&r.text(4)?).map_err(corrupt)?,
        amount_minor: r.int(5)?,
        currency: r.text(6)?,
        refunded_minor: r.int(7)?,
        created_at: UnixMillis::from_millis(r.int(8)?),
        updated_at: UnixMillis::from_millis(r.int(9)?),
    })
}

pub(crate) fn refund_of(r: &impl Columns) -> Result<Refund, StorageError> {
    Ok(Refund {
        id: r.int(0)?,
        order_id: r.int(1)?,
        payment_id: r.int(2)?,
        amount_minor: r.int(3)?,
        reason: r.opt_text(4)?,
        created_at: UnixMillis::from_millis(r.int(5)?),
    })
}

pub(crate) fn paid_of(r: &impl Columns) -> Result<Paid, StorageError> {
    Ok(Paid {
        captured_minor: r.int(0)?,
        refunded_minor: r.int(1)?,
    })
}

/// The request that moves a fully captured order to confirmed.
pub(crate) fn paid_request(order_id: i64, now: UnixMillis) -> crate::StatusRequest {
    crate::StatusRequest {
        id: order_id,
        to: OrderStatus::Confirmed,
        reason: Some("paid".to_owned()),
        warehouse: None,
        return_coupon: true,
        now,
    }
}

/// `OrderPaymentReceived`: a payment recorded or moved (authorized, captured or failed).
pub(crate) fn payment_event(
    p: &Payment,
    paid: Paid,
    total_minor: i64,
    now: UnixMillis,
) -> NewEvent {
    let payload = serde_json::json!({
        "order_id": p.order_id,
        "payment_id": p.id,
        "provider": p.provider,
        "reference": p.reference,
        "status": p.status.as_str(),
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "captured_minor": paid.captured_minor,
        "total_minor": total_minor,
    });
    NewEvent::api(EventType::OrderPaymentReceived, now, payload.to_string())
}

/// `OrderRefunded`: one refund, with the parts taken from each payment.
pub(crate) fn refund_event(
    order_id: i64,
    refunds: &[Refund],
    paid: Paid,
    reason: Option<&str>,
    now: UnixMillis,
) -> NewEvent {
    let parts: Vec<serde_json::Value> = refunds
        .iter()
        .map(|r| serde_json::json!({"refund_id": r.id, "payment_id": r.payment_id, "amount_minor": r.amount_minor}))
        .collect();
    let payload = serde_json::json!({
        "order_id": order_id,
        "amount_minor": refunds.iter().map(|r| r.amount_minor).sum::<i64>(),
        "refunded_minor": paid.refunded_minor,
        "captured_minor": paid.captured_minor,
        "reason": reason,
        "parts": parts,
    });
    NewEvent::api(EventType::OrderRefunded, now, payload.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(status: PaymentStatus, amount: i64) -> NewPayment {
        NewPayment {
            order_id: 1,
            provider: Provider::parse("stripe").unwrap(),
            reference: Reference::parse("reference", "pi_1").unwrap(),
            status,
            amount: Amount::parse("amount_minor", amount).unwrap(),
            currency: "EUR".to_owned(),
            now: UnixMillis::from_millis(1),
        }
    }

    fn stored(status: PaymentStatus, amount: i64) -> Payment {
        Payment {
            id: 9,
            order_id: 1,
            provider: "stripe".to_owned(),
            reference: "pi_1".to_owned(),
            status,
            amount_minor: amount,
            currency: "EUR".to_owned(),
            refunded_minor: 0,
            created_at: UnixMillis::from_millis(0),
            updated_at: UnixMillis::from_millis(0),
        }
    }

    #[test]
    fn a_report_is_recorded_once_moves_forward_and_never_names_two_payments() {
        use PaymentStatus::*;
        let order = OrderFacts {
            status: OrderStatus::Pending,
            total_minor: 1000,
            currency: "EUR".to_owned(),
        };
        let paid = Paid::default();
        assert_eq!(
            decide_payment(Some(&order), None, paid, &new(Captured, 1000)),
            Ok(PaymentPlan::Insert)
        );
        assert_eq!(
            decide_payment(None, None, paid, &new(Captured, 1000)),
            Err(PaymentRefusal::OrderNotFound)
        );
        let mut usd = new(Captured, 10);
        usd.currency = "USD".to_owned();
        assert_eq!(
            decide_payment(Some(&order), None, paid, &usd),
            Err(PaymentRefusal::CurrencyMismatch {
                order_currency: "EUR".to_owned()
            })
        );
        assert_eq!(
            decide_payment(
                Some(&order),
                Some(stored(Captured, 1000)),
                paid,
                &new(Captured, 1000)
            ),
            Ok(PaymentPlan::Replay(stored(Captured, 1000)))
        );
        assert_eq!(
            decide_payment(
                Some(&order),
                Some(stored(Authorized, 1000)),
                paid,
                &new(Captured, 1000)
            ),
            Ok(PaymentPlan::Update { id: 9 })
        );
        assert_eq!(
            decide_payment(
                Some(&order),
                Some(stored(Captured, 1000)),
                paid,
                &new(Failed, 1000)
            ),
            Err(PaymentRefusal::StatusConflict { status: Captured })
        );
        assert_eq!(
            decide_payment(
                Some(&order),
                Some(stored(Captured, 999)),
                paid,
                &new(Captured, 1000)
            ),
            Err(PaymentRefusal::ReferenceConflict)
        );
        assert_eq!(
            decide_payment(Some(&order), None, paid, &new(Captured, 1001)),
            Err(PaymentRefusal::ExceedsTotal {
                payable_minor: 1000
            })
        );
        // An authorization does not count towards the total.
        assert_eq!(
            decide_payment(Some(&order), None, paid, &new(Authorized, 1000)),
            Ok(PaymentPlan::Insert)
        );
    }
}

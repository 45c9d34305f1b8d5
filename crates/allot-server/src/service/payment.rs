//! Payments and refunds of orders: checked input in, the storage's decision out. Allot records
//! what the shop's payment provider reports; it never handles card data.

use allot_domain::catalog::Currency;
use allot_domain::payment::{
    Amount, PaymentRefusal, PaymentStatus, Provider, REASON_MAX_CHARS, Reference,
};
use allot_domain::{DomainError, UnixMillis};
use allot_storage::{NewPayment, NewRefund, OrderPayments, PaymentRecorded, Refund, RefundTarget};

use super::order::Orders;
use crate::ServiceError;

/// A payment as a client reports it, unchecked.
#[derive(Debug, Clone)]
pub struct PaymentInput {
    pub provider: String,
    pub reference: String,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
}

fn refused<T>(r: Result<T, PaymentRefusal>) -> Result<T, ServiceError> {
    r.map_err(ServiceError::Payment)
}

impl Orders {
    /// Records a payment of the order (staff, or the provider's webhook): answers it and
    /// whether an earlier report with the same provider and reference already had.
    pub async fn record_payment(
        &self,
        order_id: i64,
        input: PaymentInput,
    ) -> Result<PaymentRecorded, ServiceError> {
        let new = NewPayment {
            order_id,
            provider: Provider::parse(&input.provider)?,
            reference: Reference::parse("reference", &input.reference)?,
            status: PaymentStatus::parse(&input.status)?,
            amount: Amount::parse("amount_minor", input.amount_minor)?,
            currency: currency(&input.currency)?,
            now: self.now(),
        };
        let recorded = refused(self.store().record_payment(new).await?)?;
        tracing::info!(
            op = "orders.payment",
            order = order_id,
            payment = recorded.payment.id,
            status = recorded.payment.status.as_str(),
            replayed = recorded.replayed,
            paid = recorded.order_paid,
        );
        Ok(recorded)
    }

    /// Refunds part or all of what the order's payments captured.
    pub async fn refund(
        &self,
        order_id: i64,
        amount_minor: i64,
        reason: Option<String>,
    ) -> Result<Vec<Refund>, ServiceError> {
        let too_long = reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > REASON_MAX_CHARS);
        let reason = match reason.map(|r| r.trim().to_owned()) {
            Some(r) if too_long || r.chars().any(char::is_control) => {
                return Err(DomainError::invalid(
                    "reason",
                    format!("must be at most {REASON_MAX_CHARS} printable characters"),
                )
                .into());
            }
            Some(r) if r.is_empty() => None,
            other => other,
        };
        let new = NewRefund {
            order_id,
            target: RefundTarget::Amount(Amount::parse("amount_minor", amount_minor)?),
            reason,
            now: self.now(),
        };
        let refunds = refused(self.store().refund_order(new).await?)?;
        tracing::info!(op = "orders.refund", order = order_id, amount_minor);
        Ok(refunds)
    }

    pub async fn payments(&self, order_id: i64) -> Result<OrderPayments, ServiceError> {
        self.store()
            .order_payments(order_id)
            .await?
            .ok_or(ServiceError::NotFound { what: "order" })
    }

    fn now(&self) -> UnixMillis {
        self.clock().now()
    }
}

/// The catalog's currency code, upper-cased first (Stripe sends `eur`), named `currency`.
fn currency(raw: &str) -> Result<String, ServiceError> {
    Currency::parse(&raw.trim().to_ascii_uppercase())
        .map(|c| c.as_str().to_owned())
        .map_err(|_| {
            DomainError::invalid("currency", "must be a three-letter ISO 4217 code").into()
        })
}

/// What a payment provider's webhook reports of an order, once verified.
#[derive(Debug, Clone)]
pub enum ProviderEvent {
    /// A payment reached this status (`captured` or `failed`).
    Payment {
        order_id: i64,
        reference: String,
        status: &'static str,
        amount_minor: i64,
        currency: String,
    },
    /// The payment has this much refunded in all, at the provider.
    Refunded {
        order_id: i64,
        reference: String,
        refunded_minor: i64,
    },
}

impl Orders {
    /// Applies a provider's report; answers whether it changed anything (a duplicate, a retry
    /// or a report of nothing new changes nothing).
    pub async fn provider_event(
        &self,
        provider: &str,
        event: ProviderEvent,
    ) -> Result<bool, ServiceError> {
        match event {
            ProviderEvent::Payment {
                order_id,
                reference,
                status,
                amount_minor,
                currency,
            } => {
                let recorded = self
                    .record_payment(
                        order_id,
                        PaymentInput {
                            provider: provider.to_owned(),
                            reference,
                            status: status.to_owned(),
                            amount_minor,
                            currency,
                        },
                    )
                    .await?;
                Ok(!recorded.replayed)
            }
            ProviderEvent::Refunded {
                order_id,
                reference,
                refunded_minor,
            } => {
                let new = NewRefund {
                    order_id,
                    target: RefundTarget::UpTo {
                        provider: Provider::parse(provider)?,
                        reference: Reference::parse("payment_intent", &reference)?,
                        refunded_minor,
                    },
                    reason: Some(format!("refunded at {provider}")),
                    now: self.now(),
                };
                let refunds = refused(self.store().refund_order(new).await?)?;
                tracing::info!(
                    op = "orders.refund",
                    order = order_id,
                    provider,
                    parts = refunds.len()
                );
                Ok(!refunds.is_empty())
            }
        }
    }
}

//! Payments and refunds on PostgreSQL: each in one transaction that first locks the order's
//! row, so an order's payments and refunds take turns on every instance (and after the order's
//! status changes, which lock the same row first); the rules are `allot_domain::payment`'s and
//! [`crate::payment`]'s.

use super::conn::{Conn, Db, Tx};
use allot_domain::payment::{Paid, PaymentRefusal, PaymentStatus, becomes_paid};
use async_trait::async_trait;
use tokio_postgres::error::SqlState;

use super::PgStore;
use crate::StorageError;
use crate::catalog::corrupt;
use crate::payment::{
    NewPayment, NewRefund, OrderFacts, OrderPayments, Payment, PaymentPlan, PaymentRecorded,
    PaymentResult, PaymentStore, Refund, decide_payment, order_facts_of, paid_of, paid_request,
    payment_event, payment_of, refund_event, refund_of, refund_parts, sql,
};

const LOCK_ORDER_FACTS: &str =
    "SELECT status, total_minor, currency FROM orders WHERE id = $1 FOR UPDATE";

async fn order_facts(
    c: &impl Db,
    order: i64,
    lock: bool,
) -> Result<Option<OrderFacts>, StorageError> {
    let statement = if lock {
        LOCK_ORDER_FACTS
    } else {
        sql::ORDER_FACTS
    };
    c.query_opt(statement, &[&order])
        .await?
        .map(|r| order_facts_of(&r))
        .transpose()
}

async fn paid(c: &impl Db, order: i64) -> Result<Paid, StorageError> {
    paid_of(&c.query_one(sql::PAID, &[&order]).await?)
}

async fn payments(c: &impl Db, order: i64) -> Result<Vec<Payment>, StorageError> {
    c.query(sql::PAYMENTS_OF_ORDER, &[&order])
        .await?
        .iter()
        .map(payment_of)
        .collect()
}

async fn record(tx: &Tx<'_>, new: &NewPayment) -> PaymentResult<PaymentRecorded> {
    let order = order_facts(tx, new.order_id, true).await?;
    let existing = tx
        .query_opt(
            sql::PAYMENT_BY_REFERENCE,
            &[&new.provider.as_str(), &new.reference.as_str()],
        )
        .await?
        .map(|r| payment_of(&r))
        .transpose()?;
    let before = paid(tx, new.order_id).await?;
    let id: i64 = match decide_payment(order.as_ref(), existing, before, new) {
        Err(refusal) => return Ok(Err(refusal)),
        Ok(PaymentPlan::Replay(payment)) => {
            return Ok(Ok(PaymentRecorded {
                payment,
                replayed: true,
                order_paid: false,
            }));
        }
        Ok(PaymentPlan::Insert) => tx
            .query_one(
                sql::INSERT_PAYMENT,
                &[
                    &new.order_id,
                    &new.provider.as_str(),
                    &new.reference.as_str(),
                    &new.status.as_str(),
                    &new.amount.get(),
                    &new.currency,
                    &new.now.as_millis(),
                ],
            )
            .await?
            .get(0),
        Ok(PaymentPlan::Update { id }) => {
            tx.execute(
                sql::SET_PAYMENT_STATUS,
                &[&new.status.as_str(), &new.now.as_millis(), &id],
            )
            .await?;
            id
        }
    };
    let order = order.ok_or_else(|| corrupt("a payment's order vanished"))?;
    let after = paid(tx, new.order_id).await?;
    let payment = payment_of(&tx.query_one(sql::PAYMENT_BY_ID, &[&id]).await?)?;
    super::event::append(
        tx,
        payment_event(&payment, after, order.total_minor, new.now),
    )
    .await?;
    let order_paid = new.status == PaymentStatus::Captured
        && becomes_paid(order.status, order.total_minor, after.captured_minor);
    if order_paid
        && let Err(refusal) = super::order::change(tx, &paid_request(new.order_id, new.now)).await?
    {
        return Err(corrupt(format!(
            "order {} is paid but could not be confirmed: {refusal:?}",
            new.order_id
        )));
    }
    Ok(Ok(PaymentRecorded {
        payment,
        replayed: false,
        order_paid,
    }))
}

pub(super) async fn refund(tx: &Tx<'_>, new: &NewRefund) -> PaymentResult<Vec<Refund>> {
    if order_facts(tx, new.order_id, true).await?.is_none() {
        return Ok(Err(PaymentRefusal::OrderNotFound));
    }
    let all = payments(tx, new.order_id).await?;
    let parts = match refund_parts(&all, &new.target) {
        Ok(parts) => parts,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut refunds = Vec::with_capacity(parts.len());
    for (payment, part) in parts {
        tx.execute(sql::TAKE_REFUND, &[&part, &new.now.as_millis(), &payment])
            .await?;
        let row = tx
            .query_one(
                sql::INSERT_REFUND,
                &[
                    &new.order_id,
                    &payment,
                    &part,
                    &new.reason,
                    &new.now.as_millis(),
                ],
            )
            .await?;
        refunds.push(refund_of(&row)?);
    }
    // A provider's report that asks for nothing more changes nothing, and says nothing.
    if !refunds.is_empty() {
        let after = paid(tx, new.order_id).await?;
        super::event::append(
            tx,
            refund_event(
                new.order_id,
                &refunds,
                after,
                new.reason.as_deref(),
                new.now,
            ),
        )
        .await?;
    }
    Ok(Ok(refunds))
}

#[async_trait]
impl PaymentStore for PgStore {
    async fn record_payment(&self, new: NewPayment) -> PaymentResult<PaymentRecorded> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        match record(&tx, &new).await {
            Ok(Ok(recorded)) => {
                super::commit(tx).await?;
                Ok(Ok(recorded))
            }
            // The reference stored meanwhile for another order (this order's row lock orders
            // its own reports).
            Err(StorageError::Postgres(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Ok(Err(PaymentRefusal::ReferenceConflict))
            }
            other => other,
        }
    }

    async fn refund_order(&self, new: NewRefund) -> PaymentResult<Vec<Refund>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let made = refund(&tx, &new).await?;
        if made.is_ok() {
            super::commit(tx).await?;
        }
        Ok(made)
    }

    async fn order_payments(&self, order_id: i64) -> Result<Option<OrderPayments>, StorageError> {
        let guard = self.client().await?;
        let client: &Conn = &guard;
        let Some(order) = order_facts(client, order_id, false).await? else {
            return Ok(None);
        };
        let refunds = client
            .query(sql::REFUNDS_OF_ORDER, &[&order_id])
            .await?
            .iter()
            .map(refund_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(OrderPayments {
            total_minor: order.total_minor,
            currency: order.currency,
            paid: paid(client, order_id).await?,
            payments: payments(client, order_id).await?,
            refunds,
        }))
    }
}

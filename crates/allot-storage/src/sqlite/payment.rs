//! Payments and refunds on SQLite: each decided and written in the single writer, so no two
//! interleave; the rules are `allot_domain::payment`'s and [`crate::payment`]'s.

use allot_domain::payment::{Paid, PaymentRefusal, PaymentStatus};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, all_or_nothing};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::payment::{
    NewPayment, NewRefund, OrderFacts, OrderPayments, Payment, PaymentPlan, PaymentRecorded,
    PaymentResult, PaymentStore, Refund, decide_payment, order_facts_of, paid_of, paid_request,
    payment_event, payment_of, refund_event, refund_of, refund_parts, sql,
};

fn order_facts(conn: &Connection, order: i64) -> Result<Option<OrderFacts>, StorageError> {
    conn.prepare_cached(sql::ORDER_FACTS)?
        .query_row(params![order], |r| Ok(order_facts_of(r)))
        .optional()?
        .transpose()
}

fn paid(conn: &Connection, order: i64) -> Result<Paid, StorageError> {
    conn.prepare_cached(sql::PAID)?
        .query_row(params![order], |r| Ok(paid_of(r)))?
}

fn payments(conn: &Connection, order: i64) -> Result<Vec<Payment>, StorageError> {
    conn.prepare_cached(sql::PAYMENTS_OF_ORDER)?
        .query_map(params![order], |r| Ok(payment_of(r)))?
        .map(|r| r?)
        .collect()
}

fn record(conn: &Connection, new: &NewPayment) -> PaymentResult<PaymentRecorded> {
    let order = order_facts(conn, new.order_id)?;
    let existing = conn
        .prepare_cached(sql::PAYMENT_BY_REFERENCE)?
        .query_row(
            params![new.provider.as_str(), new.reference.as_str()],
            |r| Ok(payment_of(r)),
        )
        .optional()?
        .transpose()?;
    let before = paid(conn, new.order_id)?;
    let id = match decide_payment(order.as_ref(), existing, before, new) {
        Err(refusal) => return Ok(Err(refusal)),
        Ok(PaymentPlan::Replay(payment)) => {
            return Ok(Ok(PaymentRecorded {
                payment,
                replayed: true,
                order_paid: false,
            }));
        }
        Ok(PaymentPlan::Insert) => conn.prepare_cached(sql::INSERT_PAYMENT)?.query_row(
            params![
                new.order_id,
                new.provider.as_str(),
                new.reference.as_str(),
                new.status.as_str(),
                new.amount.get(),
                new.currency,
                new.now.as_millis()
            ],
            |r| r.get::<_, i64>(0),
        )?,
        Ok(PaymentPlan::Update { id }) => {
            conn.prepare_cached(sql::SET_PAYMENT_STATUS)?
                .execute(params![new.status.as_str(), new.now.as_millis(), id])?;
            id
        }
    };
    let order = order.ok_or_else(|| corrupt("a payment's order vanished"))?;
    let after = paid(conn, new.order_id)?;
    let payment = conn
        .prepare_cached(sql::PAYMENT_BY_ID)?
        .query_row(params![id], |r| Ok(payment_of(r)))??;
    super::event::append(
        conn,
        payment_event(&payment, after, order.total_minor, new.now),
    )?;
    let order_paid = new.status == PaymentStatus::Captured
        && allot_domain::payment::becomes_paid(
            order.status,
            order.total_minor,
            after.captured_minor,
        );
    if order_paid
        && let Err(refusal) =
            super::order::change_inner(conn, &paid_request(new.order_id, new.now))?
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

pub(super) fn refund(conn: &Connection, new: &NewRefund) -> PaymentResult<Vec<Refund>> {
    if order_facts(conn, new.order_id)?.is_none() {
        return Ok(Err(PaymentRefusal::OrderNotFound));
    }
    let all = payments(conn, new.order_id)?;
    let parts = match refund_parts(&all, &new.target) {
        Ok(parts) => parts,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut refunds = Vec::with_capacity(parts.len());
    for (payment, part) in parts {
        conn.prepare_cached(sql::TAKE_REFUND)?.execute(params![
            part,
            new.now.as_millis(),
            payment
        ])?;
        let refund = conn.prepare_cached(sql::INSERT_REFUND)?.query_row(
            params![new.order_id, payment, part, new.reason, new.now.as_millis()],
            |r| Ok(refund_of(r)),
        )??;
        refunds.push(refund);
    }
    // A provider's report that asks for nothing more changes nothing, and says nothing.
    if !refunds.is_empty() {
        let after = paid(conn, new.order_id)?;
        super::event::append(
            conn,
            refund_event(
                new.order_id,
                &refunds,
                after,
                new.reason.as_deref(),
                new.now,
            ),
        )?;
    }
    Ok(Ok(refunds))
}

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn record_payment(&self, new: NewPayment) -> PaymentResult<PaymentRecorded> {
        self.write(4, move |conn, _| {
            all_or_nothing(conn, |conn| record(conn, &new))
        })
        .await
    }

    async fn refund_order(&self, new: NewRefund) -> PaymentResult<Vec<Refund>> {
        self.write(2, move |conn, _| {
            all_or_nothing(conn, |conn| refund(conn, &new))
        })
        .await
    }

    async fn order_payments(&self, order_id: i64) -> Result<Option<OrderPayments>, StorageError> {
        self.read(move |conn| {
            let Some(order) = order_facts(conn, order_id)? else {
                return Ok(None);
            };
            let refunds = conn
                .prepare_cached(sql::REFUNDS_OF_ORDER)?
                .query_map(params![order_id], |r| Ok(refund_of(r)))?
                .map(|r| r?)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(OrderPayments {
                total_minor: order.total_minor,
                currency: order.currency,
                paid: paid(conn, order_id)?,
                payments: payments(conn, order_id)?,
                refunds,
            }))
        })
        .await
    }
}

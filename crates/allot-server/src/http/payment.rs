//! Payments and refunds of an order over HTTP: `/api/v1/orders/{order_id}/payments` (record,
//! list) and `/api/v1/orders/{order_id}/refunds`. Staff record what the shop's payment
//! provider reported (cash on delivery, a bank transfer, a provider's dashboard); a capture
//! that covers the order's total moves a pending order to confirmed in the same transaction.

use allot_storage::{OrderPayments, Payment, Refund};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiJson, OrderId, PathId, whole_required};
use super::order::IDEMPOTENT_REPLAYED;
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::service::payment::PaymentInput;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orders/{order_id}/payments", get(list).post(record))
        .route("/api/v1/orders/{order_id}/refunds", post(refund))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentView {
    pub id: i64,
    pub order_id: i64,
    pub provider: String,
    /// The provider's id of the payment.
    pub reference: String,
    /// `authorized`, `captured` or `failed`.
    pub status: &'static str,
    pub amount_minor: i64,
    pub currency: String,
    /// Refunded of this payment so far.
    pub refunded_minor: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            id: p.id,
            order_id: p.order_id,
            provider: p.provider,
            reference: p.reference,
            status: p.status.as_str(),
            amount_minor: p.amount_minor,
            currency: p.currency,
            refunded_minor: p.refunded_minor,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecordedView {
    pub payment: PaymentView,
    /// This payment completed the order's total: the order is confirmed (paid) now.
    pub order_paid: bool,
}

/// One refund's part, taken from one captured payment.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefundView {
    pub id: i64,
    pub order_id: i64,
    pub payment_id: i64,
    pub amount_minor: i64,
    pub reason: Option<String>,
    pub created_at: String,
}

impl From<Refund> for RefundView {
    fn from(r: Refund) -> Self {
        RefundView {
            id: r.id,
            order_id: r.order_id,
            payment_id: r.payment_id,
            amount_minor: r.amount_minor,
            reason: r.reason,
            created_at: rfc3339(r.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefundMadeView {
    /// The amount refunded by this call.
    pub amount_minor: i64,
    /// Its parts, oldest payment first.
    pub refunds: Vec<RefundView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentsView {
    pub order_id: i64,
    pub total_minor: i64,
    pub currency: String,
    /// Captured in all (refunds not deducted).
    pub captured_minor: i64,
    pub refunded_minor: i64,
    /// Oldest first.
    pub payments: Vec<PaymentView>,
    /// Oldest first.
    pub refunds: Vec<RefundView>,
}

impl PaymentsView {
    fn of(order_id: i64, p: OrderPayments) -> Self {
        PaymentsView {
            order_id,
            total_minor: p.total_minor,
            currency: p.currency,
            captured_minor: p.paid.captured_minor,
            refunded_minor: p.paid.refunded_minor,
            payments: p.payments.into_iter().map(Into::into).collect(),
            refunds: p.refunds.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PaymentBody {
    /// Who took the payment: 1 to 32 of a-z, 0-9, `_` and `-` (`cash_on_delivery`,
    /// `bank_transfer`, `stripe`, ...).
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub provider: String,
    /// The provider's id of the payment, unique per provider: the same report again is
    /// answered as recorded (200) and changes nothing.
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub reference: String,
    /// `captured` (taken; the default), `authorized` (held by the provider) or `failed`. An
    /// authorization may later be reported captured or failed.
    #[schema(pattern = "^(authorized|captured|failed)$")]
    pub status: Option<String>,
    /// Minor units, 1 to 1,000,000,000,000; a capture never passes what the order has left
    /// to pay.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole_required")]
    pub amount_minor: i64,
    /// The order's currency (ISO 4217).
    #[schema(min_length = 3, max_length = 3, pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RefundBody {
    /// Minor units, 1 to 1,000,000,000,000; never more than is left of the captures.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole_required")]
    pub amount_minor: i64,
    /// Why, at most 500 characters; kept with the refund.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// Record a payment of the order, as its provider reported it. A capture that covers the
/// order's total moves a pending order to confirmed (its reservations become stock out) in the
/// same transaction; `OrderPaymentReceived` is emitted with it.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/payments", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    request_body = PaymentBody,
    responses(
        (status = 201, description = "Recorded", body = RecordedView),
        (status = 200, description = "The same report again (provider and reference known, same amount and status): answered as recorded, nothing changed (`Idempotent-Replayed: true`)", body = RecordedView),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`payment_exceeds_total` (with `available_total`: what is left to pay), `order_not_payable` (cancelled or returned; its `status`), `reference_conflict` (the reference is another payment), `payment_status_conflict` (a capture or failure cannot go back; its `status`); nothing written", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field, or `currency_mismatch`", body = ErrorBody)))]
pub(crate) async fn record(
    State(state): State<AppState>,
    PathId(OrderId(order)): PathId<OrderId>,
    ApiJson(body): ApiJson<PaymentBody>,
) -> Result<Response, ServiceError> {
    let recorded = state
        .services
        .orders
        .record_payment(
            order,
            PaymentInput {
                provider: body.provider,
                reference: body.reference,
                status: body.status.unwrap_or_else(|| "captured".to_owned()),
                amount_minor: body.amount_minor,
                currency: body.currency,
            },
        )
        .await?;
    let replayed = recorded.replayed;
    let view = Json(RecordedView {
        payment: recorded.payment.into(),
        order_paid: recorded.order_paid,
    });
    Ok(if replayed {
        (StatusCode::OK, [(IDEMPOTENT_REPLAYED, "true")], view).into_response()
    } else {
        (StatusCode::CREATED, view).into_response()
    })
}

/// The order's payments and refunds, and what they add up to.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}/payments", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Payments and refunds, oldest first", body = PaymentsView),
        (status = 404, description = "No such order", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    PathId(OrderId(order)): PathId<OrderId>,
) -> Result<Json<PaymentsView>, ServiceError> {
    let payments = state.services.orders.payments(order).await?;
    Ok(Json(PaymentsView::of(order, payments)))
}

/// Refund part or all of what the order's payments captured, taken from the oldest payment
/// first. However many refunds run at once, together they never pass the captures: one that
/// would is refused whole. `OrderRefunded` is emitted with it.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/refunds", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    request_body = RefundBody,
    responses(
        (status = 201, description = "Refunded", body = RefundMadeView),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`refund_exceeds_capture` with `available_total`: what is left to refund; nothing written", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn refund(
    State(state): State<AppState>,
    PathId(OrderId(order)): PathId<OrderId>,
    ApiJson(body): ApiJson<RefundBody>,
) -> Result<(StatusCode, Json<RefundMadeView>), ServiceError> {
    let refunds = state
        .services
        .orders
        .refund(order, body.amount_minor, body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RefundMadeView {
            amount_minor: refunds.iter().map(|r| r.amount_minor).sum(),
            refunds: refunds.into_iter().map(Into::into).collect(),
        }),
    ))
}

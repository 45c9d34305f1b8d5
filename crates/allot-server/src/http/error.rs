//! The one JSON error shape of the REST API, and the one mapping from service errors to HTTP
//! status codes.

pub(crate) use crate::error::status_of;
use std::borrow::Cow;

use allot_domain::payment::PaymentRefusal;
use allot_domain::shipment::ShipmentRefusal;
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServiceError;
use crate::error::ErrorKind;

/// `{"error": {"code": "...", "message": "...", "field": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Machine-readable, stable: `invalid_argument`, `bad_request`, `not_found`,
    /// `already_used`, `not_started`, `ended`, `sold_out`, `user_limit_reached`, `expired`,
    /// `exhausted`, `not_owner`, `no_coupon_available`, `megadeal_busy`,
    /// `megadeal_unavailable`, `no_active_sale`, `not_in_current_sale`, `item_sold`,
    /// `sale_over`, `item_already_checked_out`, `sale_not_current`, `sku_taken`, `category_in_use`, `warehouse_code_taken`, `warehouse_in_use`,
    /// `out_of_stock`, `reservation_not_pending`, `below_reserved`, `illegal_transition`,
    /// `coupon_unusable`, `unknown_code`, `code_already_used`, `promotion_hold_unusable`,
    /// `promotion_code_refused`, `invalid_credentials`,
    /// `invalid_token`, `unauthenticated`, `email_taken`, `template_name_taken`,
    /// `template_in_use`, `promotion_not_found`, `hold_not_found`, `hold_not_held`,
    /// `hold_expired`, `limit_below_usage`, `unknown_codes`, `already_bound`,
    /// `unknown_campaign`, `last_admin`, `setup_done`, `signup_closed`, `email_not_verified`,
    /// `rate_limited`, `busy`, `payload_too_large`, `request_timeout`,
    /// `unavailable`, `storage_unavailable` (503 with `Retry-After`: a full disk, the
    /// database unreachable; nothing was written, retry later), `storage_outcome_unknown`
    /// (503 with `Retry-After`: the connection to the database was lost during the commit, so
    /// the write may have been made; retry with the same idempotency key), `internal`.
    pub code: &'static str,
    /// For people; may change between releases.
    pub message: String,
    /// The request field at fault, when one is; a field of a body by its path
    /// (`price.amount_minor`).
    #[schema(value_type = Option<String>)]
    pub field: Option<Cow<'static, str>>,
    /// For batch requests: every bad entry, by index and field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<crate::error::EntryError>>,
    /// For `out_of_stock`: the units available in all warehouses together; for
    /// `payment_exceeds_total` and `refund_exceeds_capture`, the minor units a capture or a
    /// refund may still take; for `shipment_exceeds_remaining` and `return_exceeds_shipped`,
    /// the units of the line (`product_id`) left to ship or to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_total: Option<i64>,
    /// For `reservation_not_pending`: the reservation's status; for `hold_not_held`, the
    /// hold's; for `order_not_payable`, `order_not_shippable` and `order_not_returnable`, the
    /// order's; for `payment_status_conflict`, the payment's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// For an order's `out_of_stock`: the product of the line that cannot be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    /// For `illegal_transition`: the order's status and the one asked for; for
    /// `return_status_conflict`, the return's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'static str>,
    /// For `coupon_unusable`: `expired`, `exhausted` or `not_owner`. For
    /// `promotion_hold_unusable`: `not_found`, `not_held`, `expired`, `another_customer`,
    /// `another_currency`, `another_cart` or `changed`. For `promotion_code_refused`: the
    /// promotion engine's reason (`min_subtotal_not_met`, `budget_exhausted`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For `unknown_codes` and `already_bound`: the codes at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<String>>,
}

impl ErrorDetail {
    fn new(code: &'static str, message: String, field: Option<Cow<'static, str>>) -> Self {
        ErrorDetail {
            code,
            message,
            field,
            details: None,
            available_total: None,
            status: None,
            product_id: None,
            from: None,
            to: None,
            reason: None,
            codes: None,
        }
    }
}

/// A body field that does not fit the body's schema, named by its path in the body
/// (`lines.quantity`): answered as [`ServiceError::InvalidArgument`] is, whose `&'static`
/// field cannot hold a path made from the request.
pub(crate) struct InvalidField {
    pub field: String,
    pub message: String,
}

impl IntoResponse for InvalidField {
    fn into_response(self) -> Response {
        let detail = ErrorDetail::new(
            "invalid_argument",
            self.message,
            Some(Cow::Owned(self.field)),
        );
        (
            status_of(ErrorKind::InvalidArgument),
            Json(ErrorBody { error: detail }),
        )
            .into_response()
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = status_of(self.kind());
        let message = match &self {
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                self.to_string()
            }
            ServiceError::Crypto(cause) => {
                tracing::error!(error = %cause, "internal error");
                self.to_string()
            }
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "storage unavailable");
                self.to_string()
            }
            ServiceError::MegadealUnavailable(cause) => {
                tracing::warn!(error = %cause, "MEGADEAL admission unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let retry_after = match &self {
            ServiceError::MegadealBusy { retry_after_secs }
            | ServiceError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ServiceError::MegadealUnavailable(_)
            | ServiceError::IdempotencyKeyInUse
            | ServiceError::Busy { .. } => Some(1),
            ServiceError::Unavailable(_) => Some(crate::error::STORAGE_RETRY_AFTER_SECS),
            _ => None,
        };
        let code = self.code();
        let field = self.field();
        let unauthenticated = self.kind() == ErrorKind::Unauthenticated;
        let (available_total, product_id) = match &self {
            ServiceError::OutOfStock { available_total } => (Some(*available_total), None),
            // What a capture or a refund may still take.
            ServiceError::Payment(
                PaymentRefusal::ExceedsTotal {
                    payable_minor: left,
                }
                | PaymentRefusal::ExceedsCapture {
                    refundable_minor: left,
                },
            ) => (Some(*left), None),
            ServiceError::OrderOutOfStock {
                product_id,
                available_total,
            } => (Some(*available_total), Some(*product_id)),
            // What is left to ship, or to return, of the line.
            ServiceError::Shipment(
                ShipmentRefusal::ExceedsRemaining {
                    product_id,
                    remaining: left,
                    ..
                }
                | ShipmentRefusal::ExceedsReturnable {
                    product_id,
                    returnable: left,
                    ..
                },
            ) => (Some(*left), Some(*product_id)),
            _ => (None, None),
        };
        let (from, to) = match &self {
            ServiceError::IllegalTransition { from, to } => (Some(*from), Some(*to)),
            ServiceError::Shipment(ShipmentRefusal::ReturnStatusConflict { from, to }) => {
                (Some(from.as_str()), Some(to.as_str()))
            }
            _ => (None, None),
        };
        let reason = match &self {
            ServiceError::CouponUnusable { reason }
            | ServiceError::PromotionHoldUnusable { reason }
            | ServiceError::PromotionCodeRefused { reason, .. } => Some(*reason),
            _ => None,
        };
        let reservation_status = match &self {
            ServiceError::ReservationNotPending { status }
            | ServiceError::HoldNotHeld { status } => Some(*status),
            ServiceError::Payment(PaymentRefusal::OrderNotPayable { status }) => {
                Some(status.as_str())
            }
            ServiceError::Payment(PaymentRefusal::StatusConflict { status }) => {
                Some(status.as_str())
            }
            ServiceError::Shipment(
                ShipmentRefusal::OrderNotShippable { status }
                | ShipmentRefusal::OrderNotReturnable { status },
            ) => Some(status.as_str()),
            _ => None,
        };
        let (details, codes) = match self {
            ServiceError::InvalidEntries { entries } => (Some(entries), None),
            ServiceError::UnknownCodes { codes, .. }
            | ServiceError::AlreadyBound { codes, .. }
            | ServiceError::UsedUpCodes { codes, .. } => (None, Some(codes)),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                details,
                available_total,
                status: reservation_status,
                product_id,
                from,
                to,
                reason,
                codes,
                ..ErrorDetail::new(code, message, field.map(Cow::Borrowed))
            },
        };
        let mut response = (status, Json(body)).into_response();
        if code == "storage_outcome_unknown" {
            response.extensions_mut().insert(OutcomeUnknown);
        }
        if unauthenticated {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"allot\""),
            );
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

/// Marks an answer that does not know whether its write was made (the connection to the
/// database lost during the commit): the idempotency layer keeps the key's claim rather than
/// give it up, so that a retry with the key is not run again at once (it hears
/// `idempotency_key_in_use` until the claim goes stale).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutcomeUnknown;

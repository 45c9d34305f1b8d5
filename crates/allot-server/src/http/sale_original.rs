//! The flash sale's design checkout (seed 002) at the root path, as its clients call it:
//! `POST /checkout?user_id=&id=` puts an item on the user's one open checkout code,
//! `POST /purchase?code=` buys every item on it still unsold, `GET /sales/active`. Bodies and
//! errors (`{"message", "code"}`) are the design's; the rules are Allot's (`service::sale`).
//! Allot's own one-code-per-item checkout is under `/api/v1/sales/{id}/...` (`http::sale`).

use std::collections::HashMap;

use allot_domain::DomainError;
use allot_domain::sale::{CheckoutCode, ItemId};
use allot_domain::user::UserId;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::ServiceError;
use crate::caller::Caller;
use crate::service::sale::BasketPurchased;
use crate::time::rfc3339;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/checkout", post(checkout))
        .route("/purchase", post(purchase))
        .route("/sales/active", get(active))
}

/// The design's `ErrorResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageBody {
    /// For people.
    pub message: String,
    /// Machine-readable, stable: `validation_failed`, `sale_not_found`, `item_not_found`,
    /// `item_sold`, `item_not_in_current_sale`, `already_checked_out`, `user_limit_exceeded`,
    /// `checkout_not_found`, `sale_over`.
    pub code: &'static str,
}

/// An error of these routes: the design's status and body for the sale's own refusals;
/// anything else (a credential refused, storage unavailable) as every Allot route answers it.
pub(crate) struct OriginalError(pub(crate) ServiceError);

impl From<ServiceError> for OriginalError {
    fn from(e: ServiceError) -> Self {
        OriginalError(e)
    }
}

fn message(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let body = MessageBody {
        message: message.into(),
        code,
    };
    (status, Json(body)).into_response()
}

/// The design's status, code and message for a refusal of the sale, if it is one.
fn refusal(e: &ServiceError) -> Option<(StatusCode, &'static str, String)> {
    let (status, code, text) = match e {
        ServiceError::BadRequest { message, .. }
        | ServiceError::InvalidArgument { message, .. } => {
            return Some((
                StatusCode::BAD_REQUEST,
                "validation_failed",
                message.clone(),
            ));
        }
        ServiceError::NoActiveSale => (StatusCode::NOT_FOUND, "sale_not_found", "sale not found"),
        ServiceError::NotFound { what: "item" } => {
            (StatusCode::NOT_FOUND, "item_not_found", "item not found")
        }
        ServiceError::NotFound { what: "checkout" } => (
            StatusCode::NOT_FOUND,
            "checkout_not_found",
            "checkout not found",
        ),
        ServiceError::ItemSold => (StatusCode::CONFLICT, "item_sold", "item already sold"),
        ServiceError::NotInCurrentSale => (
            StatusCode::BAD_REQUEST,
            "item_not_in_current_sale",
            "item not in current sale",
        ),
        ServiceError::ItemAlreadyCheckedOut => (
            StatusCode::BAD_REQUEST,
            "already_checked_out",
            "user already checked out this item",
        ),
        ServiceError::UserLimitReached => (
            StatusCode::BAD_REQUEST,
            "user_limit_exceeded",
            "user has reached the maximum items limit",
        ),
        _ => return None,
    };
    Some((status, code, text.to_owned()))
}

impl IntoResponse for OriginalError {
    fn into_response(self) -> Response {
        match refusal(&self.0) {
            Some((status, code, text)) => message(status, code, text),
            None => self.0.into_response(),
        }
    }
}

fn validation(text: impl Into<String>) -> OriginalError {
    OriginalError(ServiceError::bad_request(None, text.into()))
}

fn invalid(e: DomainError) -> OriginalError {
    let DomainError::Invalid { field, message } = e;
    validation(format!("{field}: {message}"))
}

/// The query as a map; a query that cannot be read at all is the design's validation error.
fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, OriginalError> {
    q.map(|Query(q)| q)
        .map_err(|_| validation("the query string cannot be read"))
}

fn given<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// The item of a checkout: `id`, or `item_id` (the design document's name); both must agree.
fn item_param(q: &HashMap<String, String>) -> Result<ItemId, OriginalError> {
    let raw = match (given(q, "id"), given(q, "item_id")) {
        (Some(a), Some(b)) if a != b => {
            return Err(validation("id and item_id name different items"));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(validation("id (or item_id) is required")),
    };
    ItemId::parse(raw).map_err(invalid)
}

/// What `POST /checkout`'s query names: the user as given (the caller decides whether it may
/// name one) and the item, refused apart so that a missing user is reported first.
pub(crate) struct CheckoutParams {
    pub(crate) user_id: Option<String>,
    pub(crate) item: Result<ItemId, OriginalError>,
}

pub(crate) fn checkout_params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<CheckoutParams, OriginalError> {
    let q = query(q)?;
    Ok(CheckoutParams {
        user_id: given(&q, "user_id").map(str::to_owned),
        item: item_param(&q),
    })
}

/// `POST /purchase`'s `code`: a value that is no checkout code is one not found.
pub(crate) fn purchase_code(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<CheckoutCode, OriginalError> {
    let q = query(q)?;
    let Some(raw) = given(&q, "code") else {
        return Err(validation("code is required"));
    };
    let not_found = ServiceError::NotFound { what: "checkout" };
    CheckoutCode::parse(raw).map_err(|_| not_found.into())
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckoutCodeView {
    /// The user's open checkout code: the same for every item until it is purchased.
    pub code: String,
    /// Items on the code now.
    pub items_count: u32,
    /// When the sale ends (RFC 3339, UTC).
    pub sale_ends_at: String,
}

/// Put an item on the user's open checkout code (the design's checkout; nothing is reserved).
#[utoipa::path(post, path = "/checkout", tag = "flash-sale-original",
    params(
        ("user_id" = String, Query, max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$", description = "1 to 128 characters, no white space"),
        ("id" = Option<i64>, Query, minimum = 1, description = "Item id (or `item_id`)"),
        ("item_id" = Option<i64>, Query, minimum = 1, description = "Item id, the design document's name for `id`")),
    responses(
        (status = 200, description = "The item is on the user's open code", body = CheckoutCodeView),
        (status = 400, description = "`validation_failed`, `item_not_in_current_sale`, `already_checked_out` or `user_limit_exceeded` (purchased plus checked-out items at the limit)", body = MessageBody),
        (status = 404, description = "`sale_not_found` (flash sales are off) or `item_not_found`", body = MessageBody),
        (status = 409, description = "`item_sold`", body = MessageBody)))]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<CheckoutCodeView>, OriginalError> {
    let params = checkout_params(q)?;
    let user = match caller.user_field(params.user_id.as_deref(), "user_id")? {
        Some(u) => u,
        None => return Err(validation("user_id is required")),
    };
    let user = UserId::parse(&user).map_err(invalid)?;
    let item = params.item?;
    let c = state.services.sales.basket_checkout(user, item).await?;
    Ok(Json(CheckoutCodeView {
        code: c.code.as_str().to_owned(),
        items_count: c.items_count,
        sale_ends_at: rfc3339(c.sale.ends_at),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PurchasedItemView {
    /// The item id, a string as in the design.
    pub id: String,
    pub name: String,
    /// Always true: the item is sold, to this code's user.
    pub sold: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BasketPurchaseView {
    /// Always true: at least one item was sold.
    pub success: bool,
    pub purchased_items: Vec<PurchasedItemView>,
    pub total_purchased: usize,
    /// Items of the code not sold (sold meanwhile to someone else).
    pub failed_count: usize,
}

fn purchase_response(p: &BasketPurchased) -> Response {
    if let Some(refusal) = p.refusal() {
        let (code, text) = match refusal {
            ServiceError::SaleOver => ("sale_over", "sale has ended"),
            ServiceError::ItemSold => ("item_sold", "items already sold"),
            _ => (
                "user_limit_exceeded",
                "user has reached the maximum items limit",
            ),
        };
        return message(StatusCode::CONFLICT, code, text);
    }
    let purchased_items: Vec<PurchasedItemView> = p
        .sold()
        .map(|i| PurchasedItemView {
            id: i.id.to_string(),
            name: i.name.clone(),
            sold: true,
        })
        .collect();
    Json(BasketPurchaseView {
        success: true,
        total_purchased: purchased_items.len(),
        failed_count: p.lines.len() - purchased_items.len(),
        purchased_items,
    })
    .into_response()
}

/// Buy every item on a checkout code that is still unsold, each atomically; decided once: a
/// repeated call answers the first outcome (same status and body).
#[utoipa::path(post, path = "/purchase", tag = "flash-sale-original",
    params(("code" = String, Query, min_length = 1, description = "A checkout code from `POST /checkout`")),
    responses(
        (status = 200, description = "At least one item sold (the others counted in `failed_count`)", body = BasketPurchaseView),
        (status = 400, description = "`validation_failed` (no code)", body = MessageBody),
        (status = 404, description = "`checkout_not_found`", body = MessageBody),
        (status = 409, description = "Nothing sold: `item_sold` (every item sold meanwhile), `sale_over` (the code's sale ended before its purchase) or `user_limit_exceeded`", body = MessageBody)))]
pub(crate) async fn purchase(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, OriginalError> {
    let code = purchase_code(q)?;
    let decided = state.services.sales.basket_purchase(code).await?;
    Ok(purchase_response(&decided))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActiveSaleView {
    /// The sale id, a string as in the design.
    pub id: String,
    pub started_at: String,
    pub ended_at: String,
    pub total_items: i64,
    pub items_sold: i64,
    /// True while the sale has items left to sell.
    pub active: bool,
}

/// The sale running now, with its counts.
#[utoipa::path(get, path = "/sales/active", tag = "flash-sale-original",
    responses(
        (status = 200, description = "The current sale", body = ActiveSaleView),
        (status = 404, description = "`sale_not_found` (flash sales are off)", body = MessageBody)))]
pub(crate) async fn active(
    State(state): State<AppState>,
) -> Result<Json<ActiveSaleView>, OriginalError> {
    let sales = &state.services.sales;
    let s = sales.sale(sales.current().await?.id).await?;
    Ok(Json(ActiveSaleView {
        id: s.id.to_string(),
        started_at: rfc3339(s.starts_at),
        ended_at: rfc3339(s.ends_at),
        total_items: s.items_total,
        items_sold: s.sold,
        active: s.sold < s.items_total,
    }))
}

//! Flash sales over HTTP: Allot's own one-code-per-item checkout and purchase under
//! `/api/v1/sales/{id}/...`, and `/api/v1/sales` to read sales, items and purchases. The
//! design document's checkout at the root path is `http::sale_original`.

use std::collections::HashMap;

use allot_domain::DomainError;
use allot_domain::sale::{CheckoutCode, ItemId};
use allot_domain::user::UserId;
use allot_storage::{Sale, SaleItem};
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiQuery, PathId, SaleId};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::Caller;
use crate::service::sale::SALES_PAGE_MAX;

const PAGE_MAX: u32 = 1_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sales/{id}/checkout", post(checkout))
        .route("/api/v1/sales/{id}/purchase", post(purchase))
        .route("/api/v1/sales", get(list))
        .route("/api/v1/sales/current", get(current))
        .route("/api/v1/sales/{id}", get(read))
        .route("/api/v1/sales/{id}/items", get(items))
        .route("/api/v1/sales/{id}/purchases", get(purchases))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemView {
    pub id: i64,
    pub name: String,
    pub image_url: String,
}

impl From<&SaleItem> for ItemView {
    fn from(i: &SaleItem) -> Self {
        ItemView {
            id: i.id,
            name: i.name.clone(),
            image_url: i.image_url.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckoutView {
    /// Pass to `POST /api/v1/sales/{id}/purchase?code=`.
    pub code: String,
    pub sale_id: i64,
    pub user_id: String,
    pub item: ItemView,
    /// When the sale, and with it this code, ends.
    pub sale_ends_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PurchaseView {
    pub code: String,
    pub sale_id: i64,
    pub user_id: String,
    /// The item(s) sold to the user.
    pub items: Vec<ItemView>,
    /// True when this code was purchased before and this is that outcome again.
    pub replayed: bool,
}

fn param<'a>(q: &'a HashMap<String, String>, name: &'static str) -> Result<&'a str, ServiceError> {
    match q.get(name).map(String::as_str) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ServiceError::bad_request(
            Some(name),
            format!("the query parameter {name} is required"),
        )),
    }
}

fn bad_param(e: DomainError) -> ServiceError {
    let DomainError::Invalid { field, message } = e;
    ServiceError::bad_request(Some(field), format!("{field}: {message}"))
}

/// Check an item of the current sale out for a user: a checkout code for this one item.
#[utoipa::path(post, path = "/api/v1/sales/{id}/checkout", tag = "flash-sales",
    params(
        ("id" = i64, Path, minimum = 1, description = "The current sale's id"),
        ("user_id" = String, Query, max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$", description = "1 to 128 characters, no white space"),
        ("id" = i64, Query, minimum = 1, description = "Item id")),
    responses(
        (status = 200, description = "A checkout code", body = CheckoutView),
        (status = 400, description = "A missing or bad parameter (`bad_request`, naming it)", body = ErrorBody),
        (status = 404, description = "`not_found` (unknown item or sale) or `not_in_current_sale`", body = ErrorBody),
        (status = 409, description = "`item_sold`, `user_limit_reached`, `no_active_sale` or `sale_not_current` (the sale of the path is over)", body = ErrorBody)))]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    PathId(SaleId(sale_id)): PathId<SaleId>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<CheckoutView>, ServiceError> {
    let user = match caller.user_field(q.get("user_id").map(String::as_str), "user_id")? {
        Some(u) => u,
        None => param(&q, "user_id")?.to_owned(),
    };
    let user = UserId::parse(&user).map_err(bad_param)?;
    let item = ItemId::parse(param(&q, "id")?).map_err(bad_param)?;
    let c = state
        .services
        .sales
        .checkout(sale_id, user.clone(), item)
        .await?;
    Ok(Json(CheckoutView {
        code: c.code.as_str().to_owned(),
        sale_id: c.sale.id,
        user_id: user.as_str().to_owned(),
        item: (&c.item).into(),
        sale_ends_at: rfc3339(c.sale.ends_at),
    }))
}

/// Purchase a checked-out item. Decided once per code: a repeat answers the first outcome.
#[utoipa::path(post, path = "/api/v1/sales/{id}/purchase", tag = "flash-sales",
    params(
        ("id" = i64, Path, minimum = 1, description = "The sale of the code"),
        ("code" = String, Query, min_length = 1, description = "A checkout code")),
    responses(
        (status = 200, description = "Sold to the code's user", body = PurchaseView),
        (status = 400, description = "A missing parameter", body = ErrorBody),
        (status = 404, description = "Unknown sale, or no such checkout code in it", body = ErrorBody),
        (status = 409, description = "`item_sold` or `user_limit_reached`", body = ErrorBody),
        (status = 410, description = "`sale_over`", body = ErrorBody)))]
pub(crate) async fn purchase(
    State(state): State<AppState>,
    PathId(SaleId(sale_id)): PathId<SaleId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<PurchaseView>, ServiceError> {
    let raw = param(&q, "code")?;
    let code = CheckoutCode::parse(raw).map_err(|_| ServiceError::NotFound {
        what: "checkout code",
    })?;
    let sold = state.services.sales.purchase(sale_id, code.clone()).await?;
    Ok(Json(PurchaseView {
        code: code.as_str().to_owned(),
        sale_id: sold.item.sale_id,
        user_id: sold.user_id,
        items: vec![(&sold.item).into()],
        replayed: sold.replayed,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SaleView {
    pub id: i64,
    pub starts_at: String,
    pub ends_at: String,
    pub items_total: i64,
    pub sold: i64,
    pub remaining: i64,
}

impl From<Sale> for SaleView {
    fn from(s: Sale) -> Self {
        SaleView {
            id: s.id,
            starts_at: rfc3339(s.starts_at),
            ends_at: rfc3339(s.ends_at),
            items_total: s.items_total,
            sold: s.sold,
            remaining: s.items_total - s.sold,
        }
    }
}

/// The sale of the current hour, with its counts.
#[utoipa::path(get, path = "/api/v1/sales/current", tag = "flash-sales",
    responses(
        (status = 200, description = "The current sale", body = SaleView),
        (status = 409, description = "`no_active_sale` (flash sales are off)", body = ErrorBody)))]
pub(crate) async fn current(State(state): State<AppState>) -> Result<Json<SaleView>, ServiceError> {
    let id = state.services.sales.current().await?.id;
    Ok(Json(state.services.sales.sale(id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SalesQuery {
    /// Return sales with an id below this (`next_before` of the previous page); from the
    /// newest when left out.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size, 1 to 1,000 (default 50).
    #[param(minimum = 1, maximum = 1_000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SalesPage {
    pub sales: Vec<SaleView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// Sales, the current and past ones, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/sales", tag = "flash-sales",
    params(SalesQuery),
    responses((status = 200, description = "A page of sales", body = SalesPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SalesQuery>,
) -> Result<Json<SalesPage>, ServiceError> {
    if q.before.is_some_and(|b| b < 1) {
        return Err(DomainError::invalid("before", "must be 1 or more").into());
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=SALES_PAGE_MAX).contains(&limit) {
        return Err(DomainError::invalid("limit", format!("must be 1 to {SALES_PAGE_MAX}")).into());
    }
    let sales = state.services.sales.list(q.before, limit).await?;
    let next_before = (sales.len() == limit as usize)
        .then(|| sales.last().map(|s| s.id))
        .flatten();
    Ok(Json(SalesPage {
        sales: sales.into_iter().map(SaleView::from).collect(),
        next_before,
    }))
}

/// A sale, current or past, with its counts.
#[utoipa::path(get, path = "/api/v1/sales/{id}", tag = "flash-sales",
    params(("id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The sale", body = SaleView),
        (status = 404, description = "No such sale", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    PathId(SaleId(id)): PathId<SaleId>,
) -> Result<Json<SaleView>, ServiceError> {
    Ok(Json(state.services.sales.sale(id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ItemsQuery {
    /// 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SaleItemView {
    pub id: i64,
    pub name: String,
    pub image_url: String,
    pub sold: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemsPage {
    pub items: Vec<SaleItemView>,
    pub next_cursor: Option<i64>,
}

/// A sale's items, a page at a time.
#[utoipa::path(get, path = "/api/v1/sales/{id}/items", tag = "flash-sales",
    params(("id" = i64, Path, minimum = 1), ItemsQuery),
    responses(
        (status = 200, description = "A page of items", body = ItemsPage),
        (status = 404, description = "No such sale", body = ErrorBody)))]
pub(crate) async fn items(
    State(state): State<AppState>,
    PathId(SaleId(id)): PathId<SaleId>,
    ApiQuery(q): ApiQuery<ItemsQuery>,
) -> Result<Json<ItemsPage>, ServiceError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(DomainError::invalid("limit", format!("must be 1 to {PAGE_MAX}")).into());
    }
    let page = state
        .services
        .sales
        .items(id, q.cursor.unwrap_or(0), limit)
        .await?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|i| i.id))
        .flatten();
    Ok(Json(ItemsPage {
        items: page
            .iter()
            .map(|i| SaleItemView {
                id: i.id,
                name: i.name.clone(),
                image_url: i.image_url.clone(),
                sold: i.sold_to.is_some(),
            })
            .collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PurchasesQuery {
    /// 1 to 128 characters, no white space.
    #[serde(default)]
    #[param(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$")]
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PurchasesView {
    pub sale_id: i64,
    pub user_id: String,
    pub items: Vec<ItemView>,
}

/// The items a user bought in a sale.
#[utoipa::path(get, path = "/api/v1/sales/{id}/purchases", tag = "flash-sales",
    params(("id" = i64, Path, minimum = 1), PurchasesQuery),
    responses(
        (status = 200, description = "The user's items", body = PurchasesView),
        (status = 404, description = "No such sale", body = ErrorBody)))]
pub(crate) async fn purchases(
    State(state): State<AppState>,
    PathId(SaleId(id)): PathId<SaleId>,
    ApiQuery(q): ApiQuery<PurchasesQuery>,
) -> Result<Json<PurchasesView>, ServiceError> {
    let user = UserId::parse(&q.user_id)?;
    let items = state.services.sales.purchases(id, user.clone()).await?;
    Ok(Json(PurchasesView {
        sale_id: id,
        user_id: user.as_str().to_owned(),
        items: items.iter().map(ItemView::from).collect(),
    }))
}

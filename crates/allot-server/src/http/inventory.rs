//! Inventory over HTTP: `/api/v1/inventory` (stock levels, a product's stock and movements,
//! reservations, adjustments, reorder points, low-stock alerts).
//!
//! Bodies are typed, then parsed into domain types: a missing or mistyped field is answered 422
//! `invalid_argument` naming it, like a value out of range; nothing is changed then.

use allot_domain::DomainError;
use allot_domain::catalog::{ProductId, Sku, WarehouseId};
use allot_domain::inventory::{
    Adjustment, Holder, Quantity, Reason, Reorder, ReservationId, ReservationTtl,
};
use allot_storage::{Movement, Reservation, StockAlert, StockLevel};
use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery, PathId, field_id, whole, whole_required};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::service::inventory::{LevelFilter, level_cursor};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/inventory", get(list))
        .route("/api/v1/inventory/alerts", get(alerts))
        .route("/api/v1/inventory/reserve", post(reserve))
        .route("/api/v1/inventory/release", post(release))
        .route("/api/v1/inventory/confirm", post(confirm))
        .route("/api/v1/inventory/adjust", post(adjust))
        .route(
            "/api/v1/inventory/reservations/{reservation_id}",
            get(read_reservation),
        )
        .route("/api/v1/inventory/{product_id}", get(product))
        .route("/api/v1/inventory/{product_id}/movements", get(movements))
        .route(
            "/api/v1/inventory/{product_id}/reservations",
            get(product_reservations),
        )
        .route("/api/v1/inventory/{product_id}/reorder", put(reorder))
}

// Views.

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StockLevelView {
    pub product_id: i64,
    pub sku: String,
    pub warehouse_id: i64,
    pub warehouse_code: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// on_hand - reserved; never negative.
    pub available: i64,
    pub reorder_threshold: Option<i64>,
    pub reorder_quantity: Option<i64>,
    /// Available is at or below the reorder threshold.
    pub low_stock: bool,
    /// A low-stock alert is open for this product in this warehouse.
    pub alert_open: bool,
    pub updated_at: String,
}

impl From<StockLevel> for StockLevelView {
    fn from(l: StockLevel) -> Self {
        let available = l.available();
        StockLevelView {
            product_id: l.product_id.get(),
            sku: l.sku,
            warehouse_id: l.warehouse_id.get(),
            warehouse_code: l.warehouse_code,
            on_hand: l.on_hand,
            reserved: l.reserved,
            available,
            reorder_threshold: l.reorder_threshold,
            reorder_quantity: l.reorder_quantity,
            low_stock: l.reorder_threshold.is_some_and(|t| available <= t),
            alert_open: l.low_alert_open,
            updated_at: rfc3339(l.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InventoryPageView {
    pub levels: Vec<StockLevelView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MovementView {
    pub id: i64,
    pub warehouse_id: i64,
    /// `stock_in`, `stock_out`, `reservation`, `release`, `adjustment` or `expiry`.
    pub kind: &'static str,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reservation_id: Option<i64>,
    pub reason: Option<String>,
    pub at: String,
}

impl From<Movement> for MovementView {
    fn from(m: Movement) -> Self {
        MovementView {
            id: m.id,
            warehouse_id: m.warehouse_id.get(),
            kind: m.kind.as_str(),
            on_hand_delta: m.on_hand_delta,
            reserved_delta: m.reserved_delta,
            reservation_id: m.reservation_id,
            reason: m.reason,
            at: rfc3339(m.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductInventoryView {
    pub product_id: i64,
    pub sku: String,
    /// Totals over every warehouse.
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub warehouses: Vec<StockLevelView>,
    /// The latest movements (up to 50), newest first.
    pub movements: Vec<MovementView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReservationView {
    pub id: i64,
    pub product_id: i64,
    pub warehouse_id: i64,
    pub quantity: i64,
    pub holder: String,
    /// `pending`, `confirmed`, `released` or `expired`.
    pub status: &'static str,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> Self {
        ReservationView {
            id: r.id.get(),
            product_id: r.product_id.get(),
            warehouse_id: r.warehouse_id.get(),
            quantity: r.quantity,
            holder: r.holder,
            status: r.status.as_str(),
            expires_at: rfc3339(r.expires_at),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertView {
    pub id: i64,
    pub product_id: i64,
    pub warehouse_id: i64,
    /// Available stock when the alert was raised.
    pub available: i64,
    pub threshold: i64,
    pub raised_at: String,
    pub cleared_at: Option<String>,
    pub open: bool,
}

impl From<StockAlert> for AlertView {
    fn from(a: StockAlert) -> Self {
        AlertView {
            id: a.id,
            product_id: a.product_id.get(),
            warehouse_id: a.warehouse_id.get(),
            available: a.available,
            threshold: a.threshold,
            raised_at: rfc3339(a.raised_at),
            open: a.cleared_at.is_none(),
            cleared_at: a.cleared_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MovementPageView {
    /// Newest first.
    pub movements: Vec<MovementView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReservationPageView {
    /// Newest first, whatever their status.
    pub reservations: Vec<ReservationView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertPageView {
    pub alerts: Vec<AlertView>,
    pub next_cursor: Option<String>,
}

// Request bodies.

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReserveBody {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub product_id: i64,
    /// 1 to 1,000,000 units, served whole from one warehouse.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "whole_required")]
    pub quantity: i64,
    /// The order, cart or other reference holding the stock: 1 to 128 characters, trimmed;
    /// no control characters.
    #[schema(
        max_length = 128,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub holder: String,
    /// Served from here if it has the whole quantity available; else from the warehouse with
    /// the most available.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub warehouse_id: Option<i64>,
    /// Lifetime: 1 s to 7 days [default: 900]. Unconfirmed past it, the stock is released.
    #[schema(minimum = 1, maximum = 604_800)]
    #[serde(default, deserialize_with = "whole")]
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReservationRef {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub reservation_id: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AdjustBody {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub product_id: i64,
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub warehouse_id: i64,
    /// `set` (on hand becomes `quantity`, 0 to 1e9) or `add` (on hand moves by `quantity`,
    /// non-zero, negative takes out).
    pub mode: AdjustMode,
    #[schema(minimum = -1_000_000_000_i64, maximum = 1_000_000_000_i64)]
    #[serde(deserialize_with = "whole_required")]
    pub quantity: i64,
    /// Why: 1 to 500 characters (trimmed), kept in the ledger.
    #[schema(max_length = 500, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReorderBody {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub warehouse_id: i64,
    /// Low at or below this many available (0 to 1e9); null removes the reorder point.
    #[schema(minimum = 0, maximum = 1_000_000_000_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub reorder_threshold: Option<i64>,
    /// Units to reorder (1 to 1e9); required with a threshold.
    #[schema(minimum = 1, maximum = 1_000_000_000_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub reorder_quantity: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AdjustMode {
    Set,
    Add,
}

// Handlers.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this warehouse.
    #[param(minimum = 1)]
    pub warehouse_id: Option<i64>,
    /// Only levels at or below their reorder threshold.
    pub low_stock: Option<bool>,
    /// Only this product (case-insensitive).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: Option<String>,
    /// 1 to 500 [default: 50].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (`<product id>.<warehouse id>`).
    #[param(pattern = "^[1-9][0-9]{0,17}[.][1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

/// Stock levels by product and warehouse, with filters and cursor pagination.
#[utoipa::path(get, path = "/api/v1/inventory", tag = "inventory",
    params(ListParams),
    responses(
        (status = 200, description = "A page of stock levels, by product then warehouse", body = InventoryPageView),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<InventoryPageView>, ServiceError> {
    let filter = LevelFilter {
        warehouse: q
            .warehouse_id
            .map(|w| field_id(w, "warehouse_id", WarehouseId::parse))
            .transpose()?,
        low_only: q.low_stock.unwrap_or(false),
        sku: q.sku.as_deref().map(Sku::parse).transpose()?,
        after: q.cursor.as_deref().map(level_cursor).transpose()?,
        limit: q.limit,
    };
    let page = state.services.inventory.levels(filter).await?;
    Ok(Json(InventoryPageView {
        levels: page.levels.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A product's stock in each warehouse, with totals and its latest movements.
#[utoipa::path(get, path = "/api/v1/inventory/{product_id}", tag = "inventory",
    params(("product_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The product's stock", body = ProductInventoryView),
        (status = 404, description = "No such product", body = ErrorBody)))]
pub(crate) async fn product(
    State(state): State<AppState>,
    PathId(id): PathId<ProductId>,
) -> Result<Json<ProductInventoryView>, ServiceError> {
    let (product, inventory) = state.services.inventory.product(id).await?;
    let on_hand = inventory.levels.iter().map(|l| l.on_hand).sum();
    let reserved = inventory.levels.iter().map(|l| l.reserved).sum();
    Ok(Json(ProductInventoryView {
        product_id: product.id.get(),
        sku: product.sku,
        on_hand,
        reserved,
        available: on_hand - reserved,
        warehouses: inventory.levels.into_iter().map(Into::into).collect(),
        movements: inventory.movements.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LedgerParams {
    /// 1 to 500 [default: 50].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(minimum = 1)]
    pub cursor: Option<i64>,
}

/// A product's ledger, newest first, paged: every movement of its stock in any warehouse.
#[utoipa::path(get, path = "/api/v1/inventory/{product_id}/movements", tag = "inventory",
    params(("product_id" = i64, Path, minimum = 1), LedgerParams),
    responses(
        (status = 200, description = "A page of movements, newest first", body = MovementPageView),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn movements(
    State(state): State<AppState>,
    PathId(id): PathId<ProductId>,
    ApiQuery(q): ApiQuery<LedgerParams>,
) -> Result<Json<MovementPageView>, ServiceError> {
    let page = state
        .services
        .inventory
        .movements(id, q.cursor, q.limit)
        .await?;
    Ok(Json(MovementPageView {
        movements: page.movements.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A product's reservations, newest first, paged, whatever their status (pending,
/// confirmed, released, expired).
#[utoipa::path(get, path = "/api/v1/inventory/{product_id}/reservations", tag = "inventory",
    params(("product_id" = i64, Path, minimum = 1), LedgerParams),
    responses(
        (status = 200, description = "A page of reservations, newest first", body = ReservationPageView),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn product_reservations(
    State(state): State<AppState>,
    PathId(id): PathId<ProductId>,
    ApiQuery(q): ApiQuery<LedgerParams>,
) -> Result<Json<ReservationPageView>, ServiceError> {
    let page = state
        .services
        .inventory
        .reservations(id, q.cursor, q.limit)
        .await?;
    Ok(Json(ReservationPageView {
        reservations: page.reservations.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reserve stock of a product, whole, in one warehouse: the preferred one if it has the
/// quantity available, else the one with the most available. Never split across warehouses.
#[utoipa::path(post, path = "/api/v1/inventory/reserve", tag = "inventory",
    request_body = ReserveBody,
    responses(
        (status = 201, description = "Reserved; pending until confirmed, released or expired", body = ReservationView),
        (status = 404, description = "No such product or preferred warehouse", body = ErrorBody),
        (status = 409, description = "`out_of_stock`, with `available_total` (all warehouses together)", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field; nothing reserved", body = ErrorBody)))]
pub(crate) async fn reserve(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReserveBody>,
) -> Result<(http::StatusCode, Json<ReservationView>), ServiceError> {
    let product = field_id(body.product_id, "product_id", ProductId::parse)?;
    let quantity = Quantity::parse(body.quantity)?;
    let holder = Holder::parse(&body.holder)?;
    let preferred = body
        .warehouse_id
        .map(|w| field_id(w, "warehouse_id", WarehouseId::parse))
        .transpose()?;
    let ttl = match body.ttl_seconds {
        Some(s) => ReservationTtl::from_secs(s)?,
        None => ReservationTtl::default(),
    };
    let r = state
        .services
        .inventory
        .reserve(product, quantity, holder, preferred, ttl)
        .await?;
    Ok((http::StatusCode::CREATED, Json(r.into())))
}

fn reservation_ref(body: &ReservationRef) -> Result<ReservationId, DomainError> {
    field_id(body.reservation_id, "reservation_id", ReservationId::parse)
}

/// Release a pending reservation: its stock is available again.
#[utoipa::path(post, path = "/api/v1/inventory/release", tag = "inventory",
    request_body = ReservationRef,
    responses(
        (status = 200, description = "Released", body = ReservationView),
        (status = 404, description = "No such reservation", body = ErrorBody),
        (status = 409, description = "`reservation_not_pending`, with its `status` (released, confirmed or expired)", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn release(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReservationRef>,
) -> Result<Json<ReservationView>, ServiceError> {
    let id = reservation_ref(&body)?;
    Ok(Json(state.services.inventory.release(id).await?.into()))
}

/// Confirm a pending reservation: its units leave stock (on hand and reserved both drop).
#[utoipa::path(post, path = "/api/v1/inventory/confirm", tag = "inventory",
    request_body = ReservationRef,
    responses(
        (status = 200, description = "Confirmed", body = ReservationView),
        (status = 404, description = "No such reservation", body = ErrorBody),
        (status = 409, description = "`reservation_not_pending`, with its `status`", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReservationRef>,
) -> Result<Json<ReservationView>, ServiceError> {
    let id = reservation_ref(&body)?;
    Ok(Json(state.services.inventory.confirm(id).await?.into()))
}

/// A reservation.
#[utoipa::path(get, path = "/api/v1/inventory/reservations/{reservation_id}", tag = "inventory",
    params(("reservation_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        (status = 404, description = "No such reservation", body = ErrorBody)))]
pub(crate) async fn read_reservation(
    State(state): State<AppState>,
    PathId(id): PathId<ReservationId>,
) -> Result<Json<ReservationView>, ServiceError> {
    Ok(Json(state.services.inventory.reservation(id).await?.into()))
}

/// Adjust the stock on hand by hand (set or add), with a reason kept in the ledger. The first
/// adjustment of a product in a warehouse creates its stock level.
#[utoipa::path(post, path = "/api/v1/inventory/adjust", tag = "inventory",
    request_body = AdjustBody,
    responses(
        (status = 200, description = "The stock level after", body = StockLevelView),
        (status = 404, description = "No such product or warehouse", body = ErrorBody),
        (status = 409, description = "`below_reserved`: on hand would fall below what is reserved", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field; nothing changed", body = ErrorBody)))]
pub(crate) async fn adjust(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AdjustBody>,
) -> Result<Json<StockLevelView>, ServiceError> {
    let product = field_id(body.product_id, "product_id", ProductId::parse)?;
    let warehouse = field_id(body.warehouse_id, "warehouse_id", WarehouseId::parse)?;
    let adjustment = match body.mode {
        AdjustMode::Set => Adjustment::set(body.quantity)?,
        AdjustMode::Add => Adjustment::add(body.quantity)?,
    };
    let reason = Reason::parse(&body.reason)?;
    let level = state
        .services
        .inventory
        .adjust(product, warehouse, adjustment, reason)
        .await?;
    Ok(Json(level.into()))
}

/// Set (or remove) the reorder point of a product in a warehouse. A threshold that leaves
/// the stock low raises the alert at once; one that leaves it above clears it.
#[utoipa::path(put, path = "/api/v1/inventory/{product_id}/reorder", tag = "inventory",
    params(("product_id" = i64, Path, minimum = 1)),
    request_body = ReorderBody,
    responses(
        (status = 200, description = "The stock level after", body = StockLevelView),
        (status = 404, description = "No such product or warehouse", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn reorder(
    State(state): State<AppState>,
    PathId(product): PathId<ProductId>,
    ApiJson(body): ApiJson<ReorderBody>,
) -> Result<Json<StockLevelView>, ServiceError> {
    let warehouse = field_id(body.warehouse_id, "warehouse_id", WarehouseId::parse)?;
    let reorder = match body.reorder_threshold {
        None => None,
        Some(t) => {
            let q = body
                .reorder_quantity
                .ok_or_else(|| DomainError::invalid("reorder_quantity", "is required"))?;
            Some(Reorder::parse(t, q)?)
        }
    };
    let level = state
        .services
        .inventory
        .set_reorder(product, warehouse, reorder)
        .await?;
    Ok(Json(level.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertParams {
    /// Only alerts not cleared yet [default: false].
    pub open: Option<bool>,
    /// 1 to 500 [default: 50].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// Low-stock alerts, oldest first: one is raised when available stock falls to or below the
/// threshold, and cleared when it is back above.
#[utoipa::path(get, path = "/api/v1/inventory/alerts", tag = "inventory",
    params(AlertParams),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPageView),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn alerts(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertParams>,
) -> Result<Json<AlertPageView>, ServiceError> {
    let page = state
        .services
        .inventory
        .alerts(q.open.unwrap_or(false), q.cursor.unwrap_or(0), q.limit)
        .await?;
    Ok(Json(AlertPageView {
        alerts: page.alerts.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

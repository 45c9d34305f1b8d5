//! Shipments and returns of an order's lines over HTTP: `/api/v1/orders/{order_id}/shipments`
//! (ship, list), `/api/v1/orders/{order_id}/returns` (open, list) and
//! `/api/v1/returns/{return_id}/approve|reject|receive`. A customer sees and returns only its
//! own orders' lines (another's order is 404, as everywhere).

use allot_domain::shipment::{
    CARRIER_MAX_CHARS, RETURN_REASON_MAX_CHARS, TRACKING_NUMBER_MAX_CHARS,
};
use allot_storage::{ItemLine, OrderReturn, ReturnMove, Shipment};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiJson, OrderId, PathId, ReturnId, whole, whole_required};
use super::order::visible_order;
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::Caller;
use crate::service::shipment::LineInput;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/orders/{order_id}/shipments",
            get(list_shipments).post(ship),
        )
        .route(
            "/api/v1/orders/{order_id}/returns",
            get(list_returns).post(open_return),
        )
        .route("/api/v1/returns/{return_id}/approve", post(approve))
        .route("/api/v1/returns/{return_id}/reject", post(reject))
        .route("/api/v1/returns/{return_id}/receive", post(receive))
}

// Views.

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemLineView {
    /// The order line (its position in the order's `lines`, from 0).
    pub line_id: i64,
    pub product_id: i64,
    pub quantity: i64,
}

fn item_lines(lines: Vec<ItemLine>) -> Vec<ItemLineView> {
    lines
        .into_iter()
        .map(|l| ItemLineView {
            line_id: l.line_id,
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShipmentView {
    pub id: i64,
    pub order_id: i64,
    /// Null for the rest of an order shipped by its move to `fulfilled` (`PUT .../status`).
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub lines: Vec<ItemLineView>,
    pub created_at: String,
}

impl From<Shipment> for ShipmentView {
    fn from(s: Shipment) -> Self {
        ShipmentView {
            id: s.id,
            order_id: s.order_id,
            carrier: s.carrier,
            tracking_number: s.tracking_number,
            lines: item_lines(s.lines),
            created_at: rfc3339(s.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShipmentMadeView {
    pub shipment: ShipmentView,
    /// Every line has shipped whole now: the order moved to `fulfilled` with this shipment.
    pub order_fulfilled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShipmentsView {
    pub order_id: i64,
    /// Oldest first.
    pub shipments: Vec<ShipmentView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReturnView {
    pub id: i64,
    pub order_id: i64,
    /// `requested`, `approved`, `rejected` or `received`.
    pub status: &'static str,
    pub reason: String,
    /// Set on receipt: where the items went back (or were received, for a write-off).
    pub warehouse_id: Option<i64>,
    /// Set on receipt: `restock` or `write_off`.
    pub disposition: Option<&'static str>,
    /// Refunded with the receipt (`refund_minor`), through the order's refunds.
    pub refunded_minor: i64,
    pub lines: Vec<ItemLineView>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<OrderReturn> for ReturnView {
    fn from(r: OrderReturn) -> Self {
        ReturnView {
            id: r.id,
            order_id: r.order_id,
            status: r.status.as_str(),
            reason: r.reason,
            warehouse_id: r.warehouse_id,
            disposition: r.disposition.map(|d| d.as_str()),
            refunded_minor: r.refunded_minor,
            lines: item_lines(r.lines),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReturnsView {
    pub order_id: i64,
    /// Oldest first.
    pub returns: Vec<ReturnView>,
}

// Request bodies.

/// A line of a shipment or a return: `line_id` or `product_id` (one of them), and units.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ItemLineBody {
    /// The order line's position in the order's `lines`, from 0.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "whole")]
    pub line_id: Option<i64>,
    /// The line's product (each product is on one line of an order).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub product_id: Option<i64>,
    /// 1 to 1,000,000; never more than is left to ship (or to return) of the line.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "whole_required")]
    pub quantity: i64,
}

fn inputs(lines: &[ItemLineBody]) -> Vec<LineInput> {
    lines
        .iter()
        .map(|l| LineInput {
            line_id: l.line_id,
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ShipmentBody {
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<ItemLineBody>,
    /// 1 to 64 characters (trimmed), no control characters.
    #[schema(
        max_length = 64,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub carrier: String,
    /// 1 to 128 characters (trimmed), no control characters; sent to the customer.
    #[schema(
        max_length = 128,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub tracking_number: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReturnBody {
    /// 1 to 100 lines, each of shipped units not already returned or under an open return.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<ItemLineBody>,
    /// Why, 1 to 500 characters (trimmed), no control characters.
    #[schema(
        max_length = 500,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReceiveBody {
    /// The warehouse the items arrive at (and, for `restock`, go back on hand in).
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub warehouse_id: i64,
    /// `restock`: back on hand through the stock ledger (`stock_in`); `write_off`: recorded,
    /// stock unchanged.
    #[schema(pattern = "^(restock|write_off)$")]
    pub disposition: String,
    /// Minor units to refund with the receipt, in its transaction, as
    /// `POST /api/v1/orders/{order_id}/refunds` would (oldest captured payment first, never
    /// past the captures: refused, the receipt is refused with it).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub refund_minor: Option<i64>,
}

const _: () = assert!(CARRIER_MAX_CHARS == 64 && TRACKING_NUMBER_MAX_CHARS == 128);
const _: () = assert!(RETURN_REASON_MAX_CHARS == 500);

// Handlers.

/// Ship lines of a confirmed (paid) order, with the carrier and tracking number. A line never
/// ships more than is left of it, however many shipments run at once (the one that would is
/// refused whole). The shipment that completes the order moves it to `fulfilled` in the same
/// transaction (`OrderShipped`, `OrderStatusChanged`, `OrderFulfilled`); the customer is
/// notified with the tracking number (rule `order_shipped`: email and in-app).
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/shipments", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    request_body = ShipmentBody,
    responses(
        (status = 201, description = "Shipped", body = ShipmentMadeView),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`order_not_shippable` (with the order's `status`: only a confirmed order ships), `shipment_exceeds_remaining` (with `product_id` and `available_total`: what is left to ship of the line); nothing written", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field (a line of no line of the order names `lines`)", body = ErrorBody)))]
pub(crate) async fn ship(
    State(state): State<AppState>,
    PathId(OrderId(order)): PathId<OrderId>,
    ApiJson(body): ApiJson<ShipmentBody>,
) -> Result<(StatusCode, Json<ShipmentMadeView>), ServiceError> {
    let made = state
        .services
        .orders
        .ship(
            order,
            &inputs(&body.lines),
            &body.carrier,
            &body.tracking_number,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ShipmentMadeView {
            shipment: made.shipment.into(),
            order_fulfilled: made.fulfilled,
        }),
    ))
}

/// The order's shipments, oldest first.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}/shipments", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Shipments, oldest first", body = ShipmentsView),
        (status = 404, description = "No such order (or another customer's)", body = ErrorBody)))]
pub(crate) async fn list_shipments(
    State(state): State<AppState>,
    caller: Caller,
    PathId(OrderId(order)): PathId<OrderId>,
) -> Result<Json<ShipmentsView>, ServiceError> {
    if caller.customer()?.is_some() {
        visible_order(&state, &caller, order).await?;
    }
    let shipments = state.services.orders.shipments(order).await?;
    Ok(Json(ShipmentsView {
        order_id: order,
        shipments: shipments.into_iter().map(Into::into).collect(),
    }))
}

/// Open a return of shipped lines (the order's customer, or support): units not already
/// returned or under an open return. Staff then approve or reject it, and receive it.
/// `ReturnRequested` is emitted with it.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/returns", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    request_body = ReturnBody,
    responses(
        (status = 201, description = "Requested", body = ReturnView),
        (status = 404, description = "No such order (or another customer's)", body = ErrorBody),
        (status = 409, description = "`order_not_returnable` (with the order's `status`), `return_exceeds_shipped` (with `product_id` and `available_total`: what may still come back of the line); nothing written", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn open_return(
    State(state): State<AppState>,
    caller: Caller,
    PathId(OrderId(order)): PathId<OrderId>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<(StatusCode, Json<ReturnView>), ServiceError> {
    if caller.customer()?.is_some() {
        visible_order(&state, &caller, order).await?;
    }
    let made = state
        .services
        .orders
        .open_return(order, &inputs(&body.lines), &body.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(made.into())))
}

/// The order's returns, oldest first.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}/returns", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Returns, oldest first", body = ReturnsView),
        (status = 404, description = "No such order (or another customer's)", body = ErrorBody)))]
pub(crate) async fn list_returns(
    State(state): State<AppState>,
    caller: Caller,
    PathId(OrderId(order)): PathId<OrderId>,
) -> Result<Json<ReturnsView>, ServiceError> {
    if caller.customer()?.is_some() {
        visible_order(&state, &caller, order).await?;
    }
    let returns = state.services.orders.returns(order).await?;
    Ok(Json(ReturnsView {
        order_id: order,
        returns: returns.into_iter().map(Into::into).collect(),
    }))
}

async fn moved(
    state: &AppState,
    id: i64,
    to: ReturnMove,
) -> Result<Json<ReturnView>, ServiceError> {
    Ok(Json(
        state.services.orders.move_return(id, to).await?.into(),
    ))
}

/// Approve a requested return (`ReturnApproved`): the items may be sent back.
#[utoipa::path(post, path = "/api/v1/returns/{return_id}/approve", tag = "orders",
    params(("return_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Approved", body = ReturnView),
        (status = 404, description = "No such return", body = ErrorBody),
        (status = 409, description = "`return_status_conflict` with `from` and `to`: only a requested return is approved", body = ErrorBody)))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    PathId(ReturnId(id)): PathId<ReturnId>,
) -> Result<Json<ReturnView>, ServiceError> {
    moved(&state, id, ReturnMove::Approve).await
}

/// Reject a requested return (`ReturnRejected`): its units may be asked back again.
#[utoipa::path(post, path = "/api/v1/returns/{return_id}/reject", tag = "orders",
    params(("return_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Rejected", body = ReturnView),
        (status = 404, description = "No such return", body = ErrorBody),
        (status = 409, description = "`return_status_conflict` with `from` and `to`: only a requested return is rejected", body = ErrorBody)))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    PathId(ReturnId(id)): PathId<ReturnId>,
) -> Result<Json<ReturnView>, ServiceError> {
    moved(&state, id, ReturnMove::Reject).await
}

/// Receive an approved return's items at a warehouse (`ReturnReceived`): `restock` puts each
/// line back on hand there through the stock ledger (`stock_in`), `write_off` records them
/// without stock. `refund_minor` refunds that much in the same transaction (`OrderRefunded`
/// with `ReturnReceived`); a refund can also follow (`POST /api/v1/orders/{order_id}/refunds`).
#[utoipa::path(post, path = "/api/v1/returns/{return_id}/receive", tag = "orders",
    params(("return_id" = i64, Path, minimum = 1)),
    request_body = ReceiveBody,
    responses(
        (status = 200, description = "Received", body = ReturnView),
        (status = 404, description = "No such return", body = ErrorBody),
        (status = 409, description = "`return_status_conflict` with `from` and `to`: only an approved return is received; `refund_exceeds_capture` (with `available_total`) for a `refund_minor` past what is left to refund; nothing written", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field (an unknown warehouse names `warehouse_id`)", body = ErrorBody)))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    PathId(ReturnId(id)): PathId<ReturnId>,
    ApiJson(body): ApiJson<ReceiveBody>,
) -> Result<Json<ReturnView>, ServiceError> {
    let to = crate::service::order::Orders::receipt(
        body.warehouse_id,
        &body.disposition,
        body.refund_minor,
    )?;
    moved(&state, id, to).await
}

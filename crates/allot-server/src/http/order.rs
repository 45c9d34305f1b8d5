//! Orders over HTTP: `/api/v1/orders` (place, list, read) and `/api/v1/orders/{id}/status`.
//!
//! Bodies are typed, then parsed into domain types: a missing or mistyped field is answered 422
//! `invalid_argument` naming it; nothing is changed then. `POST /api/v1/orders` takes an
//! `Idempotency-Key` header, kept with the order in the same transaction: a retry answers the
//! first order (200, `Idempotent-Replayed: true`) and changes nothing.

use allot_domain::DomainError;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::UploadedCode;
use allot_domain::discount::DiscountCode;
use allot_domain::inventory::{Quantity, Reason};
use allot_domain::order::{OrderStatus, ShippingAddress};
use allot_domain::user::UserId;
use allot_storage::{AppliedCode, Order};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{
    ApiJson, ApiQuery, OrderId, PathId, field_id, invalid, named, whole, whole_required,
};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::Caller;
use crate::policy::may_set_order_status;
use crate::service::order::{OrderFilter, PlaceOrder};
use crate::time::parse_rfc3339;
use allot_domain::auth::Role;

pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orders", get(list).post(place))
        .route("/api/v1/orders/{order_id}", get(read).put(edit))
        .route("/api/v1/orders/{order_id}/status", put(change_status))
}

// Views.

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderLineView {
    /// The line's position in the order (from 0): what shipments and returns name.
    pub line_id: i64,
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    /// The warehouse the line's stock is reserved in (or was taken from).
    pub warehouse_id: i64,
    pub reservation_id: i64,
    /// Units of the line shipped so far (`/shipments`); the order is fulfilled when every
    /// line has shipped whole.
    pub shipped_quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AppliedCodeView {
    pub code: String,
    /// What it took off, in minor units.
    pub amount_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AppliedPromotionView {
    pub promotion_id: i64,
    /// The code that reached it; null for an automatic promotion.
    pub code: Option<String>,
    /// What it took off the lines and the shipping, in minor units.
    pub amount_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusChangeView {
    /// Null for the first entry (the order placed, pending).
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub reason: Option<String>,
    /// For a return: the warehouse the stock went back to, if chosen.
    pub warehouse_id: Option<i64>,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderView {
    pub id: i64,
    pub customer: String,
    /// `pending`, `confirmed`, `fulfilled`, `delivered`, `cancelled`, `return_requested` or
    /// `returned`.
    pub status: &'static str,
    /// Every line's currency (ISO 4217).
    pub currency: String,
    pub shipping_address: ShippingAddressBody,
    pub lines: Vec<OrderLineView>,
    /// Sum of the line totals, in minor units.
    pub subtotal_minor: i64,
    /// The promotions the order got through its hold, in the order they applied.
    pub promotions: Vec<AppliedPromotionView>,
    /// Off the lines by the promotions, first, on the subtotal.
    pub promotion_discount_minor: i64,
    /// The promotion hold the order consumed (rolled back if the order is cancelled).
    pub promotion_hold_id: Option<i64>,
    /// Applied next, on what the promotions left.
    pub coupon: Option<AppliedCodeView>,
    /// Applied last, on what the coupon left.
    pub discount_code: Option<AppliedCodeView>,
    pub shipping_minor: i64,
    /// Off the shipping by the promotions.
    pub shipping_discount_minor: i64,
    /// Subtotal less the discounts (never below zero), plus the shipping less its discount.
    pub total_minor: i64,
    /// Oldest first.
    pub history: Vec<StatusChangeView>,
    pub created_at: String,
    pub updated_at: String,
}

fn applied(c: AppliedCode) -> AppliedCodeView {
    AppliedCodeView {
        code: c.code,
        amount_minor: c.amount_minor,
    }
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        OrderView {
            id: o.id,
            customer: o.customer,
            status: o.status.as_str(),
            currency: o.currency,
            shipping_address: o.shipping_address.into(),
            lines: o
                .lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| OrderLineView {
                    line_id: i as i64,
                    product_id: l.product_id.get(),
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                    line_total_minor: l.line_total_minor,
                    warehouse_id: l.warehouse_id.get(),
                    reservation_id: l.reservation_id,
                    shipped_quantity: l.shipped_quantity,
                })
                .collect(),
            subtotal_minor: o.subtotal_minor,
            promotions: o
                .promotions
                .into_iter()
                .map(|p| AppliedPromotionView {
                    promotion_id: p.promotion_id,
                    code: p.code,
                    amount_minor: p.amount_minor,
                })
                .collect(),
            promotion_discount_minor: o.promotion_minor,
            promotion_hold_id: o.promotion_hold_id,
            coupon: o.coupon.map(applied),
            discount_code: o.discount_code.map(applied),
            shipping_minor: o.shipping_minor,
            shipping_discount_minor: o.shipping_discount_minor,
            total_minor: o.total_minor,
            history: o
                .history
                .into_iter()
                .map(|h| StatusChangeView {
                    from: h.from.map(OrderStatus::as_str),
                    to: h.to.as_str(),
                    reason: h.reason,
                    warehouse_id: h.warehouse_id,
                    at: rfc3339(h.at),
                })
                .collect(),
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderPageView {
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

// Request bodies.

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PlaceOrderBody {
    /// The customer's user id (owner of an allocated coupon): 1 to 128 characters, no white
    /// space. A customer may leave it out (itself).
    #[schema(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    #[serde(default)]
    pub customer: Option<String>,
    pub shipping_address: ShippingAddressBody,
    /// 1 to 100 lines, each product once; every product active and priced in the same
    /// currency.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<OrderLineBody>,
    /// An uploaded coupon: one use is redeemed by the order.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub coupon: Option<String>,
    /// A one-time discount code: used by the order; takes `--discount-code-percent` off.
    #[schema(pattern = "^[A-HJ-NP-Za-hj-np-z2-9]{7,8}$")]
    pub discount_code: Option<String>,
    /// The shipping amount in the order's currency, 0 to 1,000,000,000,000 [default: 0];
    /// added to the total, less what a free-shipping promotion takes off.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub shipping_minor: Option<i64>,
    /// A promotion hold (`POST /api/v1/promotions/holds`) made for this customer and these
    /// very lines at catalog prices: its discounts apply first and it is redeemed by the order,
    /// in the same transaction (rolled back if the order is cancelled).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub promotion_hold_id: Option<i64>,
    /// Promotion codes (coupons, campaign codes or discount codes bound to promotions), at
    /// most 20: the order is held and evaluated by the promotion engine with them, and every
    /// one must give it something (else 409 `promotion_code_refused` with the reason, or 422
    /// `unknown_code`). Not with `promotion_hold_id` (the hold carries its codes).
    /// Each 1 to 64 letters, digits, `_` or `-`, matched without regard to case.
    #[schema(max_items = 20)]
    #[serde(default)]
    pub codes: Option<Vec<String>>,
}

/// A pending order as it should be: the same fields as a new order's, its customer kept.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EditOrderBody {
    pub shipping_address: ShippingAddressBody,
    /// 1 to 100 lines, each product once; every product active and priced in the same
    /// currency.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<OrderLineBody>,
    /// An uploaded coupon (the order's own use of it is given back first, so it may stay).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub coupon: Option<String>,
    /// A one-time discount code (the order's own may stay).
    #[schema(pattern = "^[A-HJ-NP-Za-hj-np-z2-9]{7,8}$")]
    pub discount_code: Option<String>,
    /// 0 to 1,000,000,000,000 [default: 0].
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub shipping_minor: Option<i64>,
    /// A promotion hold made for this customer and the new lines (the order's old hold is
    /// rolled back).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub promotion_hold_id: Option<i64>,
    /// Promotion codes, as for a new order (at most 20).
    #[schema(max_items = 20)]
    #[serde(default)]
    pub codes: Option<Vec<String>>,
}

/// Each field 1 to 200 characters, trimmed, no control characters.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ShippingAddressBody {
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub line1: String,
    /// Optional; empty is the same as absent.
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub line2: Option<String>,
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub city: String,
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub postal_code: String,
    /// Two letters (ISO 3166-1 alpha-2).
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub country: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct OrderLineBody {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub product_id: i64,
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "whole_required")]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct StatusBody {
    /// The status to move to: `pending`, `confirmed`, `fulfilled`, `delivered`, `cancelled`,
    /// `return_requested` or `returned`.
    #[schema(
        pattern = "^(pending|confirmed|fulfilled|delivered|cancelled|return_requested|returned)$"
    )]
    pub status: String,
    /// Why, 1 to 500 characters (trimmed); kept in the history (and the ledger for stock put
    /// back).
    #[schema(max_length = 500, pattern = r"\S")]
    pub reason: Option<String>,
    /// For `returned`: the warehouse the stock goes back to [default: where it came from].
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub warehouse_id: Option<i64>,
}

impl TryFrom<&ShippingAddressBody> for ShippingAddress {
    type Error = DomainError;

    fn try_from(a: &ShippingAddressBody) -> Result<Self, DomainError> {
        ShippingAddress::parse(
            &a.name,
            &a.line1,
            a.line2.as_deref(),
            &a.city,
            &a.postal_code,
            &a.country,
        )
    }
}

impl From<ShippingAddress> for ShippingAddressBody {
    fn from(a: ShippingAddress) -> Self {
        ShippingAddressBody {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

fn line(l: &OrderLineBody) -> Result<(ProductId, Quantity), DomainError> {
    Ok((
        field_id(l.product_id, "lines.product_id", ProductId::parse)?,
        Quantity::parse(l.quantity).map_err(named("lines.quantity"))?,
    ))
}

/// The order's customer: for a customer caller itself (its own id, or the field left out);
/// for staff the `customer` field.
fn customer(given: Option<&str>, caller: &Caller) -> Result<UserId, ServiceError> {
    let raw = match (caller.customer()?, given) {
        (Some(own), None) => own,
        (Some(_), Some(given)) => {
            caller.may_act_for(given, "customer")?;
            given.to_owned()
        }
        (None, given) => given
            .ok_or_else(|| invalid("customer", "is required"))?
            .to_owned(),
    };
    Ok(UserId::parse(&raw).map_err(named("customer"))?)
}

fn place_order(
    body: PlaceOrderBody,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<PlaceOrder, ServiceError> {
    let customer = customer(body.customer.as_deref(), caller)?;
    let shipping_address = ShippingAddress::try_from(&body.shipping_address)?;
    let lines = body.lines.iter().map(line).collect::<Result<_, _>>()?;
    let coupon = body
        .coupon
        .map(|c| UploadedCode::parse(&c).map_err(named("coupon")))
        .transpose()?;
    let discount_code = body
        .discount_code
        .map(|c| DiscountCode::parse(&c).map_err(named("discount_code")))
        .transpose()?;
    let shipping_minor = match body.shipping_minor {
        None => 0,
        Some(s) if (0..=allot_domain::order::ORDER_TOTAL_MAX).contains(&s) => s,
        Some(_) => {
            return Err(invalid(
                "shipping_minor",
                "must be 0 to 1000000000000 minor units",
            ));
        }
    };
    let promotion_hold = match body.promotion_hold_id {
        None => None,
        Some(id) if id >= 1 => Some(id),
        Some(_) => return Err(invalid("promotion_hold_id", "must be a positive integer")),
    };
    let raw_codes = body.codes.unwrap_or_default();
    if raw_codes.len() > allot_domain::promotion::CART_CODES_MAX {
        return Err(invalid(
            "codes",
            format!("at most {} codes", allot_domain::promotion::CART_CODES_MAX),
        ));
    }
    let mut codes: Vec<String> = Vec::with_capacity(raw_codes.len());
    for code in raw_codes {
        let n = code.chars().count();
        if !(1..=64).contains(&n)
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                "codes",
                "each code must be 1 to 64 letters, digits, _ or -",
            ));
        }
        let code = code.to_ascii_uppercase();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let idempotency_key = super::idempotency::key_of(headers)?;
    Ok(PlaceOrder {
        customer,
        shipping_address,
        lines,
        coupon,
        discount_code,
        shipping_minor,
        promotion_hold,
        codes,
        idempotency_key,
    })
}

// Handlers.

/// Place an order: every line's stock is reserved and the coupon and discount code are used,
/// in one atomic step (all or nothing). Prices are computed by the server in minor units. With
/// an `Idempotency-Key` header, a retry answers the first order (200, `Idempotent-Replayed:
/// true`) and changes nothing. A pending order holds its stock until confirmed or cancelled.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    request_body = PlaceOrderBody,
    params(("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 visible characters; a retry with the same key answers the first order (keys are the caller's own: another caller's same key is another order)")),
    responses(
        (status = 201, description = "Placed, pending", body = OrderView),
        (status = 200, description = "A retry of an earlier request with the same Idempotency-Key: its order, unchanged (header `Idempotent-Replayed: true`)", body = OrderView),
        (status = 400, description = "`bad_request`: not JSON", body = ErrorBody),
        (status = 409, description = "`out_of_stock` (with `product_id` and `available_total`), `coupon_unusable` (with `reason`: expired, exhausted, not_owner or bound_to_promotion), `code_already_used`, `promotion_hold_unusable` (with `reason`: not_found, not_held, expired, another_customer, another_currency, another_cart or changed), `promotion_code_refused` (with the engine's `reason`); nothing reserved or used", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field (unknown, inactive or mixed-currency products name `lines`), or `unknown_code` naming `coupon` or `discount_code`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: an order with a coupon or discount code counts as a code use of the caller (customers and anonymous callers; `Retry-After`)", body = ErrorBody)))]
pub(crate) async fn place(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrderBody>,
) -> Result<Response, ServiceError> {
    let order = place_order(body, &headers, &caller)?;
    // An order's answer tells whether its code exists (`unknown_code`, `code_already_used`,
    // `coupon_unusable`): one carrying a code counts as a code use.
    if order.coupon.is_some() || order.discount_code.is_some() || !order.codes.is_empty() {
        state
            .rate_limits
            .code_use(&super::context::caller_id(caller.0.as_ref()))?;
    }
    let (order, replayed) = state.services.orders.place(order).await?;
    let view = Json(OrderView::from(order));
    Ok(if replayed {
        (
            StatusCode::OK,
            [(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"))],
            view,
        )
            .into_response()
    } else {
        (StatusCode::CREATED, view).into_response()
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this customer's orders.
    #[param(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$")]
    pub customer: Option<String>,
    /// Only orders in this status.
    pub status: Option<String>,
    /// Only orders placed at or after (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Only orders placed before (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// `created` (oldest first, the default) or `-created` (newest first).
    #[param(pattern = "^-?created$")]
    pub sort: Option<String>,
    /// 1 to 500 [default: 50].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (made for the same sort).
    pub cursor: Option<i64>,
}

fn query_time(
    raw: Option<&str>,
    field: &'static str,
) -> Result<Option<allot_domain::UnixMillis>, ServiceError> {
    raw.map(|v| parse_rfc3339(v).ok_or_else(|| invalid(field, "must be an RFC 3339 time")))
        .transpose()
}

/// Orders, oldest first (or newest first with `sort=-created`), with filters and cursor
/// pagination.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders",
    params(ListParams),
    responses(
        (status = 200, description = "A page of orders, each with its lines, prices, codes and history", body = OrderPageView),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<OrderPageView>, ServiceError> {
    // A customer lists its own orders only, whatever it asks for.
    let customer = match (caller.customer()?, q.customer) {
        (Some(own), asked) => {
            if let Some(asked) = asked {
                caller.may_act_for(&asked, "customer")?;
            }
            Some(own)
        }
        (None, asked) => asked,
    };
    let filter = OrderFilter {
        customer: customer
            .map(|c| UserId::parse(&c).map_err(named("customer")))
            .transpose()?,
        status: q.status.as_deref().map(OrderStatus::parse).transpose()?,
        from: query_time(q.from.as_deref(), "from")?,
        until: query_time(q.until.as_deref(), "until")?,
        after: q.cursor.unwrap_or(0),
        limit: q.limit,
        newest_first: match q.sort.as_deref() {
            None | Some("created") => false,
            Some("-created") => true,
            Some(_) => return Err(invalid("sort", "must be created or -created")),
        },
    };
    let page = state.services.orders.list(filter).await?;
    Ok(Json(OrderPageView {
        orders: page.orders.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// An order with its lines, prices, codes and status history.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<OrderId>,
) -> Result<Json<OrderView>, ServiceError> {
    Ok(Json(visible_order(&state, &caller, id.0).await?.into()))
}

/// Change a pending order: its lines, quantities, shipping address, shipping, coupon, discount
/// code and promotion codes, replaced as a whole. In one transaction its reservations are
/// released and its codes and promotion hold given back, then the new content is reserved
/// and used as a new order's would be, under the same id; a refusal (stock, codes) changes
/// nothing. Totals are recomputed; `OrderUpdated` records both sides. An order past pending
/// is 409 `order_not_editable`.
#[utoipa::path(put, path = "/api/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    request_body = EditOrderBody,
    responses(
        (status = 200, description = "The order as it is now", body = OrderView),
        (status = 400, description = "`bad_request`: not JSON", body = ErrorBody),
        (status = 404, description = "No such order (a customer's view of another's order too)", body = ErrorBody),
        (status = 409, description = "`order_not_editable` (not pending), `out_of_stock` (with `product_id` and `available_total`), `coupon_unusable`, `code_already_used`, `promotion_hold_unusable`, `promotion_code_refused`; nothing changed", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field, or `unknown_code` naming `coupon` or `discount_code`; nothing changed", body = ErrorBody),
        (status = 429, description = "`rate_limited`: an edit with a coupon or discount code counts as a code use of the caller (customers and anonymous callers; `Retry-After`)", body = ErrorBody)))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<OrderId>,
    ApiJson(body): ApiJson<EditOrderBody>,
) -> Result<Json<OrderView>, ServiceError> {
    let current = visible_order(&state, &caller, id.0).await?;
    let place = PlaceOrderBody {
        customer: Some(current.customer),
        shipping_address: body.shipping_address,
        lines: body.lines,
        coupon: body.coupon,
        discount_code: body.discount_code,
        shipping_minor: body.shipping_minor,
        promotion_hold_id: body.promotion_hold_id,
        codes: body.codes,
    };
    let order = place_order(place, &HeaderMap::new(), &caller)?;
    if order.coupon.is_some() || order.discount_code.is_some() || !order.codes.is_empty() {
        state
            .rate_limits
            .code_use(&super::context::caller_id(caller.0.as_ref()))?;
    }
    let order = state.services.orders.edit(id.0, order).await?;
    Ok(Json(order.into()))
}

/// The order, if the caller may see it: a customer sees another customer's order as absent
/// (404), so order ids tell nothing about other customers.
pub(crate) async fn visible_order(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<Order, ServiceError> {
    let order = state.services.orders.get(id).await?;
    match caller.customer()? {
        Some(own) if own != order.customer => Err(ServiceError::NotFound { what: "order" }),
        _ => Ok(order),
    }
}

/// Move an order through its workflow: pending -> confirmed (reservations become stock out)
/// -> fulfilled -> delivered -> return_requested -> returned (stock back, to `warehouse_id`
/// or where it came from); pending or confirmed -> cancelled (stock released or put back,
/// coupon use and discount code given back).
#[utoipa::path(put, path = "/api/v1/orders/{order_id}/status", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The order after the move", body = OrderView),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`illegal_transition` with `from` and `to`; nothing changed", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    PathId(OrderId(order)): PathId<OrderId>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<OrderView>, ServiceError> {
    let to = OrderStatus::parse(&body.status)?;
    if let Some(role) = caller.role() {
        if !may_set_order_status(role, to) {
            return Err(ServiceError::Forbidden {
                field: Some("status"),
                message: format!(
                    "status: the role {} may not move an order to {}",
                    role.as_str(),
                    to.as_str()
                ),
            });
        }
        if role == Role::Customer {
            visible_order(&state, &caller, order).await?;
        }
    }
    let reason = body
        .reason
        .map(|r| Reason::parse(&r).map(|r| r.as_str().to_owned()))
        .transpose()?;
    let warehouse = body
        .warehouse_id
        .map(|w| field_id(w, "warehouse_id", WarehouseId::parse))
        .transpose()?;
    let order = state
        .services
        .orders
        .change_status(order, to, reason, warehouse)
        .await?;
    Ok(Json(order.into()))
}

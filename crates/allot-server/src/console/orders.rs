//! Orders: the list with the API's filters, keyset-paged, and an order's page with its lines,
//! totals, codes, address and history, its payments, shipments and returns (each shown to the
//! callers of the API call that lists them), and the statuses it may move to as buttons.

use allot_domain::UnixMillis;
use allot_domain::order::OrderStatus;
use allot_domain::user::UserId;
use allot_storage::{Order, OrderPayments, OrderReturn, Shipment};
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::Ctx;
use super::layout::error_page;
use super::ui;
use crate::ServiceError;
use crate::caller::Caller;
use crate::policy::may_set_order_status;
use crate::service::order::OrderFilter;
use crate::state::AppState;

/// Orders a page of the list shows.
const PAGE_ROWS: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/orders", get(list))
        .route("/console/orders/{order_id}", get(detail))
}

/// The list's filters as the browser sends them (a GET form): read as text, parsed below, so
/// a bad value is named on the page rather than refused by the extractor.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    customer: Option<String>,
    /// A day, `YYYY-MM-DD` (UTC): orders placed on or after it.
    from: Option<String>,
    /// A day, `YYYY-MM-DD` (UTC): orders placed on or before it.
    until: Option<String>,
    /// `oldest` lists oldest first; anything else newest first (what an operator looks for).
    order: Option<String>,
    after: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The start of a UTC day given as `YYYY-MM-DD`, or `days` later.
fn day_ms(raw: &str, field: &'static str, days: i64) -> Result<UnixMillis, ServiceError> {
    let day = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ServiceError::InvalidArgument {
            field,
            message: format!("{field}: must be a day, YYYY-MM-DD"),
        })?
        .checked_add_days(chrono::Days::new(days.unsigned_abs()))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| ServiceError::InvalidArgument {
            field,
            message: format!("{field}: out of range"),
        })?;
    Ok(UnixMillis::from_millis(day.and_utc().timestamp_millis()))
}

impl ListQuery {
    /// The API's filter. A customer sees only its own orders, whatever it asks for, as on the
    /// API.
    fn filter(&self, caller: &Caller) -> Result<OrderFilter, ServiceError> {
        let customer = match (caller.customer()?, nonempty(&self.customer)) {
            (Some(own), _) => Some(own),
            (None, asked) => asked.map(str::to_owned),
        };
        Ok(OrderFilter {
            customer: customer
                .map(|c| UserId::parse(&c).map_err(ServiceError::from))
                .transpose()?,
            status: nonempty(&self.status).map(OrderStatus::parse).transpose()?,
            from: nonempty(&self.from)
                .map(|d| day_ms(d, "from", 0))
                .transpose()?,
            until: nonempty(&self.until)
                .map(|d| day_ms(d, "until", 1))
                .transpose()?,
            after: match nonempty(&self.after) {
                None => 0,
                Some(raw) => raw.parse().map_err(|_| ServiceError::InvalidArgument {
                    field: "after",
                    message: "after: must be an order id".to_owned(),
                })?,
            },
            limit: Some(PAGE_ROWS),
            newest_first: !self.oldest_first(),
        })
    }

    fn oldest_first(&self) -> bool {
        nonempty(&self.order) == Some("oldest")
    }

    /// This query without its cursor, for the pager's links.
    fn base(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", &self.status),
            ("customer", &self.customer),
            ("from", &self.from),
            ("until", &self.until),
            ("order", &self.order),
        ] {
            if let Some(v) = nonempty(value) {
                q.append_pair(name, v);
            }
        }
        let q = q.finish();
        if q.is_empty() {
            "/console/orders".to_owned()
        } else {
            format!("/console/orders?{q}")
        }
    }
}

async fn list(ctx: Ctx, caller: Caller, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.filter(&caller) {
        Ok(f) => f,
        Err(e) => return error_page(e),
    };
    // Keyset-paged by id through the orders' indexes (status, customer, created), 50 a page.
    let page = match ctx.state.services.orders.list(filter).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let staff = caller.customer().ok().flatten().is_none();
    let body = html! {
        form #order-filter .inline method="get" action="/console/orders" {
            label { "Status"
                select name="status" {
                    option value="" { "Any" }
                    @for s in OrderStatus::ALL {
                        option value=(s.as_str()) selected[nonempty(&q.status) == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            @if staff {
                label { "Customer (user id)"
                    input type="text" name="customer" value=[nonempty(&q.customer)];
                }
            }
            label { "Placed from" input type="date" name="from" value=[nonempty(&q.from)]; }
            label { "Placed until" input type="date" name="until" value=[nonempty(&q.until)]; }
            label { "Order"
                select name="order" {
                    option value="newest" { "Newest first" }
                    option value="oldest" selected[q.oldest_first()] { "Oldest first" }
                }
            }
            div.actions { button type="submit" { "Filter" } }
        }
        table #orders aria-label="Orders" {
            thead { tr {
                th scope="col" { "Order" }
                th scope="col" { "Customer" }
                th scope="col" { "Status" }
                th scope="col" class="num" { "Lines" }
                th scope="col" class="num" { "Total" }
                th scope="col" { "Placed" }
            } }
            tbody {
                @for o in &page.orders {
                    tr {
                        td { a href={ "/console/orders/" (o.id) } { "#" (o.id) } }
                        td.mono { (o.customer) }
                        td { (status_badge(o.status)) }
                        td.num { (o.lines.len()) }
                        td.num { (ui::money(o.total_minor, &o.currency)) }
                        td { (ui::time(o.created_at.as_millis())) }
                    }
                }
                @if page.orders.is_empty() {
                    tr { td colspan="6" { "No orders match." } }
                }
            }
        }
        (ui::pager(&q.base(), page.next_cursor))
    };
    ctx.page("Orders", &[], body)
}

fn status_badge(s: OrderStatus) -> Markup {
    let class = match s {
        OrderStatus::Delivered | OrderStatus::Fulfilled | OrderStatus::Confirmed => "badge ok",
        OrderStatus::Cancelled | OrderStatus::Returned => "badge bad",
        OrderStatus::ReturnRequested => "badge warn",
        OrderStatus::Pending => "badge",
    };
    html! { span class=(class) { (s.as_str()) } }
}

/// The statuses the order may move to now: allowed by the workflow from its status, and to
/// this role by the policy.
fn next_statuses(ctx: &Ctx, status: OrderStatus) -> Vec<OrderStatus> {
    if !ctx.may_call("PUT", "/api/v1/orders/{order_id}/status") {
        return Vec::new();
    }
    status
        .next()
        .iter()
        .copied()
        .filter(|to| may_set_order_status(ctx.role(), *to))
        .collect()
}

async fn detail(ctx: Ctx, caller: Caller, Path(raw): Path<String>) -> Response {
    let Some(id) = raw.parse::<i64>().ok().filter(|id| *id > 0) else {
        return error_page(ServiceError::NotFound { what: "order" });
    };
    let order = match ctx.state.services.orders.get(id).await {
        Ok(o) => o,
        Err(e) => return error_page(e),
    };
    // A customer sees another's order as absent, as on the API.
    match caller.customer() {
        Ok(Some(own)) if own != order.customer => {
            return error_page(ServiceError::NotFound { what: "order" });
        }
        Err(e) => return error_page(e),
        _ => {}
    }
    let next = next_statuses(&ctx, order.status);
    let orders = &ctx.state.services.orders;
    let payments = match ctx.may_call("GET", "/api/v1/orders/{order_id}/payments") {
        true => match orders.payments(id).await {
            Ok(p) => Some(p),
            Err(e) => return error_page(e),
        },
        false => None,
    };
    let shipments = match orders.shipments(id).await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let returns = match orders.returns(id).await {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let mut body = order_body(&order, &next, ctx.may_see("/console/inventory"));
    body.0
        .push_str(&after_sale(&order, payments.as_ref(), &shipments, &returns).0);
    ctx.page(&format!("Order #{}", order.id), &[], body)
}

/// The SKU of the order's line `line_id` (its position).
fn sku(o: &Order, line_id: i64) -> &str {
    usize::try_from(line_id)
        .ok()
        .and_then(|i| o.lines.get(i))
        .map_or("?", |l| l.sku.as_str())
}

/// What happened after the sale: payments (for whoever may read them), shipments, returns.
fn after_sale(
    o: &Order,
    payments: Option<&OrderPayments>,
    shipments: &[Shipment],
    returns: &[OrderReturn],
) -> Markup {
    let items = |lines: &[allot_storage::ItemLine]| {
        html! {
            @for (i, l) in lines.iter().enumerate() {
                @if i > 0 { ", " }
                span.mono { (sku(o, l.line_id)) } " × " (ui::int(l.quantity))
            }
        }
    };
    html! {
        @if let Some(p) = payments {
            h2 { "Payments" }
            p.sub #order-paid { "Captured " (ui::money(p.paid.captured_minor, &p.currency))
                ", refunded " (ui::money(p.paid.refunded_minor, &p.currency)) }
            @if p.payments.is_empty() {
                p.sub #order-payments { "No payments yet." }
            } @else {
                table #order-payments aria-label="Payments" {
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Provider" }
                        th scope="col" { "Reference" }
                        th scope="col" { "Status" }
                        th scope="col" class="num" { "Amount" }
                        th scope="col" class="num" { "Refunded" }
                    } }
                    tbody {
                        @for pay in &p.payments {
                            tr {
                                td { (ui::time(pay.created_at.as_millis())) }
                                td { (pay.provider) }
                                td.mono { (pay.reference) }
                                td { (pay.status.as_str()) }
                                td.num { (ui::money(pay.amount_minor, &pay.currency)) }
                                td.num { (ui::money(pay.refunded_minor, &pay.currency)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Shipments" }
        @if shipments.is_empty() {
            p.sub #order-shipments { "Nothing shipped yet." }
        } @else {
            table #order-shipments aria-label="Shipments" {
                thead { tr {
                    th scope="col" { "When" }
                    th scope="col" { "Carrier" }
                    th scope="col" { "Tracking number" }
                    th scope="col" { "Lines" }
                } }
                tbody {
                    @for s in shipments {
                        tr {
                            td { (ui::time(s.created_at.as_millis())) }
                            td { @if let Some(c) = &s.carrier { (c) } @else { "(the rest, by status)" } }
                            td.mono { @if let Some(t) = &s.tracking_number { (t) } }
                            td { (items(&s.lines)) }
                        }
                    }
                }
            }
        }
        h2 { "Returns" }
        @if returns.is_empty() {
            p.sub #order-returns { "No returns." }
        } @else {
            table #order-returns aria-label="Returns" {
                thead { tr {
                    th scope="col" { "Return" }
                    th scope="col" { "Status" }
                    th scope="col" { "Reason" }
                    th scope="col" { "Lines" }
                    th scope="col" { "Received" }
                } }
                tbody {
                    @for r in returns {
                        tr {
                            td { "#" (r.id) " " (ui::time(r.created_at.as_millis())) }
                            td { (r.status.as_str()) }
                            td { (r.reason) }
                            td { (items(&r.lines)) }
                            td {
                                @if let (Some(w), Some(d)) = (r.warehouse_id, r.disposition) {
                                    (d.as_str()) " in warehouse " (w)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `stock_links`: the lines link to their product's stock (for a role that may see it).
fn order_body(o: &Order, next: &[OrderStatus], stock_links: bool) -> Markup {
    let a = &o.shipping_address;
    html! {
        p { a href="/console/orders" { "All orders" } }
        div.cards {
            div.card {
                h2 { "Status" }
                p.figure #order-status aria-live="polite" { (o.status.as_str()) }
                p.sub { "Placed " (ui::time(o.created_at.as_millis())) ", changed " (ui::time(o.updated_at.as_millis())) }
            }
            div.card {
                h2 { "Total" }
                p.figure #order-total { (ui::money(o.total_minor, &o.currency)) }
            }
            div.card {
                h2 { "Customer" }
                p.mono #order-customer { (o.customer) }
            }
        }
        @if !next.is_empty() {
            div.panel {
                h2 { "Move to" }
                form #order-status-form .stack data-api="/api/v1/orders/{order_id}/status"
                    data-method="PUT" data-then="reload" novalidate {
                    input type="hidden" name="order_id" data-path value=(o.id);
                    // A text area, not a one-line input: Enter in a one-line input would press
                    // the first button and move the order by accident.
                    label { "Reason" span.hint { "optional; kept in the history" }
                        textarea name="reason" maxlength="500" {}
                    }
                    p #order-status-form-error .alert role="alert" {}
                    p.status role="status" {}
                    div.actions {
                        @for to in next {
                            @let danger = matches!(to, OrderStatus::Cancelled);
                            button type="submit" name="status" value=(to.as_str())
                                class=[danger.then_some("danger")] {
                                (to.as_str())
                            }
                        }
                    }
                }
            }
        }
        h2 { "Lines" }
        table #order-lines aria-label="Lines" {
            thead { tr {
                th scope="col" { "Product" }
                th scope="col" { "SKU" }
                th scope="col" class="num" { "Quantity" }
                th scope="col" class="num" { "Unit price" }
                th scope="col" class="num" { "Line total" }
                th scope="col" class="num" { "Warehouse" }
                th scope="col" class="num" { "Shipped" }
            } }
            tbody {
                @for l in &o.lines {
                    tr {
                        td {
                            @if stock_links {
                                a href={ "/console/inventory/" (l.product_id.get()) } { (l.name) }
                            } @else { (l.name) }
                        }
                        td.mono { (l.sku) }
                        td.num { (ui::int(l.quantity)) }
                        td.num { (ui::money(l.unit_price_minor, &o.currency)) }
                        td.num { (ui::money(l.line_total_minor, &o.currency)) }
                        td.num { (l.warehouse_id.get()) }
                        td.num { (ui::int(l.shipped_quantity)) }
                    }
                }
            }
        }
        div.row {
            div.panel {
                h2 { "Totals" }
                table aria-label="Totals" {
                    tbody {
                        tr { th scope="row" { "Subtotal" } td.num { (ui::money(o.subtotal_minor, &o.currency)) } }
                        @if !o.promotions.is_empty() {
                            tr { th scope="row" { "Promotions" }
                                td.num #order-promotions {
                                    @for (i, p) in o.promotions.iter().enumerate() {
                                        @if i > 0 { br; }
                                        a href={ "/console/promotions/" (p.promotion_id) } { "#" (p.promotion_id) }
                                        @if let Some(code) = &p.code { " " span.mono { (code) } }
                                        " −" (ui::money(p.amount_minor, &o.currency))
                                    }
                                } }
                        }
                        tr { th scope="row" { "Coupon" }
                            td.num { @if let Some(c) = &o.coupon { span.mono { (c.code) } " −" (ui::money(c.amount_minor, &o.currency)) } @else { "none" } } }
                        tr { th scope="row" { "Discount code" }
                            td.num { @if let Some(c) = &o.discount_code { span.mono { (c.code) } " −" (ui::money(c.amount_minor, &o.currency)) } @else { "none" } } }
                        @if o.shipping_minor > 0 {
                            tr { th scope="row" { "Shipping" }
                                td.num #order-shipping {
                                    (ui::money(o.shipping_minor, &o.currency))
                                    @if o.shipping_discount_minor > 0 { " −" (ui::money(o.shipping_discount_minor, &o.currency)) }
                                } }
                        }
                        tr { th scope="row" { "Total" } td.num { (ui::money(o.total_minor, &o.currency)) } }
                    }
                }
            }
            div.panel {
                h2 { "Shipping address" }
                address #order-address {
                    (a.name) br;
                    (a.line1) br;
                    @if let Some(l2) = &a.line2 { (l2) br; }
                    (a.postal_code) " " (a.city) br;
                    (a.country)
                }
            }
        }
        h2 { "History" }
        table #order-history aria-label="Status history" {
            thead { tr {
                th scope="col" { "When" }
                th scope="col" { "From" }
                th scope="col" { "To" }
                th scope="col" { "Reason" }
            } }
            tbody {
                @for h in &o.history {
                    tr {
                        td { (ui::time(h.at.as_millis())) }
                        td { @if let Some(f) = h.from { (f.as_str()) } @else { "(placed)" } }
                        td { (h.to.as_str()) }
                        td { @if let Some(r) = &h.reason { (r) } }
                    }
                }
            }
        }
    }
}

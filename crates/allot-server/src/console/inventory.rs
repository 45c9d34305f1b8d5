//! Inventory: stock levels per product and warehouse (keyset-paged, filtered), the open
//! low-stock alerts, and a product's page: its levels per warehouse, an adjustment, its
//! reorder points, its reservations and its ledger.

use allot_domain::catalog::{ProductId, Sku, WarehouseId};
use allot_storage::{StockLevel, Warehouse};
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
use crate::service::inventory::{LevelFilter, level_cursor};
use crate::state::AppState;

/// Rows a page of levels shows.
const PAGE_ROWS: u32 = 50;
/// Open alerts the list page shows; the rest are a link away (the API pages them).
const ALERT_ROWS: u32 = 20;
/// Reservations a product's page shows at a time.
const RESERVATION_ROWS: u32 = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/inventory", get(list))
        .route("/console/inventory/{product_id}", get(product))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    warehouse_id: Option<String>,
    sku: Option<String>,
    /// `true` (the checkbox): only levels at or below their reorder threshold.
    low: Option<String>,
    after: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListQuery {
    fn filter(&self) -> Result<LevelFilter, ServiceError> {
        Ok(LevelFilter {
            warehouse: nonempty(&self.warehouse_id)
                .map(|w| {
                    w.parse::<i64>()
                        .ok()
                        .and_then(|n| WarehouseId::parse(n).ok())
                        .ok_or_else(|| ServiceError::InvalidArgument {
                            field: "warehouse_id",
                            message: "warehouse_id: must be a warehouse id".to_owned(),
                        })
                })
                .transpose()?,
            low_only: nonempty(&self.low).is_some(),
            sku: nonempty(&self.sku).map(Sku::parse).transpose()?,
            after: nonempty(&self.after).map(level_cursor).transpose()?,
            limit: Some(PAGE_ROWS),
        })
    }

    fn base(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("warehouse_id", &self.warehouse_id),
            ("sku", &self.sku),
            ("low", &self.low),
        ] {
            if let Some(v) = nonempty(value) {
                q.append_pair(name, v);
            }
        }
        let q = q.finish();
        if q.is_empty() {
            "/console/inventory".to_owned()
        } else {
            format!("/console/inventory?{q}")
        }
    }
}

fn warehouse_code(warehouses: &[Warehouse], id: WarehouseId) -> String {
    warehouses
        .iter()
        .find(|w| w.id == id)
        .map_or_else(|| id.get().to_string(), |w| w.code.clone())
}

fn level_badge(l: &StockLevel) -> Markup {
    let low = l.reorder_threshold.is_some_and(|t| l.available() <= t);
    html! {
        @if l.low_alert_open { span.badge.bad { "low: alert open" } }
        @else if low { span.badge.warn { "low" } }
        @else { span.badge.ok { "ok" } }
    }
}

async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    let services = &ctx.state.services;
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return error_page(e),
    };
    let chosen = filter.warehouse;
    // Keyset-paged on stock_levels' key (product, warehouse), or on stock_levels_by_warehouse
    // for one warehouse; 50 a page.
    let page = match services.inventory.levels(filter).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let warehouses = match services.catalog.warehouses().await {
        Ok(w) => w,
        Err(e) => return error_page(e),
    };
    // Open alerts through their partial index (stock_alerts_open_by_id).
    let alerts = match services.inventory.alerts(true, 0, Some(ALERT_ROWS)).await {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let body = html! {
        h2 { "Open low-stock alerts" }
        table #stock-alerts aria-label="Open low-stock alerts" {
            thead { tr {
                th scope="col" { "Product" }
                th scope="col" { "Warehouse" }
                th scope="col" class="num" { "Available when raised" }
                th scope="col" class="num" { "Threshold" }
                th scope="col" { "Raised" }
            } }
            tbody {
                @for a in &alerts.alerts {
                    tr {
                        td { a href={ "/console/inventory/" (a.product_id.get()) } { "Product #" (a.product_id.get()) } }
                        td { (warehouse_code(&warehouses, a.warehouse_id)) }
                        td.num { (ui::int(a.available)) }
                        td.num { (ui::int(a.threshold)) }
                        td { (ui::time(a.raised_at.as_millis())) }
                    }
                }
                @if alerts.alerts.is_empty() {
                    tr { td colspan="5" { "No open alerts." } }
                }
            }
        }
        @if alerts.next_cursor.is_some() {
            p.sub { "The " (ALERT_ROWS) " oldest open alerts are shown; the API's " code { "GET /api/v1/inventory/alerts?open=true" } " pages through all." }
        }
        h2 { "Stock levels" }
        form #level-filter .inline method="get" action="/console/inventory" {
            label { "Warehouse"
                select name="warehouse_id" {
                    option value="" { "Any" }
                    @for w in &warehouses {
                        option value=(w.id.get()) selected[chosen == Some(w.id)] { (w.code) " · " (w.name) }
                    }
                }
            }
            label { "SKU" input type="text" name="sku" value=[nonempty(&q.sku)]; }
            label { input type="checkbox" name="low" value="true" checked[nonempty(&q.low).is_some()]; " Low only" }
            div.actions { button type="submit" { "Filter" } }
        }
        (levels_table("stock-levels", "Stock levels", &page.levels, true))
        (ui::pager(&q.base(), page.next_cursor))
    };
    ctx.page("Inventory", &[], body)
}

fn levels_table(id: &str, label: &str, levels: &[StockLevel], with_product: bool) -> Markup {
    html! {
        table id=(id) aria-label=(label) {
            thead { tr {
                @if with_product { th scope="col" { "SKU" } }
                th scope="col" { "Warehouse" }
                th scope="col" class="num" { "On hand" }
                th scope="col" class="num" { "Reserved" }
                th scope="col" class="num" { "Available" }
                th scope="col" class="num" { "Reorder at" }
                th scope="col" class="num" { "Reorder quantity" }
                th scope="col" { "State" }
            } }
            tbody {
                @for l in levels {
                    tr {
                        @if with_product {
                            td.mono { a href={ "/console/inventory/" (l.product_id.get()) } { (l.sku) } }
                        }
                        td.mono { (l.warehouse_code) }
                        td.num { (ui::int(l.on_hand)) }
                        td.num { (ui::int(l.reserved)) }
                        td.num { (ui::int(l.available())) }
                        td.num { @if let Some(t) = l.reorder_threshold { (ui::int(t)) } }
                        td.num { @if let Some(n) = l.reorder_quantity { (ui::int(n)) } }
                        td { (level_badge(l)) }
                    }
                }
                @if levels.is_empty() {
                    tr { td colspan=(if with_product { 8 } else { 7 }) { "No stock levels." } }
                }
            }
        }
    }
}

fn warehouse_select(name: &str, warehouses: &[Warehouse]) -> Markup {
    html! {
        label { "Warehouse"
            select name=(name) data-type="int" required {
                @for w in warehouses {
                    option value=(w.id.get()) { (w.code) " · " (w.name) @if !w.active { " (inactive)" } }
                }
            }
        }
    }
}

/// A product page's cursors: its ledger's and its reservations', each a movement id.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ProductQuery {
    ledger: Option<String>,
    reservations: Option<String>,
}

fn cursor(raw: &Option<String>, field: &'static str) -> Result<Option<i64>, ServiceError> {
    nonempty(raw)
        .map(|c| {
            c.parse::<i64>().map_err(|_| ServiceError::InvalidArgument {
                field,
                message: format!("{field}: must be a cursor of this page"),
            })
        })
        .transpose()
}

async fn product(ctx: Ctx, Path(raw): Path<String>, Query(q): Query<ProductQuery>) -> Response {
    let Some(id) = raw
        .parse::<i64>()
        .ok()
        .and_then(|n| ProductId::parse(n).ok())
    else {
        return error_page(ServiceError::NotFound { what: "product" });
    };
    let (ledger_cursor, reservations_cursor) = match (
        cursor(&q.ledger, "ledger"),
        cursor(&q.reservations, "reservations"),
    ) {
        (Ok(l), Ok(r)) => (l, r),
        (Err(e), _) | (_, Err(e)) => return error_page(e),
    };
    let services = &ctx.state.services;
    let (product, inventory) = match services.inventory.product(id).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    // Both walk the ledger's index by product (stock_movements_by_product) from the cursor.
    let ledger = match services
        .inventory
        .movements(id, ledger_cursor, Some(PAGE_ROWS))
        .await
    {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let reservations = match services
        .inventory
        .reservations(id, reservations_cursor, Some(RESERVATION_ROWS))
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let here = format!("/console/inventory/{}", id.get());
    let warehouses = match services.catalog.warehouses().await {
        Ok(w) => w,
        Err(e) => return error_page(e),
    };
    let on_hand: i64 = inventory.levels.iter().map(|l| l.on_hand).sum();
    let reserved: i64 = inventory.levels.iter().map(|l| l.reserved).sum();
    let may_adjust = ctx.may_call("POST", "/api/v1/inventory/adjust");
    let may_reorder = ctx.may_call("PUT", "/api/v1/inventory/{product_id}/reorder");
    let body = html! {
        p { a href="/console/inventory" { "All stock levels" } }
        div.cards {
            div.card { h2 { "On hand" } p.figure #product-on-hand { (ui::int(on_hand)) } }
            div.card { h2 { "Reserved" } p.figure #product-reserved { (ui::int(reserved)) } }
            div.card { h2 { "Available" } p.figure #product-available { (ui::int(on_hand - reserved)) } }
        }
        h2 { "Per warehouse" }
        (levels_table("product-levels", "Stock per warehouse", &inventory.levels, false))
        div.row {
            @if may_adjust && !warehouses.is_empty() {
                div.panel {
                    h2 { "Adjust stock" }
                    (ui::api_form("stock-adjust", "POST", "/api/v1/inventory/adjust", "reload", "stack",
                        html! {
                            input type="hidden" name="product_id" data-type="int" value=(id.get());
                            (warehouse_select("warehouse_id", &warehouses))
                            label { "How"
                                select name="mode" {
                                    option value="add" { "Add (negative takes out)" }
                                    option value="set" { "Set on hand to" }
                                }
                            }
                            (ui::field("Quantity", "quantity", "number", "int", true, ""))
                            (ui::field("Reason", "reason", "text", "", true, "kept in the ledger"))
                        }, "Adjust"))
                }
            }
            @if may_reorder && !warehouses.is_empty() {
                div.panel {
                    h2 { "Reorder point" }
                    (ui::api_form("stock-reorder", "PUT", "/api/v1/inventory/{product_id}/reorder", "reload", "stack",
                        html! {
                            input type="hidden" name="product_id" data-path value=(id.get());
                            (warehouse_select("warehouse_id", &warehouses))
                            (ui::field("Low at or below (available)", "reorder_threshold", "number", "int", false, "empty removes the reorder point"))
                            (ui::field("Units to reorder", "reorder_quantity", "number", "int", false, "required with a threshold"))
                        }, "Save reorder point"))
                }
            }
        }
        h2 { "Reservations" }
        table #product-reservations aria-label="Reservations, newest first" {
            thead { tr {
                th scope="col" class="num" { "Id" }
                th scope="col" { "Holder" }
                th scope="col" { "Warehouse" }
                th scope="col" class="num" { "Quantity" }
                th scope="col" { "Status" }
                th scope="col" { "Expires" }
                th scope="col" { "Made" }
            } }
            tbody {
                @for r in &reservations.reservations {
                    tr {
                        td.num { (r.id.get()) }
                        td.mono { (r.holder) }
                        td { (warehouse_code(&warehouses, r.warehouse_id)) }
                        td.num { (ui::int(r.quantity)) }
                        td { (r.status.as_str()) }
                        td { (ui::time(r.expires_at.as_millis())) }
                        td { (ui::time(r.created_at.as_millis())) }
                    }
                }
                @if reservations.reservations.is_empty() {
                    tr { td colspan="7" { "No reservations." } }
                }
            }
        }
        nav.pager aria-label="Reservation pages" {
            @if reservations_cursor.is_some() { a href=(here) { "Newest reservations" } }
            @if let Some(c) = &reservations.next_cursor {
                a href={ (here) "?reservations=" (c) } { "Older reservations" }
            }
        }
        h2 { "Ledger" }
        p.sub { "Every movement of this product's stock, newest first." }
        table #stock-ledger aria-label="Ledger" {
            thead { tr {
                th scope="col" class="num" { "Id" }
                th scope="col" { "When" }
                th scope="col" { "Warehouse" }
                th scope="col" { "Kind" }
                th scope="col" class="num" { "On hand" }
                th scope="col" class="num" { "Reserved" }
                th scope="col" class="num" { "Reservation" }
                th scope="col" { "Reason" }
            } }
            tbody {
                @for m in &ledger.movements {
                    tr {
                        td.num { (m.id) }
                        td { (ui::time(m.at.as_millis())) }
                        td { (warehouse_code(&warehouses, m.warehouse_id)) }
                        td { (m.kind.as_str()) }
                        td.num { (signed(m.on_hand_delta)) }
                        td.num { (signed(m.reserved_delta)) }
                        td.num { @if let Some(r) = m.reservation_id { (r) } }
                        td { @if let Some(r) = &m.reason { (r) } }
                    }
                }
                @if ledger.movements.is_empty() {
                    tr { td colspan="8" { "No movements." } }
                }
            }
        }
        nav.pager aria-label="Ledger pages" {
            @if ledger_cursor.is_some() { a href=(here) { "Newest movements" } }
            @if let Some(c) = &ledger.next_cursor {
                a href={ (here) "?ledger=" (c) } { "Older movements" }
            }
        }
    };
    ctx.page(&format!("Stock of {}", product.sku), &[], body)
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", ui::int(n))
    } else {
        ui::int(n)
    }
}

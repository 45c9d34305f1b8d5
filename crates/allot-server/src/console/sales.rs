//! Flash sales: the current sale (its sold counter polled every two seconds), past sales paged
//! newest first, and a sale's page with its items (paged) and a user's purchases in it.

use std::collections::HashMap;

use allot_domain::user::UserId;
use allot_storage::Sale;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maud::{Markup, html};
use serde::Serialize;

use super::campaigns::cursor;
use super::layout::error_page;
use super::{Ctx, ui};
use crate::ServiceError;
use crate::http::AppState;

/// Rows of a page's table.
const PAGE_ROWS: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/sales", get(list))
        .route("/console/sales/current.json", get(current_json))
        .route("/console/sales/{id}", get(detail))
}

/// The current sale, or none when flash sales are off.
async fn current(ctx: &Ctx) -> Result<Option<Sale>, ServiceError> {
    let sales = &ctx.state.services.sales;
    match sales.current().await {
        // The service caches the current sale; its counts are read fresh.
        Ok(s) => Ok(Some(sales.sale(s.id).await?)),
        Err(ServiceError::NoActiveSale) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Serialize)]
struct CurrentSale {
    id: i64,
    sold: i64,
    items_total: i64,
    remaining: i64,
}

async fn current_json(ctx: Ctx) -> Response {
    match current(&ctx).await {
        Ok(s) => Json(s.map(|s| CurrentSale {
            id: s.id,
            sold: s.sold,
            items_total: s.items_total,
            remaining: s.items_total - s.sold,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn sale_row(s: &Sale) -> Markup {
    html! {
        tr {
            td { a href={ "/console/sales/" (s.id) } { "Sale " (s.id) } }
            td { (ui::time(s.starts_at.as_millis())) }
            td { (ui::time(s.ends_at.as_millis())) }
            td.num { (ui::int(s.sold)) }
            td.num { (ui::int(s.items_total)) }
        }
    }
}

async fn list(ctx: Ctx, Query(q): Query<HashMap<String, String>>) -> Response {
    let before = match cursor(&q) {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let now = match current(&ctx).await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let sales = match ctx.state.services.sales.list(before, PAGE_ROWS).await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let next = (sales.len() == PAGE_ROWS as usize)
        .then(|| sales.last().map(|s| s.id.to_string()))
        .flatten();
    let body = html! {
        section.panel #sale-current aria-labelledby="current-title" data-poll="/console/sales/current.json" {
            h2 #current-title { "Current sale" }
            @if let Some(s) = &now {
                div.cards aria-live="polite" {
                    div.card {
                        h3 { "Sold" }
                        p.figure { span #sale-sold data-field="sold" { (ui::int(s.sold)) } " of " span data-field="items_total" { (ui::int(s.items_total)) } }
                    }
                    div.card {
                        h3 { "Left" }
                        p.figure data-field="remaining" { (ui::int(s.items_total - s.sold)) }
                        p.sub { "until " (ui::time(s.ends_at.as_millis())) }
                    }
                }
                progress #sale-bar max=(s.items_total) value=(s.sold) aria-label="Items sold" {}
                p { a href={ "/console/sales/" (s.id) } { "Items and purchases of this sale" } }
                form #sale-current-purchases .inline method="get" action={ "/console/sales/" (s.id) } {
                    label { "A user's purchases in this sale"
                        input type="text" name="user_id" required autocomplete="off" placeholder="user id";
                    }
                    div.actions { button type="submit" { "Search" } }
                }
            } @else {
                p.sub { "No sale is running: flash sales are off (set the items per sale to turn them on)." }
            }
        }
        h2 { "Sales" }
        @if sales.is_empty() {
            p.sub { "No sales yet." }
        } @else {
            table #sales aria-label="Sales, newest first" {
                thead { tr {
                    th scope="col" { "Sale" }
                    th scope="col" { "Starts" }
                    th scope="col" { "Ends" }
                    th.num scope="col" { "Sold" }
                    th.num scope="col" { "Items" }
                } }
                tbody { @for s in &sales { (sale_row(s)) } }
            }
            (ui::pager("/console/sales", next))
        }
    };
    ctx.page("Flash sales", &["sales.js"], body)
}

async fn detail(
    ctx: Ctx,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(id) = raw.parse::<i64>().ok().filter(|n| *n >= 1) else {
        return error_page(ServiceError::NotFound { what: "sale" });
    };
    let after = match cursor(&q) {
        Ok(c) => c.unwrap_or(0),
        Err(e) => return error_page(e),
    };
    let user = match q.get("user_id").map(|u| u.trim()).filter(|u| !u.is_empty()) {
        None => None,
        Some(raw) => match UserId::parse(raw) {
            Ok(u) => Some(u),
            Err(e) => return error_page(e.into()),
        },
    };
    let sales = &ctx.state.services.sales;
    let sale = match sales.sale(id).await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let items = match sales.items(id, after, PAGE_ROWS).await {
        Ok(i) => i,
        Err(e) => return error_page(e),
    };
    let bought = match &user {
        Some(u) => match sales.purchases(id, u.clone()).await {
            Ok(items) => Some(items),
            Err(e) => return error_page(e),
        },
        None => None,
    };
    let next = (items.len() == PAGE_ROWS as usize)
        .then(|| items.last().map(|i| i.id.to_string()))
        .flatten();
    let base = format!("/console/sales/{id}");
    let body = html! {
        p.sub {
            (ui::time(sale.starts_at.as_millis())) " to " (ui::time(sale.ends_at.as_millis()))
            " · " (ui::int(sale.sold)) " of " (ui::int(sale.items_total)) " sold"
        }
        section.panel aria-labelledby="purchases-title" {
            h2 #purchases-title { "A user's purchases" }
            form #sale-purchases .inline method="get" action=(base) {
                label { "User id"
                    input type="text" name="user_id" required autocomplete="off"
                        value=(user.as_ref().map_or("", |u| u.as_str()));
                }
                div.actions { button type="submit" { "Search" } }
            }
            @if let (Some(u), Some(bought)) = (&user, &bought) {
                @if bought.is_empty() {
                    p #sale-purchases-result { (u.as_str()) " bought nothing in this sale." }
                } @else {
                    table #sale-purchases-result aria-label={ "Items bought by " (u.as_str()) } {
                        thead { tr { th scope="col" { "Item" } th scope="col" { "Name" } } }
                        tbody { @for i in bought { tr { td.num { (i.id) } td { (i.name) } } } }
                    }
                }
            }
        }
        h2 { "Items" }
        table #sale-items aria-label="Items of this sale" {
            thead { tr {
                th.num scope="col" { "Item" }
                th scope="col" { "Name" }
                th scope="col" { "Sold to" }
            } }
            tbody {
                @for i in &items {
                    tr {
                        td.num { (i.id) }
                        td { (i.name) }
                        td { @if let Some(to) = &i.sold_to { (to) } @else { span.badge.ok { "Available" } } }
                    }
                }
            }
        }
        (ui::pager(&base, next))
    };
    ctx.page(&format!("Sale {id}"), &[], body)
}

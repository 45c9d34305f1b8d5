//! The overview: the live state of the shop. The page and `/console/overview.json` (which its
//! script polls every two seconds) show the same figures, each only to a role that may see
//! its section. The server answers counts as they are now; rates (issues per second, the
//! flash sale's time to sell-out) and the charts of the last minutes are kept by the script
//! from what it polled, so the server keeps no history and each poll costs a few indexed
//! reads, whatever the size of the store.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maud::{Markup, html};
use serde::Serialize;

use super::layout::error_page;
use super::{Ctx, ui};
use crate::ServiceError;
use crate::http::AppState;

/// Running campaigns shown, newest first.
const CAMPAIGNS_SHOWN: u32 = 10;
/// Orders counted in the last minute at most: past it the figure says "at least", and the
/// count stays a bounded walk of the index.
const RECENT_ORDERS_CAP: i64 = 100_000;
const MINUTE_MS: i64 = 60_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/overview.json", get(json))
}

#[derive(Serialize)]
struct Overview {
    now_ms: i64,
    campaigns: Option<Vec<RunningCampaign>>,
    sale: Option<SaleFigures>,
    megadeal: Option<Megadeal>,
    orders: Option<Orders>,
    stock: Option<Count>,
    webhooks: Option<Count>,
    notifications: Option<Count>,
}

#[derive(Serialize)]
struct RunningCampaign {
    id: i64,
    name: String,
    issued: i64,
    total: i64,
    remaining: i64,
}

#[derive(Serialize)]
struct SaleFigures {
    id: i64,
    sold: i64,
    items_total: i64,
    remaining: i64,
    ends_at_ms: i64,
}

#[derive(Serialize)]
struct Megadeal {
    in_flight: usize,
    in_flight_max: usize,
    queued: usize,
    /// Refused by this instance since it started.
    refused: u64,
}

#[derive(Serialize)]
struct Orders {
    last_minute: i64,
    /// True when the count reached its cap: there were at least that many.
    capped: bool,
}

#[derive(Serialize)]
struct Count {
    count: i64,
}

async fn figures(ctx: &Ctx) -> Result<Overview, ServiceError> {
    let services = &ctx.state.services;
    let now = services.clock.now();
    let campaigns = if ctx.may_see("/console/campaigns") {
        let running = services.campaigns.running(CAMPAIGNS_SHOWN).await?;
        Some(
            running
                .into_iter()
                .map(|c| RunningCampaign {
                    id: c.id.get(),
                    name: c.name,
                    issued: c.issued,
                    total: c.total,
                    remaining: c.total - c.issued,
                })
                .collect(),
        )
    } else {
        None
    };
    let sale = if ctx.may_see("/console/sales") {
        match services.sales.current().await {
            Ok(current) => {
                // The current sale is cached by the service; its counts are read fresh.
                let s = services.sales.sale(current.id).await?;
                Some(SaleFigures {
                    id: s.id,
                    sold: s.sold,
                    items_total: s.items_total,
                    remaining: s.items_total - s.sold,
                    ends_at_ms: s.ends_at.as_millis(),
                })
            }
            Err(ServiceError::NoActiveSale) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let megadeal = if ctx.may_see("/console/coupons") {
        // Redis unreachable makes the figures unknown, not the page broken.
        services
            .coupons
            .megadeal_status()
            .await
            .ok()
            .map(|(status, limits)| Megadeal {
                in_flight: status.in_flight,
                in_flight_max: limits.in_flight_max,
                queued: status.queued,
                refused: services.coupons.megadeal_refused(),
            })
    } else {
        None
    };
    let wants_counts = [
        "/console/orders",
        "/console/inventory",
        "/console/webhooks",
        "/console/notifications",
    ]
    .iter()
    .any(|p| ctx.may_see(p));
    let counts = if wants_counts {
        let since = allot_domain::UnixMillis::from_millis(now.as_millis() - MINUTE_MS);
        Some(
            services
                .store
                .overview_counts(since, RECENT_ORDERS_CAP)
                .await?,
        )
    } else {
        None
    };
    let count_for = |path: &str, n: fn(&allot_storage::OverviewCounts) -> i64| {
        counts
            .as_ref()
            .filter(|_| ctx.may_see(path))
            .map(|c| Count { count: n(c) })
    };
    Ok(Overview {
        now_ms: now.as_millis(),
        campaigns,
        sale,
        megadeal,
        orders: counts
            .as_ref()
            .filter(|_| ctx.may_see("/console/orders"))
            .map(|c| Orders {
                last_minute: c.recent_orders,
                capped: c.recent_orders >= RECENT_ORDERS_CAP,
            }),
        stock: count_for("/console/inventory", |c| c.open_stock_alerts),
        webhooks: count_for("/console/webhooks", |c| c.failing_webhooks),
        notifications: count_for("/console/notifications", |c| c.failing_notifications),
    })
}

async fn json(ctx: Ctx) -> Response {
    match figures(&ctx).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => e.into_response(),
    }
}

fn count_card(title: &str, field: &str, n: i64, link: &str, link_text: &str) -> Markup {
    html! {
        div.card {
            h2 { (title) }
            p.figure data-field=(field) { (ui::int(n)) }
            p.sub { a href=(link) { (link_text) } }
        }
    }
}

async fn page(ctx: Ctx) -> Response {
    let o = match figures(&ctx).await {
        Ok(o) => o,
        Err(e) => return error_page(e),
    };
    let body = html! {
        p.sub { "The live state of the shop, updated every two seconds." }
        div #overview .cards data-poll="/console/overview.json" aria-live="polite" {
            @if let Some(orders) = &o.orders {
                div.card #overview-orders {
                    h2 { "Orders per minute" }
                    p.figure data-field="orders.last_minute" { (ui::int(orders.last_minute)) }
                    p.sub { "in the last 60 seconds · " a href="/console/orders" { "Orders" } }
                }
            }
            @if let Some(sale) = &o.sale {
                div.card #overview-sale {
                    h2 { "Flash sale" }
                    p.figure {
                        span data-field="sale.sold" { (ui::int(sale.sold)) }
                        " of "
                        span data-field="sale.items_total" { (ui::int(sale.items_total)) }
                    }
                    p.sub { "Sold out in " span #sale-eta { "–" } " · "
                        a href={ "/console/sales/" (sale.id) } { "The sale" } }
                }
            } @else if ctx.may_see("/console/sales") {
                div.card #overview-sale {
                    h2 { "Flash sale" }
                    p.sub { "No sale running (flash sales are off)." }
                }
            }
            @if let Some(m) = &o.megadeal {
                div.card #overview-megadeal {
                    h2 { "MEGADEAL" }
                    p.figure {
                        span data-field="megadeal.in_flight" { (m.in_flight) }
                        " / " (m.in_flight_max)
                    }
                    p.sub {
                        "in flight · "
                        span data-field="megadeal.queued" { (m.queued) } " queued · "
                        span data-field="megadeal.refused" { (m.refused) } " refused"
                    }
                }
            }
            @if let Some(stock) = &o.stock {
                (count_card("Low-stock alerts", "stock.count", stock.count, "/console/inventory", "Inventory"))
            }
            @if let Some(w) = &o.webhooks {
                (count_card("Failing webhooks", "webhooks.count", w.count, "/console/webhooks", "Webhooks"))
            }
            @if let Some(n) = &o.notifications {
                (count_card("Failing notifications", "notifications.count", n.count, "/console/notifications", "Notifications"))
            }
        }
        @if let Some(campaigns) = &o.campaigns {
            section aria-labelledby="running-title" {
                h2 #running-title { "Running campaigns" }
                table #overview-campaigns aria-label="Running campaigns, newest first" {
                    thead { tr {
                        th scope="col" { "Campaign" }
                        th.num scope="col" { "Issued" }
                        th.num scope="col" { "Remaining" }
                        th.num scope="col" { "Per second" }
                    } }
                    tbody {
                        @for c in campaigns {
                            tr data-campaign=(c.id) {
                                td { a href={ "/console/campaigns/" (c.id) } { (c.name) } }
                                td.num { (ui::int(c.issued)) }
                                td.num { (ui::int(c.remaining)) }
                                td.num { "–" }
                            }
                        }
                        @if campaigns.is_empty() {
                            tr { td colspan="4" { "No campaign is issuing now." } }
                        }
                    }
                }
            }
        }
        div.row.overview-charts {
            @if o.campaigns.is_some() {
                section.panel aria-labelledby="issues-chart-title" {
                    h2 #issues-chart-title { "Codes issued per second" }
                    svg.chart #chart-issues role="img" aria-label="Campaign codes issued per second, the last ten minutes" {}
                }
            }
            @if o.orders.is_some() {
                section.panel aria-labelledby="orders-chart-title" {
                    h2 #orders-chart-title { "Orders per minute" }
                    svg.chart #chart-orders role="img" aria-label="Orders per minute, the last ten minutes" {}
                }
            }
        }
    };
    ctx.page("Overview", &["overview.js"], body)
}

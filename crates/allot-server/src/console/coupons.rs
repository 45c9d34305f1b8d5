//! Coupons: upload a CSV (sent by coupons.js to the API's CSV upload, with its progress and
//! the rows it refused), the counters per type, a look-up by code, the redemptions (paged),
//! a purge, and MEGADEAL admission.

use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::user::UserId;
use allot_storage::{Coupon, RedemptionFilter};
use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::Ctx;
use super::layout::error_page;
use super::ui;
use crate::ServiceError;
use crate::http::AppState;

/// Redemptions a page shows.
const PAGE_ROWS: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/coupons", get(page))
        .route("/console/coupons/megadeal.json", get(megadeal))
}

/// MEGADEAL admission now, for the page to poll (under the page's path, so its rule covers
/// it): the figures of `GET /api/v1/coupons/megadeal`.
async fn megadeal(ctx: Ctx) -> Response {
    match ctx.state.services.coupons.megadeal_status().await {
        Ok((status, limits)) => Json(json!({
            "in_flight": status.in_flight,
            "peak_in_flight": status.peak_in_flight,
            "queued": status.queued,
            "in_flight_max": limits.in_flight_max,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    /// A coupon to look up.
    code: Option<String>,
    /// The redemptions' filters: one user's, one code's.
    by_user: Option<String>,
    by_code: Option<String>,
    /// The redemptions' cursor: records after this id.
    after: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl PageQuery {
    /// The redemptions' filter, parsed like the stored values it is compared with (as the
    /// API does): a user or code that could not exist is named, not searched for.
    fn redemptions(&self, after_id: i64) -> Result<RedemptionFilter, ServiceError> {
        Ok(RedemptionFilter {
            user_id: nonempty(&self.by_user)
                .map(|u| UserId::parse(u).map(|u| u.as_str().to_owned()))
                .transpose()?,
            code: nonempty(&self.by_code)
                .map(|c| UploadedCode::parse(c).map(|c| c.as_str().to_owned()))
                .transpose()?,
            after_id,
            limit: PAGE_ROWS,
            ..RedemptionFilter::default()
        })
    }

    /// The redemptions' pager: this page's filters, without the cursor or a look-up.
    fn base(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("by_user", &self.by_user), ("by_code", &self.by_code)] {
            if let Some(v) = nonempty(value) {
                q.append_pair(name, v);
            }
        }
        let q = q.finish();
        if q.is_empty() {
            "/console/coupons".to_owned()
        } else {
            format!("/console/coupons?{q}")
        }
    }
}

fn type_name(t: Option<CouponType>) -> &'static str {
    t.map_or("untyped", CouponType::as_str)
}

async fn page(ctx: Ctx, Query(q): Query<PageQuery>) -> Response {
    let services = &ctx.state.services;
    let counters = match services.coupons.counters().await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let after = match q.after.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => 0,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                return error_page(ServiceError::InvalidArgument {
                    field: "after",
                    message: "after: must be a redemption id".to_owned(),
                });
            }
        },
    };
    let filter = match q.redemptions(after) {
        Ok(f) => f,
        Err(e) => return error_page(e),
    };
    // Keyset-paged by id (the table's key), or through the index by user or by code (each
    // ending in id), 50 a page.
    let redemptions = match services.coupons.redemptions(filter).await {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let next = (redemptions.len() == PAGE_ROWS as usize)
        .then(|| redemptions.last().map(|r| r.id.to_string()))
        .flatten();
    let code = q.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let looked_up: Option<Result<Coupon, ServiceError>> = match code {
        None => None,
        Some(c) => Some(match UploadedCode::parse(c) {
            Ok(_) => services.coupons.get(c).await,
            Err(e) => Err(e.into()),
        }),
    };
    // Admission state may be out of reach (Redis down): the page says so instead of failing.
    let megadeal = services.coupons.megadeal_status().await;

    let body = html! {
        div.panel {
            h2 { "Upload coupons (CSV)" }
            p.sub { "A header line naming " code { "code,type,discount_kind,discount_amount,expires_at,max_uses" }
                " (any order), then one coupon a line; at most 50,000 rows. Stored in chunks of 5,000: the first chunk with a bad row stops the upload, and its bad rows are listed." }
            form #coupon-upload .stack data-upload="/api/v1/coupons/csv" novalidate {
                label { "CSV file"
                    input type="file" name="file" accept=".csv,text/csv" required;
                }
                progress #upload-progress max="100" value="0" aria-label="Upload progress" {}
                p #coupon-upload-error .alert role="alert" {}
                p #upload-result .status role="status" {}
                ul #upload-errors aria-label="Rows refused" {}
                div.actions { button type="submit" { "Upload" } }
            }
        }
        h2 { "Counters per type" }
        table #coupon-stats aria-label="Coupon counters per type" {
            thead { tr {
                th scope="col" { "Type" }
                th scope="col" class="num" { "Created" }
                th scope="col" class="num" { "Allocated" }
                th scope="col" class="num" { "Redeemed" }
                th scope="col" class="num" { "Expired now" }
                th scope="col" class="num" { "Purged" }
            } }
            tbody {
                @for c in &counters {
                    tr {
                        th scope="row" { (type_name(c.coupon_type)) }
                        td.num { (ui::int(c.created)) }
                        td.num { (ui::int(c.allocated)) }
                        td.num { (ui::int(c.redeemed)) }
                        td.num { (ui::int(c.expired)) }
                        td.num { (ui::int(c.purged)) }
                    }
                }
                @if counters.is_empty() {
                    tr { td colspan="6" { "No coupons yet." } }
                }
            }
        }
        div.row {
            div.panel {
                h2 { "Look a coupon up" }
                form #coupon-lookup .inline method="get" action="/console/coupons" {
                    label { "Code" input type="text" name="code" value=[code] required; }
                    div.actions { button type="submit" { "Look up" } }
                }
                @if let Some(found) = &looked_up {
                    (coupon_card(found))
                }
            }
            div.panel {
                h2 { "MEGADEAL admission" }
                @match &megadeal {
                    Ok((status, limits)) => {
                        dl #megadeal data-poll="/console/coupons/megadeal.json" aria-live="polite" {
                            dt { "In flight" } dd { span data-field="in_flight" { (ui::int(status.in_flight as u64)) } " of " (ui::int(limits.in_flight_max as u64)) }
                            dt { "Peak in flight" } dd data-field="peak_in_flight" { (ui::int(status.peak_in_flight as u64)) }
                            dt { "Queued here" } dd data-field="queued" { (ui::int(status.queued as u64)) }
                            dt { "Admitted per second, at most" } dd { (ui::int(limits.per_second_max as u64)) }
                            dt { "Longest wait" } dd { (ui::int(limits.wait_max.as_millis() as u64)) " ms" }
                        }
                    }
                    Err(e) => { p #megadeal .alert role="alert" { (e.to_string()) } }
                }
            }
            div.panel {
                h2 { "Purge" }
                p.sub { "Deletes unused expired coupons now (the background job does it on its interval too)." }
                form #coupon-purge data-api="/api/v1/coupons/purge" data-method="POST"
                    data-then="reload" data-body="none"
                    data-confirm="Delete every unused expired coupon now?" novalidate {
                    p #coupon-purge-error .alert role="alert" {}
                    p.status role="status" {}
                    div.actions { button.danger type="submit" { "Purge expired coupons" } }
                }
            }
        }
        h2 { "Redemptions" }
        form #redemption-filter .inline method="get" action="/console/coupons" {
            label { "User" input type="text" name="by_user" value=[nonempty(&q.by_user)]; }
            label { "Code" input type="text" name="by_code" value=[nonempty(&q.by_code)]; }
            div.actions { button type="submit" { "Filter" } }
        }
        table #redemptions aria-label="Redemptions, oldest first" {
            thead { tr {
                th scope="col" class="num" { "Id" }
                th scope="col" { "Code" }
                th scope="col" { "Type" }
                th scope="col" { "User" }
                th scope="col" { "Redeemed" }
            } }
            tbody {
                @for r in &redemptions {
                    tr {
                        td.num { (r.id) }
                        td.mono { a href={ "/console/coupons?code=" (r.code) } { (r.code) } }
                        td { (type_name(r.coupon_type)) }
                        td.mono { (r.user_id) }
                        td { (ui::time(r.redeemed_at.as_millis())) }
                    }
                }
                @if redemptions.is_empty() {
                    tr { td colspan="5" { "No redemptions." } }
                }
            }
        }
        (ui::pager(&q.base(), next))
    };
    ctx.page("Coupons", &["coupons.js"], body)
}

fn coupon_card(found: &Result<Coupon, ServiceError>) -> Markup {
    match found {
        Err(e) => html! { p #coupon-found .alert role="alert" { (e.to_string()) } },
        Ok(c) => html! {
            dl #coupon-found {
                dt { "Code" } dd.mono { (c.code) }
                dt { "Type" } dd { (type_name(c.coupon_type)) }
                dt { "Discount" } dd {
                    (ui::int(c.discount_amount))
                    @if c.discount_kind == "PERCENTAGE" { " %" } @else { " (minor units, flat)" }
                }
                dt { "Uses" } dd { (c.uses) " of " (c.max_uses) }
                dt { "Expires" } dd { (ui::time(c.expires_at.as_millis())) }
                dt { "Allocated to" } dd.mono {
                    @if let Some(u) = &c.allocated_to { (u) } @else { "nobody" }
                }
                dt { "Created" } dd { (ui::time(c.created_at.as_millis())) }
            }
        },
    }
}

//! Campaigns: the list (newest first), the create form, and a campaign's page with its live
//! progress, its codes paged and an export of every code as CSV.

use std::collections::HashMap;

use allot_domain::campaign::{CampaignId, WindowState};
use allot_storage::Campaign;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use http::{HeaderValue, header};
use maud::{Markup, html};
use serde::Serialize;

use super::layout::error_page;
use super::{Ctx, ui};
use crate::ServiceError;
use crate::service::campaign::COUPONS_PAGE_MAX;
use crate::state::AppState;

/// Rows of a page's table: small enough to render in a few milliseconds, whatever the store.
const PAGE_ROWS: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/campaigns", get(list))
        .route("/console/campaigns/{id}", get(detail))
        .route("/console/campaigns/{id}/progress.json", get(progress))
        .route("/console/campaigns/{id}/codes.csv", get(export))
}

/// A keyset cursor from the query (`after`), if any: a page of the console answers a bad one
/// as the API would, naming it.
pub(super) fn cursor(q: &HashMap<String, String>) -> Result<Option<i64>, ServiceError> {
    match q.get("after").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or(
            ServiceError::InvalidArgument {
                field: "after",
                message: "after: must be a whole number, 0 or more".to_owned(),
            },
        ),
    }
}

fn campaign_id(raw: &str) -> Result<CampaignId, ServiceError> {
    raw.parse::<i64>()
        .ok()
        .and_then(|n| CampaignId::parse(n).ok())
        .ok_or(ServiceError::NotFound { what: "campaign" })
}

fn state_badge(c: &Campaign, state: WindowState) -> Markup {
    if c.issued >= c.total {
        return html! { span.badge.bad { "Sold out" } };
    }
    match state {
        WindowState::Open => html! { span.badge.ok { "Issuing" } },
        WindowState::NotStarted => html! { span.badge.warn { "Not started" } },
        WindowState::Ended => html! { span.badge { "Ended" } },
    }
}

async fn list(ctx: Ctx, Query(q): Query<HashMap<String, String>>) -> Response {
    let before = match cursor(&q) {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let services = &ctx.state.services;
    let campaigns = match services.campaigns.list(before, PAGE_ROWS).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let now = services.clock.now();
    let next = (campaigns.len() == PAGE_ROWS as usize)
        .then(|| campaigns.last().map(|c| c.id.get().to_string()))
        .flatten();
    let body = html! {
        section.panel aria-labelledby="campaign-create-title" {
            h2 #campaign-create-title { "New campaign" }
            (ui::api_form(
                "campaign-create",
                "POST",
                "/api/v1/campaigns",
                "/console/campaigns/{id}",
                "stack",
                html! {
                    (ui::field("Name", "name", "text", "", true, "1 to 200 characters"))
                    (ui::field("Starts", "start_time", "datetime-local", "datetime", true, "your local time"))
                    (ui::field("Ends", "end_time", "datetime-local", "datetime", false, "optional"))
                    (ui::field("Codes", "total_coupons", "number", "int", true, "1 to 10,000,000"))
                    (ui::field("Codes per user", "per_user_limit", "number", "int", false, "optional"))
                },
                "Create campaign",
            ))
        }
        h2 { "Campaigns" }
        @if campaigns.is_empty() {
            p.sub { "No campaigns yet." }
        } @else {
            table #campaigns aria-label="Campaigns, newest first" {
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Starts" }
                    th scope="col" { "Ends" }
                    th.num scope="col" { "Issued" }
                    th.num scope="col" { "Total" }
                    th scope="col" { "State" }
                } }
                tbody {
                    @for c in &campaigns {
                        tr {
                            td { a href={ "/console/campaigns/" (c.id.get()) } { (c.name) } }
                            td { (ui::time(c.window.starts_at.as_millis())) }
                            td { @if let Some(end) = c.window.ends_at { (ui::time(end.as_millis())) } @else { "–" } }
                            td.num { (ui::int(c.issued)) }
                            td.num { (ui::int(c.total)) }
                            td { (state_badge(c, c.window.state_at(now))) }
                        }
                    }
                }
            }
            (ui::pager("/console/campaigns", next))
        }
    };
    ctx.page("Campaigns", &[], body)
}

async fn detail(
    ctx: Ctx,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = match campaign_id(&raw) {
        Ok(id) => id,
        Err(e) => return error_page(e),
    };
    let after = match cursor(&q) {
        Ok(c) => c.unwrap_or(0),
        Err(e) => return error_page(e),
    };
    let services = &ctx.state.services;
    let campaign = match services.campaigns.get(id).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let codes = match services.campaigns.coupons(id, after, PAGE_ROWS).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let state = campaign.window.state_at(services.clock.now());
    let next = (codes.len() == PAGE_ROWS as usize)
        .then(|| codes.last().map(|c| c.seq.to_string()))
        .flatten();
    let base = format!("/console/campaigns/{}", id.get());
    let body = html! {
        p.sub {
            "Opens " (ui::time(campaign.window.starts_at.as_millis()))
            @if let Some(end) = campaign.window.ends_at { ", closes " (ui::time(end.as_millis())) }
            @if let Some(limit) = campaign.per_user_limit { " · at most " (limit) " per user" }
            " · " (state_badge(&campaign, state))
        }
        section #campaign-progress data-progress={ (base) "/progress.json" } aria-labelledby="progress-title" {
            h2 #progress-title { "Progress" }
            div.cards aria-live="polite" {
                div.card {
                    h3 { "Issued" }
                    p.figure { span #campaign-issued data-field="issued" data-format="raw" { (campaign.issued) } }
                    p.sub { "of " (ui::int(campaign.total)) }
                }
                div.card {
                    h3 { "Remaining" }
                    p.figure data-field="remaining" { (ui::int(campaign.total - campaign.issued)) }
                }
                div.card {
                    h3 { "Issue rate" }
                    p.figure { span #campaign-rate { "–" } }
                    p.sub { "codes per second" }
                }
            }
            progress #campaign-bar max=(campaign.total) value=(campaign.issued) aria-label="Issued of total" {}
            svg.chart #campaign-chart role="img" aria-label="Codes issued per second, the last minutes" {}
        }
        h2 { "Codes" }
        p { a.button.secondary href={ (base) "/codes.csv" } download { "Export CSV" } }
        @if codes.is_empty() {
            p.sub { "No codes issued yet." }
        } @else {
            table #campaign-codes aria-label="Issued codes, in issue order" {
                thead { tr {
                    th.num scope="col" { "#" }
                    th scope="col" { "Code" }
                    th scope="col" { "User" }
                    th scope="col" { "Issued" }
                } }
                tbody {
                    @for c in &codes {
                        tr {
                            td.num { (c.seq) }
                            td.mono { (c.code.as_str()) }
                            td { (c.user_id.as_deref().unwrap_or("–")) }
                            td { (ui::time(c.issued_at.as_millis())) }
                        }
                    }
                }
            }
            (ui::pager(&base, next))
        }
    };
    ctx.page(&campaign.name, &["campaign.js"], body)
}

#[derive(Serialize)]
struct Progress {
    issued: i64,
    total: i64,
    remaining: i64,
    /// `issuing`, `not_started`, `ended` or `sold_out`.
    state: &'static str,
    /// The server's clock, so the page's rate does not depend on the browser's timers.
    now_ms: i64,
}

/// The figures the campaign's page polls every second: one read of the campaign row by its
/// key.
async fn progress(ctx: Ctx, Path(raw): Path<String>) -> Response {
    let result = async {
        let id = campaign_id(&raw)?;
        let services = &ctx.state.services;
        let c = services.campaigns.get(id).await?;
        let now = services.clock.now();
        let state = if c.issued >= c.total {
            "sold_out"
        } else {
            match c.window.state_at(now) {
                WindowState::Open => "issuing",
                WindowState::NotStarted => "not_started",
                WindowState::Ended => "ended",
            }
        };
        Ok::<_, ServiceError>(Progress {
            issued: c.issued,
            total: c.total,
            remaining: c.total - c.issued,
            state,
            now_ms: now.as_millis(),
        })
    }
    .await;
    match result {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every code of the campaign as CSV, streamed: one keyset page of the listing at a time (at
/// most [`COUPONS_PAGE_MAX`] rows in memory), so a campaign of ten million codes costs the
/// server no more memory than one of ten.
async fn export(ctx: Ctx, Path(raw): Path<String>) -> Response {
    let id = match campaign_id(&raw) {
        Ok(id) => id,
        Err(e) => return error_page(e),
    };
    let campaigns = ctx.state.services.campaigns.clone();
    if let Err(e) = campaigns.get(id).await {
        return error_page(e);
    }
    let header_row = Bytes::from_static(b"seq,code,user_id,issued_at\r\n");
    let pages = futures::stream::unfold(Some(0_i64), move |after| {
        let campaigns = campaigns.clone();
        async move {
            let after = after?;
            match campaigns.coupons(id, after, COUPONS_PAGE_MAX).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let last = page.last().map(|c| c.seq);
                    let full = page.len() == COUPONS_PAGE_MAX as usize;
                    let mut out = String::with_capacity(page.len() * 64);
                    for c in &page {
                        out.push_str(&c.seq.to_string());
                        out.push(',');
                        out.push_str(&csv_field(c.code.as_str()));
                        out.push(',');
                        out.push_str(&csv_field(c.user_id.as_deref().unwrap_or("")));
                        out.push(',');
                        out.push_str(&crate::time::rfc3339(c.issued_at));
                        out.push_str("\r\n");
                    }
                    let next = if full { last } else { None };
                    Some((Ok::<_, std::io::Error>(Bytes::from(out)), next))
                }
                // The status line is sent: ending the body early is the only way left to say
                // the file is incomplete (the download fails instead of looking whole).
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let body = futures::stream::once(async move { Ok(header_row) }).chain(pages);
    let disposition = format!("attachment; filename=\"campaign-{}-codes.csv\"", id.get());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_field(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", raw.replace('"', "\"\"")).into()
    } else {
        raw.into()
    }
}

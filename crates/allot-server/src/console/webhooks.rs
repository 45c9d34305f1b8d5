//! Webhooks: the endpoints, registering one (its secret shown once), and an endpoint's
//! delivery log with failures marked.

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::error_page;
use super::{Ctx, ui};
use crate::state::AppState;

/// Delivery rows a page shows.
const DELIVERIES_PAGE: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/webhooks", get(list))
        .route("/console/webhooks/{id}", get(detail))
}

#[derive(Deserialize, Default)]
pub(super) struct After {
    after: Option<i64>,
}

/// A webhook's health in one badge: waiting on retries is what an operator must see first.
fn state_badge(active: bool, failed_attempts: i64) -> Markup {
    html! {
        @if !active { span.badge { "paused" } }
        @else if failed_attempts > 0 { span.badge.bad { "failing (" (failed_attempts) " attempts)" } }
        @else { span.badge.ok { "delivering" } }
    }
}

async fn list(ctx: Ctx) -> Response {
    // At most `WEBHOOKS_MAX` endpoints exist, so the whole list is one page.
    let hooks = match ctx.state.services.webhooks.list().await {
        Ok(h) => h,
        Err(e) => return error_page(e),
    };
    let body = html! {
        p.sub { "Each endpoint receives the events it asks for, in order, signed with its secret; a failure is retried with backoff from the same event." }
        table #webhooks aria-label="Webhook endpoints" {
            thead { tr { th { "Id" } th { "URL" } th { "Events" } th { "State" } th.num { "Last delivered seq" } } }
            tbody {
                @for w in &hooks {
                    tr {
                        td { a href={ "/console/webhooks/" (w.id) } { (w.id) } }
                        td { a href={ "/console/webhooks/" (w.id) } { code { (w.url) } }
                             @if let Some(d) = &w.description { br; span.sub { (d) } } }
                        td { @match &w.event_types { Some(t) => { (t.join(", ")) }, None => { "every type" } } }
                        td { (state_badge(w.active, w.attempts)) }
                        td.num { (ui::int(w.cursor)) }
                    }
                }
                @if hooks.is_empty() { tr { td colspan="5" { "No webhook endpoint yet." } } }
            }
        }
        @if ctx.may_call("POST", "/api/v1/webhooks") {
            h2 { "Register an endpoint" }
            (ui::api_form("webhook-create", "POST", "/api/v1/webhooks", "", "stack", html! {
                (ui::field("URL", "url", "url", "", true, "https://host/path"))
                (ui::field("Description", "description", "text", "", false, ""))
                (ui::field("Event types", "event_types", "text", "list", false, "comma separated, e.g. OrderCreated, CampaignCreated; empty: every type"))
            }, "Register"))
            div #webhook-create-reveal .panel hidden {
                h3 { "Signing secret" }
                p { "Copy it now: it is shown only this once." }
                p { code #webhook-secret data-field="secret" data-format="raw" {} }
                div.actions {
                    button type="button" .secondary data-copy="#webhook-secret" { "Copy" }
                    a.button.secondary data-href="/console/webhooks/{id}" href="/console/webhooks" { "Open the endpoint" }
                }
            }
        }
    };
    ctx.page("Webhooks", &["reveal.js"], body)
}

async fn detail(ctx: Ctx, Path(id): Path<i64>, Query(q): Query<After>) -> Response {
    let after = q.after.unwrap_or(0).max(0);
    let services = &ctx.state.services;
    let hook = match services.webhooks.get(id).await {
        Ok(h) => h,
        Err(e) => return error_page(e),
    };
    // Keyset by the delivery row's id (its primary key): one index range per page.
    let rows = match services
        .webhooks
        .deliveries(id, after, DELIVERIES_PAGE)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let next = (rows.len() == DELIVERIES_PAGE as usize)
        .then(|| rows.last().map(|d| d.id.to_string()))
        .flatten();
    let may_change = ctx.may_call("PATCH", "/api/v1/webhooks/{id}");
    let body = html! {
        div.cards {
            div.card { h2 { "URL" } p { code { (hook.url) } } }
            div.card { h2 { "State" } p { (state_badge(hook.active, hook.attempts)) } }
            div.card { h2 { "Last delivered seq" } p.figure { (ui::int(hook.cursor)) } }
            div.card { h2 { "Next attempt" } p { (ui::time(hook.next_attempt_at.as_millis())) } }
        }
        @if may_change {
            div.actions {
                @if hook.attempts > 0 && ctx.may_call("POST", "/api/v1/webhooks/{id}/retry") {
                    (ui::api_form("webhook-retry", "POST", "/api/v1/webhooks/{id}/retry", "reload", "inline", html! {
                        input type="hidden" name="id" value=(id) data-path;
                    }, "Retry now"))
                }
                (ui::api_form("webhook-active", "PATCH", "/api/v1/webhooks/{id}", "reload", "inline", html! {
                    input type="hidden" name="id" value=(id) data-path;
                    input type="hidden" name="active" value=(if hook.active { "false" } else { "true" }) data-type="bool";
                }, if hook.active { "Pause deliveries" } else { "Resume deliveries" }))
            }
        }
        h2 { "Deliveries" }
        table #deliveries aria-label="Delivery attempts, oldest first" {
            thead { tr { th { "When" } th.num { "Event seq" } th.num { "Attempt" } th { "Result" } th.num { "Took (ms)" } th { "Next attempt" } } }
            tbody {
                @for d in &rows {
                    @let a = &d.attempt;
                    tr class=(if a.delivered { "" } else { "failed" }) {
                        td { (ui::time(a.at.as_millis())) }
                        td.num { (a.event_seq) }
                        td.num { (a.attempt) }
                        td {
                            @if a.delivered { span.badge.ok { "delivered " @if let Some(s) = a.status { (s) } } }
                            @else {
                                span.badge.bad { "failed" @if let Some(s) = a.status { " " (s) } }
                                @if let Some(err) = &a.error { " " span.sub { (err) } }
                            }
                        }
                        td.num { (a.duration_ms) }
                        td { @if let Some(t) = a.next_attempt_at { (ui::time(t.as_millis())) } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="6" { "No delivery attempt on this page." } } }
            }
        }
        (ui::pager(&format!("/console/webhooks/{id}"), next))
    };
    ctx.page(&format!("Webhook {id}"), &[], body)
}

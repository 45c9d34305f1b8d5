//! Notifications: the templates (a list, an editor with a preview rendered by the server's
//! own engine) and the rules that send them.

use allot_domain::notification::DeliveryStatus;
use allot_storage::notification::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::error_page;
use super::{Ctx, ui};
use crate::ServiceError;
use crate::service::notification::will_retry;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/notifications", get(list))
        .route("/console/notifications/templates/{key}", get(editor))
        .route("/console/notifications/outbox", get(outbox))
}

/// Rows an outbox page shows.
const OUTBOX_PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub(super) struct OutboxFilter {
    #[serde(default)]
    status: String,
    before: Option<i64>,
}

fn textarea(label: &str, name: &str, value: &str, hint: &str) -> Markup {
    html! {
        label { (label) @if !hint.is_empty() { span.hint { (hint) } }
            textarea name=(name) rows="5" { (value) }
        }
    }
}

fn text(label: &str, name: &str, value: &str) -> Markup {
    html! { label { (label) input type="text" name=(name) value=(value); } }
}

/// The fields of a template, named after the API's (`email.subject`, `in_app.body`); a
/// channel whose fields are left empty is not sent.
fn template_fields(t: Option<&Template>) -> Markup {
    let email = t.and_then(|t| t.email.as_ref());
    let in_app = t.and_then(|t| t.in_app.as_ref());
    let sms = t.and_then(|t| t.sms.as_ref());
    let push = t.and_then(|t| t.push.as_ref());
    html! {
        (text("Name", "name", t.map_or("", |t| t.name.as_str())))
        fieldset {
            legend { "Email" }
            (text("Subject", "email.subject", email.map_or("", |e| e.subject.as_str())))
            (textarea("Body", "email.body", email.map_or("", |e| e.body.as_str()), "variables as {{ name }}"))
        }
        fieldset {
            legend { "In-app" }
            (text("Title", "in_app.title", in_app.map_or("", |p| p.title.as_str())))
            (textarea("Body", "in_app.body", in_app.map_or("", |p| p.body.as_str()), ""))
        }
        fieldset {
            legend { "SMS" }
            (textarea("Text", "sms.text", sms.map_or("", |p| p.text.as_str()), "sent to the user's phone number, through the notification gateway"))
        }
        fieldset {
            legend { "Push" }
            (text("Title", "push.title", push.map_or("", |p| p.title.as_str())))
            (textarea("Body", "push.body", push.map_or("", |p| p.body.as_str()), ""))
            (text("Link (optional)", "push.url", push.and_then(|p| p.url.as_deref()).unwrap_or("")))
        }
    }
}

async fn list(ctx: Ctx) -> Response {
    let notifications = &ctx.state.services.notifications;
    // Both lists are small by nature (templates and rules are configuration, not traffic).
    let templates = match notifications.templates().await {
        Ok(t) => t,
        Err(e) => return error_page(e),
    };
    let rules = match notifications.rules().await {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let may_edit_rules = ctx.may_call("PUT", "/api/v1/notifications/rules/{name}");
    let body = html! {
        @if ctx.may_call("GET", "/api/v1/notifications/outbox") {
            p { a href="/console/notifications/outbox" { "The outbox (email, SMS, push)" } " · " a href="/console/notifications/outbox?status=failed" { "failed ones" } }
        }
        h2 { "Templates" }
        table #templates aria-label="Templates" {
            thead { tr { th { "Name" } th { "Channels" } th { "Changed" } } }
            tbody {
                @for t in &templates {
                    tr {
                        td { a href={ "/console/notifications/templates/" (t.id) } { (t.name) } }
                        td {
                            @if t.email.is_some() { span.badge { "email" } " " }
                            @if t.in_app.is_some() { span.badge { "in-app" } " " }
                            @if t.sms.is_some() { span.badge { "sms" } " " }
                            @if t.push.is_some() { span.badge { "push" } }
                        }
                        td { (ui::time(t.updated_at.as_millis())) }
                    }
                }
                @if templates.is_empty() { tr { td colspan="3" { "No template yet." } } }
            }
        }
        @if ctx.may_call("POST", "/api/v1/notifications/templates") {
            details.panel {
                summary { "New template" }
                (ui::api_form("template-create", "POST", "/api/v1/notifications/templates",
                    "/console/notifications/templates/{id}", "stack", template_fields(None), "Create"))
            }
        }
        h2 { "Rules" }
        p.sub { "A rule sends its template to its recipients when an event of its type is committed." }
        table #rules aria-label="Rules" {
            thead { tr { th { "Rule" } th { "On" } th { "To" } th { "Template, channels, active" } } }
            tbody {
                @for r in &rules {
                    @let channels: Vec<&str> = r.channels.iter().map(|c| c.as_str()).collect();
                    tr {
                        td { (r.name) }
                        td { code { (r.event_type) } }
                        td { (r.recipients.as_text()) }
                        td {
                            @if may_edit_rules {
                                (ui::api_form(&format!("rule-{}", r.name), "PUT", "/api/v1/notifications/rules/{name}", "", "inline", html! {
                                    input type="hidden" name="name" value=(r.name) data-path;
                                    label { "Template" input type="text" name="template" value=(r.template); }
                                    label { "Channels" span.hint { "email, in_app, sms, push" }
                                        input type="text" name="channels" data-type="list" value=(channels.join(", ")); }
                                    label { "Active" input type="checkbox" name="active" data-type="bool" checked[r.active]; }
                                }, "Save"))
                            } @else {
                                (r.template) " · " (channels.join(", ")) " · " (if r.active { "active" } else { "off" })
                            }
                        }
                    }
                }
            }
        }
    };
    ctx.page("Notifications", &[], body)
}

async fn editor(ctx: Ctx, Path(key): Path<String>) -> Response {
    let t = match ctx.state.services.notifications.template(&key).await {
        Ok(t) => t,
        Err(e) => return error_page(e),
    };
    let body = html! {
        div.row {
            div {
                h2 { "Template" }
                (ui::api_form("template-edit", "PUT", "/api/v1/notifications/templates/{key}", "reload", "stack", html! {
                    input type="hidden" name="key" value=(t.id) data-path;
                    (template_fields(Some(&t)))
                }, "Save"))
                form #template-delete .inline data-api="/api/v1/notifications/templates/{key}" data-method="DELETE"
                    data-then="/console/notifications" data-confirm="Delete this template? A rule that sends it keeps it from being deleted." {
                    input type="hidden" name="key" value=(t.id) data-path;
                    p #template-delete-error .alert role="alert" {}
                    div.actions { button.danger type="submit" { "Delete this template" } }
                }
            }
            section #preview aria-labelledby="preview-heading" {
                h2 #preview-heading { "Preview" }
                p.sub { "Rendered by the server with these variables, as a notification would be: shown as plain text." }
                form #template-preview .stack data-source="template-edit" data-url="/api/v1/notifications/template-preview" {
                    label { "Variables" span.hint { "a JSON object, e.g. {\"order_id\": 12}" }
                        textarea name="variables" rows="4" { "{}" }
                    }
                    p #template-preview-error .alert role="alert" {}
                    div.actions { button type="button" #preview-button { "Preview" } }
                }
                div #preview-output aria-live="polite" {
                    h3 { "Email" }
                    p { strong data-preview="email.subject" {} }
                    pre.preview data-preview="email.body" {}
                    h3 { "In-app" }
                    p { strong data-preview="in_app.title" {} }
                    pre.preview data-preview="in_app.body" {}
                    h3 { "SMS" }
                    pre.preview data-preview="sms.text" {}
                    h3 { "Push" }
                    p { strong data-preview="push.title" {} }
                    pre.preview data-preview="push.body" {}
                    p { code data-preview="push.url" {} }
                }
            }
        }
    };
    ctx.page(&format!("Template {}", t.name), &["notifications.js"], body)
}

fn status_badge(status: DeliveryStatus, retrying: bool) -> Markup {
    html! {
        @match status {
            DeliveryStatus::Sent => span.badge.ok { "sent" },
            DeliveryStatus::Queued => span.badge { "queued" },
            DeliveryStatus::Failed if retrying => span.badge.warn { "failed, retrying" },
            DeliveryStatus::Failed => span.badge.bad { "failed" },
        }
    }
}

/// The outbox (email, SMS, push), shown only to the roles that may read delivery states (the page's
/// own rule lets marketing in for the templates).
async fn outbox(ctx: Ctx, Query(f): Query<OutboxFilter>) -> Response {
    if !ctx.may_call("GET", "/api/v1/notifications/outbox") {
        return error_page(ServiceError::Forbidden {
            field: None,
            message: String::new(),
        });
    }
    let status = DeliveryStatus::parse(f.status.trim());
    let rows = match ctx
        .state
        .services
        .notifications
        .outbox(status, f.before.filter(|b| *b > 0), OUTBOX_PAGE)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let next = (rows.len() == OUTBOX_PAGE as usize)
        .then(|| rows.last().map(|n| n.id))
        .flatten();
    let base = match status {
        Some(s) => format!("/console/notifications/outbox?status={}", s.as_str()),
        None => "/console/notifications/outbox".to_owned(),
    };
    let join = if base.contains('?') { "&" } else { "?" };
    let body = html! {
        p.sub { "Every recipient's email, SMS and push, newest first. A failed one is retried with backoff until its attempts run out." }
        form #outbox-filter .inline method="get" action="/console/notifications/outbox" {
            label { "State"
                select name="status" {
                    option value="" { "Any" }
                    @for s in [DeliveryStatus::Queued, DeliveryStatus::Sent, DeliveryStatus::Failed] {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            div.actions { button type="submit" { "Show" } }
        }
        table #outbox aria-label="Outbox, newest first" {
            thead { tr { th.num { "Id" } th { "Created" } th.num { "To user" } th { "Channel" } th { "Subject" } th { "Template, rule" } th { "State" } th.num { "Attempts" } th { "Last failure" } th { "Next attempt" } } }
            tbody {
                @for n in &rows {
                    @let retrying = will_retry(n);
                    tr class=(if n.status == DeliveryStatus::Failed && !retrying { "failed" } else { "" }) {
                        td.num { (n.id) }
                        td { (ui::time(n.created_at.as_millis())) }
                        td.num { (n.user.get()) }
                        td { (n.channel.as_str()) }
                        td { (n.subject) }
                        td { @if let Some(t) = &n.template { (t) } @if let Some(r) = &n.rule { " · " (r) } }
                        td { (status_badge(n.status, retrying)) }
                        td.num { (n.attempts) }
                        td { @if let Some(e) = &n.last_error { span.sub { (e) } } }
                        td { @if let Some(t) = n.next_attempt_at { (ui::time(t.as_millis())) } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="10" { "Nothing here." } } }
            }
        }
        nav.pager aria-label="Pages" {
            a href=(base) { "Newest" }
            @if let Some(before) = next { a href={ (base) (join) "before=" (before) } { "Next page" } }
        }
    };
    ctx.page("Outbox", &[], body)
}

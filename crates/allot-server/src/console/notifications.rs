//! Notifications: the templates (a list, an editor with a preview rendered by the server's
//! own engine) and the rules that send them.

use allot_storage::notification::Template;
use axum::Router;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::layout::error_page;
use super::{Ctx, ui};
use crate::http::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/notifications", get(list))
        .route("/console/notifications/templates/{key}", get(editor))
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
        h2 { "Templates" }
        table #templates aria-label="Templates" {
            thead { tr { th { "Name" } th { "Channels" } th { "Changed" } } }
            tbody {
                @for t in &templates {
                    tr {
                        td { a href={ "/console/notifications/templates/" (t.id) } { (t.name) } }
                        td {
                            @if t.email.is_some() { span.badge { "email" } " " }
                            @if t.in_app.is_some() { span.badge { "in-app" } }
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
                                    label { "Channels" span.hint { "email, in_app" }
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
                }
            }
        }
    };
    ctx.page(&format!("Template {}", t.name), &["notifications.js"], body)
}

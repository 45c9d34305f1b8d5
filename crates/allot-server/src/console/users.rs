//! Users and API keys: lists (users filtered by role, state or exact email), creating either,
//! and a user's page to change its role, deactivate or reactivate it, or set its password.

use allot_domain::auth::{AccountId, Email, Role};
use allot_storage::UserQuery;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::error_page;
use super::{Ctx, ui};
use crate::state::AppState;

/// Rows a page shows.
const PAGE: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/users", get(list))
        .route("/console/users/{id}", get(detail))
        .route("/console/api-keys", get(keys))
}

#[derive(Deserialize, Default)]
pub(super) struct UserFilter {
    #[serde(default)]
    role: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    email: String,
    after: Option<i64>,
}

#[derive(Deserialize, Default)]
pub(super) struct After {
    after: Option<i64>,
}

fn role_select(name: &str, label: &str, selected: Option<Role>, any: Option<&str>) -> Markup {
    html! {
        label { (label)
            select name=(name) {
                @if let Some(any) = any { option value="" { (any) } }
                @for r in Role::ALL {
                    option value=(r.as_str()) selected[selected == Some(r)] { (r.as_str()) }
                }
            }
        }
    }
}

fn state_badge(active: bool, verified: bool) -> Markup {
    html! {
        @if !active { span.badge.bad { "deactivated" } }
        @else if !verified { span.badge.warn { "not verified" } }
        @else { span.badge.ok { "active" } }
    }
}

async fn list(ctx: Ctx, Query(f): Query<UserFilter>) -> Response {
    let role = Role::parse(f.role.trim()).ok();
    let active = match f.active.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    let email = f.email.trim();
    let (email_filter, error) = match email {
        "" => (None, None),
        raw => match Email::parse(raw) {
            Ok(e) => (Some(e), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    // Keyset by id (the primary key); an email is found through its keyed-hash index.
    let users = if error.is_some() {
        Vec::new()
    } else {
        let query = UserQuery {
            role,
            active,
            email: email_filter,
            after: f.after.unwrap_or(0).max(0),
            limit: PAGE,
        };
        match ctx.state.services.auth.users(query).await {
            Ok(u) => u,
            Err(e) => return error_page(e),
        }
    };
    let next = (users.len() == PAGE as usize)
        .then(|| users.last().map(|u| u.id.get().to_string()))
        .flatten();
    let params: Vec<(&str, &str)> = [
        ("role", f.role.trim()),
        ("active", f.active.as_str()),
        ("email", email),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    let base = if params.is_empty() {
        "/console/users".to_owned()
    } else {
        format!(
            "/console/users?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    };
    let body = html! {
        form #users-filter .inline method="get" action="/console/users" {
            (role_select("role", "Role", role, Some("Every role")))
            label { "State"
                select name="active" {
                    option value="" { "Any" }
                    option value="true" selected[active == Some(true)] { "Active" }
                    option value="false" selected[active == Some(false)] { "Deactivated" }
                }
            }
            label { "Email" span.hint { "the whole address" } input type="email" name="email" value=(email); }
            div.actions { button type="submit" { "Filter" } a.button.secondary href="/console/users" { "Clear" } }
        }
        p #users-filter-error .alert role="alert" { @if let Some(e) = &error { (e) } }
        table #users aria-label="Users" {
            thead { tr { th.num { "Id" } th { "Email" } th { "Role" } th { "State" } th { "Created" } } }
            tbody {
                @for u in &users {
                    tr {
                        td.num { (u.id.get()) }
                        td { a href={ "/console/users/" (u.id.get()) } { (u.email.as_str()) } }
                        td { (u.role.as_str()) }
                        td { (state_badge(u.active, u.email_verified)) }
                        td { (ui::time(u.created_at.as_millis())) }
                    }
                }
                @if users.is_empty() { tr { td colspan="5" { "No user matches." } } }
            }
        }
        (ui::pager(&base, next))
        @if ctx.may_call("POST", "/api/v1/users") {
            h2 { "Create a user" }
            (ui::api_form("user-create", "POST", "/api/v1/users", "/console/users/{id}", "stack", html! {
                label { "Email" input type="email" name="email" autocomplete="off" required; }
                label { "Password" span.hint { "12 characters or more" }
                    input type="password" name="password" autocomplete="new-password" required; }
                (role_select("role", "Role", Some(Role::Support), None))
            }, "Create"))
        }
    };
    ctx.page("Users", &[], body)
}

async fn detail(ctx: Ctx, Path(id): Path<i64>) -> Response {
    let user = match ctx.state.services.auth.find_user(AccountId::new(id)).await {
        Ok(u) => u,
        Err(e) => return error_page(e),
    };
    let myself = ctx.session.user == user.id;
    let body = html! {
        div.cards {
            div.card { h2 { "Role" } p.figure { (user.role.as_str()) } }
            div.card { h2 { "State" } p { (state_badge(user.active, user.email_verified)) } }
            div.card { h2 { "Created" } p { (ui::time(user.created_at.as_millis())) } }
        }
        @if myself { p.sub { "This is your own account: a change of role or a deactivation ends your session." } }
        div.row {
            section.panel aria-labelledby="role-heading" {
                h2 #role-heading { "Role" }
                (ui::api_form("user-role", "PUT", "/api/v1/users/{id}/role", "reload", "stack", html! {
                    input type="hidden" name="id" value=(id) data-path;
                    (role_select("role", "New role", Some(user.role), None))
                    p.sub { "Its sessions and tokens stop at once; the next sign-in carries the new role." }
                }, "Change role"))
            }
            section.panel aria-labelledby="password-heading" {
                h2 #password-heading { "Password" }
                (ui::api_form("user-password", "POST", "/api/v1/users/{id}/password", "", "stack", html! {
                    input type="hidden" name="id" value=(id) data-path;
                    label { "New password" span.hint { "12 characters or more" }
                        input type="password" name="new_password" autocomplete="new-password" required; }
                }, "Set password"))
            }
            section.panel aria-labelledby="active-heading" {
                h2 #active-heading { "Access" }
                @let (value, label, confirm) = if user.active {
                    ("false", "Deactivate", "Deactivate this user? Its sessions and tokens stop at once.")
                } else {
                    ("true", "Reactivate", "Reactivate this user? It may sign in again.")
                };
                form #user-active .stack data-api="/api/v1/users/{id}/active" data-method="PUT" data-then="reload" data-confirm=(confirm) {
                    input type="hidden" name="id" value=(id) data-path;
                    input type="hidden" name="active" value=(value) data-type="bool";
                    p #user-active-error .alert role="alert" {}
                    div.actions { button.danger[user.active] type="submit" { (label) } }
                }
            }
        }
    };
    ctx.page(&format!("User {}", user.email.as_str()), &[], body)
}

async fn keys(ctx: Ctx, Query(q): Query<After>) -> Response {
    // Keyset by id (the primary key).
    let keys = match ctx
        .state
        .services
        .auth
        .api_keys(q.after.unwrap_or(0).max(0), PAGE)
        .await
    {
        Ok(k) => k,
        Err(e) => return error_page(e),
    };
    let next = (keys.len() == PAGE as usize)
        .then(|| keys.last().map(|k| k.id.to_string()))
        .flatten();
    let body = html! {
        table #api-keys aria-label="API keys" {
            thead { tr { th.num { "Id" } th { "Name" } th { "Role" } th { "Created" } th { "State" } } }
            tbody {
                @for k in &keys {
                    tr {
                        td.num { (k.id) }
                        td { (k.name) }
                        td { (k.role.as_str()) }
                        td { (ui::time(k.created_at.as_millis())) }
                        td {
                            @if let Some(at) = k.revoked_at {
                                span.badge.bad { "revoked" } " " span.sub { (ui::time(at.as_millis())) }
                            } @else {
                                form id={ "api-key-revoke-" (k.id) } .inline data-api="/api/v1/api-keys/{id}" data-method="DELETE"
                                    data-then="reload" data-confirm={ "Revoke the key " (k.name) "? It stops at once." } {
                                    input type="hidden" name="id" value=(k.id) data-path;
                                    span.badge.ok { "active" }
                                    p.alert role="alert" {}
                                    button.danger type="submit" aria-label={ "Revoke " (k.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
                @if keys.is_empty() { tr { td colspan="5" { "No API key yet." } } }
            }
        }
        (ui::pager("/console/api-keys", next))
        h2 { "Create a key" }
        (ui::api_form("api-key-create", "POST", "/api/v1/api-keys", "", "stack", html! {
            label { "Name" span.hint { "what uses it, e.g. checkout service" } input type="text" name="name" required; }
            (role_select("role", "Role", Some(Role::Marketing), None))
        }, "Create"))
        div #api-key-create-reveal .panel hidden {
            h3 { "The new key" }
            p { "Copy it now: it is shown only this once. Send it as " code { "X-Api-Key" } "." }
            p { code #api-key-secret data-field="key" data-format="raw" {} }
            div.actions {
                button type="button" .secondary data-copy="#api-key-secret" { "Copy" }
                a.button.secondary href="/console/api-keys" { "Show the list" }
            }
        }
    };
    ctx.page("API keys", &["reveal.js"], body)
}

//! REST for notifications (issue 8): templates, rules, the caller's preferences and inbox,
//! direct sends and delivery status. Who may call which route is in the policy table
//! (`crate::policy`); here, inbox and preferences are always the caller's own.

use std::collections::BTreeMap;

use allot_domain::auth::AccountId;
use allot_storage::notification::{ChannelSwitches, Notification, Preferences, Rule, Template};
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery, NotificationId, PathId, invalid, whole};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::{AuthUser, PrincipalId};
use crate::service::notification::{
    PushInput, RuleInput, SendInput, TemplateInput, phone, switches, will_retry,
};

const INBOX_LIMIT_DEFAULT: u32 = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications", get(inbox).post(send))
        .route("/api/v1/notifications/{id}/read", post(mark_read))
        .route("/api/v1/notifications/status/{id}", get(status))
        .route("/api/v1/notifications/outbox", get(outbox))
        .route(
            "/api/v1/notifications/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/notifications/template-preview",
            post(preview_template),
        )
        .route(
            "/api/v1/notifications/templates/{key}",
            get(read_template)
                .put(update_template)
                .delete(delete_template),
        )
        .route("/api/v1/notifications/rules", get(list_rules))
        .route("/api/v1/notifications/rules/{name}", put(update_rule))
        .route(
            "/api/v1/notifications/preferences",
            get(read_preferences).put(set_preferences),
        )
}

/// The caller's account: inboxes and preferences belong to users, not to API keys.
fn account(caller: AuthUser) -> Result<AccountId, ServiceError> {
    match caller.id {
        PrincipalId::User(id) => Ok(id),
        PrincipalId::ApiKey(_) | PrincipalId::TrustedNetwork => Err(ServiceError::NotFound {
            what: "inbox (only a user has one)",
        }),
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct EmailPartBody {
    /// minijinja source.
    pub subject: Option<String>,
    /// minijinja source.
    pub body: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct InAppPartBody {
    /// minijinja source.
    pub title: Option<String>,
    /// minijinja source.
    pub body: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct SmsPartBody {
    /// minijinja source of the text message.
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct PushPartBody {
    /// minijinja source.
    pub title: Option<String>,
    /// minijinja source.
    pub body: Option<String>,
    /// minijinja source of the link a tap opens (optional).
    pub url: Option<String>,
}

impl From<PushPartBody> for PushInput {
    fn from(p: PushPartBody) -> Self {
        PushInput {
            title: p.title,
            body: p.body,
            url: p.url,
        }
    }
}

/// A template: a unique name and a part per channel (at least one). Variables are written
/// `{{ name }}`; a variable the context lacks fails the rendering (strict).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TemplateBody {
    /// 1 to 64 of a-z, 0-9, `_`, `-`, starting with a letter.
    pub name: Option<String>,
    pub email: Option<EmailPartBody>,
    pub in_app: Option<InAppPartBody>,
    pub sms: Option<SmsPartBody>,
    pub push: Option<PushPartBody>,
}

impl From<TemplateBody> for TemplateInput {
    fn from(b: TemplateBody) -> Self {
        TemplateInput {
            name: b.name,
            email: b.email.map(|e| (e.subject, e.body)),
            in_app: b.in_app.map(|p| (p.title, p.body)),
            sms: b.sms.map(|p| p.text),
            push: b.push.map(PushInput::from),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TemplateView {
    pub id: i64,
    pub name: String,
    pub email: Option<EmailPartBody>,
    pub in_app: Option<InAppPartBody>,
    pub sms: Option<SmsPartBody>,
    pub push: Option<PushPartBody>,
    pub created_at: String,
    pub updated_at: String,
}

fn template_view(t: Template) -> TemplateView {
    TemplateView {
        id: t.id,
        name: t.name,
        email: t.email.map(|e| EmailPartBody {
            subject: Some(e.subject),
            body: Some(e.body),
        }),
        in_app: t.in_app.map(|p| InAppPartBody {
            title: Some(p.title),
            body: Some(p.body),
        }),
        sms: t.sms.map(|p| SmsPartBody { text: Some(p.text) }),
        push: t.push.map(|p| PushPartBody {
            title: Some(p.title),
            body: Some(p.body),
            url: p.url,
        }),
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.updated_at),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TemplateList {
    pub templates: Vec<TemplateView>,
}

/// Create a template. Every part is parsed now: one that does not parse is refused with the
/// engine's message (and line), and nothing is stored.
#[utoipa::path(post, path = "/api/v1/notifications/templates", tag = "notifications",
    request_body = TemplateBody,
    responses(
        (status = 201, description = "Created", body = TemplateView),
        (status = 409, description = "`template_name_taken`", body = ErrorBody),
        (status = 422, description = "A field missing or invalid, or a part that does not parse (the field is named, e.g. `email.body`)", body = ErrorBody)))]
pub(crate) async fn create_template(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<(StatusCode, Json<TemplateView>), ServiceError> {
    let t = state
        .services
        .notifications
        .create_template(body.into())
        .await?;
    Ok((StatusCode::CREATED, Json(template_view(t))))
}

/// Every template, by name.
#[utoipa::path(get, path = "/api/v1/notifications/templates", tag = "notifications",
    responses((status = 200, description = "The templates", body = TemplateList)))]
pub(crate) async fn list_templates(
    State(state): State<AppState>,
) -> Result<Json<TemplateList>, ServiceError> {
    let templates = state.services.notifications.templates().await?;
    Ok(Json(TemplateList {
        templates: templates.into_iter().map(template_view).collect(),
    }))
}

/// A template's parts and one message's variables, to render without storing anything.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PreviewBody {
    pub email: Option<EmailPartBody>,
    pub in_app: Option<InAppPartBody>,
    pub sms: Option<SmsPartBody>,
    pub push: Option<PushPartBody>,
    /// The variables the template names, e.g. `{"order_id": 12}`; absent: none.
    #[schema(value_type = Option<Object>)]
    pub variables: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenderedEmail {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenderedInApp {
    pub title: String,
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenderedSms {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenderedPush {
    pub title: String,
    pub body: String,
    pub url: Option<String>,
}

/// The parts rendered, as plain text (never HTML): the parts the request gave.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<RenderedEmail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_app: Option<RenderedInApp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<RenderedSms>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<RenderedPush>,
}

/// Render a template's parts with some variables, as a notification would be rendered (the
/// same engine, strict variables and limits). Nothing is stored or sent.
#[utoipa::path(post, path = "/api/v1/notifications/template-preview", tag = "notifications",
    request_body = PreviewBody,
    responses(
        (status = 200, description = "The rendered parts", body = PreviewView),
        (status = 422, description = "A part missing, one that does not parse or fails to render (a variable missing, too long), or variables not an object: the field is named, e.g. `email.body`", body = ErrorBody)))]
pub(crate) async fn preview_template(
    ApiJson(body): ApiJson<PreviewBody>,
) -> Result<Json<PreviewView>, ServiceError> {
    let p = crate::service::notification::preview(crate::service::notification::PreviewInput {
        email: body.email.map(|e| (e.subject, e.body)),
        in_app: body.in_app.map(|p| (p.title, p.body)),
        sms: body.sms.map(|p| p.text),
        push: body.push.map(PushInput::from),
        variables: body.variables,
    })?;
    Ok(Json(PreviewView {
        email: p
            .email
            .map(|(subject, body)| RenderedEmail { subject, body }),
        in_app: p.in_app.map(|(title, body)| RenderedInApp { title, body }),
        sms: p.sms.map(|text| RenderedSms { text }),
        push: p
            .push
            .map(|(title, body, url)| RenderedPush { title, body, url }),
    }))
}

/// One template, by id or by name.
#[utoipa::path(get, path = "/api/v1/notifications/templates/{key}", tag = "notifications",
    params(("key" = String, Path, description = "The template's id or name")),
    responses(
        (status = 200, description = "The template", body = TemplateView),
        (status = 404, description = "No such template", body = ErrorBody)))]
pub(crate) async fn read_template(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<TemplateView>, ServiceError> {
    let t = state.services.notifications.template(&key).await?;
    Ok(Json(template_view(t)))
}

/// Replace a template (name and parts), checked as at creation. A rule that sends it keeps
/// finding a part for each of its channels, or the change is refused.
#[utoipa::path(put, path = "/api/v1/notifications/templates/{key}", tag = "notifications",
    params(("key" = String, Path, description = "The template's id or name")),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "Replaced", body = TemplateView),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "`template_name_taken`", body = ErrorBody),
        (status = 422, description = "As at creation; or a part a rule needs is missing", body = ErrorBody)))]
pub(crate) async fn update_template(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Json<TemplateView>, ServiceError> {
    let t = state
        .services
        .notifications
        .update_template(&key, body.into())
        .await?;
    Ok(Json(template_view(t)))
}

/// Delete a template no rule uses.
#[utoipa::path(delete, path = "/api/v1/notifications/templates/{key}", tag = "notifications",
    params(("key" = String, Path, description = "The template's id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "`template_in_use`: a rule sends it", body = ErrorBody)))]
pub(crate) async fn delete_template(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ServiceError> {
    state.services.notifications.delete_template(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleView {
    pub name: String,
    /// The event type that triggers it.
    pub event_type: String,
    /// `role:<role>` (every active user of the role) or `order_customer`.
    pub recipients: String,
    pub template: String,
    /// `email`, `in_app`, `sms`, `push`.
    pub channels: Vec<&'static str>,
    pub active: bool,
    pub updated_at: String,
}

fn rule_view(r: Rule) -> RuleView {
    RuleView {
        name: r.name,
        event_type: r.event_type,
        recipients: r.recipients.as_text(),
        template: r.template,
        channels: r.channels.iter().map(|c| c.as_str()).collect(),
        active: r.active,
        updated_at: rfc3339(r.updated_at),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleList {
    pub rules: Vec<RuleView>,
}

/// A rule change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RuleBody {
    pub template: Option<String>,
    pub channels: Option<Vec<String>>,
    pub active: Option<bool>,
}

/// The rules that turn events into notifications.
#[utoipa::path(get, path = "/api/v1/notifications/rules", tag = "notifications",
    responses((status = 200, description = "The rules", body = RuleList)))]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
) -> Result<Json<RuleList>, ServiceError> {
    let rules = state.services.notifications.rules().await?;
    Ok(Json(RuleList {
        rules: rules.into_iter().map(rule_view).collect(),
    }))
}

/// Change a rule's template, channels or whether it is active.
#[utoipa::path(put, path = "/api/v1/notifications/rules/{name}", tag = "notifications",
    params(("name" = String, Path, description = "The rule's name")),
    request_body = RuleBody,
    responses(
        (status = 200, description = "Changed", body = RuleView),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 422, description = "Unknown template or channel, or a channel the template has no part for", body = ErrorBody)))]
pub(crate) async fn update_rule(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RuleBody>,
) -> Result<Json<RuleView>, ServiceError> {
    let rule = state
        .services
        .notifications
        .update_rule(
            &name,
            RuleInput {
                template: body.template,
                channels: body.channels,
                active: body.active,
            },
        )
        .await?;
    Ok(Json(rule_view(rule)))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub(crate) struct SwitchesBody {
    /// Default true.
    pub email: Option<bool>,
    /// Default true.
    pub in_app: Option<bool>,
    /// Default false: SMS are opt-in.
    pub sms: Option<bool>,
    /// Default true.
    pub push: Option<bool>,
}

/// A user's preferences: channel switches, per rule (by name) switches that override them
/// for that rule's notifications, and the phone number SMS go to.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct PreferencesBody {
    /// Default true.
    pub email: Option<bool>,
    /// Default true.
    pub in_app: Option<bool>,
    /// Default false: SMS are opt-in (and need `phone`).
    pub sms: Option<bool>,
    /// Default true (push goes to the devices the shop's gateway knows for the user).
    pub push: Option<bool>,
    /// The number SMS go to, in international form: `+`, country code and number (8 to 15
    /// digits; spaces, `-`, `.`, `(`, `)` between them are dropped). Absent or null: none,
    /// and no SMS. Stored sealed; answered in E.164 (`+4915123456789`).
    #[schema(max_length = 32)]
    pub phone: Option<String>,
    #[serde(default)]
    pub rules: BTreeMap<String, SwitchesBody>,
}

fn preferences_view(p: Preferences) -> PreferencesBody {
    let view = |s: ChannelSwitches| SwitchesBody {
        email: Some(s.email),
        in_app: Some(s.in_app),
        sms: Some(s.sms),
        push: Some(s.push),
    };
    PreferencesBody {
        email: Some(p.channels.email),
        in_app: Some(p.channels.in_app),
        sms: Some(p.channels.sms),
        push: Some(p.channels.push),
        phone: p.phone.map(|p| p.as_str().to_owned()),
        rules: p.rules.into_iter().map(|(k, s)| (k, view(s))).collect(),
    }
}

/// The caller's preferences (email, in-app and push on, SMS off, until changed).
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications",
    responses(
        (status = 200, description = "The caller's preferences", body = PreferencesBody),
        (status = 404, description = "`not_found`: an API key has no inbox or preferences (sign in as a user)", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody)))]
pub(crate) async fn read_preferences(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<PreferencesBody>, ServiceError> {
    let user = account(caller)?;
    let p = state.services.notifications.preferences(user).await?;
    Ok(Json(preferences_view(p)))
}

/// Replace the caller's preferences. An opted-out user gets nothing from rules on that channel.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications",
    request_body = PreferencesBody,
    responses(
        (status = 200, description = "Stored", body = PreferencesBody),
        (status = 404, description = "`not_found`: an API key has no inbox or preferences (sign in as a user)", body = ErrorBody),
        (status = 422, description = "`rules` names a rule that does not exist, or `phone` is not an international number", body = ErrorBody)))]
pub(crate) async fn set_preferences(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<PreferencesBody>,
) -> Result<Json<PreferencesBody>, ServiceError> {
    let user = account(caller)?;
    let prefs = Preferences {
        channels: switches(body.email, body.in_app, body.sms, body.push),
        rules: body
            .rules
            .into_iter()
            .map(|(k, s)| (k, switches(s.email, s.in_app, s.sms, s.push)))
            .collect(),
        phone: phone(body.phone.as_deref())?,
    };
    let p = state
        .services
        .notifications
        .set_preferences(user, prefs)
        .await?;
    Ok(Json(preferences_view(p)))
}

/// A notification in an inbox.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InboxItem {
    pub id: i64,
    pub title: String,
    pub body: String,
    /// The rule that made it, if any (null: sent directly).
    pub rule: Option<String>,
    pub read: bool,
    pub read_at: Option<String>,
    pub created_at: String,
}

fn inbox_item(n: Notification) -> InboxItem {
    InboxItem {
        id: n.id,
        title: n.subject,
        body: n.body,
        rule: n.rule,
        read: n.read_at.is_some(),
        read_at: n.read_at.map(rfc3339),
        created_at: rfc3339(n.created_at),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InboxPage {
    /// Newest first.
    pub notifications: Vec<InboxItem>,
    /// Pass as `before` for the next page; null when this page is the last.
    pub next_before: Option<i64>,
}

/// The inbox's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InboxQuery {
    /// true: unread ones only.
    pub unread: Option<bool>,
    /// Ids below this (the previous page's next_before).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The caller's inbox: its in-app notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    params(InboxQuery),
    responses(
        (status = 200, description = "A page of the caller's inbox", body = InboxPage),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "`not_found`: an API key has no inbox or preferences (sign in as a user)", body = ErrorBody),
        (status = 422, description = "unread, before or limit invalid", body = ErrorBody)))]
pub(crate) async fn inbox(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Json<InboxPage>, ServiceError> {
    let user = account(caller)?;
    let before = q
        .before
        .map(|n| {
            (n > 0)
                .then_some(n)
                .ok_or_else(|| invalid("before", "a notification id"))
        })
        .transpose()?;
    let limit = q
        .limit
        .map(|n| {
            (1..=crate::service::notification::INBOX_PAGE_MAX)
                .contains(&n)
                .then_some(n)
                .ok_or_else(|| invalid("limit", "1 to 200"))
        })
        .transpose()?
        .unwrap_or(INBOX_LIMIT_DEFAULT);
    let unread = q.unread.unwrap_or(false);
    let items = state
        .services
        .notifications
        .inbox(user, unread, before, limit)
        .await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|n| n.id))
        .flatten();
    Ok(Json(InboxPage {
        notifications: items.into_iter().map(inbox_item).collect(),
        next_before,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutboxPage {
    /// Newest first.
    pub notifications: Vec<StatusView>,
    /// Pass as `before` for the next page; null when this page is the last.
    pub next_before: Option<i64>,
}

/// The outbox's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutboxQuery {
    /// Only notifications in this state.
    #[param(pattern = "^(queued|sent|failed)$")]
    pub status: Option<String>,
    /// Ids below this (the previous page's next_before).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The outbox: every recipient's email, SMS and push notifications, newest first, with their
/// delivery state (attempts, the last failure, the next attempt).
#[utoipa::path(get, path = "/api/v1/notifications/outbox", tag = "notifications",
    params(OutboxQuery),
    responses(
        (status = 200, description = "A page of the outbox", body = OutboxPage),
        (status = 422, description = "status, before or limit invalid", body = ErrorBody)))]
pub(crate) async fn outbox(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<Json<OutboxPage>, ServiceError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            allot_domain::notification::DeliveryStatus::parse(s)
                .ok_or_else(|| invalid("status", "queued, sent or failed"))
        })
        .transpose()?;
    let before = q
        .before
        .map(|n| {
            (n > 0)
                .then_some(n)
                .ok_or_else(|| invalid("before", "a notification id"))
        })
        .transpose()?;
    let limit = q
        .limit
        .map(|n| {
            (1..=crate::service::notification::INBOX_PAGE_MAX)
                .contains(&n)
                .then_some(n)
                .ok_or_else(|| invalid("limit", "1 to 200"))
        })
        .transpose()?
        .unwrap_or(INBOX_LIMIT_DEFAULT);
    let items = state
        .services
        .notifications
        .outbox(status, before, limit)
        .await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|n| n.id))
        .flatten();
    Ok(Json(OutboxPage {
        notifications: items.into_iter().map(status_view).collect(),
        next_before,
    }))
}

/// Mark one of the caller's notifications read. Another user's answers 404, as if it did not
/// exist.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = i64, Path, minimum = 1, description = "The notification")),
    responses(
        (status = 200, description = "Read (marking again keeps the first time)", body = InboxItem),
        (status = 404, description = "Not the caller's, or no such notification", body = ErrorBody)))]
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    caller: AuthUser,
    PathId(NotificationId(id)): PathId<NotificationId>,
) -> Result<Json<InboxItem>, ServiceError> {
    let user = account(caller)?;
    let n = state.services.notifications.mark_read(user, id).await?;
    Ok(Json(inbox_item(n)))
}

/// A direct send: a template with variables, or a subject (title) and body as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SendBody {
    #[serde(default, deserialize_with = "whole")]
    pub user_id: Option<i64>,
    /// `email`, `in_app`, `sms` (the user needs a phone number in their preferences) or
    /// `push`.
    pub channel: Option<String>,
    /// A template's name; its variables come from `variables` (and `user`: id, email).
    pub template: Option<String>,
    #[schema(value_type = Object)]
    pub variables: Option<serde_json::Value>,
    /// Without a template: the subject (email) or title (in-app, push); not for SMS.
    pub subject: Option<String>,
    /// Without a template: the body (the text of an SMS).
    pub body: Option<String>,
    /// Without a template, push only: the link a tap opens.
    pub url: Option<String>,
}

/// A notification's delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusView {
    pub id: i64,
    pub user_id: i64,
    /// `email`, `in_app`, `sms` or `push`.
    pub channel: &'static str,
    /// `queued` (not tried yet), `sent`, or `failed` (see `reason`; retried at
    /// `next_attempt_at` unless that is null).
    pub status: &'static str,
    /// Delivery attempts made (in-app: 0, delivered by being stored).
    pub attempts: u32,
    /// True once a failed attempt was followed by another.
    pub retried: bool,
    /// Whether another attempt is planned.
    pub will_retry: bool,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    pub next_attempt_at: Option<String>,
    pub template: Option<String>,
    pub rule: Option<String>,
    pub subject: String,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
}

fn status_view(n: Notification) -> StatusView {
    StatusView {
        id: n.id,
        user_id: n.user.get(),
        channel: n.channel.as_str(),
        status: n.status.as_str(),
        attempts: n.attempts,
        retried: n.attempts > 1,
        will_retry: will_retry(&n),
        reason: n.last_error.clone(),
        next_attempt_at: n.next_attempt_at.map(rfc3339),
        template: n.template.clone(),
        rule: n.rule.clone(),
        subject: n.subject.clone(),
        created_at: rfc3339(n.created_at),
        updated_at: rfc3339(n.updated_at),
        sent_at: n.sent_at.map(rfc3339),
    }
}

/// Send one notification to a user now (staff). In-app: in the inbox at once; email, SMS and
/// push: queued for the sender (SMTP; the notification gateway). Preferences do not apply to
/// direct sends, but an SMS needs the user's phone number.
#[utoipa::path(post, path = "/api/v1/notifications", tag = "notifications",
    request_body = SendBody,
    responses(
        (status = 202, description = "Accepted; follow it at /api/v1/notifications/status/{id}", body = StatusView),
        (status = 422, description = "A field missing or invalid, an unknown user or template, variables the template cannot render with, or an SMS to a user without a phone number (`user_id`)", body = ErrorBody)))]
pub(crate) async fn send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<(StatusCode, Json<StatusView>), ServiceError> {
    let n = state
        .services
        .notifications
        .send(SendInput {
            user_id: body.user_id,
            channel: body.channel,
            template: body.template,
            variables: body.variables,
            subject: body.subject,
            body: body.body,
            url: body.url,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status_view(n))))
}

/// A notification's delivery state: queued, sent, or failed with the reason, and retries.
#[utoipa::path(get, path = "/api/v1/notifications/status/{id}", tag = "notifications",
    params(("id" = i64, Path, minimum = 1, description = "The notification")),
    responses(
        (status = 200, description = "Its state", body = StatusView),
        (status = 404, description = "No such notification", body = ErrorBody)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    PathId(NotificationId(id)): PathId<NotificationId>,
) -> Result<Json<StatusView>, ServiceError> {
    let n = state.services.notifications.status(id).await?;
    Ok(Json(status_view(n)))
}

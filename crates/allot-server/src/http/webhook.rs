//! REST for webhook endpoints: register (the signing secret is shown once), list, read,
//! change, delete, and read an endpoint's delivery log.

use std::collections::HashMap;

use allot_storage::{Delivery, Webhook};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiJson, PathId, WebhookId, invalid, present, whole};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::service::webhook::{
    DELIVERIES_LIMIT_MAX, EndpointChange, NewEndpoint, parse_description, parse_event_types,
};

const DELIVERIES_LIMIT_DEFAULT: u32 = 100;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(read).patch(update).delete(delete),
        )
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/api/v1/webhooks/{id}/retry", axum::routing::post(retry))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    pub id: i64,
    pub url: String,
    pub description: Option<String>,
    /// The event types delivered; null: every type.
    pub event_types: Option<Vec<String>>,
    /// Inactive endpoints get nothing until set active again (then from where they stopped).
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The last seq acknowledged (or passed over by the filter): delivery resumes after it.
    pub last_acknowledged_seq: i64,
    /// Failed attempts at the next event so far.
    pub failed_attempts: i64,
    /// When the next attempt is due (RFC 3339); in the past when nothing is waiting on a retry.
    pub next_attempt_at: String,
    /// The signing secret: only in the answer to the registration, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    fn of(w: Webhook, with_secret: bool) -> Self {
        WebhookView {
            id: w.id,
            url: w.url,
            description: w.description,
            event_types: w.event_types,
            active: w.active,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            last_acknowledged_seq: w.cursor,
            failed_attempts: w.attempts,
            next_attempt_at: rfc3339(w.next_attempt_at),
            secret: with_secret.then_some(w.secret),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// The row's id: pass the last one as `after` for the next page.
    pub id: i64,
    pub event_seq: i64,
    /// 1 for the first attempt at this event.
    pub attempt: i64,
    pub attempted_at: String,
    pub attempted_at_ms: i64,
    /// The receiver's HTTP status; null when there was none (see `error`).
    pub status: Option<u16>,
    /// Why there was no status: a timeout or a connection error.
    pub error: Option<String>,
    pub duration_ms: i64,
    /// True for an acknowledgement (2xx).
    pub delivered: bool,
    /// After a failure: when the next attempt is due.
    pub next_attempt_at: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let a = d.attempt;
        DeliveryView {
            id: d.id,
            event_seq: a.event_seq,
            attempt: a.attempt,
            attempted_at: rfc3339(a.at),
            attempted_at_ms: a.at.as_millis(),
            status: a.status,
            error: a.error,
            duration_ms: a.duration_ms,
            delivered: a.delivered,
            next_attempt_at: a.next_attempt_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `after` for the next page (`after` again when the page is empty).
    pub next_after: i64,
}

/// The body of a registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookBody {
    /// https://... (the receiver's certificate verified against the system's trusted
    /// certificates and `webhook_ca_file`), at most 2,000 characters, of the form of
    /// `service::webhook::URL_PATTERN` (set by `http::openapi`). A server started with
    /// `webhook_allow_http` also takes the same form with http://; others answer it 422
    /// `insecure_url`.
    #[schema(max_length = 2000)]
    url: String,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    #[serde(default)]
    description: Option<String>,
    /// Only these types (at least one); absent or null: every type.
    #[schema(min_items = 1)]
    #[serde(default)]
    event_types: Option<Vec<String>>,
    /// The first seq to deliver (1: the whole log); absent: the events after registration.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    from_seq: Option<i64>,
}

/// A change (absent fields stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookPatch {
    /// Of the form of `service::webhook::URL_PATTERN` (set by `http::openapi`).
    #[schema(max_length = 2000)]
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "present")]
    url: Option<String>,
    /// At most 500 characters; null removes it.
    #[schema(max_length = 500, value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    /// At least one; null: every type.
    #[schema(min_items = 1, value_type = Option<Vec<String>>)]
    #[serde(default, deserialize_with = "present")]
    event_types: Option<Option<Vec<String>>>,
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "present")]
    active: Option<bool>,
}

fn description_of(raw: Option<String>) -> Result<Option<String>, ServiceError> {
    Ok(raw
        .map(|d| parse_description(&d))
        .transpose()?
        .filter(|d| !d.is_empty()))
}

fn types_of(
    raw: Option<Vec<String>>,
) -> Result<Option<Vec<allot_domain::event::EventType>>, ServiceError> {
    raw.map(|names| parse_event_types(&names.iter().map(String::as_str).collect::<Vec<_>>()))
        .transpose()
}

/// Register a webhook endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = WebhookBody,
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = WebhookView),
        (status = 400, description = "Not JSON, or an unknown field", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field (url, description, event_types, from_seq; `body` when it is not an object), or `insecure_url` naming `url` (plain http while the server does not allow it); nothing stored", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<(StatusCode, Json<WebhookView>), ServiceError> {
    let url = state.services.webhooks.endpoint_url(&body.url)?;
    let description = description_of(body.description)?;
    let event_types = types_of(body.event_types)?;
    let from_seq = body
        .from_seq
        .map(|n| {
            (n >= 1)
                .then_some(n)
                .ok_or_else(|| invalid("from_seq", "a sequence number, 1 or more"))
        })
        .transpose()?;
    let webhook = state
        .services
        .webhooks
        .create(NewEndpoint {
            url,
            description,
            event_types,
            from_seq,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(WebhookView::of(webhook, true))))
}

/// Every webhook endpoint, in id order.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "The endpoints (without secrets)", body = WebhookList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<WebhookList>, ServiceError> {
    let webhooks = state.services.webhooks.list().await?;
    Ok(Json(WebhookList {
        webhooks: webhooks
            .into_iter()
            .map(|w| WebhookView::of(w, false))
            .collect(),
    }))
}

/// A webhook endpoint and where its delivery stands.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, minimum = 1, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint (without its secret)", body = WebhookView),
        (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    PathId(WebhookId(id)): PathId<WebhookId>,
) -> Result<Json<WebhookView>, ServiceError> {
    let webhook = state.services.webhooks.get(id).await?;
    Ok(Json(WebhookView::of(webhook, false)))
}

/// Change an endpoint: `active` (on or off), `url`, `description`, `event_types`. Delivery
/// continues from its cursor.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, minimum = 1, description = "Endpoint id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "Changed", body = WebhookView),
        (status = 400, description = "Not JSON, or an unknown field", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field, or `insecure_url` naming `url`; nothing changed", body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    PathId(WebhookId(id)): PathId<WebhookId>,
    ApiJson(body): ApiJson<WebhookPatch>,
) -> Result<Json<WebhookView>, ServiceError> {
    let change = EndpointChange {
        url: body
            .url
            .as_deref()
            .map(|u| state.services.webhooks.endpoint_url(u))
            .transpose()?,
        description: body.description.map(description_of).transpose()?,
        event_types: body.event_types.map(types_of).transpose()?,
        active: body.active,
    };
    let webhook = state.services.webhooks.update(id, change).await?;
    Ok(Json(WebhookView::of(webhook, false)))
}

/// Retry a failing endpoint now: its next attempt (at the event it is stuck on) is due at
/// once instead of at the end of its backoff. The count of failed attempts stays.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/retry", tag = "webhooks",
    params(("id" = i64, Path, minimum = 1, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint, its next attempt due now", body = WebhookView),
        (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    PathId(WebhookId(id)): PathId<WebhookId>,
) -> Result<Json<WebhookView>, ServiceError> {
    let webhook = state.services.webhooks.retry(id).await?;
    Ok(Json(WebhookView::of(webhook, false)))
}

/// Delete an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, minimum = 1, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    PathId(WebhookId(id)): PathId<WebhookId>,
) -> Result<StatusCode, ServiceError> {
    state.services.webhooks.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's delivery log: every attempt, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(
        ("id" = i64, Path, minimum = 1, description = "Endpoint id"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Rows with a greater id (default 0)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many, 1 to 1000 (default 100)")),
    responses(
        (status = 200, description = "A page of the delivery log", body = DeliveryPage),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "after or limit invalid", body = ErrorBody)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    PathId(WebhookId(id)): PathId<WebhookId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryPage>, ServiceError> {
    let after = match q.get("after") {
        None => 0,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("after", "a delivery id (0 or more)"))?,
    };
    let limit = match q.get("limit") {
        None => DELIVERIES_LIMIT_DEFAULT,
        Some(s) => s
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=DELIVERIES_LIMIT_MAX).contains(n))
            .ok_or_else(|| invalid("limit", "1 to 1000"))?,
    };
    let rows = state.services.webhooks.deliveries(id, after, limit).await?;
    let next_after = rows.last().map_or(after, |d| d.id);
    Ok(Json(DeliveryPage {
        deliveries: rows.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

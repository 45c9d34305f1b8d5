//! REST for webhook endpoints: register (the signing secret is shown once), list, read,
//! change, delete, and read an endpoint's delivery log.

use std::collections::HashMap;

use allot_storage::{Delivery, Webhook};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[allow(unused_imports)] // referenced by the OpenAPI attributes
use super::error::ErrorBody;
use super::json::{ApiJson, whole_number};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::service::webhook::{
    DELIVERIES_LIMIT_MAX, EndpointChange, EndpointUrl, NewEndpoint, parse_description,
    parse_event_types,
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

/// The body of a registration (the schema of the OpenAPI document; the handler reads JSON).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct WebhookBody {
    /// http://... (https is not supported by this build), at most 2,000 characters, of the
    /// form of `service::webhook::URL_PATTERN` (set by `http::openapi`).
    #[schema(max_length = 2000)]
    url: String,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Only these types (at least one); absent or null: every type.
    #[schema(min_items = 1)]
    event_types: Option<Vec<String>>,
    /// The first seq to deliver (1: the whole log); absent: the events after registration.
    #[schema(minimum = 1)]
    from_seq: Option<i64>,
}

/// A change (absent fields stay as they are).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct WebhookPatch {
    /// Of the form of `service::webhook::URL_PATTERN` (set by `http::openapi`).
    #[schema(max_length = 2000)]
    #[schema(nullable = false)]
    url: Option<String>,
    /// At most 500 characters; null removes it.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// At least one; null: every type.
    #[schema(min_items = 1)]
    event_types: Option<Vec<String>>,
    #[schema(nullable = false)]
    active: Option<bool>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument {
        field,
        message: message.into(),
    }
}

fn object(body: &Value, allowed: &[&'static str]) -> Result<(), ServiceError> {
    let Some(map) = body.as_object() else {
        return Err(ServiceError::bad_request(None, "expected a JSON object"));
    };
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ServiceError::bad_request(
                None,
                format!("unknown field {key:?}; known: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn url_of(v: &Value) -> Result<EndpointUrl, ServiceError> {
    match v.as_str() {
        Some(s) => EndpointUrl::parse(s),
        None => Err(invalid("url", "url: a string, http://...")),
    }
}

fn description_of(v: &Value) -> Result<Option<String>, ServiceError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(parse_description(s)?).filter(|d| !d.is_empty())),
        _ => Err(invalid("description", "description: a string or null")),
    }
}

fn types_of(v: &Value) -> Result<Option<Vec<allot_domain::event::EventType>>, ServiceError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let names = items
                .iter()
                .map(|i| {
                    i.as_str()
                        .ok_or_else(|| invalid("event_types", "event_types: an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(parse_event_types(&names)?))
        }
        _ => Err(invalid(
            "event_types",
            "event_types: an array of event type names, or null",
        )),
    }
}

fn id_of(raw: &str) -> Result<i64, ServiceError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ServiceError::NotFound { what: "webhook" })
}

/// Register a webhook endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = WebhookBody,
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = WebhookView),
        (status = 400, description = "Not a JSON object, or an unknown field", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field (url, description, event_types, from_seq); nothing stored", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<WebhookView>), ServiceError> {
    object(&body, &["url", "description", "event_types", "from_seq"])?;
    let url = url_of(body.get("url").unwrap_or(&Value::Null))?;
    let description = description_of(body.get("description").unwrap_or(&Value::Null))?;
    let event_types = types_of(body.get("event_types").unwrap_or(&Value::Null))?;
    let from_seq = match body.get("from_seq").unwrap_or(&Value::Null) {
        Value::Null => None,
        v => Some(
            v.as_number()
                .and_then(whole_number)
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("from_seq", "from_seq: a sequence number, 1 or more"))?,
        ),
    };
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
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ServiceError> {
    let webhook = state.services.webhooks.get(id_of(&id)?).await?;
    Ok(Json(WebhookView::of(webhook, false)))
}

/// Change an endpoint: `active` (on or off), `url`, `description`, `event_types`. Delivery
/// continues from its cursor.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, minimum = 1, description = "Endpoint id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "Changed", body = WebhookView),
        (status = 400, description = "Not a JSON object, or an unknown field", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field; nothing changed", body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<WebhookView>, ServiceError> {
    let id = id_of(&id)?;
    object(&body, &["url", "description", "event_types", "active"])?;
    let change = EndpointChange {
        url: body.get("url").map(url_of).transpose()?,
        description: body.get("description").map(description_of).transpose()?,
        event_types: body.get("event_types").map(types_of).transpose()?,
        active: body
            .get("active")
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| invalid("active", "active: true or false"))
            })
            .transpose()?,
    };
    let webhook = state.services.webhooks.update(id, change).await?;
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
    Path(id): Path<String>,
) -> Result<StatusCode, ServiceError> {
    state.services.webhooks.delete(id_of(&id)?).await?;
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
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryPage>, ServiceError> {
    let id = id_of(&id)?;
    let after = match q.get("after") {
        None => 0,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("after", "after: a delivery id (0 or more)"))?,
    };
    let limit = match q.get("limit") {
        None => DELIVERIES_LIMIT_DEFAULT,
        Some(s) => s
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=DELIVERIES_LIMIT_MAX).contains(n))
            .ok_or_else(|| invalid("limit", "limit: 1 to 1000"))?,
    };
    let rows = state.services.webhooks.deliveries(id, after, limit).await?;
    let next_after = rows.last().map_or(after, |d| d.id);
    Ok(Json(DeliveryPage {
        deliveries: rows.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

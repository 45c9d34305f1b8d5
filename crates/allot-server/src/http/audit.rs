//! REST for the audit log (issue 8): `GET /api/v1/audit`, who did what, when and from where,
//! read from the event log itself (no second record that could disagree with it). Admins
//! only (the policy table).

use std::collections::HashMap;

use allot_storage::AuditQuery;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ErrorBody;
use super::event::{body_of, parse_after, parse_limit, parse_type};
use super::extract::invalid;
use crate::ServiceError;
pub(crate) use crate::event_body::{actor_filter, summary};
use crate::time::parse_rfc3339;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEntry {
    /// The event's seq: the log's order.
    pub seq: i64,
    /// Who: `user:<id>`, `api_key:<id>`, `anonymous`, `trusted_network` or `system:<job>`.
    pub actor: String,
    /// From where: the client's IP address (null for jobs).
    pub source: Option<String>,
    /// Did what: the event type, e.g. `CampaignCreated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type and the payload's plain fields, in one line, e.g.
    /// `CampaignCreated campaign_id=3 name="launch" total_coupons=1000`.
    pub summary: String,
    /// When: RFC 3339, UTC.
    pub occurred_at: String,
    pub occurred_at_ms: i64,
    /// The whole payload (docs/EVENTS.md).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Matching entries after `after`, in seq order.
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page (the last seq of this page, or `after` if empty).
    pub next_after: i64,
}

fn parse_time(
    q: &HashMap<String, String>,
    field: &'static str,
) -> Result<Option<allot_domain::UnixMillis>, ServiceError> {
    match q.get(field) {
        None => Ok(None),
        Some(raw) => parse_rfc3339(raw.trim())
            .map(Some)
            .ok_or_else(|| invalid(field, "an RFC 3339 instant, e.g. 2026-11-26T10:00:00Z")),
    }
}

/// Read the audit log: who did what, when, from where.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Entries with a greater seq (default 0: from the start)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many, 1 to 1000 (default 100)"),
        ("actor" = Option<String>, Query, pattern = r"^(anonymous|unattributed|trusted_network|system:[a-z0-9-]{1,64}|user:[0-9]{1,18}|api_key:[0-9]{1,18})$", description = "Only this actor, e.g. `user:12`, `api_key:3`, `anonymous`, `system:coupon-purge`"),
        ("type" = Option<String>, Query, description = "Only events of this type"),
        ("since" = Option<String>, Query, format = DateTime, description = "Only events at or after this RFC 3339 instant"),
        ("until" = Option<String>, Query, format = DateTime, description = "Only events before this RFC 3339 instant")),
    responses(
        (status = 200, description = "A page of the audit log in seq order", body = AuditPage),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "after, limit, actor, type, since or until invalid", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ServiceError> {
    let after = parse_after(q.get("after").map(String::as_str))?;
    let limit = parse_limit(q.get("limit"))?;
    let actor = match q.get("actor") {
        None => None,
        Some(raw) => Some(actor_filter(raw.trim()).ok_or_else(|| {
            invalid(
                "actor",
                "user:<id>, api_key:<id>, anonymous or system:<job>",
            )
        })?),
    };
    let kind = parse_type(q.get("type"))?;
    let since = parse_time(&q, "since")?;
    let until = parse_time(&q, "until")?;
    let events = state
        .services
        .store
        .audit(AuditQuery {
            after,
            limit,
            actor,
            kind,
            since,
            until,
        })
        .await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    let entries = events
        .into_iter()
        .map(|e| {
            let e = body_of(e);
            AuditEntry {
                seq: e.seq,
                summary: summary(&e.kind, &e.payload),
                actor: e.actor,
                source: e.source,
                kind: e.kind,
                occurred_at: e.occurred_at,
                occurred_at_ms: e.occurred_at_ms,
                payload: e.payload,
            }
        })
        .collect();
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_the_plain_fields() {
        let payload = serde_json::json!({
            "campaign_id": 3, "name": "launch", "lines": [1, 2], "end": null, "ok": true
        });
        assert_eq!(
            summary("CampaignCreated", &payload),
            r#"CampaignCreated campaign_id=3 name="launch" ok=true"#
        );
    }

    #[test]
    fn actor_filters_are_stored_actors() {
        assert_eq!(actor_filter("user:12").as_deref(), Some("user:12"));
        assert_eq!(
            actor_filter("system:notifier").as_deref(),
            Some("system:notifier")
        );
        assert_eq!(actor_filter("system:"), None);
        assert_eq!(actor_filter("user:me"), None);
        assert_eq!(actor_filter("root"), None);
    }
}

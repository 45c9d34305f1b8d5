//! The audit log: who did what, when and from where, with the API's filters (actor, type,
//! time range).

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use allot_storage::AuditQuery;
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::Ctx;
use super::events::{PAGE, newest, pager, table, type_select};
use super::layout::error_page;
use crate::ServiceError;
use crate::event_body::actor_filter;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console/audit", get(page))
}

#[derive(Deserialize, Default)]
pub(super) struct AuditFilter {
    after: Option<i64>,
    #[serde(default)]
    actor: String,
    #[serde(rename = "type", default)]
    kind: String,
    /// A `datetime-local` value, read as UTC.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

/// `2026-12-06T10:00` (a datetime-local input, taken as UTC) or RFC 3339.
fn parse_instant(raw: &str, field: &'static str) -> Result<Option<UnixMillis>, ServiceError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Some(t) = crate::time::parse_rfc3339(raw) {
        return Ok(Some(t));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| Some(UnixMillis::from_millis(t.and_utc().timestamp_millis())))
        .ok_or_else(|| ServiceError::InvalidArgument {
            field,
            message: format!("{field}: a date and time, e.g. 2026-12-06T10:00 (UTC)"),
        })
}

fn query_of(f: &AuditFilter) -> Result<AuditQuery, ServiceError> {
    let actor = match f.actor.trim() {
        "" => None,
        raw => Some(
            actor_filter(raw).ok_or_else(|| ServiceError::InvalidArgument {
                field: "actor",
                message: "actor: user:<id>, api_key:<id>, anonymous or system:<job>".to_owned(),
            })?,
        ),
    };
    let kind = match f.kind.trim() {
        "" => None,
        raw => Some(
            EventType::parse(raw).ok_or_else(|| ServiceError::InvalidArgument {
                field: "type",
                message: format!("type: unknown event type {raw:?}"),
            })?,
        ),
    };
    Ok(AuditQuery {
        after: f.after.unwrap_or(0).max(0),
        limit: PAGE,
        actor,
        kind,
        since: parse_instant(&f.since, "since")?,
        until: parse_instant(&f.until, "until")?,
    })
}

async fn page(ctx: Ctx, Query(f): Query<AuditFilter>) -> Response {
    let store = &ctx.state.services.store;
    let parsed = query_of(&f);
    let filtered = parsed.as_ref().is_ok_and(|q| {
        q.actor.is_some() || q.kind.is_some() || q.since.is_some() || q.until.is_some()
    });
    let (events, error, next) = match parsed {
        Err(e) => (Vec::new(), Some(e.to_string()), None),
        Ok(mut q) => {
            // Unfiltered, the newest page by default; filtered, forward from the start (the
            // events_by_actor and events_by_type indexes serve those).
            if f.after.is_none() && !filtered {
                match store.log_end().await {
                    Ok(end) => q.after = newest(end),
                    Err(e) => return error_page(e.into()),
                }
            }
            match store.audit(q).await {
                Ok(events) => {
                    let next = (events.len() == PAGE as usize)
                        .then(|| events.last().map(|e| e.seq))
                        .flatten();
                    (events, None, next)
                }
                Err(e) => return error_page(e.into()),
            }
        }
    };
    let mut base = String::from("/console/audit");
    let params: Vec<(&str, &str)> = [
        ("actor", f.actor.trim()),
        ("type", f.kind.trim()),
        ("since", f.since.trim()),
        ("until", f.until.trim()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    if !params.is_empty() {
        base.push('?');
        base.push_str(&serde_urlencoded::to_string(&params).unwrap_or_default());
    }
    let kind = EventType::parse(f.kind.trim());
    let body = html! {
        form #audit-filter .inline method="get" action="/console/audit" {
            label { "Who" span.hint { "user:12, api_key:3, anonymous, system:<job>" }
                input type="text" name="actor" value=(f.actor); }
            (type_select(kind))
            label { "From" span.hint { "UTC" } input type="datetime-local" name="since" value=(f.since); }
            label { "Until" span.hint { "UTC" } input type="datetime-local" name="until" value=(f.until); }
            div.actions { button type="submit" { "Filter" } a.button.secondary href="/console/audit" { "Clear" } }
        }
        p #audit-filter-error .alert role="alert" { @if let Some(e) = &error { (e) } }
        (table("audit", "Audit log entries in seq order", events))
        @if error.is_none() { (pager(&base, next)) }
    };
    ctx.page("Audit log", &[], body)
}

//! Events: the event log paged, and a live tail (the API's server-sent stream, followed by
//! events.js).

use allot_domain::event::EventType;
use allot_storage::{Event, EventQuery};
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::error_page;
use super::{Ctx, ui};
use crate::event_body::body_of;
use crate::event_body::summary;
use crate::state::AppState;

/// Rows a page shows.
pub(super) const PAGE: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console/events", get(page))
}

#[derive(Deserialize, Default)]
pub(super) struct LogQuery {
    after: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The log's rows: seq, time, type, actor and the payload's plain fields.
pub(super) fn table(id: &str, label: &str, events: Vec<Event>) -> Markup {
    html! {
        table id=(id) aria-label=(label) {
            thead { tr { th.num { "Seq" } th { "When" } th { "Type" } th { "Who" } th { "From" } th { "What" } } }
            tbody {
                @for e in events.into_iter().map(body_of) {
                    tr {
                        td.num { (e.seq) }
                        td { (ui::time(e.occurred_at_ms)) }
                        td { code { (e.kind) } }
                        td { (e.actor) }
                        td { @if let Some(s) = &e.source { (s) } }
                        td.mono { (summary(&e.kind, &e.payload)) }
                    }
                }
            }
        }
    }
}

/// Where a page with no `after` starts: the newest page of the log. Seqs may have gaps (a
/// rolled-back number on PostgreSQL), so this page can hold fewer rows than `PAGE`.
pub(super) fn newest(end: i64) -> i64 {
    (end - i64::from(PAGE)).max(0)
}

/// A `<select>` of the event types, `selected` chosen; the empty option means every type.
pub(super) fn type_select(selected: Option<EventType>) -> Markup {
    html! {
        label { "Type"
            select name="type" {
                option value="" { "Every type" }
                @for t in EventType::ALL {
                    option value=(t.as_str()) selected[selected == Some(*t)] { (t.as_str()) }
                }
            }
        }
    }
}

/// Links to the oldest and newest pages and to the next one (`next`: its `after`).
pub(super) fn pager(base: &str, next: Option<i64>) -> Markup {
    let join = if base.contains('?') { "&" } else { "?" };
    html! {
        nav.pager aria-label="Pages" {
            a href={ (base) (join) "after=0" } { "Oldest" }
            a href=(base) { "Newest" }
            @if let Some(after) = next { a href={ (base) (join) "after=" (after) } { "Next page" } }
        }
    }
}

async fn page(ctx: Ctx, Query(q): Query<LogQuery>) -> Response {
    let store = &ctx.state.services.store;
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .and_then(EventType::parse);
    let end = match store.log_end().await {
        Ok(end) => end,
        Err(e) => return error_page(e.into()),
    };
    // Unfiltered, the newest page by default; a type filter reads forward from the start
    // (the events_by_type index), since "the newest 50 of a type" has no cheap start point.
    let after = q
        .after
        .unwrap_or(if kind.is_some() { 0 } else { newest(end) })
        .max(0);
    let events = match store
        .events(EventQuery {
            after,
            limit: PAGE,
            kind,
        })
        .await
    {
        Ok(events) => events,
        Err(e) => return error_page(e.into()),
    };
    let next = (events.len() == PAGE as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let base = match kind {
        Some(k) => format!("/console/events?type={}", k.as_str()),
        None => "/console/events".to_owned(),
    };
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let body = html! {
        section.panel aria-labelledby="live-heading" {
            h2 #live-heading { "Live" }
            p.sub { "New events as they are committed (the API's stream, " code { "/api/v1/events/stream" } "); the newest first, the last 100 kept." }
            div.actions {
                button #tail-toggle type="button" .secondary { "Pause" }
                span #tail-state role="status" { "Connecting…" }
            }
            ol #tail .log tabindex="0" aria-live="polite" aria-label="Live events"
                data-stream="/api/v1/events/stream" data-after=(end) data-types=(types.join(",")) {}
        }
        h2 { "The log" }
        form #events-filter .inline method="get" action="/console/events" {
            (type_select(kind))
            div.actions { button type="submit" { "Show" } }
        }
        p.sub { "Seq " (after + 1) " onwards, " (ui::int(end)) " events in all." }
        (table("events", "Events in seq order", events))
        (pager(&base, next))
    };
    ctx.page("Events", &["events.js"], body)
}

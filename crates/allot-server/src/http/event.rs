//! REST for the event log: `GET /api/v1/events` (pages, replayable from any point) and
//! `GET /api/v1/events/stream` (server-sent events, resumable with `Last-Event-ID`).
//!
//! Both read the store's log in seq order; the stream polls it (every 150 ms when it has
//! caught up), which is correct across instances since every instance writes to the same log.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use allot_domain::event::EventType;
use allot_storage::{Event, EventQuery, StorageError, Store};
use axum::extract::{Query, State};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ErrorBody;
use super::extract::invalid;
use crate::ServiceError;
pub(crate) use crate::event_body::{EventBody, body_of};

const LIMIT_DEFAULT: u32 = 100;
const LIMIT_MAX: u32 = 1_000;
/// How long the stream waits before asking the log again once it has caught up.
const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// Events the stream takes from the log per read.
const STREAM_PAGE: u32 = 500;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(list))
        .route("/api/v1/events/stream", get(stream))
}

/// One server-sent event of the stream: the fields of its `text/event-stream` lines.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the stream's events; they are written by axum's `sse::Event`
pub(crate) struct StreamEvent {
    /// The event's seq: send it back as `Last-Event-ID` to resume after it.
    pub id: String,
    /// The event type, e.g. `OrderCreated`.
    pub event: String,
    /// The event as JSON, of the shape `EventBody`.
    pub data: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// Events after `after`, in seq order.
    pub events: Vec<EventBody>,
    /// Pass as `after` for the next page (the last seq of this page, or `after` if empty).
    pub next_after: i64,
}

/// `limit`: 1 to 1000, 100 when absent.
pub(crate) fn parse_limit(raw: Option<&String>) -> Result<u32, ServiceError> {
    match raw {
        None => Ok(LIMIT_DEFAULT),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if (1..=LIMIT_MAX).contains(&n) => Ok(n),
            _ => Err(invalid("limit", "1 to 1000")),
        },
    }
}

pub(crate) fn parse_after(raw: Option<&str>) -> Result<i64, ServiceError> {
    match raw {
        None => Ok(0),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(invalid("after", "a sequence number (0 or more)")),
        },
    }
}

pub(crate) fn parse_type(raw: Option<&String>) -> Result<Option<EventType>, ServiceError> {
    match raw {
        None => Ok(None),
        Some(s) => EventType::parse(s)
            .map(Some)
            .ok_or_else(|| invalid("type", format!("unknown event type {s:?}"))),
    }
}

/// Read the event log from any point.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Events with a greater seq (default 0: from the start)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many, 1 to 1000 (default 100)"),
        ("type" = Option<String>, Query, description = "Only events of this type")),
    responses(
        (status = 200, description = "A page of events in seq order", body = EventPage),
        (status = 422, description = "after, limit or type invalid", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<EventPage>, ServiceError> {
    let after = parse_after(q.get("after").map(String::as_str))?;
    let limit = parse_limit(q.get("limit"))?;
    let kind = parse_type(q.get("type"))?;
    let events = state
        .services
        .store
        .events(EventQuery { after, limit, kind })
        .await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventPage {
        events: events.into_iter().map(body_of).collect(),
        next_after,
    }))
}

/// Follow the event log live (server-sent events).
///
/// Sends every event after the `Last-Event-ID` header (or `?after=`, default 0) as
/// `id: <seq>`, `event: <type>`, `data: <the event as JSON>`, then the new ones as they are
/// committed. A client that reconnects with the last id it saw misses nothing and sees nothing
/// twice, across server restarts too.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this seq when no Last-Event-ID header is sent"),
        ("type" = Option<String>, Query, description = "Only events of this type"),
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "The last seq the client saw")),
    responses(
        (status = 200, description = "text/event-stream of events, one SSE event each (comment lines keep the connection alive)", content_type = "text/event-stream", body = StreamEvent),
        (status = 422, description = "after or type invalid", body = ErrorBody)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ServiceError> {
    let last_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("x"));
    let after = match last_id {
        Some(id) => parse_after(Some(id))?,
        None => parse_after(q.get("after").map(String::as_str))?,
    };
    let kind = parse_type(q.get("type"))?;
    let follow = Follow {
        store: state.services.store.clone(),
        after,
        kind,
        ready: VecDeque::new(),
        first: true,
        stopping: state.stopping.clone(),
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        Some((Ok(event), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The state of one stream: where it is in the log and what it has read but not sent.
struct Follow {
    store: Arc<dyn Store>,
    after: i64,
    kind: Option<EventType>,
    ready: VecDeque<Event>,
    first: bool,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Follow {
    /// The next event to send, waiting for one; `None` ends the stream (the server is
    /// stopping: the client reconnects elsewhere or later with its `Last-Event-ID`).
    async fn next(&mut self) -> Option<sse::Event> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            if let Some(e) = self.ready.pop_front() {
                self.after = e.seq;
                let id = e.seq.to_string();
                let kind = e.kind.clone();
                let data = serde_json::to_string(&body_of(e)).unwrap_or_default();
                return Some(sse::Event::default().id(id).event(kind).data(data));
            }
            if !self.first {
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = self.stopping.wait_for(|s| *s) => return None,
                }
            }
            self.first = false;
            let query = EventQuery {
                after: self.after,
                limit: STREAM_PAGE,
                kind: self.kind,
            };
            match self.store.events(query).await {
                Ok(events) => {
                    // A full page: read the next one at once instead of sleeping.
                    self.first = events.len() == STREAM_PAGE as usize;
                    self.ready.extend(events);
                }
                Err(StorageError::Closed) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: reading the log failed; retrying")
                }
            }
        }
    }
}

//! The JSON form of one event of the log: the same body in REST's event pages, the audit
//! trail, the server-sent stream and every webhook delivery, so a consumer parses one shape.

use allot_storage::Event;
use serde::Serialize;
use utoipa::ToSchema;

use crate::time::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventBody {
    /// The event's position in the log: strictly increasing, never reused.
    pub seq: i64,
    /// The event type, e.g. `OrderCreated` (docs/EVENTS.md lists them with their payloads).
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC.
    pub occurred_at: String,
    pub occurred_at_ms: i64,
    /// Who made the change: `user:<id>`, `api_key:<id>`, `anonymous` (an open call) or
    /// `system:<job>` (docs/EVENTS.md).
    pub actor: String,
    /// The client's IP address; null for jobs.
    pub source: Option<String>,
    /// The type's fields (docs/EVENTS.md).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

pub(crate) fn body_of(e: Event) -> EventBody {
    let payload = serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
    EventBody {
        seq: e.seq,
        kind: e.kind,
        occurred_at: rfc3339(e.occurred_at),
        occurred_at_ms: e.occurred_at.as_millis(),
        actor: e.actor,
        source: e.source,
        payload,
    }
}

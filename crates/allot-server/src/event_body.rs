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
    /// Who made the change: `user:<id>`, `api_key:<id>`, `anonymous` (an open call),
    /// `trusted_network` (an original's admin call from a trusted network) or `system:<job>`
    /// (docs/EVENTS.md).
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

/// Payload fields named in an entry's summary at most.
const SUMMARY_FIELDS_MAX: usize = 6;

/// The type and the payload's plain fields (not lists, objects or nulls), by name.
pub(crate) fn summary(kind: &str, payload: &serde_json::Value) -> String {
    let mut line = kind.to_owned();
    if let Some(fields) = payload.as_object() {
        let plain = fields
            .iter()
            .filter(|(_, v)| !(v.is_array() || v.is_object() || v.is_null()))
            .take(SUMMARY_FIELDS_MAX);
        for (name, value) in plain {
            line.push(' ');
            line.push_str(name);
            line.push('=');
            line.push_str(&value.to_string());
        }
    }
    line
}

/// An actor as stored: a principal, or any `system:<job>` (jobs other parts of the server add
/// are not all known here).
pub(crate) fn actor_filter(raw: &str) -> Option<String> {
    if let Some(actor) = allot_domain::event::Actor::parse(raw) {
        return Some(actor.to_string());
    }
    let job = raw.strip_prefix("system:")?;
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    (!job.is_empty() && job.len() <= 64 && job.chars().all(plain)).then(|| raw.to_owned())
}

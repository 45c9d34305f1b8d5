//! Webhook endpoints, their delivery cursors and leases, and the delivery log.
//!
//! The worker (allot-server's `webhook_worker`) walks the event log per endpoint: each attempt
//! is recorded together with the endpoint's cursor (the last seq acknowledged) in one
//! transaction, so a restart resumes exactly where delivery stood. On PostgreSQL an endpoint is
//! delivered by one instance at a time: [`WebhookStore::claim_webhooks`] takes a lease with an
//! expiry (`FOR UPDATE SKIP LOCKED`), and progress is recorded only while the lease is held.
//!
//! Secrets are sealed under the data key (`crate::crypto`) in the rows and opened when read:
//! callers see them in clear, a copy of the database does not reveal them.

use allot_domain::UnixMillis;
use allot_domain::event::{EventType, NewEvent};
use async_trait::async_trait;

use crate::StorageError;
use crate::crypto::{Cipher, Place};

/// Endpoints listed at most (a registry of integrations, not a data set).
pub const WEBHOOKS_MAX: u32 = 1_000;

/// An endpoint to register. The caller has parsed every field.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub description: Option<String>,
    /// `None`: every event type.
    pub event_types: Option<Vec<EventType>>,
    pub secret: String,
    /// The first seq to deliver; `None`: the events appended after registration.
    pub from_seq: Option<i64>,
}

/// A change of an endpoint: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Option<Vec<EventType>>>,
    pub active: Option<bool>,
    /// Make the next attempt due now (an operator's retry of a failing endpoint); the count
    /// of failed attempts stays, so a new failure backs off from where it was.
    pub retry_now: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub description: Option<String>,
    /// Type names; `None`: every type.
    pub event_types: Option<Vec<String>>,
    pub secret: String,
    pub active: bool,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// The last seq acknowledged or skipped by the filter.
    pub cursor: i64,
    /// Failed attempts at the next event.
    pub attempts: i64,
    pub next_attempt_at: UnixMillis,
}

impl Webhook {
    /// Whether the endpoint wants events of this type.
    pub fn wants(&self, kind: &str) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == kind))
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub event_seq: i64,
    /// 1 for the first attempt at this event.
    pub attempt: i64,
    pub at: UnixMillis,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub delivered: bool,
    /// After a failure: when the next attempt is due.
    pub next_attempt_at: Option<UnixMillis>,
}

/// A row of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub attempt: DeliveryAttempt,
}

/// Where an endpoint's delivery stands after an attempt (or after skipping filtered events).
#[derive(Debug, Clone)]
pub struct Progress {
    pub cursor: i64,
    pub attempts: i64,
    pub next_attempt_at: UnixMillis,
    /// The attempt to log with the new cursor, if one was made.
    pub delivery: Option<DeliveryAttempt>,
}

#[async_trait]
pub trait WebhookStore {
    /// Registers an endpoint (appending `WebhookEndpointCreated`); its cursor is the log's
    /// current end, or `from_seq - 1`.
    async fn create_webhook(
        &self,
        new: NewWebhook,
        now: UnixMillis,
    ) -> Result<Webhook, StorageError>;

    /// Every endpoint in id order, at most [`WEBHOOKS_MAX`].
    async fn webhooks(&self) -> Result<Vec<Webhook>, StorageError>;

    async fn webhook(&self, id: i64) -> Result<Option<Webhook>, StorageError>;

    /// Applies `change` (appending `WebhookEndpointUpdated`); `None` if there is no such
    /// endpoint. The cursor is kept.
    async fn update_webhook(
        &self,
        id: i64,
        change: WebhookChange,
        now: UnixMillis,
    ) -> Result<Option<Webhook>, StorageError>;

    /// Deletes the endpoint and its delivery log (appending `WebhookEndpointDeleted`); false
    /// if there is no such endpoint.
    async fn delete_webhook(&self, id: i64, now: UnixMillis) -> Result<bool, StorageError>;

    /// The endpoint's delivery log rows with `id > after`, oldest first, at most `limit`.
    async fn webhook_deliveries(
        &self,
        id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StorageError>;

    /// Active endpoints that have events after their cursor and whose next attempt is due,
    /// at most `limit`, leased to `owner` until `now + lease_ms` (PostgreSQL: endpoints
    /// leased by another instance, lease unexpired, are left out).
    async fn claim_webhooks(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Webhook>, StorageError>;

    /// Records progress (the attempt's log row and the cursor, in one transaction) and
    /// renews the lease; false, writing nothing, if `owner` no longer holds the lease or the
    /// endpoint is gone.
    async fn record_webhook_progress(
        &self,
        id: i64,
        owner: &str,
        progress: Progress,
        now: UnixMillis,
        lease_ms: i64,
    ) -> Result<bool, StorageError>;

    /// Gives the lease back, if `owner` holds it.
    async fn release_webhook(&self, id: i64, owner: &str) -> Result<(), StorageError>;

    /// Deletes log rows attempted before `before` whose event is settled (at or below the
    /// endpoint's cursor); rows of the event still being retried stay. Answers how many.
    async fn purge_webhook_deliveries(&self, before: UnixMillis) -> Result<u64, StorageError>;
}

/// Where a secret is sealed: its column, bound to the endpoint's id.
fn secret_place(id: &str) -> Place<'_> {
    Place {
        column: "webhook_endpoints.secret",
        row: id,
    }
}

pub(crate) fn seal_secret(cipher: &Cipher, id: i64, secret: &str) -> String {
    cipher.seal_str(secret, secret_place(&id.to_string()))
}

/// The endpoint with its secret opened (rows hold it sealed).
pub(crate) fn open_secret(cipher: &Cipher, mut w: Webhook) -> Result<Webhook, StorageError> {
    w.secret = cipher.open_string(&w.secret, secret_place(&w.id.to_string()))?;
    Ok(w)
}

pub(crate) fn types_json(types: &Option<Vec<EventType>>) -> Option<String> {
    types.as_ref().map(|t| {
        serde_json::Value::from(t.iter().map(|k| k.as_str()).collect::<Vec<_>>()).to_string()
    })
}

pub(crate) fn types_of(json: Option<String>) -> Result<Option<Vec<String>>, StorageError> {
    json.map(|j| {
        serde_json::from_str::<Vec<String>>(&j)
            .map_err(|e| StorageError::Corrupt(format!("webhook event_types {j:?}: {e}")))
    })
    .transpose()
}

/// The payload of a webhook endpoint event: never the secret.
pub(crate) fn endpoint_event(kind: EventType, w: &Webhook, at: UnixMillis) -> NewEvent {
    NewEvent::api(kind, at, endpoint_payload(w).to_string())
}

fn endpoint_payload(w: &Webhook) -> serde_json::Value {
    serde_json::json!({
        "endpoint_id": w.id,
        "url": w.url,
        "description": w.description,
        "event_types": w.event_types,
        "active": w.active,
    })
}

/// The event of a change: `WebhookEndpointUpdated`, saying `retry_requested` when the change
/// was an operator's retry.
pub(crate) fn updated_event(w: &Webhook, retry_requested: bool, at: UnixMillis) -> NewEvent {
    let mut payload = endpoint_payload(w);
    if retry_requested {
        payload["retry_requested"] = serde_json::Value::Bool(true);
    }
    NewEvent::api(EventType::WebhookEndpointUpdated, at, payload.to_string())
}

pub(crate) fn deleted_event(id: i64, at: UnixMillis) -> NewEvent {
    let payload = serde_json::json!({ "endpoint_id": id });
    NewEvent::api(EventType::WebhookEndpointDeleted, at, payload.to_string())
}

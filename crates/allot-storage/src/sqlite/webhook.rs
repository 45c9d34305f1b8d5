//! Webhook endpoints and their delivery log on SQLite. One process owns the database (the data
//! directory is locked), so there are no leases here: the worker of that process never runs
//! two deliveries to one endpoint at once, and a claim is a read.

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::event::append;
use crate::StorageError;
use crate::crypto::Cipher;
use crate::webhook::{
    Delivery, DeliveryAttempt, NewWebhook, Progress, WEBHOOKS_MAX, Webhook, WebhookChange,
    WebhookStore, deleted_event, endpoint_event, open_secret, seal_secret, types_json, types_of,
    updated_event,
};

const COLUMNS: &str = "id, url, description, event_types, secret_enc, active, created_at_ms, \
                       updated_at_ms, cursor_seq, attempts, next_attempt_at_ms \
                       FROM webhook_endpoints";

type Raw = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    bool,
    i64,
    i64,
    i64,
    i64,
    i64,
);

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn webhook_of(
    (id, url, description, types, secret, active, created, updated, cursor, attempts, next): Raw,
) -> Result<Webhook, StorageError> {
    Ok(Webhook {
        id,
        url,
        description,
        event_types: types_of(types)?,
        secret,
        active,
        created_at: UnixMillis::from_millis(created),
        updated_at: UnixMillis::from_millis(updated),
        cursor,
        attempts,
        next_attempt_at: UnixMillis::from_millis(next),
    })
}

fn one(conn: &Connection, id: i64) -> Result<Option<Webhook>, StorageError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} WHERE id = ?1"))?
        .query_row(params![id], raw)
        .optional()?
        .map(webhook_of)
        .transpose()
}

pub(super) fn log_end(conn: &Connection) -> Result<i64, StorageError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))?)
}

/// Inserts the endpoint, then seals its secret bound to the id the insert gave.
fn create(
    conn: &Connection,
    cipher: &Cipher,
    new: NewWebhook,
    now: UnixMillis,
) -> Result<Webhook, StorageError> {
    let cursor = match new.from_seq {
        Some(from) => (from - 1).max(0),
        None => log_end(conn)?,
    };
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO webhook_endpoints (url, description, event_types, secret_enc, active,
                 created_at_ms, updated_at_ms, cursor_seq, attempts, next_attempt_at_ms)
             VALUES (?1, ?2, ?3, '', 1, ?4, ?4, ?5, 0, ?4) RETURNING id",
        )?
        .query_row(
            params![
                new.url,
                new.description,
                types_json(&new.event_types),
                now.as_millis(),
                cursor
            ],
            |r| r.get(0),
        )?;
    conn.prepare_cached("UPDATE webhook_endpoints SET secret_enc = ?2 WHERE id = ?1")?
        .execute(params![id, seal_secret(cipher, id, &new.secret)])?;
    let mut webhook =
        one(conn, id)?.ok_or_else(|| StorageError::Corrupt("webhook vanished".into()))?;
    webhook.secret = new.secret;
    append(
        conn,
        endpoint_event(EventType::WebhookEndpointCreated, &webhook, now),
    )?;
    Ok(webhook)
}

fn update(
    conn: &Connection,
    id: i64,
    change: WebhookChange,
    now: UnixMillis,
) -> Result<Option<Webhook>, StorageError> {
    let Some(before) = one(conn, id)? else {
        return Ok(None);
    };
    let url = change.url.unwrap_or(before.url);
    let description = change.description.unwrap_or(before.description);
    let types = match change.event_types {
        Some(types) => types_json(&types),
        None => before
            .event_types
            .map(|t| serde_json::Value::from(t).to_string()),
    };
    let active = change.active.unwrap_or(before.active);
    conn.prepare_cached(
        "UPDATE webhook_endpoints SET url = ?2, description = ?3, event_types = ?4,
             active = ?5, updated_at_ms = ?6,
             next_attempt_at_ms = CASE WHEN ?7 THEN ?6 ELSE next_attempt_at_ms END
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        url,
        description,
        types,
        active,
        now.as_millis(),
        change.retry_now
    ])?;
    let after = one(conn, id)?.ok_or_else(|| StorageError::Corrupt("webhook vanished".into()))?;
    append(conn, updated_event(&after, change.retry_now, now))?;
    Ok(Some(after))
}

fn delete(conn: &Connection, id: i64, now: UnixMillis) -> Result<bool, StorageError> {
    conn.prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1")?
        .execute(params![id])?;
    let n = conn
        .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")?
        .execute(params![id])?;
    if n == 0 {
        return Ok(false);
    }
    append(conn, deleted_event(id, now))?;
    Ok(true)
}

fn delivery_of(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        endpoint_id: r.get(1)?,
        attempt: DeliveryAttempt {
            event_seq: r.get(2)?,
            attempt: r.get(3)?,
            at: UnixMillis::from_millis(r.get(4)?),
            status: r.get::<_, Option<u16>>(5)?,
            error: r.get(6)?,
            duration_ms: r.get(7)?,
            delivered: r.get(8)?,
            next_attempt_at: r.get::<_, Option<i64>>(9)?.map(UnixMillis::from_millis),
        },
    })
}

fn record(conn: &Connection, id: i64, p: &Progress) -> Result<bool, StorageError> {
    let n = conn
        .prepare_cached(
            "UPDATE webhook_endpoints SET cursor_seq = ?2, attempts = ?3, next_attempt_at_ms = ?4
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            p.cursor,
            p.attempts,
            p.next_attempt_at.as_millis()
        ])?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(d) = &p.delivery {
        conn.prepare_cached(
            "INSERT INTO webhook_deliveries (endpoint_id, event_seq, attempt, attempted_at_ms,
                 status, error, duration_ms, delivered, next_attempt_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            id,
            d.event_seq,
            d.attempt,
            d.at.as_millis(),
            d.status,
            d.error,
            d.duration_ms,
            d.delivered,
            d.next_attempt_at.map(|t| t.as_millis())
        ])?;
    }
    Ok(true)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(
        &self,
        new: NewWebhook,
        now: UnixMillis,
    ) -> Result<Webhook, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| create(conn, &cipher, new, now))
            .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StorageError> {
        let found: Vec<Webhook> = self
            .read(|conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} ORDER BY id LIMIT ?1"))?
                    .query_map(params![WEBHOOKS_MAX], raw)?
                    .map(|r| webhook_of(r?))
                    .collect()
            })
            .await?;
        self.open_all(found)
    }

    async fn webhook(&self, id: i64) -> Result<Option<Webhook>, StorageError> {
        let found = self.read(move |conn| one(conn, id)).await?;
        found.map(|w| open_secret(&self.cipher, w)).transpose()
    }

    async fn update_webhook(
        &self,
        id: i64,
        change: WebhookChange,
        now: UnixMillis,
    ) -> Result<Option<Webhook>, StorageError> {
        let changed = self
            .write(1, move |conn, _| update(conn, id, change, now))
            .await?;
        changed.map(|w| open_secret(&self.cipher, w)).transpose()
    }

    async fn delete_webhook(&self, id: i64, now: UnixMillis) -> Result<bool, StorageError> {
        self.write(1, move |conn, _| delete(conn, id, now)).await
    }

    async fn webhook_deliveries(
        &self,
        id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StorageError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, endpoint_id, event_seq, attempt, attempted_at_ms, status, error,
                            duration_ms, delivered, next_attempt_at_ms
                     FROM webhook_deliveries WHERE endpoint_id = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3",
                )?
                .query_map(params![id, after, limit], delivery_of)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn claim_webhooks(
        &self,
        _owner: &str,
        now: UnixMillis,
        _lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Webhook>, StorageError> {
        let due: Vec<Webhook> = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} WHERE active AND next_attempt_at_ms <= ?1
                   AND cursor_seq < (SELECT coalesce(max(seq), 0) FROM events)
                 ORDER BY next_attempt_at_ms, id LIMIT ?2"
                ))?
                .query_map(params![now.as_millis(), limit], raw)?
                .map(|r| webhook_of(r?))
                .collect()
            })
            .await?;
        self.open_all(due)
    }

    async fn record_webhook_progress(
        &self,
        id: i64,
        _owner: &str,
        progress: Progress,
        _now: UnixMillis,
        _lease_ms: i64,
    ) -> Result<bool, StorageError> {
        self.write(2, move |conn, _| record(conn, id, &progress))
            .await
    }

    async fn release_webhook(&self, _id: i64, _owner: &str) -> Result<(), StorageError> {
        Ok(())
    }

    async fn purge_webhook_deliveries(&self, before: UnixMillis) -> Result<u64, StorageError> {
        self.write(1, move |conn, _| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM webhook_deliveries WHERE attempted_at_ms < ?1
                       AND event_seq <= (SELECT cursor_seq FROM webhook_endpoints e
                                         WHERE e.id = webhook_deliveries.endpoint_id)",
                )?
                .execute(params![before.as_millis()])?;
            Ok(n as u64)
        })
        .await
    }
}

impl SqliteStore {
    fn open_all(&self, found: Vec<Webhook>) -> Result<Vec<Webhook>, StorageError> {
        found
            .into_iter()
            .map(|w| open_secret(&self.cipher, w))
            .collect()
    }
}

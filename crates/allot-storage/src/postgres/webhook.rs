//! Webhook endpoints and their delivery log on PostgreSQL. Several instances share the
//! endpoints: a claim leases an endpoint to one instance until an expiry
//! (`FOR UPDATE SKIP LOCKED`, so concurrent claims split the endpoints instead of waiting), and
//! progress is recorded only under the lease, so two instances never deliver to one endpoint
//! at once. A lease whose instance died expires and is taken over.

use super::conn::Db;
use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use async_trait::async_trait;
use tokio_postgres::Row;

use super::PgStore;
use super::event::append;
use crate::StorageError;
use crate::event::{EventQuery, EventStore};
use crate::webhook::{
    Delivery, DeliveryAttempt, NewWebhook, Progress, WEBHOOKS_MAX, Webhook, WebhookChange,
    WebhookStore, deleted_event, endpoint_event, open_secret, seal_secret, types_json, types_of,
    updated_event,
};

const FIELDS: &str = "id, url, description, event_types, secret_enc, active, created_at_ms, \
                      updated_at_ms, cursor_seq, attempts, next_attempt_at_ms";

fn webhook_of(r: &Row) -> Result<Webhook, StorageError> {
    Ok(Webhook {
        id: r.try_get(0)?,
        url: r.try_get(1)?,
        description: r.try_get(2)?,
        event_types: types_of(r.try_get(3)?)?,
        secret: r.try_get(4)?,
        active: r.try_get(5)?,
        created_at: UnixMillis::from_millis(r.try_get(6)?),
        updated_at: UnixMillis::from_millis(r.try_get(7)?),
        cursor: r.try_get(8)?,
        attempts: r.try_get(9)?,
        next_attempt_at: UnixMillis::from_millis(r.try_get(10)?),
    })
}

fn delivery_of(r: &Row) -> Result<Delivery, StorageError> {
    Ok(Delivery {
        id: r.try_get(0)?,
        endpoint_id: r.try_get(1)?,
        attempt: DeliveryAttempt {
            event_seq: r.try_get(2)?,
            attempt: r.try_get(3)?,
            at: UnixMillis::from_millis(r.try_get(4)?),
            status: r
                .try_get::<_, Option<i32>>(5)?
                .and_then(|s| u16::try_from(s).ok()),
            error: r.try_get(6)?,
            duration_ms: r.try_get(7)?,
            delivered: r.try_get(8)?,
            next_attempt_at: r.try_get::<_, Option<i64>>(9)?.map(UnixMillis::from_millis),
        },
    })
}

async fn one(tx: &impl Db, id: i64, lock: bool) -> Result<Option<Webhook>, StorageError> {
    let sql = format!(
        "SELECT {FIELDS} FROM webhook_endpoints WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    tx.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(webhook_of)
        .transpose()
}

/// Rounds [`PgStore::number_committed_events`] waits for the sequencer, at most.
const NUMBERING_ROUNDS_MAX: u32 = 50;

impl PgStore {
    /// Runs the sequencer until the events committed so far are numbered (another session's
    /// run may hold the sequencer: then its numbers are awaited), so that the log's end read
    /// next is after them. Bounded: under a steady stream of writes there is always something
    /// unnumbered, and after [`NUMBERING_ROUNDS_MAX`] rounds the end is taken as it is (a new
    /// endpoint then also gets the few events committed just before it).
    async fn number_committed_events(&self) -> Result<(), StorageError> {
        for _ in 0..NUMBERING_ROUNDS_MAX {
            self.events(EventQuery {
                after: i64::MAX,
                limit: 1,
                kind: None,
            })
            .await?;
            let waiting = self
                .client()
                .await?
                .query_opt(super::event::UNNUMBERED_PROBE, &[])
                .await?;
            if waiting.is_none() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(
        &self,
        new: NewWebhook,
        now: UnixMillis,
    ) -> Result<Webhook, StorageError> {
        if new.from_seq.is_none() {
            self.number_committed_events().await?;
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let cursor: i64 = match new.from_seq {
            Some(from) => (from - 1).max(0),
            None => tx.query_one(super::event::LOG_END, &[]).await?.try_get(0)?,
        };
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO webhook_endpoints (url, description, event_types, secret_enc,
                         active, created_at_ms, updated_at_ms, cursor_seq, attempts,
                         next_attempt_at_ms)
                     VALUES ($1, $2, $3, '', TRUE, $4, $4, $5, 0, $4) RETURNING {FIELDS}"
                ),
                &[
                    &new.url,
                    &new.description,
                    &types_json(&new.event_types),
                    &now.as_millis(),
                    &cursor,
                ],
            )
            .await?;
        let mut webhook = webhook_of(&row)?;
        // Sealed bound to the id the insert gave, in the same transaction.
        tx.execute(
            "UPDATE webhook_endpoints SET secret_enc = $2 WHERE id = $1",
            &[
                &webhook.id,
                &seal_secret(&self.cipher, webhook.id, &new.secret),
            ],
        )
        .await?;
        webhook.secret = new.secret;
        append(
            &tx,
            endpoint_event(EventType::WebhookEndpointCreated, &webhook, now),
        )
        .await?;
        super::commit(tx).await?;
        Ok(webhook)
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StorageError> {
        let client = self.client().await?;
        let limit = i64::from(WEBHOOKS_MAX);
        client
            .query(
                &format!("SELECT {FIELDS} FROM webhook_endpoints ORDER BY id LIMIT $1"),
                &[&limit],
            )
            .await?
            .iter()
            .map(|r| open_secret(&self.cipher, webhook_of(r)?))
            .collect()
    }

    async fn webhook(&self, id: i64) -> Result<Option<Webhook>, StorageError> {
        let client = self.client().await?;
        one(&*client, id, false)
            .await?
            .map(|w| open_secret(&self.cipher, w))
            .transpose()
    }

    async fn update_webhook(
        &self,
        id: i64,
        change: WebhookChange,
        now: UnixMillis,
    ) -> Result<Option<Webhook>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(before) = one(&tx, id, true).await? else {
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
        let row = tx
            .query_one(
                &format!(
                    "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4,
                         active = $5, updated_at_ms = $6,
                         next_attempt_at_ms = CASE WHEN $7 THEN $6 ELSE next_attempt_at_ms END
                     WHERE id = $1 RETURNING {FIELDS}"
                ),
                &[
                    &id,
                    &url,
                    &description,
                    &types,
                    &active,
                    &now.as_millis(),
                    &change.retry_now,
                ],
            )
            .await?;
        let after = webhook_of(&row)?;
        append(&tx, updated_event(&after, change.retry_now, now)).await?;
        super::commit(tx).await?;
        open_secret(&self.cipher, after).map(Some)
    }

    async fn delete_webhook(&self, id: i64, now: UnixMillis) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Ok(false);
        }
        append(&tx, deleted_event(id, now)).await?;
        super::commit(tx).await?;
        Ok(true)
    }

    async fn webhook_deliveries(
        &self,
        id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StorageError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT id, endpoint_id, event_seq, attempt, attempted_at_ms, status, error,
                        duration_ms, delivered, next_attempt_at_ms
                 FROM webhook_deliveries WHERE endpoint_id = $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&id, &after, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(delivery_of)
            .collect()
    }

    async fn claim_webhooks(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Webhook>, StorageError> {
        // Nothing due (no endpoints, say): no sequencer run, no write.
        let due = self
            .client()
            .await?
            .query_opt(
                "SELECT 1 FROM webhook_endpoints WHERE active AND next_attempt_at_ms <= $1
                   AND (lease_until_ms IS NULL OR lease_until_ms < $1) LIMIT 1",
                &[&now.as_millis()],
            )
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        // Reading the log numbers its committed events (the sequencer runs before every read),
        // so the log end below includes every event committed so far.
        self.events(EventQuery {
            after: i64::MAX,
            limit: 1,
            kind: None,
        })
        .await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "UPDATE webhook_endpoints SET lease_owner = $1, lease_until_ms = $2::int8 + $3::int8
                     WHERE id IN (
                         SELECT id FROM webhook_endpoints
                         WHERE active AND next_attempt_at_ms <= $2
                           AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                           AND cursor_seq < (SELECT coalesce(max(seq), 0) FROM event_numbers)
                         ORDER BY next_attempt_at_ms, id LIMIT $4
                         FOR UPDATE SKIP LOCKED)
                     RETURNING {FIELDS}"
                ),
                &[&owner, &now.as_millis(), &lease_ms, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| open_secret(&self.cipher, webhook_of(r)?))
            .collect()
    }

    async fn record_webhook_progress(
        &self,
        id: i64,
        owner: &str,
        p: Progress,
        now: UnixMillis,
        lease_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE webhook_endpoints SET cursor_seq = $3, attempts = $4,
                     next_attempt_at_ms = $5, lease_until_ms = $6::int8 + $7::int8
                 WHERE id = $1 AND lease_owner = $2",
                &[
                    &id,
                    &owner,
                    &p.cursor,
                    &p.attempts,
                    &p.next_attempt_at.as_millis(),
                    &now.as_millis(),
                    &lease_ms,
                ],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(d) = &p.delivery {
            tx.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, event_seq, attempt,
                     attempted_at_ms, status, error, duration_ms, delivered, next_attempt_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &id,
                    &d.event_seq,
                    &d.attempt,
                    &d.at.as_millis(),
                    &d.status.map(i32::from),
                    &d.error,
                    &d.duration_ms,
                    &d.delivered,
                    &d.next_attempt_at.map(|t| t.as_millis()),
                ],
            )
            .await?;
        }
        super::commit(tx).await?;
        Ok(true)
    }

    async fn release_webhook(&self, id: i64, owner: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE id = $1 AND lease_owner = $2",
                &[&id, &owner],
            )
            .await?;
        Ok(())
    }

    async fn purge_webhook_deliveries(&self, before: UnixMillis) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM webhook_deliveries d USING webhook_endpoints e
                 WHERE e.id = d.endpoint_id AND d.attempted_at_ms < $1
                   AND d.event_seq <= e.cursor_seq",
                &[&before.as_millis()],
            )
            .await?;
        Ok(n)
    }
}

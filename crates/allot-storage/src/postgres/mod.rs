//! The PostgreSQL backend: the production deployment, several `allot` instances on one
//! database. Every guarantee is held by PostgreSQL itself (constraints, conditional updates,
//! row and advisory locks), so instances share nothing else for correctness.

mod batch;
mod campaign;
mod catalog;
mod conn;
mod coupon;
mod discount;
mod event;
mod idempotency;
mod inventory;
mod job;
pub mod migrate;
mod notification;
mod order;
mod order_batch;
mod overview;
mod payment;
mod personal;
mod promotion;
mod promotion_batch;
mod sale;
mod sale_basket;
mod shipment;
mod timeouts;
mod tls;
mod user;
mod webhook;

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use conn::{Conn, Db, Tx};

use crate::crypto::{Cipher, DataKey};
use crate::{StorageError, Store};

pub use coupon::{ALLOCATION_PICK_PLAN, ALLOCATION_PICK_TYPED, ALLOCATION_PICK_UNTYPED};
pub use event::{APPEND_EVENTS, NUMBER_EVENTS};
pub use timeouts::{
    DEFAULT_ANSWER_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, DEFAULT_TCP_USER_TIMEOUT_MS, PgTimeouts,
};
pub use tls::{PgTarget, PgTlsSettings, SslMode};

/// Connections one store keeps.
const CONNECTIONS: usize = 8;

/// A PostgreSQL store for one `allot` instance: a few connections, used in turn. Statements
/// from many requests pipeline over each connection; a multi-statement operation holds one
/// connection for its transaction. Several instances share one database; every guarantee is
/// enforced by statements that are atomic in PostgreSQL, never by this process alone.
pub struct PgStore {
    target: PgTarget,
    connections: Vec<Mutex<Conn>>,
    next: AtomicUsize,
    /// Campaign issues, served in batches on a connection of their own.
    issuer: batch::BatchQueue<campaign::Issues>,
    /// Order creates, served in batches on a connection of their own.
    orders: batch::BatchQueue<order_batch::Creates>,
    /// Promotion holds made, redeemed, released and rolled back, served in batches on a
    /// connection of their own.
    holds: batch::BatchQueue<promotion_batch::HoldWrites>,
    /// Seals and opens personal data (emails, addresses, stored answers).
    cipher: std::sync::Arc<Cipher>,
    /// Set when a write (or a connection) fails for a storage fault, cleared by the next
    /// batch that commits or probe that writes.
    health: std::sync::Arc<crate::WriteHealth>,
}

impl PgStore {
    /// Connects and applies pending migrations (once, whatever other instances do), then
    /// checks `key` against the database (sealing data written before encryption at rest on
    /// the first open with a key). Every instance must be given the same key.
    pub async fn open(url: &str, key: &DataKey) -> Result<PgStore, StorageError> {
        Self::open_target(&PgTarget::parse(url, &PgTlsSettings::default())?, key).await
    }

    /// [`PgStore::open`] on a target already parsed (with the TLS settings).
    pub async fn open_target(target: &PgTarget, key: &DataKey) -> Result<PgStore, StorageError> {
        let cipher = std::sync::Arc::new(Cipher::new(key));
        // Migrations and the sealing may run long (or wait for another instance's): on a
        // connection of their own, without our statement, lock and answer timeouts.
        let mut first = target.for_migrations().connect().await?;
        migrate::apply(&mut first).await?;
        let mut first = Conn::new(first);
        let sealed = personal::prepare(&mut first, &cipher).await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed personal data written before encryption at rest"
            );
        }
        drop(first);
        let mut connections = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            connections.push(Mutex::new(Conn::new(target.connect().await?)));
        }
        let health = std::sync::Arc::new(crate::WriteHealth::default());
        Ok(PgStore {
            target: target.clone(),
            connections,
            next: AtomicUsize::new(0),
            issuer: batch::BatchQueue::start(target.clone(), health.clone()),
            orders: batch::BatchQueue::start(target.clone(), health.clone()),
            holds: batch::BatchQueue::start(target.clone(), health.clone()),
            cipher,
            health,
        })
    }

    /// The next connection in turn, opened again first if it was closed (PostgreSQL restarted,
    /// the network dropped it): the store recovers by itself once the database is back.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>, StorageError> {
        let slot =
            &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()];
        let mut guard = slot.lock().await;
        if guard.is_closed() {
            *guard = Conn::new(self.target.connect().await.map_err(|e| {
                let fault = e.fault().unwrap_or(crate::Fault::Unreachable);
                self.health.failed(fault);
                StorageError::Unavailable {
                    fault,
                    detail: match e {
                        // Said as it is: `/ready` shows it (host, port and reason).
                        StorageError::TlsRefused(refusal) => refusal,
                        other => format!("reconnecting: {other}"),
                    },
                }
            })?);
            tracing::info!("reconnected to postgres");
        }
        Ok(guard)
    }
}

/// Commits `tx`. The connection lost during the COMMIT (the database shut down or killed, the
/// network cut, no answer within the answer timeout) leaves the outcome unknown: PostgreSQL
/// may have committed before the answer was lost, so it is [`crate::Fault::CommitLost`],
/// never "unreachable" (which promises nothing was written). A COMMIT cancelled (the
/// statement timeout) is said unknown too: whether the cancel came before the commit was
/// durable is not ours to tell. Every transaction of this backend commits through here.
pub(crate) async fn commit(tx: Tx<'_>) -> Result<(), StorageError> {
    commit_raw(tx.into_inner()).await
}

/// [`commit`] for a transaction on a bare client (the migrations').
pub(crate) async fn commit_raw(tx: tokio_postgres::Transaction<'_>) -> Result<(), StorageError> {
    tx.commit().await.map_err(|e| {
        if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
            StorageError::Unavailable {
                fault: crate::Fault::CommitLost,
                detail: StorageError::from(e).to_string(),
            }
        } else {
            sent_write(e)
        }
    })
}

/// The error of a write that commits by itself (a COMMIT, or one statement outside a
/// transaction, which PostgreSQL commits as it ends): the connection lost once it was sent
/// leaves the outcome unknown (PostgreSQL may have committed it before the answer was lost),
/// so it is [`crate::Fault::CommitLost`], never "unreachable", which promises nothing was
/// written. A statement of a transaction lost before its COMMIT needs none of this: the
/// transaction ends with its connection, rolled back.
pub(crate) fn sent_write(e: tokio_postgres::Error) -> StorageError {
    let error = StorageError::from(e);
    match error.fault() {
        Some(crate::Fault::Unreachable) => StorageError::Unavailable {
            fault: crate::Fault::CommitLost,
            detail: error.to_string(),
        },
        _ => error,
    }
}

/// Opens one connection to `url` (its TLS as the URL says, without the settings), for tools
/// and tests: the connect timeout and TCP keepalives, no statement, lock or answer timeout
/// (those are the store's); its I/O task runs on the current runtime until the client is
/// dropped.
pub async fn connect(url: &str) -> Result<Client, StorageError> {
    PgTarget::parse(url, &PgTlsSettings::default())?
        .for_migrations()
        .connect()
        .await
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn accepting_writes(&self) -> bool {
        self.connections
            .iter()
            .any(|c| c.try_lock().map_or(true, |c| !c.is_closed()))
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    fn write_fault(&self) -> Option<crate::Fault> {
        self.health.fault()
    }

    async fn probe_write(&self) -> Result<(), StorageError> {
        let outcome = async {
            let client = self.client().await?;
            // One row, rewritten in place: it needs WAL space and a live connection, which
            // is what the faults that stop writes on PostgreSQL take away.
            client
                .execute(
                    "INSERT INTO job_runs (job, last_run_ms) VALUES ('ready-probe', 0)
                     ON CONFLICT (job) DO UPDATE SET last_run_ms = job_runs.last_run_ms + 1",
                    &[],
                )
                .await?;
            Ok(())
        }
        .await;
        self.health.observe(&outcome);
        outcome
    }

    /// Every write is committed by PostgreSQL before it is answered; nothing to flush.
    async fn close(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

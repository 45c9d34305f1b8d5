//! The PostgreSQL backend: the production deployment, several `allot` instances on one
//! database. Every guarantee is held by PostgreSQL itself (constraints, conditional updates,
//! row and advisory locks), so instances share nothing else for correctness.

mod batch;
mod campaign;
mod catalog;
mod coupon;
mod discount;
mod event;
mod idempotency;
mod inventory;
pub mod migrate;
mod notification;
mod order;
mod order_batch;
mod personal;
mod sale;
mod user;
mod webhook;

use std::sync::atomic::{AtomicUsize, Ordering};

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use allot_domain::campaign::{CampaignId, CouponCode};

use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::user::UserId;

use allot_domain::sale::CheckoutCode;
use async_trait::async_trait;

use crate::crypto::{Cipher, DataKey};
use crate::{
    Allocation, Campaign, CheckoutOutcome, CheckoutRequest, Coupon, CouponCounters,
    DiscountCodeRecord, ExistingCodes, IssueOutcome, IssueRequest, IssuedCoupon, NewCampaign,
    NewCoupon, NewSale, Purchase, RedeemOutcome, Redemption, RedemptionFilter, Sale, SaleItem,
    StorageError, Store,
};

/// Connections one store keeps.
const CONNECTIONS: usize = 8;

/// A PostgreSQL store for one `allot` instance: a few connections, used in turn. Statements
/// from many requests pipeline over each connection; a multi-statement operation holds one
/// connection for its transaction. Several instances share one database; every guarantee is
/// enforced by statements that are atomic in PostgreSQL, never by this process alone.
pub struct PgStore {
    url: String,
    connections: Vec<Mutex<Client>>,
    next: AtomicUsize,
    /// Campaign issues, served in batches on a connection of their own.
    issuer: batch::BatchQueue<campaign::Issues>,
    /// Order creates, served in batches on a connection of their own.
    orders: batch::BatchQueue<order_batch::Creates>,
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
        let cipher = std::sync::Arc::new(Cipher::new(key));
        let mut first = connect(url).await?;
        migrate::apply(&mut first).await?;
        let sealed = personal::prepare(&mut first, &cipher).await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed personal data written before encryption at rest"
            );
        }
        let mut connections = vec![Mutex::new(first)];
        for _ in 1..CONNECTIONS {
            connections.push(Mutex::new(connect(url).await?));
        }
        let health = std::sync::Arc::new(crate::WriteHealth::default());
        Ok(PgStore {
            url: url.to_owned(),
            connections,
            next: AtomicUsize::new(0),
            issuer: batch::BatchQueue::start(url.to_owned(), health.clone()),
            orders: batch::BatchQueue::start(url.to_owned(), health.clone()),
            cipher,
            health,
        })
    }

    /// The next connection in turn, opened again first if it was closed (PostgreSQL restarted,
    /// the network dropped it): the store recovers by itself once the database is back.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, StorageError> {
        let slot =
            &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()];
        let mut guard = slot.lock().await;
        if guard.is_closed() {
            *guard = connect(&self.url).await.map_err(|e| {
                let fault = crate::Fault::Unreachable;
                self.health.failed(fault);
                StorageError::Unavailable {
                    fault,
                    detail: format!("reconnecting: {e}"),
                }
            })?;
            tracing::info!("reconnected to postgres");
        }
        Ok(guard)
    }

    pub async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
    ) -> Result<Vec<DiscountCode>, StorageError> {
        let mut client = self.client().await?;
        discount::generate(&mut client, length, count, now).await
    }

    pub async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError> {
        let client = self.client().await?;
        discount::use_code(&*client, code, now).await
    }

    pub async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError> {
        let client = self.client().await?;
        discount::get(&client, code).await
    }

    pub async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError> {
        let mut client = self.client().await?;
        campaign::create(&mut client, &new, now).await
    }

    pub async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
        let client = self.client().await?;
        campaign::get(&client, id).await
    }

    pub async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError> {
        self.issuer.submit(request).await
    }

    pub async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError> {
        let mut client = self.client().await?;
        coupon::upload(&mut client, &coupons, now).await
    }

    pub async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError> {
        let client = self.client().await?;
        coupon::existing_codes(&client, codes).await
    }

    pub async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError> {
        let mut client = self.client().await?;
        coupon::allocate(&mut client, &user, coupon_type, now).await
    }

    pub async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError> {
        let client = self.client().await?;
        coupon::get(&client, code.as_str()).await
    }

    pub async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
    ) -> Result<RedeemOutcome, StorageError> {
        let mut client = self.client().await?;
        coupon::redeem(&mut client, code.as_str(), &user, now).await
    }

    pub async fn coupon_counters(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<CouponCounters>, StorageError> {
        let client = self.client().await?;
        coupon::counters(&client, now).await
    }

    pub async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
        let mut client = self.client().await?;
        coupon::purge(&mut client, now, trigger).await
    }
}

/// Opens one connection; its I/O task runs on the current runtime until the client is dropped.
pub async fn connect(url: &str) -> Result<Client, StorageError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
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

    async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
    ) -> Result<Vec<DiscountCode>, StorageError> {
        PgStore::generate_discount_codes(self, length, count, now).await
    }

    async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError> {
        PgStore::use_discount_code(self, code, now).await
    }

    async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError> {
        PgStore::discount_code(self, code).await
    }

    async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError> {
        PgStore::create_campaign(self, new, now).await
    }

    async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
        PgStore::campaign(self, id).await
    }

    async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError> {
        PgStore::issue_coupon(self, request).await
    }

    async fn campaign_coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT code, seq, user_id, issued_at_ms FROM campaign_coupons
                 WHERE campaign_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&id.get(), &after_seq, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let code: String = r.get(0);
                Ok(IssuedCoupon {
                    code: CouponCode::parse(&code)
                        .map_err(|e| StorageError::Corrupt(e.to_string()))?,
                    seq: r.get(1),
                    user_id: r.get(2),
                    issued_at: UnixMillis::from_millis(r.get(3)),
                })
            })
            .collect()
    }

    async fn campaign_codes(
        &self,
        id: CampaignId,
        holder: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<CouponCode>, StorageError> {
        let client = self.client().await?;
        campaign::codes(&client, id, holder.as_ref(), limit).await
    }

    async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError> {
        PgStore::upload_coupons(self, coupons, now).await
    }

    async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError> {
        PgStore::existing_coupon_codes(self, codes).await
    }

    async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError> {
        PgStore::allocate_coupon(self, user, coupon_type, now).await
    }

    async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError> {
        PgStore::coupon(self, code).await
    }

    async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
    ) -> Result<RedeemOutcome, StorageError> {
        PgStore::redeem_coupon(self, code, user, now).await
    }

    async fn redemptions(&self, f: RedemptionFilter) -> Result<Vec<Redemption>, StorageError> {
        let client = self.client().await?;
        let t: Option<Option<&str>> = f.coupon_type.map(|t| t.map(CouponType::as_str));
        let rows = client
            .query(
                "SELECT id, code, type, user_id, redeemed_at_ms FROM coupon_redemptions
                 WHERE id > $1
                   AND ($2::text IS NULL OR user_id = $2)
                   AND ($3::text IS NULL OR code = $3)
                   AND (NOT $4 OR type IS NOT DISTINCT FROM $5::text)
                   AND ($6::bigint IS NULL OR redeemed_at_ms >= $6)
                   AND ($7::bigint IS NULL OR redeemed_at_ms < $7)
                 ORDER BY id LIMIT $8",
                &[
                    &f.after_id,
                    &f.user_id,
                    &f.code,
                    &t.is_some(),
                    &t.flatten(),
                    &f.from.map(UnixMillis::as_millis),
                    &f.until.map(UnixMillis::as_millis),
                    &i64::from(f.limit),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let t: Option<String> = r.get(2);
                Ok(Redemption {
                    id: r.get(0),
                    code: r.get(1),
                    coupon_type: t
                        .map(|t| {
                            CouponType::parse(&t).map_err(|e| StorageError::Corrupt(e.to_string()))
                        })
                        .transpose()?,
                    user_id: r.get(3),
                    redeemed_at: UnixMillis::from_millis(r.get(4)),
                })
            })
            .collect()
    }

    async fn coupon_counters(&self, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError> {
        PgStore::coupon_counters(self, now).await
    }

    async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
        PgStore::purge_coupons(self, now, trigger).await
    }

    async fn open_sale(&self, new: NewSale, now: UnixMillis) -> Result<Sale, StorageError> {
        let mut client = self.client().await?;
        sale::open(&mut client, new, now).await
    }

    async fn sale_starting_at(&self, start: UnixMillis) -> Result<Option<Sale>, StorageError> {
        let client = self.client().await?;
        sale::by_start(&*client, start).await
    }

    async fn sale(&self, id: i64) -> Result<Option<Sale>, StorageError> {
        let client = self.client().await?;
        sale::by_id(&*client, id).await
    }

    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutOutcome, StorageError> {
        let mut client = self.client().await?;
        sale::checkout(&mut client, &request).await
    }

    async fn purchase(
        &self,
        code: CheckoutCode,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<Purchase, StorageError> {
        let mut client = self.client().await?;
        sale::purchase(&mut client, &code, user_limit, now).await
    }

    async fn sale_items(
        &self,
        sale_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, StorageError> {
        let client = self.client().await?;
        sale::items(&client, sale_id, after_id, limit).await
    }

    async fn sale_purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, StorageError> {
        let client = self.client().await?;
        sale::purchases(&client, sale_id, user.as_str()).await
    }

    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let claimed = client
            .query_opt(
                "INSERT INTO job_runs (job, last_run_ms) VALUES ($1, $2)
                 ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms
                 WHERE job_runs.last_run_ms <= $2 - $3
                 RETURNING 1",
                &[&job, &now.as_millis(), &spacing_ms],
            )
            .await?;
        Ok(claimed.is_some())
    }

    /// Every write is committed by PostgreSQL before it is answered; nothing to flush.
    async fn close(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

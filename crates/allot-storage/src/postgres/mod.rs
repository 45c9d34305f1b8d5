//! The PostgreSQL backend (issue 6), under way: connections, migrations and discount codes so
//! far. `PgStore` does not implement [`crate::Store`] yet, so `allot serve` runs on SQLite only
//! until every capability is here.

mod campaign;
mod coupon;
mod discount;
pub mod migrate;

use std::sync::atomic::{AtomicUsize, Ordering};

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use allot_domain::campaign::{CampaignId, CouponCode};

use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::user::UserId;

use crate::{
    Allocation, Campaign, Coupon, CouponCounters, DiscountCodeRecord, ExistingCodes, IssueOutcome,
    IssueRequest, NewCampaign, NewCoupon, RedeemOutcome, StorageError,
};

/// Connections one store keeps.
const CONNECTIONS: usize = 8;

/// A PostgreSQL store for one `allot` instance: a few connections, used in turn. Statements
/// from many requests pipeline over each connection; a multi-statement operation holds one
/// connection for its transaction. Several instances share one database; every guarantee is
/// enforced by statements that are atomic in PostgreSQL, never by this process alone.
pub struct PgStore {
    connections: Vec<Mutex<Client>>,
    next: AtomicUsize,
}

impl PgStore {
    /// Connects and applies pending migrations (once, whatever other instances do).
    pub async fn open(url: &str) -> Result<PgStore, StorageError> {
        let mut first = connect(url).await?;
        migrate::apply(&mut first).await?;
        let mut connections = vec![Mutex::new(first)];
        for _ in 1..CONNECTIONS {
            connections.push(Mutex::new(connect(url).await?));
        }
        Ok(PgStore {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    fn pick(&self) -> &Mutex<Client> {
        &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()]
    }

    pub async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
    ) -> Result<Vec<DiscountCode>, StorageError> {
        let mut client = self.pick().lock().await;
        discount::generate(&mut client, length, count, now).await
    }

    pub async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError> {
        let client = self.pick().lock().await;
        discount::use_code(&client, code, now).await
    }

    pub async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError> {
        let client = self.pick().lock().await;
        discount::get(&client, code).await
    }

    pub async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError> {
        let client = self.pick().lock().await;
        campaign::create(&client, &new, now).await
    }

    pub async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
        let client = self.pick().lock().await;
        campaign::get(&client, id).await
    }

    pub async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError> {
        let mut client = self.pick().lock().await;
        campaign::issue(&mut client, &request).await
    }

    pub async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError> {
        let mut client = self.pick().lock().await;
        coupon::upload(&mut client, &coupons, now).await
    }

    pub async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError> {
        let client = self.pick().lock().await;
        coupon::existing_codes(&client, codes).await
    }

    pub async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError> {
        let mut client = self.pick().lock().await;
        coupon::allocate(&mut client, &user, coupon_type, now).await
    }

    pub async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError> {
        let client = self.pick().lock().await;
        coupon::get(&client, code.as_str()).await
    }

    pub async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
    ) -> Result<RedeemOutcome, StorageError> {
        let mut client = self.pick().lock().await;
        coupon::redeem(&mut client, code.as_str(), &user, now).await
    }

    pub async fn coupon_counters(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<CouponCounters>, StorageError> {
        let client = self.pick().lock().await;
        coupon::counters(&client, now).await
    }

    pub async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
        let mut client = self.pick().lock().await;
        coupon::purge(&mut client, now, trigger).await
    }

    pub async fn campaign_codes(&self, id: CampaignId) -> Result<Vec<CouponCode>, StorageError> {
        let client = self.pick().lock().await;
        campaign::codes(&client, id).await
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

//! Allot's storage: one interface ([`Store`]) with one implementation per database.
//!
//! The interface speaks domain types and whole use-case operations ("use this code", "generate
//! this batch"), never SQL, so the service layer cannot tell the backends apart. Each backend
//! batches writes internally: many concurrent operations share one transaction and one durable
//! commit (group commit), and every caller is answered only after that commit.

pub mod catalog;
pub mod crypto;
mod error;
pub mod event;
pub mod health;
pub mod idempotency;
pub mod inventory;
pub mod migrations;
pub mod notification;
pub mod order;
pub mod origin;
pub mod postgres;
pub mod records;
mod row;
pub mod sqlite;
pub mod user;
pub mod webhook;

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignId, CouponCode};
use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::sale::CheckoutCode;
use allot_domain::user::UserId;
use async_trait::async_trait;

pub use catalog::{
    CatalogRefusal, CatalogResult, CatalogStore, Category, NewCategory, NewProduct, NewWarehouse,
    Product, ProductQuery, Warehouse,
};
pub use error::{Fault, StorageError};
pub use event::{AuditQuery, Event, EventQuery, EventStore};
pub use health::WriteHealth;
pub use idempotency::{Claim, IdempotencyScope, IdempotencyStore, StoredResponse};
pub use inventory::{
    AlertQuery, InventoryRefusal, InventoryResult, InventoryStore, LevelQuery, Movement,
    NewReservation, ProductInventory, Reservation, StockAlert, StockLevel,
};
pub use notification::NotificationStore;
pub use order::{
    AppliedCode, Created, NewOrder, Order, OrderLine, OrderQuery, OrderRefusal, OrderResult,
    OrderStore, StatusChange, StatusRequest,
};
pub use records::*;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use user::{ApiKey, Rotation, User, UserStore};
pub use webhook::{
    Delivery, DeliveryAttempt, NewWebhook, Progress, Webhook, WebhookChange, WebhookStore,
};

/// Everything the services ask of a database (the catalog's operations in [`CatalogStore`],
/// inventory's in [`InventoryStore`], accounts' in [`UserStore`]).
#[async_trait]
pub trait Store:
    CatalogStore
    + InventoryStore
    + IdempotencyStore
    + OrderStore
    + UserStore
    + EventStore
    + WebhookStore
    + NotificationStore
    + Send
    + Sync
    + 'static
{
    /// A short name of the backend, for logs and `/ready`.
    fn backend(&self) -> &'static str;

    /// True while the store accepts writes (no I/O: for liveness reports).
    fn accepting_writes(&self) -> bool;

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StorageError>;

    /// The storage fault that made the last write fail, unless a write committed since (no
    /// I/O: `/ready` reads it).
    fn write_fault(&self) -> Option<Fault>;

    /// Makes a small write that needs fresh space (and leaves nothing behind), through the
    /// path every write takes; its outcome sets or clears [`Store::write_fault`]. `/ready`
    /// runs it while writes are failing, so a node comes back by itself once they can
    /// commit again, even when no client writes.
    async fn probe_write(&self) -> Result<(), StorageError>;

    /// Creates `count` new codes of `length` in one all-or-nothing batch. Codes are drawn from a
    /// cryptographically secure generator; one that collides with any code ever stored is
    /// drawn again, so a collision never fails the call.
    async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
    ) -> Result<Vec<DiscountCode>, StorageError>;

    /// Marks the code used if it exists and is unused. Atomic: of any number of concurrent
    /// calls for one code exactly one gets [`UseOutcome::Used`].
    async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError>;

    async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError>;

    /// Creates a campaign with nothing issued.
    async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError>;

    /// The campaign with its issued count as committed.
    async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError>;

    /// Issues the campaign's next code, unless all are issued or the user is at the campaign's
    /// limit; a known idempotency key returns the code it got before. Exactly `total` codes are
    /// ever issued per campaign, under any concurrency and across restarts. Does not look at
    /// the campaign's time window: the service decides that with its clock.
    async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError>;

    /// Issued codes in issue order, those with `seq > after_seq`, at most `limit`.
    async fn campaign_coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, StorageError>;

    /// The first `limit` codes of the campaign in issue order; only those issued to `holder`
    /// when given.
    async fn campaign_codes(
        &self,
        id: CampaignId,
        holder: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<CouponCode>, StorageError>;

    /// Stores every coupon or none: codes already stored are reported by their index in
    /// `coupons` and nothing is written. The caller has checked the batch itself (fields,
    /// duplicates inside it).
    async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError>;

    /// Which of these codes are stored already (a read; the upload itself checks again).
    async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError>;

    /// Hands the user the oldest free, unexpired coupon of the type (untyped for `None`), or
    /// the unredeemed one of that type they already hold.
    async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError>;

    async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError>;

    /// Redeems once if the rules allow; atomic, so N concurrent redemptions of a coupon with
    /// M uses left give exactly M successes.
    async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
    ) -> Result<RedeemOutcome, StorageError>;

    async fn redemptions(&self, filter: RedemptionFilter) -> Result<Vec<Redemption>, StorageError>;

    async fn coupon_counters(&self, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError>;

    /// Deletes unused coupons past their expiry; answers how many of each type.
    async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError>;

    /// Opens the sale of an hour with its generated items, once: if the hour's sale exists
    /// (opened earlier, or by another instance) it is returned unchanged.
    async fn open_sale(&self, sale: NewSale, now: UnixMillis) -> Result<Sale, StorageError>;

    async fn sale_starting_at(&self, start: UnixMillis) -> Result<Option<Sale>, StorageError>;

    async fn sale(&self, id: i64) -> Result<Option<Sale>, StorageError>;

    /// Decides a checkout against the current sale and records the attempt, whatever its
    /// outcome.
    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutOutcome, StorageError>;

    /// Decides the purchase of a checked-out item once per code; later calls with the code
    /// answer the first outcome.
    async fn purchase(
        &self,
        code: CheckoutCode,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<Purchase, StorageError>;

    async fn sale_items(
        &self,
        sale_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, StorageError>;

    async fn sale_purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, StorageError>;

    /// Claims the run of `job` at `now` if no instance ran it within `spacing`: true means this
    /// instance runs it now. Atomic across instances sharing the database.
    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError>;

    /// Finishes every accepted write, makes it durable and releases the database. Later calls
    /// fail with [`StorageError::Closed`].
    async fn close(&self) -> Result<(), StorageError>;
}

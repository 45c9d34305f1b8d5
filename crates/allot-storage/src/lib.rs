//! Allot's storage: one interface ([`Store`]) with one implementation per database.
//!
//! The interface speaks domain types and whole use-case operations ("use this code", "generate
//! this batch"), never SQL, so the service layer cannot tell the backends apart. Each backend
//! batches writes internally: many concurrent operations share one transaction and one durable
//! commit (group commit), and every caller is answered only after that commit.

pub mod campaign;
pub mod catalog;
pub mod coupon;
pub mod crypto;
pub mod discount;
mod error;
pub mod event;
pub mod health;
pub mod idempotency;
pub mod inventory;
pub mod job;
pub mod migrations;
pub mod notification;
pub mod order;
pub mod origin;
pub mod overview;
pub mod payment;
pub mod postgres;
pub mod promotion;
mod row;
pub mod sale;
pub mod sale_basket;
pub mod shipment;
pub mod sqlite;
pub mod tls;
pub mod user;
pub mod webhook;

use async_trait::async_trait;

pub use campaign::{
    Campaign, CampaignStore, IssueOutcome, IssueRequest, IssuedCoupon, NewCampaign,
};
pub use catalog::{
    CatalogRefusal, CatalogResult, CatalogStore, Category, Facets, NewCategory, NewProduct,
    NewWarehouse, Product, ProductListing, ProductQuery, ScoredProduct, Warehouse,
};
pub use coupon::{
    Allocation, Coupon, CouponCounters, CouponStore, ExistingCodes, NewCoupon, RedeemOutcome,
    Redemption, RedemptionFilter,
};
pub use discount::{DiscountCodeRecord, DiscountStore, GeneratedBatch};
pub use error::{Fault, StorageError};
pub use event::{AuditQuery, Event, EventQuery, EventStore};
pub use health::WriteHealth;
pub use idempotency::{Claim, IdempotencyScope, IdempotencyStore, StoredResponse};
pub use inventory::{
    AlertQuery, InventoryRefusal, InventoryResult, InventoryStore, LedgerQuery, LevelQuery,
    Movement, NewReservation, ProductInventory, Reservation, StockAlert, StockLevel,
};
pub use job::JobStore;
pub use notification::NotificationStore;
pub use order::{
    AppliedCode, AppliedPromotion, Created, Edited, HoldUnusable, NewOrder, Order, OrderLine,
    OrderQuery, OrderRefusal, OrderResult, OrderStore, StatusChange, StatusRequest,
};
pub use overview::{OverviewCounts, OverviewStore};
pub use payment::{
    NewPayment, NewRefund, OrderPayments, Payment, PaymentRecorded, PaymentResult, PaymentStore,
    Refund, RefundTarget,
};
pub use promotion::{
    Binding, CodeSource, HeldPromotion, Hold, HoldStatus, NewHold, NewPromotion, PromotionQuery,
    PromotionRefusal, PromotionResult, PromotionStore, ResolvedCode, StoredPromotion, Totals,
};
pub use sale::{
    CheckoutOutcome, CheckoutRequest, NewSale, Purchase, PurchaseOutcome, Sale, SaleItem, SaleStore,
};
pub use sale_basket::{
    BasketCheckoutOutcome, BasketCheckoutRequest, BasketLine, BasketPurchase,
    BasketPurchaseOutcome, LineOutcome,
};
pub use shipment::{
    ItemLine, NewReturn, NewShipment, OrderReturn, ReturnMove, Shipment, ShipmentMade,
    ShipmentResult, ShipmentStore,
};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use user::{
    API_KEYS_PAGE_MAX, AccountChange, ApiKey, FirstAdmin, PasswordSet, Rotation, TokenPurpose,
    USERS_PAGE_MAX, User, UserQuery, UserStore,
};
pub use webhook::{
    Delivery, DeliveryAttempt, NewWebhook, Progress, Webhook, WebhookChange, WebhookStore,
};

/// Everything the services ask of a database: one trait per capability, each in its module
/// with its records and the rules both backends share, and here only what concerns the whole
/// backend.
#[async_trait]
pub trait Store:
    DiscountStore
    + CampaignStore
    + CouponStore
    + SaleStore
    + JobStore
    + CatalogStore
    + InventoryStore
    + IdempotencyStore
    + OrderStore
    + PaymentStore
    + ShipmentStore
    + UserStore
    + EventStore
    + WebhookStore
    + NotificationStore
    + OverviewStore
    + PromotionStore
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

    /// Finishes every accepted write, makes it durable and releases the database. Later calls
    /// fail with [`StorageError::Closed`].
    async fn close(&self) -> Result<(), StorageError>;
}

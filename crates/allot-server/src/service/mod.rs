//! Use cases, one module per capability. Nothing here knows which transport called it.

pub mod accounts;
pub mod admission;
pub mod auth;
pub mod campaign;
pub mod catalog;
pub mod coupon;
pub mod discount;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod promotion;
pub mod sale;
pub mod shipment;
pub mod webhook;

use std::sync::Arc;

use allot_domain::Clock;
use allot_storage::Store;

use admission::AdmissionLimits;
use sale::SaleSettings;

pub use auth::Auth;
pub use campaign::Campaigns;
pub use catalog::Catalog;
pub use coupon::Coupons;
pub use discount::DiscountCodes;
pub use inventory::Inventory;
pub use notification::Notifications;
pub use order::Orders;
pub use promotion::Promotions;
pub use sale::FlashSales;
pub use webhook::Webhooks;

/// Every capability's service, built once over one store and one clock.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub discount: Arc<DiscountCodes>,
    pub campaigns: Arc<Campaigns>,
    pub coupons: Arc<Coupons>,
    pub sales: Arc<FlashSales>,
    pub catalog: Arc<Catalog>,
    pub inventory: Arc<Inventory>,
    pub orders: Arc<Orders>,
    pub promotions: Arc<Promotions>,
    pub auth: Arc<Auth>,
    /// The first admin, sign-up and password reset by email.
    pub accounts: Arc<accounts::Accounts>,
    pub webhooks: Arc<Webhooks>,
    pub notifications: Arc<Notifications>,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        limits: AdmissionLimits,
        sales: SaleSettings,
        redis: Option<redis::aio::ConnectionManager>,
        orders: order::OrderSettings,
        auth: &auth::AuthSettings,
    ) -> Self {
        let auth = Arc::new(Auth::new(store.clone(), clock.clone(), auth));
        let promotions = Arc::new(Promotions::new(store.clone(), clock.clone()));
        Services {
            accounts: Arc::new(accounts::Accounts::new(
                store.clone(),
                clock.clone(),
                auth.clone(),
                accounts::AccountSettings::default(),
            )),
            discount: Arc::new(DiscountCodes::new(store.clone(), clock.clone())),
            campaigns: Arc::new(Campaigns::new(store.clone(), clock.clone())),
            coupons: Arc::new(Coupons::new(store.clone(), clock.clone(), limits, redis)),
            sales: Arc::new(FlashSales::new(store.clone(), clock.clone(), sales)),
            catalog: Arc::new(Catalog::new(store.clone(), clock.clone())),
            inventory: Arc::new(Inventory::new(store.clone(), clock.clone())),
            orders: Arc::new(Orders::new(
                store.clone(),
                clock.clone(),
                orders,
                promotions.clone(),
            )),
            promotions,
            auth,
            notifications: Arc::new(Notifications::new(
                store.clone(),
                clock.clone(),
                notification::NotificationSettings::default(),
            )),
            webhooks: Arc::new(Webhooks::new(store.clone(), clock.clone(), false)),
            store,
            clock,
        }
    }

    /// The same services with the account flows set by `settings`.
    pub fn with_accounts(mut self, settings: &accounts::AccountSettings) -> Self {
        self.accounts = Arc::new(accounts::Accounts::new(
            self.store.clone(),
            self.clock.clone(),
            self.auth.clone(),
            settings.clone(),
        ));
        self
    }

    /// The same services with webhook endpoints accepted as `settings` allow (plain http).
    pub fn with_webhooks(mut self, settings: &crate::webhook_worker::WebhookSettings) -> Self {
        self.webhooks = Arc::new(Webhooks::new(
            self.store.clone(),
            self.clock.clone(),
            settings.allow_http,
        ));
        self
    }

    /// The same services with notifications delivered by `settings` (SMTP, retries).
    pub fn with_notifications(mut self, settings: &notification::NotificationSettings) -> Self {
        self.notifications = Arc::new(Notifications::new(
            self.store.clone(),
            self.clock.clone(),
            settings.clone(),
        ));
        self
    }
}

/// How long idempotency keys (REST's and the operations' own) are kept before the purge job
/// removes them: answers kept for retries, and a day is plenty.
pub const IDEMPOTENCY_KEYS_KEEP_FOR: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// Who the idempotency keys of the request being served belong to (see
/// `Origin::idempotency_owner`): every transport serves a request in its origin's scope, so a
/// use case finds its caller without being told which transport called it. Outside a request
/// (the CLI, a job) the keys belong to `unattributed`.
pub fn idempotency_owner() -> String {
    crate::caller::origin()
        .unwrap_or(allot_domain::event::Origin::UNATTRIBUTED)
        .idempotency_owner()
}

//! Flash sales: a sale of generated items every hour on the hour (UTC); checkout hands out a
//! code, purchase decides the sale atomically.

use std::sync::{Arc, RwLock};

use allot_domain::Clock;
use allot_domain::sale::{CheckoutCode, ItemId, ItemsPerSale, SaleHour};
use allot_domain::user::UserId;
use allot_storage::{
    BasketCheckoutOutcome, BasketCheckoutRequest, BasketLine, BasketPurchaseOutcome,
    CheckoutOutcome, CheckoutRequest, LineOutcome, NewSale, PurchaseOutcome, Sale, SaleItem, Store,
};

use crate::ServiceError;

#[derive(Debug, Clone, Copy)]
pub struct SaleSettings {
    /// Items per sale; `None` turns flash sales off.
    pub items: Option<ItemsPerSale>,
    /// Most items one user may buy in one sale.
    pub user_limit: u32,
}

impl Default for SaleSettings {
    fn default() -> Self {
        SaleSettings {
            items: ItemsPerSale::parse(10_000).ok(),
            user_limit: 10,
        }
    }
}

/// Most sales one page of the listing returns.
pub const SALES_PAGE_MAX: u32 = 1_000;

pub struct FlashSales {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: SaleSettings,
    /// The sale last seen as current; its counts are not kept up to date.
    current: RwLock<Option<Sale>>,
}

/// A checkout code handed out, for an item of a sale.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub code: CheckoutCode,
    pub item: SaleItem,
    pub sale: Sale,
}

/// A decided purchase.
#[derive(Debug, Clone)]
pub struct Sold {
    pub item: SaleItem,
    pub user_id: String,
    pub replayed: bool,
}

/// The design checkout: the user's open code after an item went on it.
#[derive(Debug, Clone)]
pub struct BasketCheckout {
    pub code: CheckoutCode,
    pub items_count: u32,
    pub sale: Sale,
}

/// The design checkout's purchase of a code, decided (now or earlier): every item of the
/// code with what was decided for it. Nothing sold is an outcome too, which the transport
/// answers as a refusal.
#[derive(Debug, Clone)]
pub struct BasketPurchased {
    pub sale_id: i64,
    pub user_id: String,
    pub lines: Vec<BasketLine>,
    pub replayed: bool,
}

impl BasketPurchased {
    pub fn sold(&self) -> impl Iterator<Item = &SaleItem> {
        self.lines
            .iter()
            .filter(|l| l.outcome == LineOutcome::Sold)
            .map(|l| &l.item)
    }

    /// Why nothing was sold, when nothing was: the sale's end before all, then an item sold
    /// meanwhile, then the limit.
    pub fn refusal(&self) -> Option<ServiceError> {
        let has = |o| self.lines.iter().any(|l| l.outcome == o);
        if has(LineOutcome::Sold) {
            None
        } else if has(LineOutcome::SaleOver) {
            Some(ServiceError::SaleOver)
        } else if has(LineOutcome::ItemSold) {
            Some(ServiceError::ItemSold)
        } else {
            Some(ServiceError::UserLimitReached)
        }
    }
}

impl FlashSales {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: SaleSettings) -> Self {
        FlashSales {
            store,
            clock,
            settings,
            current: RwLock::new(None),
        }
    }

    pub fn settings(&self) -> SaleSettings {
        self.settings
    }

    /// The sale of the current hour, opened now if nobody has yet: a sale opens at its hour
    /// even when the job is late, and once only (the database keeps one sale per hour).
    pub async fn current(&self) -> Result<Sale, ServiceError> {
        let Some(items) = self.settings.items else {
            return Err(ServiceError::NoActiveSale);
        };
        let now = self.clock.now();
        let hour = SaleHour::containing(now);
        if let Some(sale) = self.current.read().expect("sale lock").as_ref()
            && sale.starts_at == hour.starts_at()
        {
            return Ok(sale.clone());
        }
        let sale = match self.store.sale_starting_at(hour.starts_at()).await? {
            Some(sale) => sale,
            None => {
                let sale = self
                    .store
                    .open_sale(
                        NewSale {
                            hour,
                            items: items.get(),
                        },
                        now,
                    )
                    .await?;
                tracing::info!(
                    op = "sale.open",
                    sale = sale.id,
                    items = sale.items_total,
                    "flash sale open"
                );
                sale
            }
        };
        *self.current.write().expect("sale lock") = Some(sale.clone());
        Ok(sale)
    }

    /// Allot's own checkout: a code for one item of sale `sale_id`, which must be current.
    pub async fn checkout(
        &self,
        sale_id: i64,
        user: UserId,
        item: ItemId,
    ) -> Result<Checkout, ServiceError> {
        let sale = self.current_is(sale_id).await?;
        let outcome = self
            .store
            .checkout(CheckoutRequest {
                sale: sale.clone(),
                item,
                user: user.clone(),
                user_limit: self.settings.user_limit,
                now: self.clock.now(),
            })
            .await?;
        let result = match outcome {
            CheckoutOutcome::Code { code, item } => Ok(Checkout { code, item, sale }),
            CheckoutOutcome::UnknownItem => Err(ServiceError::NotFound { what: "item" }),
            CheckoutOutcome::NotInCurrentSale => Err(ServiceError::NotInCurrentSale),
            CheckoutOutcome::ItemSold => Err(ServiceError::ItemSold),
            CheckoutOutcome::UserLimitReached => Err(ServiceError::UserLimitReached),
        };
        let label = result.as_ref().map_or_else(|e| e.code(), |_| "ok");
        metrics::counter!("allot_sale_checkouts_total", "outcome" => label).increment(1);
        tracing::debug!(op = "sale.checkout", user = %user, item = item.get(), outcome = label);
        result
    }

    /// Allot's own purchase of a one-item code of sale `sale_id`.
    pub async fn purchase(&self, sale_id: i64, code: CheckoutCode) -> Result<Sold, ServiceError> {
        self.sale(sale_id).await?;
        let purchase = self
            .store
            .purchase(
                code.clone(),
                sale_id,
                self.settings.user_limit,
                self.clock.now(),
            )
            .await?;
        let result = match purchase.outcome {
            PurchaseOutcome::Sold { item, user_id } => Ok(Sold {
                item,
                user_id,
                replayed: purchase.replayed,
            }),
            PurchaseOutcome::ItemSold => Err(ServiceError::ItemSold),
            PurchaseOutcome::UserLimitReached => Err(ServiceError::UserLimitReached),
            PurchaseOutcome::SaleOver => Err(ServiceError::SaleOver),
            PurchaseOutcome::UnknownCode => Err(ServiceError::NotFound {
                what: "checkout code",
            }),
        };
        let label = result.as_ref().map_or_else(|e| e.code(), |_| "sold");
        metrics::counter!("allot_sale_purchases_total", "outcome" => label, "replayed" => purchase.replayed.to_string()).increment(1);
        if let Ok(sold) = &result
            && !sold.replayed
        {
            metrics::counter!("allot_sale_items_sold_total", "sale" => sold.item.sale_id.to_string()).increment(1);
        }
        tracing::debug!(op = "sale.purchase", code = %code, outcome = label, replayed = purchase.replayed);
        result
    }

    /// The current sale, when it is sale `id`: the calls under `/api/v1/sales/{id}/...` that
    /// only the current sale serves.
    pub async fn current_is(&self, id: i64) -> Result<Sale, ServiceError> {
        let sale = self.current().await?;
        if sale.id == id {
            return Ok(sale);
        }
        self.sale(id).await?;
        Err(ServiceError::SaleNotCurrent)
    }

    /// The design checkout: puts the item on the user's open code of the current sale.
    pub async fn basket_checkout(
        &self,
        user: UserId,
        item: ItemId,
    ) -> Result<BasketCheckout, ServiceError> {
        let sale = self.current().await?;
        let outcome = self
            .store
            .basket_checkout(BasketCheckoutRequest {
                sale: sale.clone(),
                item,
                user: user.clone(),
                user_limit: self.settings.user_limit,
                now: self.clock.now(),
            })
            .await?;
        let result = match outcome {
            BasketCheckoutOutcome::Added {
                code, items_count, ..
            } => Ok(BasketCheckout {
                code,
                items_count,
                sale,
            }),
            BasketCheckoutOutcome::UnknownItem => Err(ServiceError::NotFound { what: "item" }),
            BasketCheckoutOutcome::NotInCurrentSale => Err(ServiceError::NotInCurrentSale),
            BasketCheckoutOutcome::ItemSold => Err(ServiceError::ItemSold),
            BasketCheckoutOutcome::AlreadyOnCode => Err(ServiceError::ItemAlreadyCheckedOut),
            BasketCheckoutOutcome::UserLimitReached => Err(ServiceError::UserLimitReached),
        };
        let label = result.as_ref().map_or_else(|e| e.code(), |_| "ok");
        metrics::counter!("allot_sale_basket_checkouts_total", "outcome" => label).increment(1);
        tracing::debug!(op = "sale.basket_checkout", user = %user, item = item.get(), outcome = label);
        result
    }

    /// The design checkout's purchase: every still unsold item of the code, once.
    pub async fn basket_purchase(
        &self,
        code: CheckoutCode,
    ) -> Result<BasketPurchased, ServiceError> {
        let purchase = self
            .store
            .basket_purchase(code.clone(), self.settings.user_limit, self.clock.now())
            .await?;
        let BasketPurchaseOutcome::Decided {
            sale_id,
            user_id,
            lines,
        } = purchase.outcome
        else {
            metrics::counter!("allot_sale_basket_purchases_total", "outcome" => "not_found", "replayed" => "false").increment(1);
            return Err(ServiceError::NotFound { what: "checkout" });
        };
        let decided = BasketPurchased {
            sale_id,
            user_id,
            lines,
            replayed: purchase.replayed,
        };
        let label = decided.refusal().map_or("sold", |e| e.code());
        metrics::counter!("allot_sale_basket_purchases_total", "outcome" => label, "replayed" => purchase.replayed.to_string()).increment(1);
        if !purchase.replayed {
            let sold = decided.sold().count() as u64;
            metrics::counter!("allot_sale_items_sold_total", "sale" => sale_id.to_string())
                .increment(sold);
        }
        tracing::debug!(op = "sale.basket_purchase", code = %code, outcome = label, replayed = purchase.replayed);
        Ok(decided)
    }

    pub async fn sale(&self, id: i64) -> Result<Sale, ServiceError> {
        self.store
            .sale(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "sale" })
    }

    /// Sales newest first, a keyset page: those with `id < before_id`, at most
    /// [`SALES_PAGE_MAX`].
    pub async fn list(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Sale>, ServiceError> {
        Ok(self
            .store
            .sales(before_id, limit.clamp(1, SALES_PAGE_MAX))
            .await?)
    }

    pub async fn items(
        &self,
        sale_id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, ServiceError> {
        self.sale(sale_id).await?;
        Ok(self.store.sale_items(sale_id, after, limit).await?)
    }

    pub async fn purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, ServiceError> {
        self.sale(sale_id).await?;
        Ok(self.store.sale_purchases(sale_id, user).await?)
    }

    /// Milliseconds until the next sale opens, by this service's clock.
    pub fn millis_to_next_sale(&self) -> i64 {
        let now = self.clock.now();
        SaleHour::containing(now).next().starts_at().as_millis() - now.as_millis()
    }
}

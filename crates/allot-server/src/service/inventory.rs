//! Inventory: stock per product and warehouse, reservations that expire, manual adjustments
//! and low-stock alerts. Storage holds every rule that needs the balances (allocation, never
//! below zero, the ledger, the alert's state) inside its transactions; this layer checks the
//! request, reads the clock and turns refusals into errors.

use std::sync::Arc;

use allot_domain::Clock;
use allot_domain::catalog::{ProductId, Sku, WarehouseId};
use allot_domain::inventory::{
    Adjustment, Holder, Quantity, Reason, Reorder, ReservationId, ReservationTtl,
};
use allot_storage::{
    AlertQuery, InventoryRefusal, LedgerQuery, LevelQuery, Movement, NewReservation, Product,
    ProductInventory, Reservation, StockAlert, StockLevel, Store,
};

use crate::ServiceError;

/// Rows one page holds when the client does not say, and at most.
pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 500;
/// Reservations one expiry transaction ends, at most.
pub const EXPIRY_BATCH: u32 = 500;
/// Batches one run of the expiry job takes at most; the rest waits for the next run.
const EXPIRY_BATCHES_PER_RUN: u32 = 20;

pub struct Inventory {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

/// One page of stock levels, and the cursor of the next one when there may be one.
#[derive(Debug, Clone)]
pub struct LevelPage {
    pub levels: Vec<StockLevel>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AlertPage {
    pub alerts: Vec<StockAlert>,
    pub next_cursor: Option<String>,
}

/// One page of a product's ledger, newest first.
#[derive(Debug, Clone)]
pub struct MovementPage {
    pub movements: Vec<Movement>,
    pub next_cursor: Option<String>,
}

/// One page of a product's reservations, newest first.
#[derive(Debug, Clone)]
pub struct ReservationPage {
    pub reservations: Vec<Reservation>,
    pub next_cursor: Option<String>,
}

/// A level listing as the client asked for it, checked.
#[derive(Debug, Clone, Default)]
pub struct LevelFilter {
    pub warehouse: Option<WarehouseId>,
    pub low_only: bool,
    pub sku: Option<Sku>,
    pub after: Option<(ProductId, WarehouseId)>,
    pub limit: Option<u32>,
}

/// The cursor of a level listing: `product.warehouse` of the last row.
pub fn level_cursor(raw: &str) -> Result<(ProductId, WarehouseId), ServiceError> {
    let bad = || ServiceError::InvalidArgument {
        field: "cursor",
        message: "cursor: is not a cursor of this listing".to_owned(),
    };
    let (p, w) = raw.split_once('.').ok_or_else(bad)?;
    let p = p.parse().ok().and_then(|p| ProductId::parse(p).ok());
    let w = w.parse().ok().and_then(|w| WarehouseId::parse(w).ok());
    p.zip(w).ok_or_else(bad)
}

fn page_limit(limit: Option<u32>) -> Result<u32, ServiceError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ServiceError::InvalidArgument {
            field: "limit",
            message: format!("limit: must be between 1 and {PAGE_MAX}"),
        }),
    }
}

/// A ledger cursor is a movement id: positive.
fn ledger_cursor(before: Option<i64>) -> Result<Option<i64>, ServiceError> {
    match before {
        Some(c) if c < 1 => Err(ServiceError::InvalidArgument {
            field: "cursor",
            message: "cursor: is not a cursor of this listing".to_owned(),
        }),
        other => Ok(other),
    }
}

fn refused(r: InventoryRefusal) -> ServiceError {
    match r {
        InventoryRefusal::UnknownProduct => ServiceError::NotFound { what: "product" },
        InventoryRefusal::UnknownWarehouse => ServiceError::NotFound { what: "warehouse" },
        InventoryRefusal::OutOfStock { available_total } => {
            ServiceError::OutOfStock { available_total }
        }
        InventoryRefusal::BelowReserved { on_hand, reserved } => {
            ServiceError::BelowReserved { on_hand, reserved }
        }
        InventoryRefusal::ReservationNotFound => ServiceError::NotFound {
            what: "reservation",
        },
        InventoryRefusal::NotPending { status } => ServiceError::ReservationNotPending {
            status: status.as_str(),
        },
    }
}

impl Inventory {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Inventory { store, clock }
    }

    pub async fn levels(&self, filter: LevelFilter) -> Result<LevelPage, ServiceError> {
        let limit = page_limit(filter.limit)?;
        let levels = self
            .store
            .stock_levels(LevelQuery {
                warehouse: filter.warehouse,
                low_only: filter.low_only,
                sku: filter.sku,
                after: filter.after,
                limit,
            })
            .await?;
        let next_cursor = (levels.len() == limit as usize)
            .then(|| levels.last())
            .flatten()
            .map(|l| format!("{}.{}", l.product_id, l.warehouse_id));
        Ok(LevelPage {
            levels,
            next_cursor,
        })
    }

    /// The product's stock in each warehouse and its latest movements.
    pub async fn product(
        &self,
        id: ProductId,
    ) -> Result<(Product, ProductInventory), ServiceError> {
        let product = self
            .store
            .product(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "product" })?;
        let inventory = self.store.product_inventory(id).await?;
        Ok((product, inventory))
    }

    /// A page of the product's ledger, newest first: movements below the cursor `before`.
    pub async fn movements(
        &self,
        product: ProductId,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<MovementPage, ServiceError> {
        let limit = page_limit(limit)?;
        let before = ledger_cursor(before)?;
        self.known(product).await?;
        let movements = self
            .store
            .movements(LedgerQuery {
                product,
                before,
                limit,
            })
            .await?;
        let next_cursor = (movements.len() == limit as usize)
            .then(|| movements.last())
            .flatten()
            .map(|m| m.id.to_string());
        Ok(MovementPage {
            movements,
            next_cursor,
        })
    }

    /// A page of the product's reservations, newest first, whatever their status; the
    /// cursor is the ledger's (the movement that made the last one).
    pub async fn reservations(
        &self,
        product: ProductId,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<ReservationPage, ServiceError> {
        let limit = page_limit(limit)?;
        let before = ledger_cursor(before)?;
        self.known(product).await?;
        let rows = self
            .store
            .product_reservations(LedgerQuery {
                product,
                before,
                limit,
            })
            .await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last())
            .flatten()
            .map(|(movement, _)| movement.to_string());
        Ok(ReservationPage {
            reservations: rows.into_iter().map(|(_, r)| r).collect(),
            next_cursor,
        })
    }

    /// 404 for a product that does not exist (or was deleted), rather than an empty page.
    async fn known(&self, id: ProductId) -> Result<Product, ServiceError> {
        self.store
            .product(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "product" })
    }

    pub async fn reserve(
        &self,
        product: ProductId,
        quantity: Quantity,
        holder: Holder,
        preferred: Option<WarehouseId>,
        ttl: ReservationTtl,
    ) -> Result<Reservation, ServiceError> {
        let new = NewReservation {
            product,
            quantity,
            holder,
            preferred,
            ttl,
            now: self.clock.now(),
        };
        let r = self.store.reserve(new).await?.map_err(refused)?;
        metrics::counter!("allot_inventory_reserved_units_total").increment(r.quantity as u64);
        Ok(r)
    }

    pub async fn release(&self, id: ReservationId) -> Result<Reservation, ServiceError> {
        self.store
            .release(id, self.clock.now())
            .await?
            .map_err(refused)
    }

    pub async fn confirm(&self, id: ReservationId) -> Result<Reservation, ServiceError> {
        self.store
            .confirm(id, self.clock.now())
            .await?
            .map_err(refused)
    }

    pub async fn reservation(&self, id: ReservationId) -> Result<Reservation, ServiceError> {
        self.store
            .reservation(id)
            .await?
            .ok_or(ServiceError::NotFound {
                what: "reservation",
            })
    }

    pub async fn adjust(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        adjustment: Adjustment,
        reason: Reason,
    ) -> Result<StockLevel, ServiceError> {
        let level = self
            .store
            .adjust(product, warehouse, adjustment, reason, self.clock.now())
            .await?
            .map_err(refused)?;
        tracing::info!(
            product = %product, warehouse = %warehouse, on_hand = level.on_hand,
            reserved = level.reserved, "stock adjusted"
        );
        Ok(level)
    }

    pub async fn set_reorder(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        reorder: Option<Reorder>,
    ) -> Result<StockLevel, ServiceError> {
        self.store
            .set_reorder(product, warehouse, reorder, self.clock.now())
            .await?
            .map_err(refused)
    }

    pub async fn alerts(
        &self,
        open_only: bool,
        after: i64,
        limit: Option<u32>,
    ) -> Result<AlertPage, ServiceError> {
        let limit = page_limit(limit)?;
        let alerts = self
            .store
            .stock_alerts(AlertQuery {
                open_only,
                after,
                limit,
            })
            .await?;
        let next_cursor = (alerts.len() == limit as usize)
            .then(|| alerts.last())
            .flatten()
            .map(|a| a.id.to_string());
        Ok(AlertPage {
            alerts,
            next_cursor,
        })
    }

    /// Expires every reservation past its lifetime now (up to a bound per run); answers how
    /// many. Safe to run on several instances at once.
    pub async fn expire_due(&self) -> Result<u64, ServiceError> {
        let mut total = 0;
        for _ in 0..EXPIRY_BATCHES_PER_RUN {
            let n = self
                .store
                .expire_reservations(self.clock.now(), EXPIRY_BATCH)
                .await?;
            total += n;
            if n < u64::from(EXPIRY_BATCH) {
                break;
            }
        }
        if total > 0 {
            tracing::info!(expired = total, "reservations expired");
            metrics::counter!("allot_inventory_reservations_expired_total").increment(total);
        }
        Ok(total)
    }
}

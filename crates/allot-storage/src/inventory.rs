//! Inventory's part of the storage interface: stock levels, the ledger, reservations, alerts.
//!
//! A third trait beside [`crate::Store`] (which requires it). Every operation that changes a
//! balance writes its ledger row (and raises or clears the low-stock alert it causes) in the
//! same transaction, so the sums of the ledger always equal the balances.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, Sku, WarehouseId};
use allot_domain::inventory::{
    Adjustment, Holder, MovementKind, Quantity, Reason, Reorder, ReservationId, ReservationStatus,
    ReservationTtl,
};
use async_trait::async_trait;

use crate::StorageError;
use crate::catalog::{corrupt, product_id};

mod rules;
mod stored;
pub(crate) use rules::*;
pub(crate) use stored::*;

/// The stock of one product in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub product_id: ProductId,
    pub sku: String,
    pub warehouse_id: WarehouseId,
    pub warehouse_code: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub reorder_threshold: Option<i64>,
    pub reorder_quantity: Option<i64>,
    /// A low-stock alert is open for this level.
    pub low_alert_open: bool,
    pub updated_at: UnixMillis,
}

impl StockLevel {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// One line of the append-only ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub id: i64,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub kind: MovementKind,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reservation_id: Option<i64>,
    pub reason: Option<String>,
    pub at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub quantity: i64,
    pub holder: String,
    pub status: ReservationStatus,
    pub expires_at: UnixMillis,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAlert {
    pub id: i64,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    /// Available stock when the alert was raised.
    pub available: i64,
    pub threshold: i64,
    pub raised_at: UnixMillis,
    pub cleared_at: Option<UnixMillis>,
}

/// A product's stock in every warehouse holding a level for it, and its latest movements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInventory {
    pub levels: Vec<StockLevel>,
    /// Newest first.
    pub movements: Vec<Movement>,
}

/// One page of stock levels, ordered by (product, warehouse).
#[derive(Debug, Clone, Default)]
pub struct LevelQuery {
    pub warehouse: Option<WarehouseId>,
    /// Only levels at or below their reorder threshold.
    pub low_only: bool,
    /// The product's SKU, compared case-insensitively.
    pub sku: Option<Sku>,
    /// Levels after this (product, warehouse).
    pub after: Option<(ProductId, WarehouseId)>,
    pub limit: u32,
}

/// One page of a product's ledger (or of the reservations its ledger made), newest first.
#[derive(Debug, Clone, Copy)]
pub struct LedgerQuery {
    pub product: ProductId,
    /// Movements with an id below this; `None`: from the newest.
    pub before: Option<i64>,
    pub limit: u32,
}

impl LedgerQuery {
    /// The cursor as the statements take it.
    pub(crate) fn below(&self) -> i64 {
        self.before.unwrap_or(i64::MAX)
    }
}

/// One page of alerts, oldest first.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub open_only: bool,
    /// Alerts with an id above this.
    pub after: i64,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct NewReservation {
    pub product: ProductId,
    pub quantity: Quantity,
    pub holder: Holder,
    pub preferred: Option<WarehouseId>,
    pub ttl: ReservationTtl,
    pub now: UnixMillis,
}

/// Why an inventory write was refused; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryRefusal {
    UnknownProduct,
    UnknownWarehouse,
    /// No single warehouse has the quantity available (a reservation is never split);
    /// `available_total` is what all warehouses have together.
    OutOfStock {
        available_total: i64,
    },
    /// The adjustment would leave on hand below what is reserved, or above the maximum.
    BelowReserved {
        on_hand: i64,
        reserved: i64,
    },
    ReservationNotFound,
    /// The reservation is no longer pending (confirmed, released or expired).
    NotPending {
        status: ReservationStatus,
    },
}

pub type InventoryResult<T> = Result<Result<T, InventoryRefusal>, StorageError>;

/// How many of the latest movements [`InventoryStore::product_inventory`] returns.
pub const PRODUCT_MOVEMENTS: u32 = 50;

#[async_trait]
pub trait InventoryStore: Send + Sync + 'static {
    /// Sets the reorder point of a product in a warehouse (creating its level, empty, if there
    /// is none); raises or clears the low-stock alert that the new threshold calls for.
    async fn set_reorder(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        reorder: Option<Reorder>,
        now: UnixMillis,
    ) -> InventoryResult<StockLevel>;

    /// Changes on hand by hand (the first adjustment creates the level), with an `adjustment`
    /// movement; never below what is reserved.
    async fn adjust(
        &self,
        product: ProductId,
        warehouse: WarehouseId,
        adjustment: Adjustment,
        reason: Reason,
        now: UnixMillis,
    ) -> InventoryResult<StockLevel>;

    /// Reserves `quantity` in one warehouse chosen by [`allot_domain::inventory::choose_warehouse`]
    /// among the product's levels in active warehouses. Atomic against every other write of
    /// the product's stock, on any number of instances.
    async fn reserve(&self, new: NewReservation) -> InventoryResult<Reservation>;

    /// Gives a pending reservation's stock back (`release` movement). A reservation past its
    /// lifetime is expired instead and answered `NotPending { Expired }`.
    async fn release(&self, id: ReservationId, now: UnixMillis) -> InventoryResult<Reservation>;

    /// Takes a pending reservation's stock out (`stock_out`: on hand and reserved both drop).
    async fn confirm(&self, id: ReservationId, now: UnixMillis) -> InventoryResult<Reservation>;

    /// Expires up to `limit` pending reservations past their lifetime; answers how many.
    async fn expire_reservations(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError>;

    async fn reservation(&self, id: ReservationId) -> Result<Option<Reservation>, StorageError>;

    async fn stock_levels(&self, query: LevelQuery) -> Result<Vec<StockLevel>, StorageError>;

    /// The product's levels by warehouse and its latest [`PRODUCT_MOVEMENTS`] movements.
    async fn product_inventory(&self, product: ProductId)
    -> Result<ProductInventory, StorageError>;

    async fn stock_alerts(&self, query: AlertQuery) -> Result<Vec<StockAlert>, StorageError>;

    /// A page of the product's ledger, newest first.
    async fn movements(&self, query: LedgerQuery) -> Result<Vec<Movement>, StorageError>;

    /// A page of the product's reservations, newest first, each with the id of the movement
    /// that made it (the page's cursor).
    async fn product_reservations(
        &self,
        query: LedgerQuery,
    ) -> Result<Vec<(i64, Reservation)>, StorageError>;
}

// Helpers both backends use.

pub(crate) fn warehouse_id(raw: i64) -> Result<WarehouseId, StorageError> {
    WarehouseId::parse(raw).map_err(corrupt)
}

pub(crate) fn reservation_id(raw: i64) -> Result<ReservationId, StorageError> {
    ReservationId::parse(raw).map_err(corrupt)
}

pub(crate) fn status(raw: &str) -> Result<ReservationStatus, StorageError> {
    ReservationStatus::parse(raw).ok_or_else(|| corrupt(format!("reservation status {raw:?}")))
}

pub(crate) fn kind(raw: &str) -> Result<MovementKind, StorageError> {
    MovementKind::parse(raw).ok_or_else(|| corrupt(format!("movement kind {raw:?}")))
}

pub(crate) fn product(raw: i64) -> Result<ProductId, StorageError> {
    product_id(raw)
}

//! Orders' part of the storage interface. A fourth trait beside [`crate::Store`] (which
//! requires it).
//!
//! Creating an order is one transaction: the order row (its idempotency key unique), a
//! reservation per line (inventory's own reserve, with its ledger row and alert), the coupon's
//! use and the discount code's use. A refusal anywhere rolls all of it back, so a failed order
//! holds no stock and uses no code. A status change is one transaction too, doing what
//! [`allot_domain::order::Transition`] says to the reservations, the stock and the codes.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::{Discount, RedeemRefusal, UploadedCode};
use allot_domain::discount::DiscountCode;
use allot_domain::inventory::{Quantity, ReservationStatus};
use allot_domain::order::{IllegalTransition, OrderStatus, ShippingAddress};
use allot_domain::user::{IdempotencyKey, UserId};
use async_trait::async_trait;

use crate::StorageError;
use crate::catalog::corrupt;
use crate::promotion::HoldStatus;

mod rules;
mod stored;
pub(crate) use rules::{
    LineStep, OrderFacts, OrderPlan, PricedProduct, StatusPlan, StockRow, decide_edit,
    decide_order, decide_status_change, hold_refusal, inventory_refusal,
};
pub(crate) use stored::{
    HISTORY_OF_ORDER, INSERT_HISTORY, LINES_OF_ORDER, ORDER_BY_ID, ORDER_ID_BY_KEY, ORDER_IDS_PAGE,
    ORDER_IDS_PAGE_NEWEST, SET_ORDER_STATUS, change_from, line_from, order_from, priced_from,
    promotions_json,
};

/// Stock held by a pending order never lapses: its reservations carry this lifetime
/// (9999-12-31T23:59:59.999Z), so the reservation expiry job never takes them. A pending
/// order holds its stock until it is confirmed or cancelled.
pub const ORDER_HOLD_UNTIL_MS: i64 = 253_402_300_799_999;

/// An order to place. `A` is the shipping address: a [`ShippingAddress`] for callers; inside
/// the backends, which only store it, the address sealed ([`sealed`]).
#[derive(Debug, Clone)]
pub struct NewOrder<A = ShippingAddress> {
    pub customer: UserId,
    pub shipping_address: A,
    /// Distinct products, each with its quantity.
    pub lines: Vec<(ProductId, Quantity)>,
    pub coupon: Option<UploadedCode>,
    pub discount_code: Option<DiscountCode>,
    /// What a discount code takes off.
    pub discount_code_value: Discount,
    /// The shipping amount, in the order's currency (0 to the order maximum).
    pub shipping_minor: i64,
    /// A promotion hold made for these very lines, consumed by the order (see
    /// [`rules::decide_order`]).
    pub promotion_hold: Option<i64>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    pub warehouse_id: WarehouseId,
    pub reservation_id: i64,
    /// Shipped so far (`crate::shipment`).
    pub shipped_quantity: i64,
}

/// A code an order used and what it took off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCode {
    pub code: String,
    pub amount_minor: i64,
}

/// A promotion an order got through its hold, and what it took off (lines and shipping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPromotion {
    pub promotion_id: i64,
    /// The code that reached it; none for an automatic promotion.
    pub code: Option<String>,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: Option<String>,
    pub warehouse_id: Option<i64>,
    pub at: UnixMillis,
}

impl<A> NewOrder<A> {
    /// The same order with its address in another form (sealed on the way in).
    pub(crate) fn with_address<B>(self, shipping_address: B) -> NewOrder<B> {
        let NewOrder {
            customer,
            shipping_address: _,
            lines,
            coupon,
            discount_code,
            discount_code_value,
            shipping_minor,
            promotion_hold,
            idempotency_key,
            now,
        } = self;
        NewOrder {
            customer,
            shipping_address,
            lines,
            coupon,
            discount_code,
            discount_code_value,
            shipping_minor,
            promotion_hold,
            idempotency_key,
            now,
        }
    }
}

/// An order. `A` is the shipping address, as in [`NewOrder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order<A = ShippingAddress> {
    pub id: i64,
    pub customer: String,
    pub status: OrderStatus,
    pub currency: String,
    pub shipping_address: A,
    pub lines: Vec<OrderLine>,
    pub subtotal_minor: i64,
    /// Off the lines by the promotions of the order's hold, before the coupon and the code.
    pub promotion_minor: i64,
    pub promotions: Vec<AppliedPromotion>,
    pub promotion_hold_id: Option<i64>,
    pub coupon: Option<AppliedCode>,
    pub discount_code: Option<AppliedCode>,
    pub shipping_minor: i64,
    /// Off the shipping by the hold's promotions.
    pub shipping_discount_minor: i64,
    /// The subtotal less every discount, plus the shipping less its discount.
    pub total_minor: i64,
    pub idempotency_key: Option<String>,
    /// Oldest first.
    pub history: Vec<StatusChange>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl<A> Order<A> {
    /// The same order with its address in another form (opened on the way out).
    pub(crate) fn with_address<B>(self, shipping_address: B) -> Order<B> {
        let Order {
            id,
            customer,
            status,
            currency,
            shipping_address: _,
            lines,
            subtotal_minor,
            promotion_minor,
            promotions,
            promotion_hold_id,
            coupon,
            discount_code,
            shipping_minor,
            shipping_discount_minor,
            total_minor,
            idempotency_key,
            history,
            created_at,
            updated_at,
        } = self;
        Order {
            id,
            customer,
            status,
            currency,
            shipping_address,
            lines,
            subtotal_minor,
            promotion_minor,
            promotions,
            promotion_hold_id,
            coupon,
            discount_code,
            shipping_minor,
            shipping_discount_minor,
            total_minor,
            idempotency_key,
            history,
            created_at,
            updated_at,
        }
    }
}

/// One page of orders, oldest first (or newest first).
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub customer: Option<UserId>,
    pub status: Option<OrderStatus>,
    /// Created at or after.
    pub from: Option<UnixMillis>,
    /// Created before.
    pub until: Option<UnixMillis>,
    /// The cursor: orders past this id in the listing's order (above it oldest first, below
    /// it newest first); 0 from the start.
    pub after: i64,
    pub limit: u32,
    pub newest_first: bool,
}

impl OrderQuery {
    /// The listing's statement and its bound on ids.
    pub(crate) fn page(&self) -> (&'static str, i64) {
        match (self.newest_first, self.after) {
            (false, after) => (ORDER_IDS_PAGE, after),
            (true, 0) => (ORDER_IDS_PAGE_NEWEST, i64::MAX),
            (true, before) => (ORDER_IDS_PAGE_NEWEST, before),
        }
    }
}

/// A status change as asked.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    pub id: i64,
    pub to: OrderStatus,
    pub reason: Option<String>,
    /// For a return: the warehouse the stock goes back to (default: the one it came from).
    pub warehouse: Option<WarehouseId>,
    /// A cancellation gives the order's coupon use back (the shop's setting
    /// `cancelled_orders_return_coupons`); its discount code and its stock always come back.
    pub return_coupon: bool,
    pub now: UnixMillis,
}

/// Why an order operation was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRefusal {
    /// The product does not exist or is deleted.
    UnknownProduct {
        product: ProductId,
    },
    InactiveProduct {
        product: ProductId,
    },
    /// The lines' products are priced in more than one currency.
    MixedCurrencies {
        currencies: Vec<String>,
    },
    /// No single warehouse has the line's quantity available.
    OutOfStock {
        product: ProductId,
        available_total: i64,
    },
    UnknownCoupon,
    CouponUnusable(RedeemRefusal),
    UnknownDiscountCode,
    DiscountCodeUsed,
    /// The sums pass what an order may total.
    TooLarge,
    OrderNotFound,
    Illegal(IllegalTransition),
    UnknownWarehouse,
    /// A reservation of the order is no longer pending (released by hand through inventory).
    ReservationNotPending {
        status: ReservationStatus,
    },
    /// The promotion hold named cannot be consumed by this order.
    PromotionHoldUnusable(HoldUnusable),
    /// Only a pending order can be edited.
    NotEditable {
        status: OrderStatus,
    },
    /// A confirmed order with shipped lines is not cancelled (its shipped units are gone).
    PartlyShipped,
    /// The whole-order return moves are refused once returns of lines exist.
    HasLineReturns,
}

/// Why an order cannot consume a promotion hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldUnusable {
    NotFound,
    /// Redeemed, released, expired or rolled back already.
    NotHeld(HoldStatus),
    Expired,
    /// Made for another customer (or for a guest).
    OtherCustomer,
    OtherCurrency,
    /// Made for other lines (products, quantities or prices).
    OtherCart,
    /// Changed by another transaction while the order was placed.
    Changed,
}

impl HoldUnusable {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldUnusable::NotFound => "not_found",
            HoldUnusable::NotHeld(_) => "not_held",
            HoldUnusable::Expired => "expired",
            HoldUnusable::OtherCustomer => "another_customer",
            HoldUnusable::OtherCurrency => "another_currency",
            HoldUnusable::OtherCart => "another_cart",
            HoldUnusable::Changed => "changed",
        }
    }
}

pub type OrderResult<T> = Result<Result<T, OrderRefusal>, StorageError>;

/// A pending order edited: as it was and as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited<A = ShippingAddress> {
    pub before: Order<A>,
    pub after: Order<A>,
}

/// A created order, or the one an earlier request with the same idempotency key created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created<A = ShippingAddress> {
    New(Order<A>),
    Replayed(Order<A>),
}

/// The order types as the backends see them: the address sealed for its column
/// (`crypto::seal_new_order`, `crypto::open_order`), stored and read back as is.
pub(crate) mod sealed {
    pub(crate) type NewOrder = super::NewOrder<String>;
    pub(crate) type Order = super::Order<String>;
    pub(crate) type Created = super::Created<String>;
    pub(crate) type Edited = super::Edited<String>;
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Creates the order, reserving every line and using its codes, all or nothing. A known
    /// idempotency key answers the order it created and changes nothing.
    async fn create_order(&self, new: NewOrder) -> OrderResult<Created>;

    async fn order(&self, id: i64) -> Result<Option<Order>, StorageError>;

    /// The order an earlier create with this idempotency key stored, if any.
    async fn order_by_key(&self, key: &IdempotencyKey) -> Result<Option<Order>, StorageError>;

    async fn orders(&self, query: OrderQuery) -> Result<Vec<Order>, StorageError>;

    /// Moves the order to `to` if the workflow allows it, with what the move does to stock
    /// and codes, in one transaction.
    async fn change_order_status(&self, request: StatusRequest) -> OrderResult<Order>;

    /// Replaces a pending order's lines, address, shipping and codes, in one transaction:
    /// its reservations released and its codes and promotion hold given back, then the new
    /// content decided and reserved as a new order's would be (the same rule), under the same
    /// id. A refusal anywhere leaves the order as it was. `new.idempotency_key` is not read.
    async fn edit_order(&self, id: i64, new: NewOrder) -> OrderResult<Edited>;
}

pub(crate) fn order_status(raw: &str) -> Result<OrderStatus, StorageError> {
    OrderStatus::parse(raw).map_err(corrupt)
}

/// The holder written on an order's reservations.
pub(crate) fn holder(order_id: i64) -> String {
    format!("order-{order_id}")
}

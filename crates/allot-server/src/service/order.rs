//! Orders: placed with stock reserved and codes used in one atomic step, priced by the
//! server, moved through the status workflow of [`allot_domain::order::OrderStatus`]. Storage
//! does each create and each status change in one transaction; this layer checks the request,
//! reads the clock and turns refusals into errors.
//!
//! Promotions reach an order through a hold, the same engine and the same exact budgets as an
//! external cart's: the order names a hold made for its lines, or carries promotion codes (or
//! meets an automatic promotion), and then this layer holds the cart for a short time and
//! places the order consuming the hold, in the order's own transaction. A refused order
//! releases the hold it made at once (or it expires); a cancelled order gives it back.

use std::sync::Arc;

use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::{Discount, DiscountKind, RedeemRefusal, UploadedCode};
use allot_domain::discount::DiscountCode;
use allot_domain::inventory::Quantity;
use allot_domain::order::{OrderStatus, ShippingAddress};
use allot_domain::promotion::{Reason, Refused};
use allot_domain::shipment::ShipmentRefusal;
use allot_domain::user::{IdempotencyKey, UserId};
use allot_domain::{Clock, DomainError, UnixMillis};
use allot_storage::{
    Created, Hold, NewOrder, Order, OrderQuery, OrderRefusal, OrderResult, StatusRequest, Store,
};

use crate::ServiceError;
use crate::service::inventory::{PAGE_DEFAULT, PAGE_MAX};
use crate::service::promotion::{CartRequest, CustomerRequest, LineRequest, Promotions};

/// How long the hold an order makes for itself lasts: long enough for the order's own
/// transaction, short enough that a crash between the two gives the budget back soon.
pub const ORDER_HOLD_TTL_SECS: u64 = 120;

pub struct Orders {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: OrderSettings,
    promotions: Arc<Promotions>,
}

/// The shop's order settings.
#[derive(Debug, Clone, Copy)]
pub struct OrderSettings {
    /// What a discount code takes off an order (checked 0 to 100 by the configuration).
    pub discount_code_percent: u8,
    /// A cancelled order gives its coupon's use back (`cancelled_orders_return_coupons`).
    pub return_coupons: bool,
}

/// An order as the client placed it, checked.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub customer: UserId,
    pub shipping_address: ShippingAddress,
    pub lines: Vec<(ProductId, Quantity)>,
    pub coupon: Option<UploadedCode>,
    pub discount_code: Option<DiscountCode>,
    /// 0 to [`allot_domain::order::ORDER_TOTAL_MAX`], checked at the edge.
    pub shipping_minor: i64,
    /// A promotion hold made for these very lines, consumed by the order.
    pub promotion_hold: Option<i64>,
    /// Promotion codes (coupons, campaign codes, discount codes bound to promotions); every
    /// one must give the order something, or the order is refused.
    pub codes: Vec<String>,
    pub idempotency_key: Option<IdempotencyKey>,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub customer: Option<UserId>,
    pub status: Option<OrderStatus>,
    pub from: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
    /// The cursor: the last order of the previous page (0: from the start).
    pub after: i64,
    pub limit: Option<u32>,
    pub newest_first: bool,
}

#[derive(Debug, Clone)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next_cursor: Option<String>,
}

fn refused(r: OrderRefusal) -> ServiceError {
    let lines = |message: String| ServiceError::InvalidArgument {
        field: "lines",
        message: format!("lines: {message}"),
    };
    match r {
        OrderRefusal::UnknownProduct { product } => {
            lines(format!("product {product} does not exist"))
        }
        OrderRefusal::InactiveProduct { product } => {
            lines(format!("product {product} is inactive"))
        }
        OrderRefusal::MixedCurrencies { currencies } => lines(format!(
            "every product of an order must be priced in one currency; these are in {}",
            currencies.join(", ")
        )),
        OrderRefusal::TooLarge => lines(format!(
            "the order would total more than {} minor units",
            allot_domain::order::ORDER_TOTAL_MAX
        )),
        OrderRefusal::OutOfStock {
            product,
            available_total,
        } => ServiceError::OrderOutOfStock {
            product_id: product.get(),
            available_total,
        },
        OrderRefusal::UnknownCoupon => ServiceError::UnknownCode { field: "coupon" },
        OrderRefusal::UnknownDiscountCode => ServiceError::UnknownCode {
            field: "discount_code",
        },
        OrderRefusal::CouponUnusable(r) => ServiceError::CouponUnusable {
            reason: match r {
                RedeemRefusal::Expired => "expired",
                RedeemRefusal::Exhausted => "exhausted",
                RedeemRefusal::NotOwner => "not_owner",
                RedeemRefusal::Bound { .. } => "bound_to_promotion",
            },
        },
        OrderRefusal::DiscountCodeUsed => ServiceError::CodeAlreadyUsed,
        OrderRefusal::OrderNotFound => ServiceError::NotFound { what: "order" },
        OrderRefusal::Illegal(e) => ServiceError::IllegalTransition {
            from: e.from.as_str(),
            to: e.to.as_str(),
        },
        OrderRefusal::UnknownWarehouse => ServiceError::InvalidArgument {
            field: "warehouse_id",
            message: "warehouse_id: no such warehouse".to_owned(),
        },
        OrderRefusal::ReservationNotPending { status } => ServiceError::ReservationNotPending {
            status: status.as_str(),
        },
        OrderRefusal::PromotionHoldUnusable(why) => ServiceError::PromotionHoldUnusable {
            reason: why.as_str(),
        },
        OrderRefusal::NotEditable { status } => ServiceError::OrderNotEditable {
            status: status.as_str(),
        },
        OrderRefusal::PartlyShipped => ServiceError::Shipment(ShipmentRefusal::PartlyShipped),
        OrderRefusal::HasLineReturns => ServiceError::Shipment(ShipmentRefusal::HasLineReturns),
    }
}

/// 1 to [`allot_domain::order::LINES_MAX`] lines, each product once; a hold or codes, not
/// both.
fn check_lines(order: &PlaceOrder) -> Result<(), ServiceError> {
    if order.lines.is_empty() || order.lines.len() > allot_domain::order::LINES_MAX {
        return Err(DomainError::invalid(
            "lines",
            format!("must hold 1 to {} lines", allot_domain::order::LINES_MAX),
        )
        .into());
    }
    let mut products: Vec<ProductId> = order.lines.iter().map(|(p, _)| *p).collect();
    products.sort();
    products.dedup();
    if products.len() != order.lines.len() {
        return Err(DomainError::invalid("lines", "must name each product once").into());
    }
    if order.promotion_hold.is_some() && !order.codes.is_empty() {
        return Err(DomainError::invalid(
            "codes",
            "the promotion hold carries the codes: give one or the other",
        )
        .into());
    }
    Ok(())
}

/// What an order needs before it is written.
enum Prepared {
    /// No promotion: placed as it is.
    Plain,
    /// Placed consuming this hold, made for it.
    Held(Box<Hold>),
    /// A retry: the order its key made first.
    Replay(Box<Order>),
}

/// The first code of `codes` the engine refused, as the order's error.
fn code_refused(refused: &[Refused]) -> Option<ServiceError> {
    let r = refused.iter().find(|r| r.code.is_some())?;
    let code = r.code.clone().unwrap_or_default();
    Some(code_error(code, r.reason))
}

fn code_error(code: String, reason: Reason) -> ServiceError {
    match reason {
        Reason::UnknownCode => ServiceError::UnknownCode { field: "codes" },
        reason => ServiceError::PromotionCodeRefused {
            code,
            reason: reason.as_str(),
        },
    }
}

/// The reason the hold's evaluation gives for refusing `code` (the hold keeps the engine's
/// answer as the API shows it).
fn reason_in_hold(hold: &Hold, code: &str) -> Reason {
    let view: serde_json::Value = serde_json::from_str(&hold.evaluation).unwrap_or_default();
    view.get("refused")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("code").and_then(serde_json::Value::as_str) == Some(code))
        .find_map(|r| {
            let reason = r.get("reason").and_then(serde_json::Value::as_str)?;
            Reason::ALL
                .into_iter()
                .find(|known| known.as_str() == reason)
        })
        .unwrap_or(Reason::NoDiscount)
}

impl Orders {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: OrderSettings,
        promotions: Arc<Promotions>,
    ) -> Self {
        Orders {
            store,
            clock,
            settings,
            promotions,
        }
    }

    /// The hold an order without one needs: none when it carries no code and no automatic
    /// promotion gives it anything (then it costs one small read, as before promotions).
    /// Otherwise the cart of its lines at catalog prices, its customer and shipping, held for
    /// [`ORDER_HOLD_TTL_SECS`]; every code must be applied, or the order is refused.
    async fn hold_for(
        &self,
        order: &PlaceOrder,
        key: Option<&IdempotencyKey>,
    ) -> Result<Prepared, ServiceError> {
        if order.codes.is_empty() && !self.promotions.any_automatic().await? {
            return Ok(Prepared::Plain);
        }
        // A retry answers its first order before anything is held: the codes that order
        // used up would refuse the retry otherwise.
        if let Some(key) = key
            && let Some(first) = self.store.order_by_key(key).await?
        {
            return Ok(Prepared::Replay(Box::new(first)));
        }
        let request = CartRequest {
            currency: None,
            lines: order
                .lines
                .iter()
                .map(|(p, q)| LineRequest {
                    product_id: p.get(),
                    quantity: q.get(),
                    ..LineRequest::default()
                })
                .collect(),
            shipping_minor: Some(order.shipping_minor),
            customer: Some(CustomerRequest {
                id: Some(order.customer.as_str().to_owned()),
                ..CustomerRequest::default()
            }),
            codes: order.codes.clone(),
        };
        let cart = match self.promotions.cart(request).await {
            Ok(cart) => cart,
            // Without codes, a cart the engine cannot take (a product the catalog does not
            // have, mixed currencies, a customer id past the engine's 64 characters) gets no
            // automatic promotion, and the order's own rules answer as before. With codes the
            // order is refused: a code is never silently ignored.
            Err(ServiceError::InvalidArgument { .. }) if order.codes.is_empty() => {
                return Ok(Prepared::Plain);
            }
            Err(e) => return Err(e),
        };
        let now = self.clock.now();
        let preview = self.promotions.evaluate_cart(cart.clone(), now).await?;
        if let Some(e) = code_refused(&preview.evaluation.refused) {
            return Err(e);
        }
        if preview.evaluation.applied.is_empty() {
            return Ok(Prepared::Plain);
        }
        // The preview is the hold's first attempt: the cart is not evaluated twice.
        let hold = self
            .promotions
            .hold_evaluated(
                cart.clone(),
                super::promotion::Made::Held {
                    ttl_secs: ORDER_HOLD_TTL_SECS,
                },
                None,
                Some((now, preview)),
            )
            .await?;
        // The hold is what the engine said on the usage it was written against, which can
        // be less than the preview (others spent the budget meanwhile).
        let missing = cart.codes.iter().find(|code| {
            !hold
                .promotions
                .iter()
                .any(|p| p.code.as_ref().is_some_and(|(c, _)| c == *code))
        });
        if let Some(code) = missing {
            let reason = reason_in_hold(&hold, code);
            self.release(hold.id).await;
            return Err(code_error(code.clone(), reason));
        }
        if hold.promotions.is_empty() {
            self.release(hold.id).await;
            return Ok(Prepared::Plain);
        }
        Ok(Prepared::Held(Box::new(hold)))
    }

    /// The order as storage takes it: `made` the hold this layer made for it, if any.
    fn new_order(
        &self,
        order: PlaceOrder,
        made: Option<i64>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<NewOrder, ServiceError> {
        Ok(NewOrder {
            customer: order.customer,
            shipping_address: order.shipping_address,
            lines: order.lines,
            coupon: order.coupon,
            discount_code: order.discount_code,
            discount_code_value: Discount::new(
                DiscountKind::Percentage,
                i64::from(self.settings.discount_code_percent),
            )?,
            shipping_minor: order.shipping_minor,
            promotion_hold: order.promotion_hold.or(made),
            idempotency_key,
            now: self.clock.now(),
        })
    }

    /// Releases a hold this layer made for an order that did not consume it. A failure is
    /// only logged: the hold expires by itself within [`ORDER_HOLD_TTL_SECS`].
    async fn release(&self, id: i64) {
        if let Err(e) = self.promotions.release(id).await {
            tracing::warn!(hold = id, error = %e, "an order's unused promotion hold was not released; it will expire");
        }
    }

    /// Replaces a pending order's lines, quantities, address, shipping and codes (`order`'s
    /// customer must be the order's; its idempotency key is not read): stock and codes held
    /// again atomically, all or nothing, totals recomputed, `OrderUpdated` recording both
    /// sides. Promotions are evaluated afresh for the new cart, as for a new order (while the
    /// old hold still counts: a promotion limited to one use per customer that the order
    /// already has is refused for the edit; give the edit no code, or cancel and re-order).
    pub async fn edit(&self, id: i64, order: PlaceOrder) -> Result<Order, ServiceError> {
        check_lines(&order)?;
        let current = self.get(id).await?;
        if current.status != OrderStatus::Pending {
            return Err(ServiceError::OrderNotEditable {
                status: current.status.as_str(),
            });
        }
        if current.customer != order.customer.as_str() {
            return Err(DomainError::invalid("customer", "an order keeps its customer").into());
        }
        let made = match order.promotion_hold {
            Some(_) => None,
            None => match self.hold_for(&order, None).await? {
                Prepared::Replay(_) | Prepared::Plain => None,
                Prepared::Held(hold) => Some(hold.id),
            },
        };
        let new = self.new_order(order, made, None)?;
        let edited = self.store.edit_order(id, new).await;
        if let Some(hold) = made {
            let consumed = matches!(
                &edited,
                Ok(Ok(e)) if e.after.promotion_hold_id == Some(hold)
            );
            if !consumed {
                self.release(hold).await;
            }
        }
        let edited = edited?.map_err(refused)?;
        tracing::info!(
            order = id,
            total_before = edited.before.total_minor,
            total_after = edited.after.total_minor,
            "order edited"
        );
        Ok(edited.after)
    }

    /// Places the order; answers it and whether it was stored by an earlier request with the
    /// same idempotency key (then nothing changed).
    pub async fn place(&self, order: PlaceOrder) -> Result<(Order, bool), ServiceError> {
        check_lines(&order)?;
        // Kept per caller: another caller's key finds nothing of this one's.
        let idempotency_key = order
            .idempotency_key
            .clone()
            .map(|k| k.owned_by(&super::idempotency_owner()));
        let made = match order.promotion_hold {
            Some(_) => None,
            None => match self.hold_for(&order, idempotency_key.as_ref()).await? {
                Prepared::Replay(first) => return Ok((*first, true)),
                Prepared::Plain => None,
                Prepared::Held(hold) => Some(hold.id),
            },
        };
        let new = self.new_order(order, made, idempotency_key)?;
        let created: OrderResult<Created> = self.store.create_order(new).await;
        if let Some(id) = made {
            let consumed = matches!(
                &created,
                Ok(Ok(Created::New(o))) if o.promotion_hold_id == Some(id)
            );
            if !consumed {
                self.release(id).await;
            }
        }
        match created?.map_err(refused)? {
            Created::New(o) => {
                metrics::counter!("allot_orders_created_total").increment(1);
                Ok((o, false))
            }
            Created::Replayed(o) => Ok((o, true)),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub async fn get(&self, id: i64) -> Result<Order, ServiceError> {
        self.store
            .order(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "order" })
    }

    pub async fn list(&self, filter: OrderFilter) -> Result<OrderPage, ServiceError> {
        let limit = match filter.limit {
            None => PAGE_DEFAULT,
            Some(n) if (1..=PAGE_MAX).contains(&n) => n,
            Some(_) => {
                return Err(ServiceError::InvalidArgument {
                    field: "limit",
                    message: format!("limit: must be between 1 and {PAGE_MAX}"),
                });
            }
        };
        let orders = self
            .store
            .orders(OrderQuery {
                customer: filter.customer,
                status: filter.status,
                from: filter.from,
                until: filter.until,
                after: filter.after,
                limit,
                newest_first: filter.newest_first,
            })
            .await?;
        let next_cursor = (orders.len() == limit as usize)
            .then(|| orders.last())
            .flatten()
            .map(|o| o.id.to_string());
        Ok(OrderPage {
            orders,
            next_cursor,
        })
    }

    pub async fn change_status(
        &self,
        id: i64,
        to: OrderStatus,
        reason: Option<String>,
        warehouse: Option<WarehouseId>,
    ) -> Result<Order, ServiceError> {
        let order = self
            .store
            .change_order_status(StatusRequest {
                id,
                to,
                reason,
                warehouse,
                return_coupon: self.settings.return_coupons,
                now: self.clock.now(),
            })
            .await?
            .map_err(refused)?;
        tracing::info!(order = id, status = %to, "order status changed");
        Ok(order)
    }
}

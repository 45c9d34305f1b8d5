//! Orders: placed with stock reserved and codes used in one atomic step, priced by the
//! server, moved through the status workflow of [`allot_domain::order::OrderStatus`]. Storage
//! does each create and each status change in one transaction; this layer checks the request,
//! reads the clock and turns refusals into errors.

use std::sync::Arc;

use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::{Discount, DiscountKind, RedeemRefusal, UploadedCode};
use allot_domain::discount::DiscountCode;
use allot_domain::inventory::Quantity;
use allot_domain::order::{OrderStatus, ShippingAddress};
use allot_domain::user::{IdempotencyKey, UserId};
use allot_domain::{Clock, DomainError, UnixMillis};
use allot_storage::{Created, NewOrder, Order, OrderQuery, OrderRefusal, StatusRequest, Store};

use crate::ServiceError;
use crate::service::inventory::{PAGE_DEFAULT, PAGE_MAX};

pub struct Orders {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// What a discount code takes off an order (checked 0 to 100 by the configuration).
    discount_code_percent: u8,
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
    }
}

impl Orders {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, discount_code_percent: u8) -> Self {
        Orders {
            store,
            clock,
            discount_code_percent,
        }
    }

    /// Places the order; answers it and whether it was stored by an earlier request with the
    /// same idempotency key (then nothing changed).
    pub async fn place(&self, order: PlaceOrder) -> Result<(Order, bool), ServiceError> {
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
        let new = NewOrder {
            customer: order.customer,
            shipping_address: order.shipping_address,
            lines: order.lines,
            coupon: order.coupon,
            discount_code: order.discount_code,
            discount_code_value: Discount::new(
                DiscountKind::Percentage,
                i64::from(self.discount_code_percent),
            )?,
            shipping_minor: order.shipping_minor,
            promotion_hold: order.promotion_hold,
            // Kept per caller: another caller's key finds nothing of this one's.
            idempotency_key: order
                .idempotency_key
                .map(|k| k.owned_by(&super::idempotency_owner())),
            now: self.clock.now(),
        };
        match self.store.create_order(new).await?.map_err(refused)? {
            Created::New(o) => {
                metrics::counter!("allot_orders_created_total").increment(1);
                Ok((o, false))
            }
            Created::Replayed(o) => Ok((o, true)),
        }
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
                now: self.clock.now(),
            })
            .await?
            .map_err(refused)?;
        tracing::info!(order = id, status = %to, "order status changed");
        Ok(order)
    }
}

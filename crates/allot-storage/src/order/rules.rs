//! An order's rules, decided once for both backends. Each backend reads the facts (products,
//! stock rows, the coupon, the discount code, the promotion hold) its own way, SQLite inside its single writer and
//! PostgreSQL for a whole batch under locks; [`decide_order`] says what one order does to them
//! and [`decide_status_change`] what a status change does; the backends only write it down.

use std::collections::HashMap;

use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::coupon::{Discount, DiscountKind, check_redeemable};
use allot_domain::inventory::{Level, Quantity, ReservationId, choose_warehouse};
use allot_domain::order::{OrderStatus, Transition, price};

use allot_domain::promotion::fingerprint;

use super::sealed::{NewOrder, Order};
use super::{
    AppliedCode, AppliedPromotion, HoldUnusable, OrderLine, OrderRefusal, StatusChange,
    StatusRequest,
};
use crate::catalog::corrupt;
use crate::inventory::{Balance, End, InventoryRefusal, reservation_id};
use crate::promotion::{Hold, HoldStatus};
use crate::{Coupon, StorageError};

/// A product as an order prices it. Deleted products are not facts at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PricedProduct {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
}

/// A stock row in an active warehouse, with its balance as the orders decided so far leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StockRow {
    pub product: i64,
    pub warehouse: WarehouseId,
    pub balance: Balance,
}

/// A coupon an order names, as the orders decided so far leave it.
#[derive(Debug, Clone)]
pub(crate) struct OrderCoupon {
    pub id: i64,
    pub coupon: Coupon,
    discount: Discount,
}

/// What orders are decided on: what the database holds for them, updated by each accepted
/// order ([`OrderFacts::take`]) so the next one sees what it left.
#[derive(Debug, Default)]
pub(crate) struct OrderFacts {
    products: HashMap<i64, PricedProduct>,
    pub stock: Vec<StockRow>,
    /// Each product's rows in `stock`, in warehouse order.
    by_product: HashMap<i64, Vec<usize>>,
    pub coupons: Vec<OrderCoupon>,
    coupon_by_code: HashMap<String, usize>,
    /// Each known discount code: used?
    codes: HashMap<String, bool>,
    /// The promotion holds the orders name, as read in their transaction.
    holds: HashMap<i64, Hold>,
}

impl OrderFacts {
    pub fn add_product(&mut self, id: i64, product: PricedProduct) {
        self.products.insert(id, product);
    }

    /// A product's stock rows must be added in warehouse order (the order choices scan them).
    pub fn add_stock(&mut self, row: StockRow) {
        self.by_product
            .entry(row.product)
            .or_default()
            .push(self.stock.len());
        self.stock.push(row);
    }

    pub fn add_coupon(&mut self, id: i64, coupon: Coupon) -> Result<(), StorageError> {
        let kind = DiscountKind::parse(&coupon.discount_kind).map_err(corrupt)?;
        let discount = Discount::new(kind, coupon.discount_amount).map_err(corrupt)?;
        self.coupon_by_code
            .insert(coupon.code.clone(), self.coupons.len());
        self.coupons.push(OrderCoupon {
            id,
            coupon,
            discount,
        });
        Ok(())
    }

    pub fn add_code(&mut self, code: String, used: bool) {
        self.codes.insert(code, used);
    }

    pub fn add_hold(&mut self, hold: Hold) {
        self.holds.insert(hold.id, hold);
    }

    pub fn product(&self, id: ProductId) -> Option<&PricedProduct> {
        self.products.get(&id.get())
    }

    /// Applies an accepted order: its stock reserved, its coupon's use, its code used.
    pub fn take(&mut self, plan: &OrderPlan, new: &NewOrder) {
        for line in &plan.lines {
            self.stock[line.stock].balance.reserved += line.quantity.get();
        }
        if let Some((c, _)) = plan.coupon {
            self.coupons[c].coupon.uses += 1;
        }
        if let Some(code) = &new.discount_code
            && let Some(used) = self.codes.get_mut(code.as_str())
        {
            *used = true;
        }
        if let Some(id) = plan.hold
            && let Some(hold) = self.holds.get_mut(&id)
        {
            hold.status = HoldStatus::Redeemed;
        }
    }
}

/// One line of an accepted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedLine {
    pub product: ProductId,
    pub quantity: Quantity,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    /// The stock row (in [`OrderFacts::stock`]) the line reserves on.
    pub stock: usize,
}

/// What an accepted order writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderPlan {
    pub currency: String,
    /// In the order's line order.
    pub lines: Vec<PlannedLine>,
    /// Line indices in product order: the order the lines' stock is reserved in, on both
    /// backends (PostgreSQL locks stock rows in that order).
    pub reserve_order: Vec<usize>,
    pub subtotal_minor: i64,
    /// The coupon used (its index in [`OrderFacts::coupons`]) and what it took off.
    pub coupon: Option<(usize, i64)>,
    /// What the discount code took off.
    pub discount_minor: Option<i64>,
    /// The promotion hold consumed, what its promotions took off the lines, each promotion.
    pub hold: Option<i64>,
    pub promotion_minor: i64,
    pub promotions: Vec<AppliedPromotion>,
    pub shipping_minor: i64,
    pub shipping_discount_minor: i64,
    /// The subtotal less every discount (the `orders.total_minor` column).
    pub goods_minor: i64,
    /// `goods_minor` plus the shipping less its discount.
    pub total_minor: i64,
}

/// The hold an order names, if the order may consume it: held and not past its time, made
/// for this customer, in the order's currency, for these very lines (product, quantity and
/// catalog price).
fn usable_hold<'a>(
    facts: &'a OrderFacts,
    new: &NewOrder,
    id: i64,
    currency: &str,
    units: &[(i64, i64, i64)],
) -> Result<&'a Hold, HoldUnusable> {
    let hold = facts.holds.get(&id).ok_or(HoldUnusable::NotFound)?;
    if hold.status != HoldStatus::Held {
        return Err(HoldUnusable::NotHeld(hold.status));
    }
    if hold.expires_at <= new.now {
        return Err(HoldUnusable::Expired);
    }
    if hold.customer.as_deref() != Some(new.customer.as_str()) {
        return Err(HoldUnusable::OtherCustomer);
    }
    if hold.currency != currency {
        return Err(HoldUnusable::OtherCurrency);
    }
    if hold.cart_fingerprint != fingerprint(units) {
        return Err(HoldUnusable::OtherCart);
    }
    Ok(hold)
}

/// Decides one order on the facts. Refusals come in this order: an unknown or inactive
/// product (in line order), mixed currencies, a line no warehouse can serve (in product order),
/// the coupon, the discount code, the promotion hold, a total too large. The lines name distinct products (the
/// service refuses an order that names one twice), so no two lines reserve on one stock row.
pub(crate) fn decide_order(facts: &OrderFacts, new: &NewOrder) -> Result<OrderPlan, OrderRefusal> {
    let mut products = Vec::with_capacity(new.lines.len());
    for (p, _) in &new.lines {
        match facts.products.get(&p.get()) {
            None => return Err(OrderRefusal::UnknownProduct { product: *p }),
            Some(info) if !info.active => {
                return Err(OrderRefusal::InactiveProduct { product: *p });
            }
            Some(info) => products.push(info),
        }
    }
    let mut currencies: Vec<String> = products.iter().map(|p| p.currency.clone()).collect();
    currencies.sort();
    currencies.dedup();
    let currency = match currencies.as_mut_slice() {
        [one] => std::mem::take(one),
        _ => return Err(OrderRefusal::MixedCurrencies { currencies }),
    };
    let mut reserve_order: Vec<usize> = (0..new.lines.len()).collect();
    reserve_order.sort_by_key(|&i| new.lines[i].0);
    let mut held = vec![0; new.lines.len()];
    for &i in &reserve_order {
        let (p, quantity) = new.lines[i];
        let rows = facts
            .by_product
            .get(&p.get())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let levels: Vec<Level<usize>> = rows
            .iter()
            .map(|&s| Level {
                warehouse: s,
                on_hand: facts.stock[s].balance.on_hand,
                reserved: facts.stock[s].balance.reserved,
            })
            .collect();
        let Some(s) = choose_warehouse(&levels, None, quantity) else {
            return Err(OrderRefusal::OutOfStock {
                product: p,
                available_total: levels.iter().map(Level::available).sum(),
            });
        };
        held[i] = s;
    }
    let mut discounts = Vec::with_capacity(2);
    let coupon = match &new.coupon {
        None => None,
        Some(code) => {
            let Some(&c) = facts.coupon_by_code.get(code.as_str()) else {
                return Err(OrderRefusal::UnknownCoupon);
            };
            let found = &facts.coupons[c];
            check_redeemable(&found.coupon.state(), new.customer.as_str(), new.now)
                .map_err(OrderRefusal::CouponUnusable)?;
            discounts.push(found.discount);
            Some(c)
        }
    };
    if let Some(code) = &new.discount_code {
        match facts.codes.get(code.as_str()) {
            None => return Err(OrderRefusal::UnknownDiscountCode),
            Some(true) => return Err(OrderRefusal::DiscountCodeUsed),
            Some(false) => discounts.push(new.discount_code_value),
        }
    }
    let units: Vec<(i64, i64)> = new
        .lines
        .iter()
        .zip(&products)
        .map(|((_, q), p)| (p.price_minor, q.get()))
        .collect();
    let hold = match new.promotion_hold {
        None => None,
        Some(id) => {
            let cart: Vec<(i64, i64, i64)> = new
                .lines
                .iter()
                .zip(&units)
                .map(|((p, _), &(unit, q))| (p.get(), q, unit))
                .collect();
            let hold = usable_hold(facts, new, id, &currency, &cart)
                .map_err(OrderRefusal::PromotionHoldUnusable)?;
            Some(hold)
        }
    };
    // The hold's line discount first: the coupon and the code keep today's meaning on what
    // the promotions leave.
    let promotion = match hold {
        Some(h) => Some(
            Discount::new(DiscountKind::Flat, h.discount_minor)
                .map_err(|_| OrderRefusal::TooLarge)?,
        ),
        None => None,
    };
    if let Some(p) = promotion {
        discounts.insert(0, p);
    }
    let pricing = price(&units, &discounts).map_err(|_| OrderRefusal::TooLarge)?;
    let mut amounts = pricing.discounts_minor.iter().copied();
    let promotion_minor = promotion.map_or(0, |_| amounts.next().unwrap_or(0));
    if hold.is_some_and(|h| promotion_minor != h.discount_minor) {
        // The engine never discounts more than a line's price, so a hold for these very lines
        // fits them; one that does not was not made by it.
        return Err(OrderRefusal::PromotionHoldUnusable(HoldUnusable::OtherCart));
    }
    let shipping_discount_minor = hold.map_or(0, |h| h.shipping_discount_minor);
    if !(0..=allot_domain::order::ORDER_TOTAL_MAX).contains(&new.shipping_minor)
        || shipping_discount_minor > new.shipping_minor
    {
        return Err(OrderRefusal::PromotionHoldUnusable(HoldUnusable::OtherCart));
    }
    let total_minor = pricing.total_minor + new.shipping_minor - shipping_discount_minor;
    if total_minor > allot_domain::order::ORDER_TOTAL_MAX {
        return Err(OrderRefusal::TooLarge);
    }
    let coupon = coupon.map(|c| (c, amounts.next().unwrap_or(0)));
    let discount_minor = new
        .discount_code
        .as_ref()
        .map(|_| amounts.next().unwrap_or(0));
    let lines = new
        .lines
        .iter()
        .zip(&pricing.lines)
        .zip(held)
        .map(|(((p, q), line), s)| PlannedLine {
            product: *p,
            quantity: *q,
            unit_price_minor: line.unit_price_minor,
            line_total_minor: line.line_total_minor,
            stock: s,
        })
        .collect();
    Ok(OrderPlan {
        currency,
        lines,
        reserve_order,
        subtotal_minor: pricing.subtotal_minor,
        coupon,
        discount_minor,
        hold: hold.map(|h| h.id),
        promotion_minor,
        promotions: hold.map_or_else(Vec::new, |h| {
            h.promotions
                .iter()
                .map(|p| AppliedPromotion {
                    promotion_id: p.promotion.get(),
                    code: p.code.as_ref().map(|(code, _)| code.clone()),
                    amount_minor: p.amount_minor,
                })
                .collect()
        }),
        shipping_minor: new.shipping_minor,
        shipping_discount_minor,
        goods_minor: pricing.total_minor,
        total_minor,
    })
}

impl OrderPlan {
    /// The order as stored with id `id`; `reservations` gives each line's reservation, in
    /// line order. The facts are those the plan was decided on (for each line's product and
    /// warehouse).
    pub fn order(
        &self,
        id: i64,
        new: &NewOrder,
        facts: &OrderFacts,
        reservations: &mut impl Iterator<Item = i64>,
    ) -> Result<Order, StorageError> {
        let mut lines = Vec::with_capacity(self.lines.len());
        for (line, reservation_id) in self.lines.iter().zip(reservations) {
            let info = facts
                .product(line.product)
                .ok_or_else(|| corrupt("an order line's product left the facts"))?;
            lines.push(OrderLine {
                product_id: line.product,
                sku: info.sku.clone(),
                name: info.name.clone(),
                quantity: line.quantity.get(),
                unit_price_minor: line.unit_price_minor,
                line_total_minor: line.line_total_minor,
                warehouse_id: facts.stock[line.stock].warehouse,
                reservation_id,
                shipped_quantity: 0,
            });
        }
        if lines.len() != self.lines.len() {
            return Err(corrupt("too few reservations for an order's lines"));
        }
        Ok(Order {
            id,
            customer: new.customer.as_str().to_owned(),
            status: OrderStatus::Pending,
            currency: self.currency.clone(),
            shipping_address: new.shipping_address.clone(),
            lines,
            subtotal_minor: self.subtotal_minor,
            promotion_minor: self.promotion_minor,
            promotions: self.promotions.clone(),
            promotion_hold_id: self.hold,
            shipping_minor: self.shipping_minor,
            shipping_discount_minor: self.shipping_discount_minor,
            coupon: self.coupon.map(|(c, amount_minor)| AppliedCode {
                code: facts.coupons[c].coupon.code.clone(),
                amount_minor,
            }),
            discount_code: new.discount_code.as_ref().map(|code| AppliedCode {
                code: code.as_str().to_owned(),
                amount_minor: self.discount_minor.unwrap_or(0),
            }),
            total_minor: self.total_minor,
            idempotency_key: new.idempotency_key.as_ref().map(|k| k.as_str().to_owned()),
            history: vec![StatusChange {
                from: None,
                to: OrderStatus::Pending,
                reason: None,
                warehouse_id: None,
                at: new.now,
            }],
            created_at: new.now,
            updated_at: new.now,
        })
    }
}

/// What a status change does to one line's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineStep {
    /// Ends the line's pending reservation (confirmed: stock out; released: stock back).
    End {
        product: ProductId,
        reservation: ReservationId,
        how: End,
    },
    /// Puts the line's quantity back on hand in `warehouse` (`stock_in`).
    Restock {
        product: ProductId,
        warehouse: WarehouseId,
        quantity: i64,
        reservation: i64,
    },
}

impl LineStep {
    /// The product whose stock the step touches.
    pub fn product(&self) -> ProductId {
        match self {
            LineStep::End { product, .. } | LineStep::Restock { product, .. } => *product,
        }
    }
}

/// What an allowed status change writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusPlan {
    pub from: OrderStatus,
    /// The warehouse a return goes back to, when one was asked for.
    pub return_to: Option<WarehouseId>,
    /// The ledger's reason for restocked lines.
    pub reason: String,
    /// In (product, warehouse) order, the order both backends touch stock rows in.
    pub steps: Vec<LineStep>,
    pub gives_codes_back: bool,
    /// Of the codes given back, the coupon's use too (the request's `return_coupon`).
    pub gives_coupon_back: bool,
}

/// Decides what an edit of `order` undoes first: every line's reservation released and its
/// codes and promotion hold given back, as cancelling a pending order does (the same rule);
/// then the edit is decided by [`decide_order`] as a new order. Only a pending order can be
/// edited.
pub(crate) fn decide_edit(
    order: &Order,
    now: allot_domain::UnixMillis,
) -> Result<Result<StatusPlan, OrderRefusal>, StorageError> {
    if order.status != OrderStatus::Pending {
        return Ok(Err(OrderRefusal::NotEditable {
            status: order.status,
        }));
    }
    let undo = StatusRequest {
        id: order.id,
        to: OrderStatus::Cancelled,
        reason: Some(format!("order {} edited", order.id)),
        warehouse: None,
        return_coupon: true,
        now,
    };
    decide_status_change(order, &undo, None, false)
}

/// Decides a status change of `order`. `warehouse_known` answers whether the warehouse asked
/// for exists (read only when the request names one). Refusals: an illegal move, then an
/// unknown return warehouse.
pub(crate) fn decide_status_change(
    order: &Order,
    req: &StatusRequest,
    warehouse_known: Option<bool>,
    line_returns: bool,
) -> Result<Result<StatusPlan, OrderRefusal>, StorageError> {
    let t = match order.status.transition(req.to) {
        Ok(t) => t,
        Err(e) => return Ok(Err(OrderRefusal::Illegal(e))),
    };
    // Shipped units are gone: a partly shipped order is returned by line, not cancelled.
    if t == Transition::RestockConfirmed && order.lines.iter().any(|l| l.shipped_quantity > 0) {
        return Ok(Err(OrderRefusal::PartlyShipped));
    }
    // One way back per order: by line (`crate::shipment`) or whole, never both.
    if matches!(req.to, OrderStatus::ReturnRequested | OrderStatus::Returned) && line_returns {
        return Ok(Err(OrderRefusal::HasLineReturns));
    }
    let return_to = match (t, req.warehouse) {
        (Transition::Restock, Some(w)) => {
            if warehouse_known != Some(true) {
                return Ok(Err(OrderRefusal::UnknownWarehouse));
            }
            Some(w)
        }
        _ => None,
    };
    let reason = req
        .reason
        .clone()
        .unwrap_or_else(|| format!("order {} {}", order.id, req.to));
    let mut lines: Vec<&OrderLine> = order.lines.iter().collect();
    lines.sort_by_key(|l| (l.product_id, return_to.unwrap_or(l.warehouse_id)));
    let mut steps = Vec::with_capacity(lines.len());
    for line in lines {
        let step = match t {
            Transition::ConsumeReservations => LineStep::End {
                product: line.product_id,
                reservation: reservation_id(line.reservation_id)?,
                how: End::Confirm,
            },
            Transition::ReleaseReservations => LineStep::End {
                product: line.product_id,
                reservation: reservation_id(line.reservation_id)?,
                how: End::Release,
            },
            Transition::RestockConfirmed | Transition::Restock => LineStep::Restock {
                product: line.product_id,
                warehouse: return_to.unwrap_or(line.warehouse_id),
                quantity: line.quantity,
                reservation: line.reservation_id,
            },
            Transition::StatusOnly => continue,
        };
        steps.push(step);
    }
    Ok(Ok(StatusPlan {
        from: order.status,
        return_to,
        reason,
        steps,
        gives_codes_back: t.gives_codes_back(),
        gives_coupon_back: t.gives_codes_back() && req.return_coupon,
    }))
}

/// A refusal to redeem an order's hold, met in the order's transaction after it was decided
/// usable: another transaction changed it meanwhile (PostgreSQL), as the order's refusal.
pub(crate) fn hold_refusal(r: crate::promotion::PromotionRefusal) -> HoldUnusable {
    use crate::promotion::PromotionRefusal;
    match r {
        PromotionRefusal::HoldNotFound => HoldUnusable::NotFound,
        PromotionRefusal::HoldNotHeld { status } => HoldUnusable::NotHeld(status),
        PromotionRefusal::HoldExpired => HoldUnusable::Expired,
        _ => HoldUnusable::Changed,
    }
}

/// An inventory refusal met while placing or changing an order, as the order's refusal.
pub(crate) fn inventory_refusal(
    r: InventoryRefusal,
    p: ProductId,
) -> Result<OrderRefusal, StorageError> {
    Ok(match r {
        InventoryRefusal::UnknownProduct => OrderRefusal::UnknownProduct { product: p },
        InventoryRefusal::UnknownWarehouse => OrderRefusal::UnknownWarehouse,
        InventoryRefusal::OutOfStock { available_total } => OrderRefusal::OutOfStock {
            product: p,
            available_total,
        },
        InventoryRefusal::NotPending { status } => OrderRefusal::ReservationNotPending { status },
        other => return Err(corrupt(format!("order stock refused: {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use allot_domain::UnixMillis;
    use allot_domain::coupon::{RedeemRefusal, UploadedCode};
    use allot_domain::discount::DiscountCode;
    use allot_domain::order::IllegalTransition;
    use allot_domain::user::UserId;

    use super::*;

    const NOW: i64 = 1_000_000;

    fn product(id: i64) -> ProductId {
        ProductId::parse(id).expect("a product id")
    }

    fn warehouse(id: i64) -> WarehouseId {
        WarehouseId::parse(id).expect("a warehouse id")
    }

    fn priced(price_minor: i64, currency: &str, active: bool) -> PricedProduct {
        PricedProduct {
            sku: "SKU".to_owned(),
            name: "Thing".to_owned(),
            price_minor,
            currency: currency.to_owned(),
            active,
        }
    }

    fn stock(product: i64, warehouse_id: i64, on_hand: i64, reserved: i64) -> StockRow {
        StockRow {
            product,
            warehouse: warehouse(warehouse_id),
            balance: Balance {
                on_hand,
                reserved,
                threshold: None,
                alert_open: false,
            },
        }
    }

    fn coupon(code: &str, kind: &str, amount: i64, uses: u32, owner: Option<&str>) -> Coupon {
        Coupon {
            id: 1,
            code: code.to_owned(),
            coupon_type: None,
            discount_kind: kind.to_owned(),
            discount_amount: amount,
            expires_at: UnixMillis::from_millis(NOW + 1),
            max_uses: 1,
            uses,
            allocated_to: owner.map(str::to_owned),
            allocated_at: None,
            created_at: UnixMillis::from_millis(0),
            bound_to: None,
        }
    }

    fn order(lines: &[(i64, i64)]) -> NewOrder {
        NewOrder {
            customer: UserId::parse("alice").expect("a user"),
            shipping_address: "{}".to_owned(),
            lines: lines
                .iter()
                .map(|&(p, q)| (product(p), Quantity::parse(q).expect("a quantity")))
                .collect(),
            coupon: None,
            discount_code: None,
            discount_code_value: Discount::new(DiscountKind::Flat, 0).expect("a discount"),
            shipping_minor: 0,
            promotion_hold: None,
            idempotency_key: None,
            now: UnixMillis::from_millis(NOW),
        }
    }

    /// Two products in EUR (1,000 and 250), one in USD; stock of product 1 in warehouses 1
    /// and 2, of product 2 in warehouse 1; a 10% coupon and an unused code.
    fn facts() -> OrderFacts {
        let mut f = OrderFacts::default();
        f.add_product(1, priced(1_000, "EUR", true));
        f.add_product(2, priced(250, "EUR", true));
        f.add_product(3, priced(500, "USD", true));
        f.add_product(4, priced(500, "EUR", false));
        f.add_stock(stock(1, 1, 2, 1));
        f.add_stock(stock(1, 2, 10, 0));
        f.add_stock(stock(2, 1, 5, 0));
        f.add_coupon(7, coupon("TEN", "PERCENTAGE", 10, 0, None))
            .expect("a coupon");
        f.add_coupon(8, coupon("MINE", "FLAT", 100, 0, Some("bob")))
            .expect("a coupon");
        f.add_code("ABCDEFGH".to_owned(), false);
        f.add_code("ABCDEFGJ".to_owned(), true);
        f
    }

    #[test]
    fn an_order_is_priced_and_reserved_on_a_warehouse_that_has_it_all() {
        let facts = facts();
        let plan = decide_order(&facts, &order(&[(2, 2), (1, 3)])).expect("accepted");
        assert_eq!(plan.currency, "EUR");
        assert_eq!(plan.subtotal_minor, 3_500);
        assert_eq!(plan.total_minor, 3_500);
        // Warehouse 1 has only 1 of product 1 available: warehouse 2 serves the line.
        assert_eq!(facts.stock[plan.lines[1].stock].warehouse, warehouse(2));
        assert_eq!(facts.stock[plan.lines[0].stock].warehouse, warehouse(1));
        assert_eq!(plan.reserve_order, vec![1, 0]);
    }

    #[test]
    fn refusals_come_in_their_order() {
        let facts = facts();
        // An unknown product before an inactive one, in line order.
        let refused = decide_order(&facts, &order(&[(9, 1), (4, 1)]));
        assert_eq!(
            refused,
            Err(OrderRefusal::UnknownProduct {
                product: product(9)
            })
        );
        let refused = decide_order(&facts, &order(&[(4, 1), (9, 1)]));
        assert_eq!(
            refused,
            Err(OrderRefusal::InactiveProduct {
                product: product(4)
            })
        );
        // Mixed currencies before stock.
        let refused = decide_order(&facts, &order(&[(1, 100), (3, 1)]));
        assert_eq!(
            refused,
            Err(OrderRefusal::MixedCurrencies {
                currencies: vec!["EUR".to_owned(), "USD".to_owned()]
            })
        );
        // Stock in product order, with what all warehouses have together.
        let refused = decide_order(&facts, &order(&[(2, 6), (1, 11)]));
        assert_eq!(
            refused,
            Err(OrderRefusal::OutOfStock {
                product: product(1),
                available_total: 11
            })
        );
        // Stock before the coupon, the coupon before the code.
        let mut new = order(&[(1, 1)]);
        new.coupon = Some(UploadedCode::parse("NOPE").expect("a code"));
        new.discount_code = Some(DiscountCode::parse("ABCDEFGJ").expect("a code"));
        assert_eq!(decide_order(&facts, &new), Err(OrderRefusal::UnknownCoupon));
        new.coupon = Some(UploadedCode::parse("MINE").expect("a code"));
        assert_eq!(
            decide_order(&facts, &new),
            Err(OrderRefusal::CouponUnusable(RedeemRefusal::NotOwner))
        );
        new.coupon = Some(UploadedCode::parse("TEN").expect("a code"));
        assert_eq!(
            decide_order(&facts, &new),
            Err(OrderRefusal::DiscountCodeUsed)
        );
        new.discount_code = Some(DiscountCode::parse("ABCDEFGK").expect("a code"));
        assert_eq!(
            decide_order(&facts, &new),
            Err(OrderRefusal::UnknownDiscountCode)
        );
    }

    /// A hold of alice's in EUR for one of product 2 (250) and one of product 1 (1,000): 300
    /// off the lines, 150 off the shipping.
    fn hold(id: i64) -> Hold {
        use allot_domain::promotion::PromotionId;
        Hold {
            id,
            status: HoldStatus::Held,
            customer: Some("alice".to_owned()),
            currency: "EUR".to_owned(),
            cart_fingerprint: fingerprint(&[(2, 1, 250), (1, 1, 1_000)]),
            promotions: vec![crate::promotion::HeldPromotion {
                promotion: PromotionId::parse(3).expect("an id"),
                code: Some((
                    "SPRING".to_owned(),
                    crate::promotion::CodeSource::DiscountCode,
                )),
                amount_minor: 450,
            }],
            evaluation: "{}".to_owned(),
            discount_minor: 300,
            shipping_discount_minor: 150,
            idempotency_key: None,
            reference: None,
            created_at: UnixMillis::from_millis(NOW - 10),
            expires_at: UnixMillis::from_millis(NOW + 10),
            updated_at: UnixMillis::from_millis(NOW - 10),
        }
    }

    #[test]
    fn a_hold_is_taken_off_first_then_the_coupon_then_shipping_is_added() {
        let mut facts = facts();
        facts.add_hold(hold(9));
        let mut new = order(&[(1, 1), (2, 1)]);
        new.promotion_hold = Some(9);
        new.shipping_minor = 500;
        new.coupon = Some(UploadedCode::parse("TEN").expect("a code"));
        let plan = decide_order(&facts, &new).expect("accepted");
        assert_eq!(plan.subtotal_minor, 1_250);
        assert_eq!(plan.promotion_minor, 300);
        // 10% of the 950 the promotion left.
        assert_eq!(plan.coupon, Some((0, 95)));
        assert_eq!(plan.goods_minor, 855);
        assert_eq!(plan.total_minor, 855 + 500 - 150);
        assert_eq!(plan.promotions.len(), 1);
        assert_eq!(plan.promotions[0].code.as_deref(), Some("SPRING"));
        facts.take(&plan, &new);
        new.coupon = None;
        assert_eq!(
            decide_order(&facts, &new),
            Err(OrderRefusal::PromotionHoldUnusable(HoldUnusable::NotHeld(
                HoldStatus::Redeemed
            )))
        );
    }

    #[test]
    fn a_hold_serves_only_its_customer_currency_lines_and_time() {
        let unusable = |h: Hold, new: &NewOrder| {
            let mut facts = facts();
            facts.add_hold(h);
            match decide_order(&facts, new) {
                Err(OrderRefusal::PromotionHoldUnusable(why)) => why,
                other => panic!("refused for the hold, got {other:?}"),
            }
        };
        let mut new = order(&[(1, 1), (2, 1)]);
        new.promotion_hold = Some(9);
        new.shipping_minor = 500;
        let mut expired = hold(9);
        expired.expires_at = new.now;
        assert_eq!(unusable(expired, &new), HoldUnusable::Expired);
        let mut bob = hold(9);
        bob.customer = Some("bob".to_owned());
        assert_eq!(unusable(bob, &new), HoldUnusable::OtherCustomer);
        let mut guest = hold(9);
        guest.customer = None;
        assert_eq!(unusable(guest, &new), HoldUnusable::OtherCustomer);
        let mut usd = hold(9);
        usd.currency = "USD".to_owned();
        assert_eq!(unusable(usd, &new), HoldUnusable::OtherCurrency);
        let mut released = hold(9);
        released.status = HoldStatus::Released;
        assert_eq!(
            unusable(released, &new),
            HoldUnusable::NotHeld(HoldStatus::Released)
        );
        assert_eq!(unusable(hold(8), &new), HoldUnusable::NotFound);
        // Another quantity is another cart; so is shipping below the hold's shipping discount.
        let mut more = order(&[(1, 2), (2, 1)]);
        more.promotion_hold = Some(9);
        assert_eq!(unusable(hold(9), &more), HoldUnusable::OtherCart);
        new.shipping_minor = 100;
        assert_eq!(unusable(hold(9), &new), HoldUnusable::OtherCart);
    }

    #[test]
    fn a_total_past_the_maximum_is_refused() {
        let mut facts = OrderFacts::default();
        facts.add_product(1, priced(1_000_000_000_000, "EUR", true));
        facts.add_stock(stock(1, 1, 10, 0));
        assert_eq!(
            decide_order(&facts, &order(&[(1, 2)])),
            Err(OrderRefusal::TooLarge)
        );
    }

    #[test]
    fn discounts_apply_coupon_first_and_never_take_more_than_is_left() {
        let facts = facts();
        let mut new = order(&[(2, 1)]);
        new.coupon = Some(UploadedCode::parse("TEN").expect("a code"));
        new.discount_code = Some(DiscountCode::parse("ABCDEFGH").expect("a code"));
        new.discount_code_value = Discount::new(DiscountKind::Flat, 1_000).expect("a discount");
        let plan = decide_order(&facts, &new).expect("accepted");
        assert_eq!(plan.subtotal_minor, 250);
        assert_eq!(plan.coupon, Some((0, 25)));
        // The flat 1,000 is capped at the 225 left.
        assert_eq!(plan.discount_minor, Some(225));
        assert_eq!(plan.total_minor, 0);
    }

    #[test]
    fn an_accepted_order_leaves_its_stock_coupon_and_code_taken_for_the_next() {
        let mut facts = facts();
        let mut new = order(&[(2, 5)]);
        new.coupon = Some(UploadedCode::parse("TEN").expect("a code"));
        new.discount_code = Some(DiscountCode::parse("ABCDEFGH").expect("a code"));
        let plan = decide_order(&facts, &new).expect("accepted");
        let stored = plan
            .order(41, &new, &facts, &mut [77].into_iter())
            .expect("an order");
        assert_eq!(stored.lines[0].reservation_id, 77);
        assert_eq!(stored.coupon.as_ref().map(|c| c.code.as_str()), Some("TEN"));
        assert_eq!(stored.history.len(), 1);
        facts.take(&plan, &new);
        assert_eq!(facts.stock[2].balance.reserved, 5);
        assert_eq!(
            decide_order(&facts, &order(&[(2, 1)])),
            Err(OrderRefusal::OutOfStock {
                product: product(2),
                available_total: 0
            })
        );
        new.lines = vec![(product(1), Quantity::parse(1).expect("a quantity"))];
        assert_eq!(
            decide_order(&facts, &new),
            Err(OrderRefusal::CouponUnusable(RedeemRefusal::Exhausted))
        );
        new.coupon = None;
        assert_eq!(
            decide_order(&facts, &new),
            Err(OrderRefusal::DiscountCodeUsed)
        );
    }

    fn stored(status: OrderStatus) -> Order {
        let mut new = order(&[(2, 1), (1, 2)]);
        new.discount_code = Some(DiscountCode::parse("ABCDEFGH").expect("a code"));
        let facts = facts();
        let plan = decide_order(&facts, &new).expect("accepted");
        let mut o = plan
            .order(5, &new, &facts, &mut [11, 12].into_iter())
            .expect("an order");
        o.status = status;
        o
    }

    fn request(to: OrderStatus, warehouse_id: Option<i64>) -> StatusRequest {
        StatusRequest {
            id: 5,
            to,
            reason: None,
            warehouse: warehouse_id.map(warehouse),
            return_coupon: true,
            now: UnixMillis::from_millis(NOW),
        }
    }

    #[test]
    fn status_changes_do_what_the_transition_says_to_each_line_in_product_order() {
        let o = stored(OrderStatus::Pending);
        let plan = decide_status_change(&o, &request(OrderStatus::Confirmed, None), None, false)
            .expect("no error")
            .expect("allowed");
        let reservations: Vec<i64> = plan
            .steps
            .iter()
            .map(|s| match s {
                LineStep::End {
                    reservation, how, ..
                } => {
                    assert_eq!(*how, End::Confirm);
                    reservation.get()
                }
                LineStep::Restock { .. } => panic!("a confirmation restocks nothing"),
            })
            .collect();
        assert_eq!(reservations, vec![12, 11]);
        assert!(!plan.gives_codes_back);

        let cancelled =
            decide_status_change(&o, &request(OrderStatus::Cancelled, None), None, false)
                .expect("no error")
                .expect("allowed");
        assert!(cancelled.gives_codes_back);
        assert!(cancelled.gives_coupon_back);
        let keep_coupon = StatusRequest {
            return_coupon: false,
            ..request(OrderStatus::Cancelled, None)
        };
        let kept = decide_status_change(&o, &keep_coupon, None, false)
            .expect("no error")
            .expect("allowed");
        assert!(kept.gives_codes_back && !kept.gives_coupon_back);

        let o = stored(OrderStatus::ReturnRequested);
        let plan = decide_status_change(
            &o,
            &request(OrderStatus::Returned, Some(3)),
            Some(true),
            false,
        )
        .expect("no error")
        .expect("allowed");
        assert_eq!(plan.return_to, Some(warehouse(3)));
        assert_eq!(plan.reason, "order 5 returned");
        assert!(plan.steps.iter().all(|s| matches!(
            s,
            LineStep::Restock { warehouse: w, .. } if *w == warehouse(3)
        )));
    }

    #[test]
    fn an_illegal_move_is_refused_before_an_unknown_warehouse() {
        let o = stored(OrderStatus::Pending);
        assert_eq!(
            decide_status_change(
                &o,
                &request(OrderStatus::Returned, Some(3)),
                Some(false),
                false
            )
            .expect("no error"),
            Err(OrderRefusal::Illegal(IllegalTransition {
                from: OrderStatus::Pending,
                to: OrderStatus::Returned
            }))
        );
        let o = stored(OrderStatus::ReturnRequested);
        assert_eq!(
            decide_status_change(
                &o,
                &request(OrderStatus::Returned, Some(3)),
                Some(false),
                false
            )
            .expect("no error"),
            Err(OrderRefusal::UnknownWarehouse)
        );
    }
}

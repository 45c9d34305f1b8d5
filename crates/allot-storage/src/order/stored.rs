//! How an order is read back: the statements (one text for both backends) and the mapping
//! from their rows.

use allot_domain::UnixMillis;

use super::sealed::Order;
use super::{AppliedCode, AppliedPromotion, OrderLine, PricedProduct, StatusChange, order_status};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::inventory::{product, warehouse_id};
use crate::row::Columns;

/// The order's own row; the address is the sealed column, opened by the caller.
pub(crate) const ORDER_BY_ID: &str = "SELECT id, customer, status, currency, shipping_address_enc, subtotal_minor, \
            coupon_code, coupon_minor, discount_code, discount_minor, total_minor, idempotency_key, \
            created_at_ms, updated_at_ms, shipping_minor, shipping_discount_minor, promotion_minor, \
            promotion_hold_id, promotions
     FROM orders WHERE id = $1";

/// The id of the order stored with an idempotency key.
pub(crate) const ORDER_ID_BY_KEY: &str = "SELECT id FROM orders WHERE idempotency_key = $1";

pub(crate) const LINES_OF_ORDER: &str =
    "SELECT product_id, sku, name, quantity, unit_price_minor, line_total_minor, \
            warehouse_id, reservation_id, shipped_quantity
     FROM order_lines WHERE order_id = $1 ORDER BY line_no";

/// Oldest first.
pub(crate) const HISTORY_OF_ORDER: &str =
    "SELECT from_status, to_status, reason, warehouse_id, at_ms
     FROM order_status_history WHERE order_id = $1 ORDER BY id";

/// status, time, id.
pub(crate) const SET_ORDER_STATUS: &str =
    "UPDATE orders SET status = $1, updated_at_ms = $2 WHERE id = $3";

/// A page of order ids: after, customer, status, from, until, limit (each filter may be null).
pub(crate) const ORDER_IDS_PAGE: &str = "SELECT id FROM orders
     WHERE id > $1 AND (CAST($2 AS TEXT) IS NULL OR customer = $2)
       AND (CAST($3 AS TEXT) IS NULL OR status = $3)
       AND (CAST($4 AS BIGINT) IS NULL OR created_at_ms >= $4)
       AND (CAST($5 AS BIGINT) IS NULL OR created_at_ms < $5)
     ORDER BY id LIMIT $6";

/// [`ORDER_IDS_PAGE`] newest first: below this id, then the same filters and limit. Both walk
/// the key (or the index of the filter: orders_by_status, orders_by_customer, each ending in
/// id) in order and stop at the limit.
pub(crate) const ORDER_IDS_PAGE_NEWEST: &str = "SELECT id FROM orders
     WHERE id < $1 AND (CAST($2 AS TEXT) IS NULL OR customer = $2)
       AND (CAST($3 AS TEXT) IS NULL OR status = $3)
       AND (CAST($4 AS BIGINT) IS NULL OR created_at_ms >= $4)
       AND (CAST($5 AS BIGINT) IS NULL OR created_at_ms < $5)
     ORDER BY id DESC LIMIT $6";

pub(crate) const INSERT_HISTORY: &str = "INSERT INTO order_status_history (order_id, from_status, to_status, reason, warehouse_id, at_ms)
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) fn line_from(r: &impl Columns) -> Result<OrderLine, StorageError> {
    Ok(OrderLine {
        product_id: product(r.int(0)?)?,
        sku: r.text(1)?,
        name: r.text(2)?,
        quantity: r.int(3)?,
        unit_price_minor: r.int(4)?,
        line_total_minor: r.int(5)?,
        warehouse_id: warehouse_id(r.int(6)?)?,
        reservation_id: r.int(7)?,
        shipped_quantity: r.int(8)?,
    })
}

pub(crate) fn change_from(r: &impl Columns) -> Result<StatusChange, StorageError> {
    Ok(StatusChange {
        from: r.opt_text(0)?.as_deref().map(order_status).transpose()?,
        to: order_status(&r.text(1)?)?,
        reason: r.opt_text(2)?,
        warehouse_id: r.opt_int(3)?,
        at: UnixMillis::from_millis(r.int(4)?),
    })
}

/// The order from its row ([`ORDER_BY_ID`]), its lines and its history.
pub(crate) fn order_from(
    r: &impl Columns,
    lines: Vec<OrderLine>,
    history: Vec<StatusChange>,
) -> Result<Order, StorageError> {
    let applied = |code: Option<String>, minor: Option<i64>| {
        code.map(|code| AppliedCode {
            code,
            amount_minor: minor.unwrap_or(0),
        })
    };
    let goods_minor = r.int(10)?;
    let shipping_minor = r.int(14)?;
    let shipping_discount_minor = r.int(15)?;
    Ok(Order {
        id: r.int(0)?,
        customer: r.text(1)?,
        status: order_status(&r.text(2)?)?,
        currency: r.text(3)?,
        shipping_address: r.text(4)?,
        lines,
        subtotal_minor: r.int(5)?,
        promotion_minor: r.int(16)?,
        promotions: promotions_from_json(&r.text(18)?)?,
        promotion_hold_id: r.opt_int(17)?,
        coupon: applied(r.opt_text(6)?, r.opt_int(7)?),
        discount_code: applied(r.opt_text(8)?, r.opt_int(9)?),
        shipping_minor,
        shipping_discount_minor,
        total_minor: goods_minor + shipping_minor - shipping_discount_minor,
        idempotency_key: r.opt_text(11)?,
        history,
        created_at: UnixMillis::from_millis(r.int(12)?),
        updated_at: UnixMillis::from_millis(r.int(13)?),
    })
}

/// A product as an order prices it, from five columns starting at `first`: SKU, name, price,
/// currency, active.
pub(crate) fn priced_from(r: &impl Columns, first: usize) -> Result<PricedProduct, StorageError> {
    Ok(PricedProduct {
        sku: r.text(first)?,
        name: r.text(first + 1)?,
        price_minor: r.int(first + 2)?,
        currency: r.text(first + 3)?,
        active: r.flag(first + 4)?,
    })
}

/// The `orders.promotions` column of an order's promotions.
pub(crate) fn promotions_json(promotions: &[AppliedPromotion]) -> String {
    let items: Vec<serde_json::Value> = promotions
        .iter()
        .map(|p| {
            serde_json::json!({
                "promotion_id": p.promotion_id,
                "code": p.code,
                "amount_minor": p.amount_minor,
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn promotions_from_json(raw: &str) -> Result<Vec<AppliedPromotion>, StorageError> {
    let items: Vec<serde_json::Value> = serde_json::from_str(raw).map_err(corrupt)?;
    items
        .iter()
        .map(|item| {
            let int = |name: &str| {
                item.get(name)
                    .and_then(serde_json::Value::as_i64)
                    .ok_or_else(|| corrupt(format!("an order's promotion lacks {name}")))
            };
            Ok(AppliedPromotion {
                promotion_id: int("promotion_id")?,
                code: item
                    .get("code")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned),
                amount_minor: int("amount_minor")?,
            })
        })
        .collect()
}

//! Reading the event log. Writing is no operation of its own: each backend appends events
//! inside the operations that make the changes (`append_events` in `sqlite::event` and
//! `postgres::event`).

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use async_trait::async_trait;

use crate::StorageError;

/// One stored event. `payload` is a JSON object as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub kind: String,
    pub occurred_at: UnixMillis,
    pub actor: String,
    /// The client's IP address; none for jobs and for events older than the column.
    pub source: Option<String>,
    pub payload: String,
}

/// A page of the log: events with `seq > after`, in seq order, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery {
    pub after: i64,
    pub limit: u32,
    pub kind: Option<EventType>,
}

/// A page of the audit log: events with `seq > after` matching every filter given, in seq
/// order, at most `limit`. `since` is inclusive, `until` exclusive (by `occurred_at`).
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub after: i64,
    pub limit: u32,
    pub actor: Option<String>,
    pub kind: Option<EventType>,
    pub since: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
}

#[async_trait]
pub trait EventStore {
    /// Committed events after `query.after` in seq order. A reader that walks the log with
    /// `after` = the last seq it saw never misses an event and never sees one twice.
    async fn events(&self, query: EventQuery) -> Result<Vec<Event>, StorageError>;

    /// The audit log: the same committed events, filtered (see [`AuditQuery`]).
    async fn audit(&self, query: AuditQuery) -> Result<Vec<Event>, StorageError>;

    /// The greatest committed seq (0 for an empty log): where a reader of new events only
    /// starts. The max of the primary key: one index probe, whatever the log's size.
    async fn log_end(&self) -> Result<i64, StorageError>;
}

/// The wall clock, for the few operations that are not given a time (deletes of categories
/// and warehouses).
pub(crate) fn wall_now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    UnixMillis::from_millis(ms)
}

/// The payload of a product event.
pub(crate) fn product_payload(id: i64, p: &crate::NewProduct) -> String {
    serde_json::json!({
        "product_id": id,
        "sku": p.sku.as_str(),
        "name": p.name.as_str(),
        "price_minor": p.price.amount_minor(),
        "currency": p.price.currency().as_str(),
        "category_id": p.category_id.map(|c| c.get()),
        "active": p.active,
    })
    .to_string()
}

pub(crate) fn category_payload(id: i64, c: &crate::NewCategory) -> String {
    serde_json::json!({
        "category_id": id,
        "name": c.name.as_str(),
        "parent_id": c.parent_id.map(|p| p.get()),
    })
    .to_string()
}

pub(crate) fn warehouse_payload(id: i64, w: &crate::NewWarehouse) -> String {
    serde_json::json!({
        "warehouse_id": id,
        "code": w.code.as_str(),
        "name": w.name.as_str(),
        "active": w.active,
    })
    .to_string()
}

/// `ProductPriceChanged` when an update changes the price (amount or currency): written after
/// `ProductUpdated`, in the same transaction. `was` is the stored (amount, currency).
pub(crate) fn product_price_event(
    id: i64,
    was: (i64, &str),
    new: &crate::NewProduct,
    at: UnixMillis,
) -> Option<allot_domain::event::NewEvent> {
    let currency = new.price.currency();
    let (amount, currency) = (new.price.amount_minor(), currency.as_str());
    if was == (amount, currency) {
        return None;
    }
    let payload = serde_json::json!({
        "product_id": id,
        "sku": new.sku.as_str(),
        "old_price_minor": was.0,
        "old_currency": was.1,
        "price_minor": amount,
        "currency": currency,
    })
    .to_string();
    Some(allot_domain::event::NewEvent::api(
        EventType::ProductPriceChanged,
        at,
        payload,
    ))
}

/// `ProductDeleted`: the id of the product gone.
pub(crate) fn product_deleted_event(id: i64, at: UnixMillis) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({"product_id": id}).to_string();
    allot_domain::event::NewEvent::api(EventType::ProductDeleted, at, payload)
}

pub(crate) fn category_deleted_event(id: i64, at: UnixMillis) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({"category_id": id}).to_string();
    allot_domain::event::NewEvent::api(EventType::CategoryDeleted, at, payload)
}

pub(crate) fn warehouse_deleted_event(id: i64, at: UnixMillis) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({"warehouse_id": id}).to_string();
    allot_domain::event::NewEvent::api(EventType::WarehouseDeleted, at, payload)
}

/// The event of one stock movement: its type follows the movement's kind.
pub(crate) struct MovementEvent<'a> {
    pub kind: allot_domain::inventory::MovementKind,
    pub product: i64,
    pub warehouse: i64,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand: i64,
    pub reserved: i64,
    pub reservation: Option<i64>,
    pub reason: Option<&'a str>,
}

impl MovementEvent<'_> {
    pub(crate) fn event(&self, at: UnixMillis) -> allot_domain::event::NewEvent {
        use allot_domain::event::{ACTOR_API, ACTOR_RESERVATION_EXPIRY, NewEvent};
        use allot_domain::inventory::MovementKind;
        let (kind, actor) = match self.kind {
            MovementKind::StockIn => (EventType::InventoryRestocked, ACTOR_API),
            MovementKind::StockOut => (EventType::InventoryConfirmed, ACTOR_API),
            MovementKind::Reservation => (EventType::InventoryReserved, ACTOR_API),
            MovementKind::Release => (EventType::InventoryReleased, ACTOR_API),
            MovementKind::Adjustment => (EventType::InventoryAdjusted, ACTOR_API),
            MovementKind::Expiry => (EventType::InventoryExpired, ACTOR_RESERVATION_EXPIRY),
        };
        let payload = serde_json::json!({
            "product_id": self.product,
            "warehouse_id": self.warehouse,
            "movement": self.kind.as_str(),
            "on_hand_delta": self.on_hand_delta,
            "reserved_delta": self.reserved_delta,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "reservation_id": self.reservation,
            "reason": self.reason,
        });
        NewEvent::by(actor, kind, at, payload.to_string())
    }
}

/// `InventoryThresholdReached` (raised) or `InventoryThresholdCleared`.
pub(crate) fn threshold_event(
    raised: bool,
    product: i64,
    warehouse: i64,
    available: i64,
    threshold: Option<i64>,
    at: UnixMillis,
) -> allot_domain::event::NewEvent {
    let kind = if raised {
        EventType::InventoryThresholdReached
    } else {
        EventType::InventoryThresholdCleared
    };
    let payload = serde_json::json!({
        "product_id": product,
        "warehouse_id": warehouse,
        "available": available,
        "threshold": threshold,
    });
    allot_domain::event::NewEvent::api(kind, at, payload.to_string())
}

pub(crate) fn reorder_event(
    product: i64,
    warehouse: i64,
    threshold: Option<i64>,
    quantity: Option<i64>,
    at: UnixMillis,
) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({
        "product_id": product,
        "warehouse_id": warehouse,
        "threshold": threshold,
        "quantity": quantity,
    });
    allot_domain::event::NewEvent::api(EventType::ReorderPointSet, at, payload.to_string())
}

/// `OrderCreated`, with its lines, reservations and codes.
pub(crate) fn order_created_event<A>(o: &crate::Order<A>) -> allot_domain::event::NewEvent {
    let lines: Vec<serde_json::Value> = o
        .lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "product_id": l.product_id.get(),
                "quantity": l.quantity,
                "unit_price_minor": l.unit_price_minor,
                "warehouse_id": l.warehouse_id.get(),
                "reservation_id": l.reservation_id,
            })
        })
        .collect();
    let payload = serde_json::json!({
        "order_id": o.id,
        "customer": o.customer,
        "currency": o.currency,
        "lines": lines,
        "subtotal_minor": o.subtotal_minor,
        "coupon_code": o.coupon.as_ref().map(|c| c.code.as_str()),
        "discount_code": o.discount_code.as_ref().map(|c| c.code.as_str()),
        "promotion_hold_id": o.promotion_hold_id,
        "promotion_minor": o.promotion_minor,
        "shipping_minor": o.shipping_minor,
        "shipping_discount_minor": o.shipping_discount_minor,
        "total_minor": o.total_minor,
    });
    allot_domain::event::NewEvent::api(EventType::OrderCreated, o.created_at, payload.to_string())
}

/// `OrderStatusChanged` from `from` to the request's status.
pub(crate) fn order_status_event(
    id: i64,
    from: allot_domain::order::OrderStatus,
    req: &crate::StatusRequest,
    return_to: Option<i64>,
) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({
        "order_id": id,
        "from": from.as_str(),
        "to": req.to.as_str(),
        "reason": req.reason,
        "warehouse_id": return_to,
    });
    allot_domain::event::NewEvent::api(EventType::OrderStatusChanged, req.now, payload.to_string())
}

/// `OrderCancelled`, after the cancellation's `OrderStatusChanged` in the same transaction:
/// what the order gave back.
pub(crate) fn order_cancelled_event<A>(
    o: &crate::Order<A>,
    req: &crate::StatusRequest,
    plan: &crate::order::StatusPlan,
) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({
        "order_id": o.id,
        "customer": o.customer,
        "from": o.status.as_str(),
        "reason": req.reason,
        "total_minor": o.total_minor,
        "lines": o.lines.iter().map(|l| serde_json::json!({
            "product_id": l.product_id.get(),
            "quantity": l.quantity,
            "warehouse_id": l.warehouse_id.get(),
        })).collect::<Vec<_>>(),
        "coupon_code": o.coupon.as_ref().map(|c| c.code.as_str()),
        "coupon_returned": o.coupon.is_some() && plan.gives_coupon_back,
        "discount_code": o.discount_code.as_ref().map(|c| c.code.as_str()),
        "promotion_hold_id": o.promotion_hold_id,
    });
    allot_domain::event::NewEvent::api(EventType::OrderCancelled, req.now, payload.to_string())
}

/// `OrderUpdated`: a pending order edited, as it was and as it is.
pub(crate) fn order_updated_event<A>(
    before: &crate::Order<A>,
    after: &crate::Order<A>,
    at: UnixMillis,
) -> allot_domain::event::NewEvent {
    let side = |o: &crate::Order<A>| {
        serde_json::json!({
            "lines": o.lines.iter().map(|l| serde_json::json!({
                "product_id": l.product_id.get(),
                "quantity": l.quantity,
                "unit_price_minor": l.unit_price_minor,
                "warehouse_id": l.warehouse_id.get(),
                "reservation_id": l.reservation_id,
            })).collect::<Vec<_>>(),
            "coupon_code": o.coupon.as_ref().map(|c| c.code.as_str()),
            "discount_code": o.discount_code.as_ref().map(|c| c.code.as_str()),
            "promotion_hold_id": o.promotion_hold_id,
            "subtotal_minor": o.subtotal_minor,
            "shipping_minor": o.shipping_minor,
            "total_minor": o.total_minor,
        })
    };
    let payload = serde_json::json!({
        "order_id": after.id,
        "customer": after.customer,
        "before": side(before),
        "after": side(after),
        "total_delta_minor": after.total_minor - before.total_minor,
    });
    allot_domain::event::NewEvent::api(EventType::OrderUpdated, at, payload.to_string())
}

/// `DiscountCodeUsed`; `order` is the order that used it, if any.
pub(crate) fn discount_used_event(
    code: &str,
    order: Option<i64>,
    at: UnixMillis,
) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({"code": code, "order_id": order});
    allot_domain::event::NewEvent::api(EventType::DiscountCodeUsed, at, payload.to_string())
}

/// Counts per coupon type as a JSON object (`NONE` for untyped), types with none left out.
pub(crate) fn counts_by_type(names: &[&str], counts: &[i64]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, n) in names.iter().zip(counts) {
        if *n > 0 {
            map.insert((*name).to_owned(), serde_json::json!(n));
        }
    }
    serde_json::Value::Object(map)
}

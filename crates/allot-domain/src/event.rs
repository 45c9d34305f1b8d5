//! The event log's vocabulary (issue 8): one type per state change the system makes.
//!
//! Storage appends a [`NewEvent`] in the same savepoint or transaction as the change it
//! describes, so there is no event without its change and no change without its event. Bulk
//! operations (generating discount codes, uploading coupons, purging, expiring) append one
//! summary event with a count instead of one per row. The payload of each type is documented
//! in docs/EVENTS.md.

use crate::UnixMillis;

macro_rules! event_types {
    ($($variant:ident),+ $(,)?) => {
        /// What happened. `as_str` is the name stored and sent to consumers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant),+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => stringify!($variant)),+
                }
            }

            /// The type of a stored name, if it is one of ours.
            pub fn parse(name: &str) -> Option<EventType> {
                Self::ALL.iter().copied().find(|t| t.as_str() == name)
            }
        }
    };
}

event_types!(
    DiscountCodesGenerated,
    DiscountCodeUsed,
    DiscountCodeReturned,
    CampaignCreated,
    CouponIssued,
    CouponsUploaded,
    CouponAllocated,
    CouponRedeemed,
    CouponRedemptionReversed,
    CouponsPurged,
    SaleOpened,
    SaleCheckout,
    SalePurchased,
    ProductCreated,
    ProductUpdated,
    ProductDeleted,
    CategoryCreated,
    CategoryUpdated,
    CategoryDeleted,
    WarehouseCreated,
    WarehouseUpdated,
    WarehouseDeleted,
    ReorderPointSet,
    InventoryAdjusted,
    InventoryReserved,
    InventoryReleased,
    InventoryConfirmed,
    InventoryExpired,
    InventoryRestocked,
    InventoryThresholdReached,
    InventoryThresholdCleared,
    OrderCreated,
    OrderStatusChanged,
);

/// Who made a change. Requests are `api` until accounts exist; jobs are `system:<job>`.
pub const ACTOR_API: &str = "api";
pub const ACTOR_SALE_OPENER: &str = "system:sale-opener";
pub const ACTOR_RESERVATION_EXPIRY: &str = "system:reservation-expiry";
pub const ACTOR_COUPON_PURGE: &str = "system:coupon-purge";

/// An event to append: its type, time, actor and JSON payload (an object, as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventType,
    pub at: UnixMillis,
    pub actor: &'static str,
    pub payload: String,
}

impl NewEvent {
    /// An event of a request (`actor` = [`ACTOR_API`]).
    pub fn api(kind: EventType, at: UnixMillis, payload: String) -> NewEvent {
        NewEvent {
            kind,
            at,
            actor: ACTOR_API,
            payload,
        }
    }

    pub fn by(actor: &'static str, kind: EventType, at: UnixMillis, payload: String) -> NewEvent {
        NewEvent {
            kind,
            at,
            actor,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::OrderCreated.as_str(), "OrderCreated");
        assert_eq!(EventType::parse("Nope"), None);
    }
}

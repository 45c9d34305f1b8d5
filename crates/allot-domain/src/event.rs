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
    WebhookEndpointCreated,
    WebhookEndpointUpdated,
    WebhookEndpointDeleted,
    ProductCreated,
    ProductUpdated,
    ProductDeleted,
    ProductPriceChanged,
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
    InventoryChanged,
    OrderCreated,
    OrderStatusChanged,
    OrderCancelled,
    OrderUpdated,
    OrderPaymentReceived,
    OrderRefunded,
    OrderShipped,
    OrderFulfilled,
    ReturnRequested,
    ReturnApproved,
    ReturnRejected,
    ReturnReceived,
    NotificationQueued,
    NotificationSent,
    NotificationFailed,
    NotificationRead,
    NotificationTemplateCreated,
    NotificationTemplateUpdated,
    NotificationTemplateDeleted,
    NotificationRuleUpdated,
    NotificationPreferencesUpdated,
    EmailNotificationRequested,
    SmsNotificationRequested,
    PushNotificationRequested,
    NotificationDelivered,
    UserCreated,
    UserSignedUp,
    UserEmailVerified,
    UserRoleChanged,
    UserDeactivated,
    UserReactivated,
    UserPasswordChanged,
    UserPasswordReset,
    ApiKeyCreated,
    ApiKeyRevoked,
    PromotionCreated,
    PromotionUpdated,
    PromotionCodesBound,
    PromotionHeld,
    PromotionHoldReleased,
    PromotionHoldsExpired,
    PromotionRedeemed,
    PromotionRolledBack,
);

/// Who made a change. Requests are made by their principal (`user:<id>`, `api_key:<id>`, or
/// `anonymous` for open calls); jobs are `system:<job>`.
pub const ACTOR_API: &str = "api";
pub const ACTOR_SALE_OPENER: &str = "system:sale-opener";
pub const ACTOR_RESERVATION_EXPIRY: &str = "system:reservation-expiry";
pub const ACTOR_COUPON_PURGE: &str = "system:coupon-purge";
pub const ACTOR_NOTIFIER: &str = "system:notifier";
pub const ACTOR_PROMOTION_HOLD_EXPIRY: &str = "system:promotion-hold-expiry";

/// The principal behind a change, as recorded on its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A request without credentials (an open call).
    Anonymous,
    /// A signed-in user, by account id.
    User(i64),
    /// A service authenticated by an API key, by key id.
    ApiKey(i64),
    /// A call without a credential from a network of `open_admin_contracts_from` (an
    /// original's admin call, served as the original was on its internal network).
    TrustedNetwork,
    /// A job of the server; the name includes `system:` (e.g. [`ACTOR_SALE_OPENER`]).
    System(&'static str),
    /// A change made with no request or job context (storage used directly, e.g. by the admin
    /// CLI or a test). Every server path sets a context, so this marks a gap, not a principal.
    Unattributed,
}

impl Actor {
    /// The exact text of a stored actor, if it is one (the audit log's `actor` filter).
    pub fn parse(text: &str) -> Option<Actor> {
        let id = |rest: &str| rest.parse::<i64>().ok().filter(|n| *n >= 0);
        match text {
            "anonymous" => Some(Actor::Anonymous),
            "unattributed" => Some(Actor::Unattributed),
            "trusted_network" => Some(Actor::TrustedNetwork),
            ACTOR_SALE_OPENER => Some(Actor::System(ACTOR_SALE_OPENER)),
            ACTOR_RESERVATION_EXPIRY => Some(Actor::System(ACTOR_RESERVATION_EXPIRY)),
            ACTOR_COUPON_PURGE => Some(Actor::System(ACTOR_COUPON_PURGE)),
            ACTOR_NOTIFIER => Some(Actor::System(ACTOR_NOTIFIER)),
            ACTOR_PROMOTION_HOLD_EXPIRY => Some(Actor::System(ACTOR_PROMOTION_HOLD_EXPIRY)),
            _ => {
                if let Some(rest) = text.strip_prefix("user:") {
                    id(rest).map(Actor::User)
                } else if let Some(rest) = text.strip_prefix("api_key:") {
                    id(rest).map(Actor::ApiKey)
                } else {
                    None
                }
            }
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Anonymous => f.write_str("anonymous"),
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::System(name) => f.write_str(name),
            Actor::Unattributed => f.write_str("unattributed"),
            Actor::TrustedNetwork => f.write_str("trusted_network"),
        }
    }
}

/// Who made a change and from where: the principal and the client's IP address (none for
/// jobs). Small and `Copy`, so it travels with every write to where its events are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub actor: Actor,
    pub source: Option<std::net::IpAddr>,
}

impl Origin {
    pub const UNATTRIBUTED: Origin = Origin {
        actor: Actor::Unattributed,
        source: None,
    };

    /// Who an idempotency key belongs to: the principal (`user:<id>`, `api_key:<id>`); an
    /// anonymous caller (an open public contract) by its address, `anonymous@<ip>`, since
    /// it has nothing else to tell it from other anonymous callers (callers behind one NAT
    /// share their keys, as they share a rate limit).
    pub fn idempotency_owner(&self) -> String {
        match (self.actor, self.source) {
            (Actor::Anonymous, Some(ip)) => format!("anonymous@{ip}"),
            (Actor::Anonymous, None) => "anonymous@unknown".to_owned(),
            (actor, _) => actor.to_string(),
        }
    }

    /// A job's origin: `name` is one of the `system:` actors.
    pub const fn system(name: &'static str) -> Origin {
        Origin {
            actor: Actor::System(name),
            source: None,
        }
    }
}

/// An event to append: its type, time, JSON payload (an object, as text) and, when fixed by
/// whoever built it, its origin. Events of requests leave `origin` empty: the storage layer
/// fills in the origin of the operation that appends them (see `allot_storage::origin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventType,
    pub at: UnixMillis,
    pub origin: Option<Origin>,
    pub payload: String,
}

impl NewEvent {
    /// An event of the operation in progress: its origin is the operation's.
    pub fn api(kind: EventType, at: UnixMillis, payload: String) -> NewEvent {
        NewEvent {
            kind,
            at,
            origin: None,
            payload,
        }
    }

    /// An event with a fixed actor: a `system:` job's, or [`ACTOR_API`] for the operation's
    /// own origin (as [`NewEvent::api`]).
    pub fn by(actor: &'static str, kind: EventType, at: UnixMillis, payload: String) -> NewEvent {
        let origin = (actor != ACTOR_API).then_some(Origin::system(actor));
        NewEvent {
            kind,
            at,
            origin,
            payload,
        }
    }

    /// The same event, made by `origin` (a batch item's caller).
    pub fn made_by(mut self, origin: Option<Origin>) -> NewEvent {
        if self.origin.is_none() {
            self.origin = origin;
        }
        self
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

    /// Consumers read payloads from docs/EVENTS.md: a type missing there is a type nobody
    /// can use safely.
    #[test]
    fn every_type_is_documented_with_its_payload() {
        let doc = include_str!("../../../docs/EVENTS.md");
        for t in EventType::ALL {
            let name = format!("`{}`", t.as_str());
            // The first cell of a table row, alone or beside its twin (`ProductCreated`,
            // `ProductUpdated`).
            let documented = doc.lines().any(|line| {
                line.strip_prefix("| ")
                    .and_then(|row| row.split(" |").next())
                    .is_some_and(|cell| cell.split(", ").any(|n| n == name))
            });
            assert!(documented, "{} is not in docs/EVENTS.md", t.as_str());
        }
    }

    #[test]
    fn actors_print_and_parse_back() {
        for a in [
            Actor::Anonymous,
            Actor::User(7),
            Actor::ApiKey(3),
            Actor::System(ACTOR_SALE_OPENER),
            Actor::System(ACTOR_PROMOTION_HOLD_EXPIRY),
            Actor::Unattributed,
        ] {
            assert_eq!(Actor::parse(&a.to_string()), Some(a));
        }
        assert_eq!(Actor::User(42).to_string(), "user:42");
        assert_eq!(Actor::parse("user:x"), None);
        assert_eq!(Actor::parse("user:-1"), None);
        assert_eq!(Actor::parse("root"), None);
    }

    #[test]
    fn system_events_keep_their_actor_and_requests_take_the_operation_s() {
        let at = UnixMillis::from_millis(0);
        let job = NewEvent::by(
            ACTOR_COUPON_PURGE,
            EventType::CouponsPurged,
            at,
            "{}".into(),
        );
        let user = Origin {
            actor: Actor::User(1),
            source: None,
        };
        assert_eq!(
            job.made_by(Some(user)).origin,
            Some(Origin::system(ACTOR_COUPON_PURGE))
        );
        let api = NewEvent::by(ACTOR_API, EventType::CouponsPurged, at, "{}".into());
        assert_eq!(api.made_by(Some(user)).origin, Some(user));
    }
}

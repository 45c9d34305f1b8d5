//! Inventory rules: quantities, reservation lifetimes, which warehouse serves a reservation, and
//! when a low-stock alert is raised or cleared. Pure: the storage layer applies these inside
//! its transactions.

use std::time::Duration;

use crate::DomainError;

/// Most units one reservation or adjustment may move.
pub const QUANTITY_MAX: i64 = 1_000_000;
/// Most units a warehouse may hold of one product.
pub const ON_HAND_MAX: i64 = 1_000_000_000;
pub const RESERVATION_TTL_MIN: Duration = Duration::from_secs(1);
pub const RESERVATION_TTL_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const RESERVATION_TTL_DEFAULT: Duration = Duration::from_secs(15 * 60);
pub const HOLDER_MAX_CHARS: usize = 128;
pub const REASON_MAX_CHARS: usize = 500;

/// A positive number of units, at most [`QUANTITY_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if !(1..=QUANTITY_MAX).contains(&raw) {
            return Err(DomainError::invalid(
                "quantity",
                format!("must be between 1 and {QUANTITY_MAX}"),
            ));
        }
        Ok(Quantity(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// How long an unconfirmed reservation holds its stock before it is released by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationTtl(Duration);

impl ReservationTtl {
    pub fn from_secs(raw: i64) -> Result<Self, DomainError> {
        let min = RESERVATION_TTL_MIN.as_secs() as i64;
        let max = RESERVATION_TTL_MAX.as_secs() as i64;
        if !(min..=max).contains(&raw) {
            return Err(DomainError::invalid(
                "ttl_seconds",
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(ReservationTtl(Duration::from_secs(raw as u64)))
    }

    pub fn as_millis(self) -> i64 {
        self.0.as_millis() as i64
    }
}

impl Default for ReservationTtl {
    fn default() -> Self {
        ReservationTtl(RESERVATION_TTL_DEFAULT)
    }
}

/// Who holds a reservation: an order number, a cart, a service's own reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder(String);

impl Holder {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let too_long = raw.chars().count() > HOLDER_MAX_CHARS;
        let raw = raw.trim();
        if raw.is_empty() || too_long {
            return Err(DomainError::invalid(
                "holder",
                format!("must be 1 to {HOLDER_MAX_CHARS} characters"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "holder",
                "must not hold control characters",
            ));
        }
        Ok(Holder(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why stock was adjusted by hand: required, for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let too_long = raw.chars().count() > REASON_MAX_CHARS;
        let raw = raw.trim();
        if raw.is_empty() || too_long {
            return Err(DomainError::invalid(
                "reason",
                format!("must be 1 to {REASON_MAX_CHARS} characters"),
            ));
        }
        Ok(Reason(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A manual change of the stock on hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    /// On hand becomes exactly this (0 ..= ON_HAND_MAX).
    Set(i64),
    /// On hand moves by this (non-zero; negative takes stock out).
    Add(i64),
}

impl Adjustment {
    pub fn set(raw: i64) -> Result<Self, DomainError> {
        if !(0..=ON_HAND_MAX).contains(&raw) {
            return Err(DomainError::invalid(
                "quantity",
                format!("must be between 0 and {ON_HAND_MAX}"),
            ));
        }
        Ok(Adjustment::Set(raw))
    }

    pub fn add(raw: i64) -> Result<Self, DomainError> {
        if raw == 0 || raw.abs() > ON_HAND_MAX {
            return Err(DomainError::invalid(
                "quantity",
                format!("must be non-zero and between -{ON_HAND_MAX} and {ON_HAND_MAX}"),
            ));
        }
        Ok(Adjustment::Add(raw))
    }

    /// The change of on hand from `on_hand`; `None` when the result would leave the range or
    /// fall below what is reserved.
    pub fn delta(self, on_hand: i64, reserved: i64) -> Option<i64> {
        let after = match self {
            Adjustment::Set(v) => v,
            Adjustment::Add(d) => on_hand.checked_add(d)?,
        };
        (reserved..=ON_HAND_MAX)
            .contains(&after)
            .then_some(after - on_hand)
    }
}

/// A line of the append-only stock ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    StockIn,
    StockOut,
    Reservation,
    Release,
    Adjustment,
    Expiry,
}

impl MovementKind {
    pub const ALL: [MovementKind; 6] = [
        MovementKind::StockIn,
        MovementKind::StockOut,
        MovementKind::Reservation,
        MovementKind::Release,
        MovementKind::Adjustment,
        MovementKind::Expiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::StockIn => "stock_in",
            MovementKind::StockOut => "stock_out",
            MovementKind::Reservation => "reservation",
            MovementKind::Release => "release",
            MovementKind::Adjustment => "adjustment",
            MovementKind::Expiry => "expiry",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// A reservation's id, assigned by storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReservationId(i64);

impl ReservationId {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if raw < 1 {
            return Err(DomainError::invalid(
                "reservation_id",
                "must be a positive integer",
            ));
        }
        Ok(ReservationId(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Where a reservation stands. Only a pending one holds stock and may still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Pending,
    /// Taken out of stock (an order shipped it).
    Confirmed,
    Released,
    /// Its lifetime ran out before it was confirmed.
    Expired,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 4] = [
        ReservationStatus::Pending,
        ReservationStatus::Confirmed,
        ReservationStatus::Released,
        ReservationStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Pending => "pending",
            ReservationStatus::Confirmed => "confirmed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// When to reorder a product in a warehouse: low at or below `threshold` available, and how
/// many units to order then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reorder {
    threshold: i64,
    quantity: i64,
}

impl Reorder {
    pub fn parse(threshold: i64, quantity: i64) -> Result<Self, DomainError> {
        if !(0..=ON_HAND_MAX).contains(&threshold) {
            return Err(DomainError::invalid(
                "reorder_threshold",
                format!("must be between 0 and {ON_HAND_MAX}"),
            ));
        }
        if !(1..=ON_HAND_MAX).contains(&quantity) {
            return Err(DomainError::invalid(
                "reorder_quantity",
                format!("must be between 1 and {ON_HAND_MAX}"),
            ));
        }
        Ok(Reorder {
            threshold,
            quantity,
        })
    }

    pub fn threshold(self) -> i64 {
        self.threshold
    }

    pub fn quantity(self) -> i64 {
        self.quantity
    }
}

/// The stock of one product in one warehouse, as the allocation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level<W> {
    pub warehouse: W,
    pub on_hand: i64,
    pub reserved: i64,
}

impl<W> Level<W> {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Which warehouse serves a reservation of `quantity`: the preferred one if it has that much
/// available, else the one with the most available (ties: the first listed, i.e. the lowest
/// id when `levels` is ordered by id). A reservation is never split across warehouses: `None`
/// when no single warehouse can serve it whole.
pub fn choose_warehouse<W: Copy + PartialEq>(
    levels: &[Level<W>],
    preferred: Option<W>,
    quantity: Quantity,
) -> Option<W> {
    let q = quantity.get();
    if let Some(p) = preferred
        && let Some(level) = levels.iter().find(|l| l.warehouse == p)
        && level.available() >= q
    {
        return Some(p);
    }
    let mut best: Option<&Level<W>> = None;
    for level in levels {
        if best.is_none_or(|b| level.available() > b.available()) {
            best = Some(level);
        }
    }
    best.filter(|b| b.available() >= q).map(|b| b.warehouse)
}

/// What a change of available stock does to the low-stock alert of a product in a warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    /// Available fell to or below the threshold while no alert was open: raise one.
    Raise,
    /// Available is back above the threshold while an alert is open: clear it.
    Clear,
    Unchanged,
}

/// Low stock means available at or below the reorder threshold. An alert is raised once when
/// stock crosses into low, stays open through later changes, and is cleared when stock is back
/// above. No threshold set: never low.
pub fn alert_change(available: i64, threshold: Option<i64>, alert_open: bool) -> AlertChange {
    let low = threshold.is_some_and(|t| available <= t);
    match (low, alert_open) {
        (true, false) => AlertChange::Raise,
        (false, true) => AlertChange::Clear,
        _ => AlertChange::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(warehouse: u8, on_hand: i64, reserved: i64) -> Level<u8> {
        Level {
            warehouse,
            on_hand,
            reserved,
        }
    }

    #[test]
    fn quantities_and_lifetimes_have_bounds() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-3).is_err());
        assert!(Quantity::parse(QUANTITY_MAX + 1).is_err());
        assert_eq!(Quantity::parse(5).unwrap().get(), 5);
        assert!(ReservationTtl::from_secs(0).is_err());
        assert!(ReservationTtl::from_secs(8 * 24 * 3600).is_err());
        assert_eq!(ReservationTtl::from_secs(2).unwrap().as_millis(), 2_000);
        assert!(Holder::parse("  ").is_err());
        assert!(Holder::parse(&"h".repeat(129)).is_err());
        assert_eq!(Holder::parse(" order-1 ").unwrap().as_str(), "order-1");
        assert!(Reason::parse("").is_err());
    }

    #[test]
    fn adjustments_never_go_below_reserved_or_above_the_maximum() {
        assert_eq!(Adjustment::set(10).unwrap().delta(4, 2), Some(6));
        assert_eq!(Adjustment::set(1).unwrap().delta(4, 2), None);
        assert_eq!(Adjustment::add(-2).unwrap().delta(4, 2), Some(-2));
        assert_eq!(Adjustment::add(-3).unwrap().delta(4, 2), None);
        assert_eq!(Adjustment::add(ON_HAND_MAX).unwrap().delta(1, 0), None);
        assert!(Adjustment::add(0).is_err());
        assert!(Adjustment::set(-1).is_err());
    }

    #[test]
    fn the_preferred_warehouse_serves_when_it_can_else_the_one_with_most_available() {
        let levels = [level(1, 10, 8), level(2, 30, 0), level(3, 40, 5)];
        let q = |n| Quantity::parse(n).unwrap();
        assert_eq!(choose_warehouse(&levels, Some(1), q(2)), Some(1));
        assert_eq!(choose_warehouse(&levels, Some(1), q(3)), Some(3));
        assert_eq!(choose_warehouse(&levels, None, q(35)), Some(3));
        // Never split: 36 is available in all but not in any one warehouse.
        assert_eq!(choose_warehouse(&levels, None, q(36)), None);
        assert_eq!(choose_warehouse(&levels, Some(9), q(1)), Some(3));
        assert_eq!(choose_warehouse::<u8>(&[], None, q(1)), None);
        let tie = [level(4, 5, 0), level(5, 5, 0)];
        assert_eq!(choose_warehouse(&tie, None, q(5)), Some(4));
    }

    #[test]
    fn an_alert_is_raised_once_on_the_way_down_and_cleared_on_the_way_up() {
        assert_eq!(alert_change(5, Some(5), false), AlertChange::Raise);
        assert_eq!(alert_change(3, Some(5), true), AlertChange::Unchanged);
        assert_eq!(alert_change(6, Some(5), true), AlertChange::Clear);
        assert_eq!(alert_change(6, Some(5), false), AlertChange::Unchanged);
        assert_eq!(alert_change(0, None, false), AlertChange::Unchanged);
        assert_eq!(alert_change(0, None, true), AlertChange::Clear);
    }

    #[test]
    fn reservation_ids_statuses_and_reorder_points_parse() {
        assert!(ReservationId::parse(0).is_err());
        assert_eq!(ReservationId::parse(7).unwrap().get(), 7);
        for s in ReservationStatus::ALL {
            assert_eq!(ReservationStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReservationStatus::parse("lost"), None);
        assert_eq!(Reorder::parse(5, 20).unwrap().threshold(), 5);
        assert_eq!(
            Reorder::parse(-1, 20).unwrap_err().field(),
            "reorder_threshold"
        );
        assert_eq!(
            Reorder::parse(5, 0).unwrap_err().field(),
            "reorder_quantity"
        );
    }

    #[test]
    fn movement_kinds_round_trip() {
        for k in MovementKind::ALL {
            assert_eq!(MovementKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(MovementKind::parse("theft"), None);
    }
}

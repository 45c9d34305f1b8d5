//! Uploaded coupons: codes a shop printed or got from partners, handed to users and redeemed.

use std::fmt;

use crate::{DomainError, UnixMillis};

pub const CODE_MAX_CHARS: usize = 64;
/// Most coupons one upload request may hold.
pub const UPLOAD_MAX: usize = 50_000;
/// Largest flat discount, in minor units (ten billion of the currency's major unit).
pub const FLAT_AMOUNT_MAX: i64 = 1_000_000_000_000;

/// An uploaded coupon's code: 1 to 64 characters from `A-Z 0-9 - _`. Case-insensitive: input
/// is upper-cased, so `spring-10` and `SPRING-10` are one code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadedCode(String);

impl UploadedCode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.is_empty() || raw.chars().count() > CODE_MAX_CHARS {
            return Err(DomainError::invalid(
                "code",
                format!("must be 1 to {CODE_MAX_CHARS} characters"),
            ));
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(DomainError::invalid(
                "code",
                "may only hold the letters A-Z, digits, '-' and '_'",
            ));
        }
        Ok(UploadedCode(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CouponType {
    Free,
    Standard,
    Megadeal,
}

impl CouponType {
    pub const ALL: [CouponType; 3] = [CouponType::Free, CouponType::Standard, CouponType::Megadeal];

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "FREE" => Ok(CouponType::Free),
            "STANDARD" => Ok(CouponType::Standard),
            "MEGADEAL" => Ok(CouponType::Megadeal),
            _ => Err(DomainError::invalid(
                "type",
                "must be FREE, STANDARD, MEGADEAL or null",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CouponType::Free => "FREE",
            CouponType::Standard => "STANDARD",
            CouponType::Megadeal => "MEGADEAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountKind {
    Flat,
    Percentage,
}

impl DiscountKind {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "FLAT" => Ok(DiscountKind::Flat),
            "PERCENTAGE" => Ok(DiscountKind::Percentage),
            _ => Err(DomainError::invalid(
                "discount_kind",
                "must be FLAT or PERCENTAGE",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiscountKind::Flat => "FLAT",
            DiscountKind::Percentage => "PERCENTAGE",
        }
    }
}

/// A discount: a flat amount in minor units of a currency, or a percentage from 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discount {
    kind: DiscountKind,
    amount: i64,
}

impl Discount {
    pub fn new(kind: DiscountKind, amount: i64) -> Result<Self, DomainError> {
        let ok = match kind {
            DiscountKind::Flat => (0..=FLAT_AMOUNT_MAX).contains(&amount),
            DiscountKind::Percentage => (0..=100).contains(&amount),
        };
        if !ok {
            let range = match kind {
                DiscountKind::Flat => format!("0 to {FLAT_AMOUNT_MAX} minor units for FLAT"),
                DiscountKind::Percentage => "0 to 100 for PERCENTAGE".to_owned(),
            };
            return Err(DomainError::invalid(
                "discount_amount",
                format!("must be {range}"),
            ));
        }
        Ok(Discount { kind, amount })
    }

    pub fn kind(self) -> DiscountKind {
        self.kind
    }

    pub fn amount(self) -> i64 {
        self.amount
    }
}

/// The most uses a coupon may have: what a 32-bit signed column (PostgreSQL's `INTEGER`) holds,
/// so both backends store every value the API takes.
pub const MAX_USES_MAX: u32 = 2_147_483_647;

/// Most times a coupon may be redeemed: 1 to [`MAX_USES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxUses(u32);

impl MaxUses {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        match u32::try_from(raw) {
            Ok(n) if (1..=MAX_USES_MAX).contains(&n) => Ok(MaxUses(n)),
            _ => Err(DomainError::invalid(
                "max_uses",
                format!("must be a whole number from 1 to {MAX_USES_MAX}"),
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// What a coupon is now, as far as redeeming it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponState<'a> {
    pub expires_at: UnixMillis,
    pub uses: u32,
    pub max_uses: u32,
    pub allocated_to: Option<&'a str>,
    /// The promotion the coupon is bound to, if any: its uses are then the promotion's to
    /// spend (holds and their redemptions), not the coupon API's or an order's.
    pub bound_to: Option<i64>,
}

/// Why a coupon cannot be redeemed by this user now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemRefusal {
    Expired,
    Exhausted,
    NotOwner,
    /// Bound to this promotion: used through it only, so that no use is counted twice.
    Bound {
        promotion: i64,
    },
}

/// The rule for redeeming: not expired, not bound to a promotion, uses left, and, when
/// allocated, allocated to this user (an unallocated coupon may be redeemed by anyone holding
/// its code, up to its maximum uses). Checked in this order, so a client hears the most basic
/// reason first.
pub fn check_redeemable(
    state: &CouponState<'_>,
    user: &str,
    now: UnixMillis,
) -> Result<(), RedeemRefusal> {
    if now >= state.expires_at {
        return Err(RedeemRefusal::Expired);
    }
    if let Some(promotion) = state.bound_to {
        return Err(RedeemRefusal::Bound { promotion });
    }
    if state.uses >= state.max_uses {
        return Err(RedeemRefusal::Exhausted);
    }
    if state.allocated_to.is_some_and(|owner| owner != user) {
        return Err(RedeemRefusal::NotOwner);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_case_insensitive_and_from_the_safe_set() {
        assert_eq!(
            UploadedCode::parse(" spring-10_a ").unwrap().as_str(),
            "SPRING-10_A"
        );
        for bad in ["", "a b", "ä", "x;drop", &"A".repeat(65)] {
            assert!(UploadedCode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UploadedCode::parse(&"A".repeat(64)).is_ok());
    }

    #[test]
    fn discounts_and_uses_are_bounded() {
        assert!(Discount::new(DiscountKind::Percentage, 100).is_ok());
        assert!(Discount::new(DiscountKind::Percentage, 101).is_err());
        assert!(Discount::new(DiscountKind::Flat, -1).is_err());
        assert!(Discount::new(DiscountKind::Flat, 5_000).is_ok());
        assert!(MaxUses::parse(0).is_err());
        assert!(MaxUses::parse(1).is_ok());
        assert!(MaxUses::parse(i64::from(MAX_USES_MAX)).is_ok());
        assert!(MaxUses::parse(i64::from(MAX_USES_MAX) + 1).is_err());
    }

    #[test]
    fn redeem_rule_order() {
        let now = UnixMillis::from_millis(1_000);
        let state = |expires, uses, owner| CouponState {
            expires_at: UnixMillis::from_millis(expires),
            uses,
            max_uses: 2,
            allocated_to: owner,
            bound_to: None,
        };
        assert_eq!(check_redeemable(&state(2_000, 0, None), "u", now), Ok(()));
        assert_eq!(
            check_redeemable(&state(1_000, 0, None), "u", now),
            Err(RedeemRefusal::Expired)
        );
        assert_eq!(
            check_redeemable(&state(2_000, 2, None), "u", now),
            Err(RedeemRefusal::Exhausted)
        );
        assert_eq!(
            check_redeemable(&state(2_000, 0, Some("v")), "u", now),
            Err(RedeemRefusal::NotOwner)
        );
        assert_eq!(
            check_redeemable(&state(2_000, 1, Some("u")), "u", now),
            Ok(())
        );
        let bound = CouponState {
            bound_to: Some(7),
            ..state(2_000, 0, Some("u"))
        };
        assert_eq!(
            check_redeemable(&bound, "u", now),
            Err(RedeemRefusal::Bound { promotion: 7 })
        );
    }
}

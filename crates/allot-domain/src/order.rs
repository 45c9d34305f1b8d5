//! Orders: the status workflow as a state machine, and prices computed in integer minor units.
//!
//! ```text
//!   pending ──confirm──▶ confirmed ──fulfil──▶ fulfilled ──deliver──▶ delivered
//!      │                    │                                          │
//!      └──────cancel────────┴──▶ cancelled              request return ▼
//!                                                           return_requested ──▶ returned
//! ```
//!
//! Confirming (paid) turns the order's reservations into stock out; cancelling releases them
//! and gives back the coupon or code use; a return puts the stock back.

use std::fmt;

use crate::DomainError;
use crate::coupon::{Discount, DiscountKind};

/// Most lines one order may hold.
pub const LINES_MAX: usize = 100;
/// Most minor units an order may total (keeps every sum far from overflow).
pub const ORDER_TOTAL_MAX: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Fulfilled,
    Delivered,
    Cancelled,
    ReturnRequested,
    Returned,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Fulfilled,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::ReturnRequested,
        OrderStatus::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::ReturnRequested => "return_requested",
            OrderStatus::Returned => "returned",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                DomainError::invalid(
                    "status",
                    "must be one of pending, confirmed, fulfilled, delivered, cancelled, \
                     return_requested, returned",
                )
            })
    }

    /// The states this one may move to.
    pub fn next(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Pending => &[Confirmed, Cancelled],
            Confirmed => &[Fulfilled, Cancelled],
            Fulfilled => &[Delivered],
            Delivered => &[ReturnRequested],
            ReturnRequested => &[Returned],
            Cancelled | Returned => &[],
        }
    }

    /// The move to `to`, if the workflow allows it.
    pub fn transition(self, to: OrderStatus) -> Result<Transition, IllegalTransition> {
        if !self.next().contains(&to) {
            return Err(IllegalTransition { from: self, to });
        }
        use OrderStatus::*;
        Ok(match (self, to) {
            (Pending, Confirmed) => Transition::ConsumeReservations,
            (Pending, Cancelled) => Transition::ReleaseReservations,
            (Confirmed, Cancelled) => Transition::RestockConfirmed,
            (ReturnRequested, Returned) => Transition::Restock,
            _ => Transition::StatusOnly,
        })
    }

    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a legal transition does besides changing the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Paid: the reservations become stock out.
    ConsumeReservations,
    /// Cancelled before payment: reservations released, codes given back.
    ReleaseReservations,
    /// Cancelled after payment: the stock taken out goes back, codes given back.
    RestockConfirmed,
    /// Returned: the stock goes back (to a chosen warehouse).
    Restock,
    StatusOnly,
}

impl Transition {
    /// Whether the order's coupon and discount-code uses are given back.
    pub fn gives_codes_back(self) -> bool {
        matches!(
            self,
            Transition::ReleaseReservations | Transition::RestockConfirmed
        )
    }
}

/// A move the workflow does not allow; names both states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// A priced line: unit price times quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricedLine {
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub line_total_minor: i64,
}

/// An order's prices, all in minor units of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub lines: Vec<PricedLine>,
    pub subtotal_minor: i64,
    /// Each discount's amount, in the order given.
    pub discounts_minor: Vec<i64>,
    pub total_minor: i64,
}

/// Prices an order: line totals, then each discount in turn on what is left (a flat amount,
/// or a percentage of the running total rounded down to a whole minor unit), never more than
/// what is left, so the total never goes below zero. Fails if a sum passes
/// [`ORDER_TOTAL_MAX`].
pub fn price(lines: &[(i64, i64)], discounts: &[Discount]) -> Result<Pricing, DomainError> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut subtotal: i64 = 0;
    for &(unit, quantity) in lines {
        let line_total = unit
            .checked_mul(quantity)
            .filter(|t| *t <= ORDER_TOTAL_MAX)
            .ok_or_else(too_large)?;
        subtotal = subtotal
            .checked_add(line_total)
            .filter(|t| *t <= ORDER_TOTAL_MAX)
            .ok_or_else(too_large)?;
        priced.push(PricedLine {
            unit_price_minor: unit,
            quantity,
            line_total_minor: line_total,
        });
    }
    let mut total = subtotal;
    let mut amounts = Vec::with_capacity(discounts.len());
    for d in discounts {
        let off = match d.kind() {
            DiscountKind::Flat => d.amount(),
            // total <= 10^12 and amount <= 100: no overflow.
            DiscountKind::Percentage => total * d.amount() / 100,
        }
        .min(total);
        total -= off;
        amounts.push(off);
    }
    Ok(Pricing {
        lines: priced,
        subtotal_minor: subtotal,
        discounts_minor: amounts,
        total_minor: total,
    })
}

fn too_large() -> DomainError {
    DomainError::invalid(
        "lines",
        format!("the order would total more than {ORDER_TOTAL_MAX} minor units"),
    )
}

/// Most characters of one shipping address field.
pub const ADDRESS_FIELD_MAX_CHARS: usize = 200;

/// Where an order ships: every field trimmed and 1 to [`ADDRESS_FIELD_MAX_CHARS`] characters
/// (`line2` optional), `country` an ISO 3166 alpha-2 code in capitals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

fn address_field(raw: &str, field: &'static str) -> Result<String, DomainError> {
    let v = raw.trim();
    if v.is_empty() || raw.chars().count() > ADDRESS_FIELD_MAX_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {ADDRESS_FIELD_MAX_CHARS} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not hold control characters",
        ));
    }
    Ok(v.to_owned())
}

impl ShippingAddress {
    pub fn parse(
        name: &str,
        line1: &str,
        line2: Option<&str>,
        city: &str,
        postal_code: &str,
        country: &str,
    ) -> Result<Self, DomainError> {
        let c = country.trim().to_ascii_uppercase();
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DomainError::invalid(
                "shipping_address.country",
                "must be a two-letter country code",
            ));
        }
        Ok(ShippingAddress {
            name: address_field(name, "shipping_address.name")?,
            line1: address_field(line1, "shipping_address.line1")?,
            line2: line2
                .filter(|l| !l.trim().is_empty())
                .map(|l| address_field(l, "shipping_address.line2"))
                .transpose()?,
            city: address_field(city, "shipping_address.city")?,
            postal_code: address_field(postal_code, "shipping_address.postal_code")?,
            country: c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn the_workflow_allows_exactly_its_arrows() {
        let allowed = [
            (Pending, Confirmed),
            (Pending, Cancelled),
            (Confirmed, Fulfilled),
            (Confirmed, Cancelled),
            (Fulfilled, Delivered),
            (Delivered, ReturnRequested),
            (ReturnRequested, Returned),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                let legal = allowed.contains(&(from, to));
                assert_eq!(from.transition(to).is_ok(), legal, "{from} -> {to}");
                if !legal {
                    let e = from.transition(to).unwrap_err();
                    assert!(e.to_string().contains(from.as_str()));
                    assert!(e.to_string().contains(to.as_str()));
                }
            }
        }
        assert_eq!(
            Pending.transition(Confirmed),
            Ok(Transition::ConsumeReservations)
        );
        assert!(Confirmed.transition(Cancelled).unwrap().gives_codes_back());
        assert!(
            !ReturnRequested
                .transition(Returned)
                .unwrap()
                .gives_codes_back()
        );
        assert!(Cancelled.is_final() && Returned.is_final() && !Delivered.is_final());
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(OrderStatus::parse("shipped").is_err());
    }

    #[test]
    fn prices_are_exact_integers_and_never_below_zero() {
        let flat = |n| Discount::new(DiscountKind::Flat, n).unwrap();
        let pct = |n| Discount::new(DiscountKind::Percentage, n).unwrap();
        let p = price(&[(1_999, 3), (500, 1)], &[pct(10)]).unwrap();
        assert_eq!(p.subtotal_minor, 6_497);
        assert_eq!(p.discounts_minor, vec![649]);
        assert_eq!(p.total_minor, 5_848);
        let p = price(&[(1_000, 1)], &[flat(700), flat(700)]).unwrap();
        assert_eq!(p.discounts_minor, vec![700, 300]);
        assert_eq!(p.total_minor, 0);
        let p = price(&[(1_000, 2)], &[pct(100)]).unwrap();
        assert_eq!(p.total_minor, 0);
        assert!(price(&[(ORDER_TOTAL_MAX, 2)], &[]).is_err());
        assert!(price(&[(i64::MAX, 2)], &[]).is_err());
    }

    #[test]
    fn addresses_are_trimmed_and_bounded() {
        let a =
            ShippingAddress::parse(" Ada ", "1 Road", Some(" "), "Paris", "75001", "fr").unwrap();
        assert_eq!(
            (a.name.as_str(), a.line2, a.country.as_str()),
            ("Ada", None, "FR")
        );
        assert!(ShippingAddress::parse("", "1 Road", None, "Paris", "75001", "FR").is_err());
        assert!(ShippingAddress::parse("Ada", "1 Road", None, "Paris", "75001", "FRA").is_err());
        let long = "x".repeat(ADDRESS_FIELD_MAX_CHARS + 1);
        assert!(ShippingAddress::parse("Ada", &long, None, "Paris", "75001", "FR").is_err());
    }
}

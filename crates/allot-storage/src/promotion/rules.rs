//! Promotions' rules, decided once for both backends: what fits a limit, how each move of a
//! hold changes the counters, and which limit a new spec would put below what is already
//! spent. Each backend reads the counters its own way (SQLite inside its single writer,
//! PostgreSQL under row locks) and writes down what these say. The tables' CHECK constraints
//! hold the same bounds, so a mistake here fails a transaction rather than overspending.

use std::collections::BTreeMap;

use allot_domain::promotion::{LimitsSpec, PromotionId, Reason};

use super::{CodeSource, HeldPromotion, HoldStatus, PromotionRefusal, Totals};

/// One promotion's limits, as copied to its row (and its per-customer ones to each customer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Limits {
    pub budget_minor: Option<i64>,
    pub redemptions_max: Option<i64>,
    pub per_customer_budget_minor: Option<i64>,
    pub per_customer_redemptions_max: Option<i64>,
}

impl Limits {
    pub fn of(spec: &LimitsSpec) -> Limits {
        Limits {
            budget_minor: spec.budget_minor,
            redemptions_max: spec.redemptions_max,
            per_customer_budget_minor: spec.per_customer_budget_minor,
            per_customer_redemptions_max: spec.per_customer_redemptions_max,
        }
    }

    fn has_customer_limits(&self) -> bool {
        self.per_customer_budget_minor.is_some() || self.per_customer_redemptions_max.is_some()
    }
}

/// Whether one more redemption of `amount_minor` fits the promotion's limits, with its usage
/// (in all, and of the hold's customer if any) as read under the hold's transaction. The
/// first limit it would pass, in the order the engine reports them.
pub(crate) fn fits(
    limits: &Limits,
    totals: &Totals,
    customer: Option<&Totals>,
    amount_minor: i64,
) -> Result<(), Reason> {
    if limits.has_customer_limits() {
        let Some(c) = customer else {
            return Err(Reason::CustomerRequired);
        };
        if limits
            .per_customer_redemptions_max
            .is_some_and(|max| c.redemptions + c.held + 1 > max)
        {
            return Err(Reason::CustomerLimitReached);
        }
        if limits
            .per_customer_budget_minor
            .is_some_and(|max| c.redeemed_minor + c.held_minor + amount_minor > max)
        {
            return Err(Reason::CustomerBudgetExhausted);
        }
    }
    if limits
        .redemptions_max
        .is_some_and(|max| totals.redemptions + totals.held + 1 > max)
    {
        return Err(Reason::RedemptionLimitReached);
    }
    if limits
        .budget_minor
        .is_some_and(|max| totals.redeemed_minor + totals.held_minor + amount_minor > max)
    {
        return Err(Reason::BudgetExhausted);
    }
    Ok(())
}

/// What a hold decides on about one promotion, read under the hold's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PromotionState {
    pub limits: Limits,
    pub active: bool,
    pub totals: Totals,
    /// The hold's customer's counters; none when it has no row yet (or no customer).
    pub customer: Option<Totals>,
}

/// Whether a hold's items all fit: each promotion it spends exists, is active, and fits its
/// limits with what the earlier items took (in promotion id order, as PostgreSQL locks them).
/// `states` holds every promotion of the items (none: it does not exist).
pub(crate) fn check_hold(
    items: &[HeldPromotion],
    mut states: BTreeMap<PromotionId, Option<PromotionState>>,
    has_customer: bool,
) -> Result<(), PromotionRefusal> {
    let mut order: Vec<&HeldPromotion> = items.iter().collect();
    order.sort_by_key(|i| i.promotion);
    for item in order {
        let promotion = item.promotion;
        let stale = |reason| PromotionRefusal::Stale { promotion, reason };
        let Some(Some(state)) = states.get_mut(&promotion) else {
            return Err(stale(Reason::Inactive));
        };
        if !state.active {
            return Err(stale(Reason::Inactive));
        }
        let customer = has_customer.then(|| state.customer.unwrap_or_default());
        fits(
            &state.limits,
            &state.totals,
            customer.as_ref(),
            item.amount_minor,
        )
        .map_err(stale)?;
        let d = Move::Hold.deltas(item.amount_minor);
        super::add(&mut state.totals, &d);
        if let Some(mut c) = customer {
            super::add(&mut c, &d);
            state.customer = Some(c);
        }
    }
    Ok(())
}

/// The limit of a new spec that is below what the promotion has already held and redeemed
/// (in all; `customer_most` is the most any one customer has), named by its field.
pub(crate) fn limit_below_usage(
    limits: &Limits,
    totals: &Totals,
    customer_most: &Totals,
) -> Option<&'static str> {
    let below = |limit: Option<i64>, used: i64| limit.is_some_and(|max| used > max);
    if below(
        limits.budget_minor,
        totals.redeemed_minor + totals.held_minor,
    ) {
        Some("limits.budget_minor")
    } else if below(limits.redemptions_max, totals.redemptions + totals.held) {
        Some("limits.redemptions_max")
    } else if below(
        limits.per_customer_budget_minor,
        customer_most.redeemed_minor + customer_most.held_minor,
    ) {
        Some("limits.per_customer_budget_minor")
    } else if below(
        limits.per_customer_redemptions_max,
        customer_most.redemptions + customer_most.held,
    ) {
        Some("limits.per_customer_redemptions_max")
    } else {
        None
    }
}

/// How a hold's move changes the counters of each promotion it spends (and of its customer),
/// per item of `amount_minor`, and its codes' uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Deltas {
    pub held_minor: i64,
    pub held: i64,
    pub redeemed_minor: i64,
    pub redemptions: i64,
    /// +1: a use taken; -1: given back; 0: unchanged.
    pub code_uses: i64,
}

/// A move of a hold from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// Created: held.
    Hold,
    /// Held -> redeemed: what was held is now spent; the code stays used.
    Redeem,
    /// Created redeemed (a one-call redemption): spent at once, the code used.
    HoldAndRedeem,
    /// Held -> released or expired: what was held is given back, the code's use too.
    Release,
    /// Redeemed -> rolled back: what was spent is given back, the code's use too.
    RollBack,
}

impl Move {
    pub fn deltas(self, amount_minor: i64) -> Deltas {
        match self {
            Move::Hold => Deltas {
                held_minor: amount_minor,
                held: 1,
                redeemed_minor: 0,
                redemptions: 0,
                code_uses: 1,
            },
            Move::Redeem => Deltas {
                held_minor: -amount_minor,
                held: -1,
                redeemed_minor: amount_minor,
                redemptions: 1,
                code_uses: 0,
            },
            Move::HoldAndRedeem => Deltas {
                held_minor: 0,
                held: 0,
                redeemed_minor: amount_minor,
                redemptions: 1,
                code_uses: 1,
            },
            Move::Release => Deltas {
                held_minor: -amount_minor,
                held: -1,
                redeemed_minor: 0,
                redemptions: 0,
                code_uses: -1,
            },
            Move::RollBack => Deltas {
                held_minor: 0,
                held: 0,
                redeemed_minor: -amount_minor,
                redemptions: -1,
                code_uses: -1,
            },
        }
    }
}

/// What an operation asked of a hold in `status` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Move it to this status, changing the counters so.
    Apply(Move, HoldStatus),
    /// Nothing to change: answer the hold as it is.
    AsItIs,
    /// Refused: the hold is not held.
    NotHeld,
    /// Refused: held, but past its time.
    Expired,
}

/// Redeeming: only a held hold before its time.
pub(crate) fn redeem_step(status: HoldStatus, expired: bool) -> Step {
    match status {
        HoldStatus::Held if expired => Step::Expired,
        HoldStatus::Held => Step::Apply(Move::Redeem, HoldStatus::Redeemed),
        _ => Step::NotHeld,
    }
}

/// Releasing: only a held hold (a late release of an expired-but-not-yet-swept hold is
/// still a release: it gives back the same).
pub(crate) fn release_step(status: HoldStatus) -> Step {
    match status {
        HoldStatus::Held => Step::Apply(Move::Release, HoldStatus::Released),
        _ => Step::NotHeld,
    }
}

/// Rolling back gives back whatever the hold took, exactly once: a redeemed hold is rolled
/// back; a held one is released (what it holds is given back the same way, so a caller
/// unsure whether it redeemed can always call this); a hold already rolled back, released or
/// expired has nothing left to give and is answered as it is.
pub(crate) fn roll_back_step(status: HoldStatus) -> Step {
    match status {
        HoldStatus::Redeemed => Step::Apply(Move::RollBack, HoldStatus::RolledBack),
        HoldStatus::Held => Step::Apply(Move::Release, HoldStatus::Released),
        HoldStatus::RolledBack | HoldStatus::Released | HoldStatus::Expired => Step::AsItIs,
    }
}

/// Whether a code bound to a promotion can be used by `customer` now, from what the database
/// holds about it. Every source counts its uses through the promotion against its own
/// maximum; a coupon also keeps its own expiry, owner and uses; a discount code must not have
/// been used through the discount-code API; a campaign's code issued to someone is theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeFacts {
    pub source: CodeSource,
    /// Uses through promotions and their maximum (a campaign code's row may not exist yet).
    pub uses: i64,
    pub max_uses: i64,
    /// A coupon: its expiry, its own uses and maximum, whom it is allocated to.
    pub coupon: Option<CouponFacts>,
    /// A discount code: used outside promotions (or gone).
    pub discount_used: bool,
    /// A campaign code: whom it was issued to.
    pub issued_to: Option<String>,
}

impl CodeFacts {
    /// A code of a bound campaign: one use, counted in its row once it has one (made on its
    /// first hold; none yet reads as unused).
    pub fn campaign(uses: i64, issued_to: Option<String>) -> CodeFacts {
        CodeFacts {
            source: CodeSource::Campaign,
            uses,
            max_uses: 1,
            coupon: None,
            discount_used: false,
            issued_to,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CouponFacts {
    pub expires_at_ms: i64,
    pub uses: i64,
    pub max_uses: i64,
    pub allocated_to: Option<String>,
}

pub(crate) fn code_usable(
    facts: &CodeFacts,
    customer: Option<&str>,
    now_ms: i64,
) -> Result<(), Reason> {
    if facts.uses >= facts.max_uses {
        return Err(Reason::CodeUnusable);
    }
    let owner_ok = |owner: &Option<String>| owner.as_deref().is_none_or(|o| Some(o) == customer);
    let usable = match facts.source {
        CodeSource::Coupon => facts.coupon.as_ref().is_some_and(|c| {
            now_ms < c.expires_at_ms && c.uses < c.max_uses && owner_ok(&c.allocated_to)
        }),
        CodeSource::DiscountCode => !facts.discount_used,
        CodeSource::Campaign => owner_ok(&facts.issued_to),
    };
    if usable {
        Ok(())
    } else {
        Err(Reason::CodeUnusable)
    }
}

/// What the hold did to counters, for events: its items' promotions, codes and amounts.
pub(crate) fn items_json(items: &[super::HeldPromotion]) -> serde_json::Value {
    items
        .iter()
        .map(|i| {
            serde_json::json!({
                "promotion_id": i.promotion.get(),
                "code": i.code.as_ref().map(|(c, _)| c.as_str()),
                "source": i.code.as_ref().map(|(_, s)| s.as_str()),
                "amount_minor": i.amount_minor,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(redeemed_minor: i64, redemptions: i64, held_minor: i64, held: i64) -> Totals {
        Totals {
            redeemed_minor,
            redemptions,
            held_minor,
            held,
        }
    }

    #[test]
    fn a_redemption_fits_only_within_every_limit_held_amounts_included() {
        let limits = Limits {
            budget_minor: Some(1_000),
            redemptions_max: Some(3),
            ..Limits::default()
        };
        assert_eq!(fits(&limits, &totals(600, 1, 300, 1), None, 100), Ok(()));
        assert_eq!(
            fits(&limits, &totals(600, 1, 300, 1), None, 101),
            Err(Reason::BudgetExhausted)
        );
        assert_eq!(
            fits(&limits, &totals(0, 2, 0, 1), None, 1),
            Err(Reason::RedemptionLimitReached)
        );
        assert_eq!(
            fits(&Limits::default(), &totals(i64::MAX / 2, 9, 0, 0), None, 5),
            Ok(())
        );
    }

    #[test]
    fn per_customer_limits_need_a_customer_and_count_theirs_only() {
        let limits = Limits {
            per_customer_budget_minor: Some(500),
            per_customer_redemptions_max: Some(2),
            ..Limits::default()
        };
        let all = totals(10_000, 50, 0, 0);
        assert_eq!(fits(&limits, &all, None, 1), Err(Reason::CustomerRequired));
        assert_eq!(
            fits(&limits, &all, Some(&totals(200, 1, 0, 0)), 300),
            Ok(())
        );
        assert_eq!(
            fits(&limits, &all, Some(&totals(200, 0, 100, 1)), 201),
            Err(Reason::CustomerBudgetExhausted)
        );
        assert_eq!(
            fits(&limits, &all, Some(&totals(0, 1, 0, 1)), 1),
            Err(Reason::CustomerLimitReached)
        );
    }

    #[test]
    fn a_limit_below_what_is_spent_is_named() {
        let limits = Limits {
            budget_minor: Some(500),
            per_customer_redemptions_max: Some(1),
            ..Limits::default()
        };
        assert_eq!(
            limit_below_usage(&limits, &totals(400, 4, 101, 1), &Totals::default()),
            Some("limits.budget_minor")
        );
        assert_eq!(
            limit_below_usage(&limits, &totals(400, 4, 100, 1), &totals(0, 1, 0, 1)),
            Some("limits.per_customer_redemptions_max")
        );
        assert_eq!(
            limit_below_usage(&limits, &totals(400, 4, 100, 1), &totals(0, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn every_move_balances_what_it_takes_and_gives_back() {
        let sum = |moves: &[Move]| {
            moves.iter().fold((0, 0, 0, 0, 0), |a, m| {
                let d = m.deltas(70);
                (
                    a.0 + d.held_minor,
                    a.1 + d.held,
                    a.2 + d.redeemed_minor,
                    a.3 + d.redemptions,
                    a.4 + d.code_uses,
                )
            })
        };
        assert_eq!(sum(&[Move::Hold, Move::Release]), (0, 0, 0, 0, 0));
        assert_eq!(
            sum(&[Move::Hold, Move::Redeem, Move::RollBack]),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(sum(&[Move::Hold, Move::Redeem]), (0, 0, 70, 1, 1));
    }

    #[test]
    fn rollback_gives_back_once_and_only_what_was_taken() {
        use HoldStatus::*;
        assert_eq!(
            roll_back_step(Redeemed),
            Step::Apply(Move::RollBack, RolledBack)
        );
        assert_eq!(roll_back_step(Held), Step::Apply(Move::Release, Released));
        for s in [RolledBack, Released, Expired] {
            assert_eq!(roll_back_step(s), Step::AsItIs);
        }
        assert_eq!(redeem_step(Held, true), Step::Expired);
        assert_eq!(redeem_step(Redeemed, false), Step::NotHeld);
        assert_eq!(release_step(Expired), Step::NotHeld);
    }

    #[test]
    fn codes_are_usable_within_their_uses_time_and_owner() {
        let coupon = CodeFacts {
            source: CodeSource::Coupon,
            uses: 0,
            max_uses: 2,
            coupon: Some(CouponFacts {
                expires_at_ms: 1_000,
                uses: 0,
                max_uses: 2,
                allocated_to: Some("7".into()),
            }),
            discount_used: false,
            issued_to: None,
        };
        assert_eq!(code_usable(&coupon, Some("7"), 999), Ok(()));
        assert_eq!(
            code_usable(&coupon, Some("7"), 1_000),
            Err(Reason::CodeUnusable)
        );
        assert_eq!(
            code_usable(&coupon, Some("8"), 0),
            Err(Reason::CodeUnusable)
        );
        assert_eq!(code_usable(&coupon, None, 0), Err(Reason::CodeUnusable));
        let used_up = CodeFacts {
            uses: 2,
            ..coupon.clone()
        };
        assert_eq!(
            code_usable(&used_up, Some("7"), 0),
            Err(Reason::CodeUnusable)
        );
        let campaign = CodeFacts::campaign(0, None);
        assert_eq!(code_usable(&campaign, None, 0), Ok(()));
        let discount = CodeFacts {
            source: CodeSource::DiscountCode,
            discount_used: true,
            ..campaign
        };
        assert_eq!(code_usable(&discount, None, 0), Err(Reason::CodeUnusable));
    }
}

//! The promotion engine: checks specs and carts, and evaluates a cart against candidates.
//!
//! # How a cart is evaluated
//!
//! 1. **Each candidate alone.** Its conditions ([`conditions_hold`]), then its limits on the
//!    usage so far: redemptions plus holds below `redemptions_max`, the customer's below
//!    `per_customer_redemptions_max` (a per-customer limit with no customer id refuses
//!    `customer_required`), and some of each money budget left. A candidate that fails is
//!    refused with the reason.
//! 2. **Its discount alone**, on the whole cart, capped by what is left of its budgets. One
//!    that gives nothing (free shipping on a cart without shipping) is refused `no_discount`
//!    here, so it cannot take the place of one that gives something.
//! 3. **Order**: priority (higher first), then that discount (larger first: the best for the
//!    customer), then code-reached before automatic, then id (lower first).
//! 4. **Stacking**, in that order: the first is accepted and sets the stacking class; each next
//!    is accepted only if neither it nor any accepted one is exclusive and it has that class;
//!    else it is refused `not_combinable`.
//! 5. **Application**: accepted promotions apply in that order, each on what is left of each
//!    line and of the shipping after the ones before it, their actions in turn. A promotion's
//!    amount is capped by what is left of its budget and of the customer's budget
//!    (`capped_by_budget`); one that comes to nothing is refused `no_discount`.
//!
//! Actions (every amount floors to a minor unit, and never exceeds what is left of what it is
//! taken off):
//! - `percent_off`: the percent of what is left of the target (the order, or the lines in
//!   scope), at most `cap_minor`.
//! - `amount_off`: the amount, at most what is left of the target.
//! - `fixed_price`: each item in scope at the price, where what is left of its price is dearer;
//!   the dearest items first when `max_items` bounds them.
//! - `buy_x_get_y`: the items in scope, cheapest first (ties by line); `min(items / (buy + get),
//!   max_applications)` applications; the cheapest `applications x get` items are `percent_off`
//!   (100 by default) off.
//! - `tiered`: the highest tier whose threshold what is left of the target reaches, as a
//!   percent or an amount off that target.
//! - `free_shipping`: what is left of the shipping, at most `cap_minor`.
//!
//! An amount taken off several lines is spread in proportion to what is left of each: the
//! floor of each share, then the remaining minor units one at a time to the lines with the
//! largest fractional part (ties by line index). A budget cuts a promotion's amount the same
//! way over its lines and its shipping.
//!
//! The answer does not depend on the order of `candidates` nor of `code_refusals`: both are
//! put in a canonical order (by id; by the cart's code order) before anything is decided.

use std::cmp::Reverse;

use super::*;

mod check;

pub(crate) use check::{check_cart, check_spec};

// ---------------------------------------------------------------------------------------------
// Conditions

/// Whether a promotion's own conditions (time, schedule, currency, customer, minimums, scope)
/// hold for the cart, usage aside: the first that fails, checked in this order: the time window
/// (`not_started`, `ended`), the schedule, the currency, the customer (roles, tags, ids:
/// `customer_not_eligible`; a first-order condition: `customer_required` without a customer
/// id, else `not_first_order`), the scope (`not_in_scope`: no line in it), the minimums
/// (`min_subtotal_not_met`, `min_quantity_not_met`). The scope comes before the minimums so
/// that a cart with nothing in scope is told so, not told to spend more.
/// The cheap filter a server runs over every automatic promotion before reading usage.
pub fn conditions_hold(promotion: &Promotion, cart: &Cart, now: UnixMillis) -> Result<(), Reason> {
    conditions_hold_in(promotion, cart, now, &scope_of(promotion, cart))
}

fn conditions_hold_in(
    promotion: &Promotion,
    cart: &Cart,
    now: UnixMillis,
    in_scope: &[bool],
) -> Result<(), Reason> {
    let c = &promotion.spec().conditions;
    if promotion.starts_at().is_some_and(|s| now < s) {
        return Err(Reason::NotStarted);
    }
    if promotion.ends_at().is_some_and(|e| now >= e) {
        return Err(Reason::Ended);
    }
    if promotion.schedule().is_some_and(|s| !s.contains(now)) {
        return Err(Reason::OutsideSchedule);
    }
    if c.currency.as_ref().is_some_and(|cur| *cur != cart.currency) {
        return Err(Reason::WrongCurrency);
    }
    let customer = &cart.customer;
    let listed = |list: &[String], value: Option<&String>| value.is_some_and(|v| list.contains(v));
    if (!c.customer_roles.is_empty() && !listed(&c.customer_roles, customer.role.as_ref()))
        || (!c.customer_ids.is_empty() && !listed(&c.customer_ids, customer.id.as_ref()))
        || (!c.customer_tags.is_empty()
            && !customer.tags.iter().any(|t| c.customer_tags.contains(t)))
    {
        return Err(Reason::CustomerNotEligible);
    }
    if c.first_order {
        // A guest's earlier orders cannot be known: a guest would be new at every checkout.
        if customer.id.is_none() {
            return Err(Reason::CustomerRequired);
        }
        if customer.orders_before > 0 {
            return Err(Reason::NotFirstOrder);
        }
    }
    if has_scope(promotion) && !in_scope.iter().any(|x| *x) {
        return Err(Reason::NotInScope);
    }
    if c.min_subtotal_minor.is_some() || c.min_quantity.is_some() {
        let counted = cart
            .lines
            .iter()
            .zip(in_scope)
            .filter(|(_, scoped)| c.minimums_of == Basis::Cart || **scoped)
            .map(|(line, _)| line);
        let (mut subtotal, mut quantity) = (0i64, 0i64);
        for line in counted {
            subtotal = subtotal.saturating_add(line_total(line));
            quantity = quantity.saturating_add(line.quantity.max(0));
        }
        if c.min_subtotal_minor.is_some_and(|min| subtotal < min) {
            return Err(Reason::MinSubtotalNotMet);
        }
        if c.min_quantity.is_some_and(|min| quantity < min) {
            return Err(Reason::MinQuantityNotMet);
        }
    }
    Ok(())
}

fn has_scope(promotion: &Promotion) -> bool {
    promotion.scope_by_catalog() || !promotion.spec().conditions.attributes.is_empty()
}

/// Which lines are in the promotion's scope (all of them when it has none).
fn scope_of(promotion: &Promotion, cart: &Cart) -> Vec<bool> {
    let attributes = &promotion.spec().conditions.attributes;
    cart.lines
        .iter()
        .map(|line| {
            let by_catalog = !promotion.scope_by_catalog()
                || promotion.scope_has_product(line.product)
                || line
                    .categories
                    .iter()
                    .any(|c| promotion.scope_has_category(*c));
            by_catalog
                && attributes.iter().all(|(key, want)| {
                    line.attributes
                        .get(key)
                        .is_some_and(|have| attribute_matches(have, want))
                })
        })
        .collect()
}

/// Text compares as text, numbers as numbers (`2` is `2.0`), booleans as booleans.
fn attribute_matches(have: &str, want: &str) -> bool {
    if have == want {
        return true;
    }
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    if let (Some(a), Some(b)) = (number(have), number(want)) {
        return a == b;
    }
    let boolean = |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    matches!((boolean(have), boolean(want)), (Some(a), Some(b)) if a == b)
}

/// A sum of money that saturates: a checked cart stays far below `i64::MAX` (its subtotal is
/// at most [`MONEY_MAX`]), and an unchecked one must not bring the engine down.
fn sum(values: impl Iterator<Item = i64>) -> i64 {
    values.fold(0, i64::saturating_add)
}

fn line_total(line: &CartLine) -> i64 {
    line.unit_price_minor
        .max(0)
        .saturating_mul(line.quantity.max(0))
}

// ---------------------------------------------------------------------------------------------
// Limits

/// The limits on usage: `Ok` with what is left of the money budgets (the smaller of the
/// promotion's and the customer's), or the reason none is left.
fn limits_allow(
    limits: &LimitsSpec,
    usage: &Usage,
    customer: &Customer,
) -> Result<Option<i64>, Reason> {
    let u = usage;
    if limits
        .redemptions_max
        .is_some_and(|max| u.redemptions.saturating_add(u.held) >= max)
    {
        return Err(Reason::RedemptionLimitReached);
    }
    let per_customer =
        limits.per_customer_redemptions_max.is_some() || limits.per_customer_budget_minor.is_some();
    if per_customer && customer.id.is_none() {
        return Err(Reason::CustomerRequired);
    }
    if limits
        .per_customer_redemptions_max
        .is_some_and(|max| u.customer_redemptions.saturating_add(u.customer_held) >= max)
    {
        return Err(Reason::CustomerLimitReached);
    }
    let mut left: Option<i64> = None;
    if let Some(budget) = limits.budget_minor {
        let l = budget
            .saturating_sub(u.redeemed_minor)
            .saturating_sub(u.held_minor);
        if l <= 0 {
            return Err(Reason::BudgetExhausted);
        }
        left = Some(l);
    }
    if let Some(budget) = limits.per_customer_budget_minor {
        let l = budget
            .saturating_sub(u.customer_redeemed_minor)
            .saturating_sub(u.customer_held_minor);
        if l <= 0 {
            return Err(Reason::CustomerBudgetExhausted);
        }
        left = Some(left.map_or(l, |other| other.min(l)));
    }
    Ok(left)
}

// ---------------------------------------------------------------------------------------------
// Actions

/// What one promotion takes: per line (every line of the cart, zeros included) and off the
/// shipping.
#[derive(Debug, Clone)]
struct Take {
    lines: Vec<i64>,
    shipping: i64,
    capped_by_budget: bool,
}

impl Take {
    fn total(&self) -> i64 {
        sum(self.lines.iter().copied()).saturating_add(self.shipping)
    }
}

/// The promotion's actions in turn on what is left (`left`, `shipping_left`), capped by
/// `budget_left`.
fn take(
    promotion: &Promotion,
    cart: &Cart,
    in_scope: &[bool],
    left: &[i64],
    shipping_left: i64,
    budget_left: Option<i64>,
) -> Take {
    let mut left = left.to_vec();
    let mut shipping_left = shipping_left;
    let mut lines = vec![0i64; left.len()];
    let mut shipping = 0i64;
    for action in &promotion.spec().actions {
        let (off, off_shipping) = action_takes(action, cart, in_scope, &left, shipping_left);
        for ((l, o), total) in left.iter_mut().zip(&off).zip(lines.iter_mut()) {
            *l -= o;
            *total += o;
        }
        shipping_left -= off_shipping;
        shipping += off_shipping;
    }
    let mut taken = Take {
        lines,
        shipping,
        capped_by_budget: false,
    };
    if let Some(cap) = budget_left
        && taken.total() > cap
    {
        let mut weights = taken.lines.clone();
        weights.push(taken.shipping);
        let mut capped = spread(cap, &weights);
        taken.shipping = capped.pop().unwrap_or(0);
        taken.lines = capped;
        taken.capped_by_budget = true;
    }
    taken
}

/// One action on what is left: per line, and off the shipping.
fn action_takes(
    action: &ActionSpec,
    cart: &Cart,
    in_scope: &[bool],
    left: &[i64],
    shipping_left: i64,
) -> (Vec<i64>, i64) {
    let targeted = |target: Target| -> Vec<i64> {
        left.iter()
            .zip(in_scope)
            .map(|(l, scoped)| match target {
                Target::Order => *l,
                Target::MatchingLines if *scoped => *l,
                Target::MatchingLines => 0,
            })
            .collect()
    };
    let none = || vec![0i64; left.len()];
    match action {
        ActionSpec::PercentOff {
            percent,
            target,
            cap_minor,
        } => {
            let weights = targeted(*target);
            let base = sum(weights.iter().copied());
            let mut amount = percent_of(base, *percent);
            if let Some(cap) = cap_minor {
                amount = amount.min(*cap);
            }
            (spread(amount, &weights), 0)
        }
        ActionSpec::AmountOff {
            amount_minor,
            target,
        } => {
            let weights = targeted(*target);
            (spread(*amount_minor, &weights), 0)
        }
        ActionSpec::FixedPrice {
            unit_price_minor,
            max_items,
        } => (
            fixed_price(cart, in_scope, left, *unit_price_minor, *max_items),
            0,
        ),
        ActionSpec::BuyXGetY {
            buy,
            get,
            percent_off,
            max_applications,
        } => (
            buy_x_get_y(
                cart,
                in_scope,
                left,
                (*buy, *get),
                percent_off.unwrap_or(100),
                *max_applications,
            ),
            0,
        ),
        ActionSpec::Tiered { tiers, target } => {
            let weights = targeted(*target);
            let base = sum(weights.iter().copied());
            let Some(tier) = tiers.iter().rev().find(|t| base >= t.min_subtotal_minor) else {
                return (none(), 0);
            };
            let amount = match (tier.percent, tier.amount_minor) {
                (Some(p), _) => percent_of(base, p),
                (None, Some(a)) => a,
                (None, None) => 0,
            };
            (spread(amount, &weights), 0)
        }
        ActionSpec::FreeShipping { cap_minor } => {
            let amount = cap_minor.map_or(shipping_left, |cap| shipping_left.min(cap));
            (none(), amount.max(0))
        }
    }
}

/// `percent` of `base`, rounded down.
fn percent_of(base: i64, percent: u32) -> i64 {
    let v = i128::from(base.max(0)) * i128::from(percent.min(100)) / 100;
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The lines in scope with a positive quantity, as (line, unit price left) in the order
/// `dearest_first` asks, ties by line index. A unit's price left is what is left of its line
/// over its quantity; it is compared exactly (by cross-multiplication), never rounded.
fn items_by_unit_price(
    cart: &Cart,
    in_scope: &[bool],
    left: &[i64],
    dearest_first: bool,
) -> Vec<usize> {
    let mut lines: Vec<usize> = (0..left.len())
        .filter(|&i| in_scope[i] && cart.lines[i].quantity > 0)
        .collect();
    lines.sort_by(|&a, &b| {
        let ua = i128::from(left[a]) * i128::from(cart.lines[b].quantity);
        let ub = i128::from(left[b]) * i128::from(cart.lines[a].quantity);
        let by_price = if dearest_first {
            ub.cmp(&ua)
        } else {
            ua.cmp(&ub)
        };
        by_price.then(a.cmp(&b))
    });
    lines
}

/// What is left of `k` of a line's `q` units, rounded down.
fn units_left(left: i64, k: i64, q: i64) -> i128 {
    i128::from(left) * i128::from(k) / i128::from(q)
}

fn fixed_price(
    cart: &Cart,
    in_scope: &[bool],
    left: &[i64],
    price: i64,
    max_items: Option<i64>,
) -> Vec<i64> {
    let mut off = vec![0i64; left.len()];
    let mut items = max_items.unwrap_or(i64::MAX);
    for i in items_by_unit_price(cart, in_scope, left, true) {
        if items <= 0 {
            break;
        }
        let q = cart.lines[i].quantity;
        let k = q.min(items);
        let saving = units_left(left[i], k, q) - i128::from(price) * i128::from(k);
        if saving <= 0 {
            // Dearest first: no item after this one is dearer than the price either.
            break;
        }
        off[i] = i64::try_from(saving).unwrap_or(0).min(left[i]);
        items -= k;
    }
    off
}

fn buy_x_get_y(
    cart: &Cart,
    in_scope: &[bool],
    left: &[i64],
    (buy, get): (i64, i64),
    percent_off: u32,
    max_applications: Option<i64>,
) -> Vec<i64> {
    let mut off = vec![0i64; left.len()];
    let cheapest = items_by_unit_price(cart, in_scope, left, false);
    let items: i64 = cheapest
        .iter()
        .map(|&i| cart.lines[i].quantity)
        .fold(0i64, i64::saturating_add);
    let per_application = buy.saturating_add(get).max(1);
    let mut applications = items / per_application;
    if let Some(max) = max_applications {
        applications = applications.min(max);
    }
    let mut free = applications.saturating_mul(get);
    for i in cheapest {
        if free <= 0 {
            break;
        }
        let q = cart.lines[i].quantity;
        let k = q.min(free);
        let amount = units_left(left[i], k, q) * i128::from(percent_off.min(100)) / 100;
        off[i] = i64::try_from(amount).unwrap_or(0).min(left[i]);
        free -= k;
    }
    off
}

/// Spreads `amount` over `weights` in proportion: the floor of each share, then one minor
/// unit at a time to the largest fractional parts, ties by index. Never more than a weight,
/// never more than their sum.
fn spread(amount: i64, weights: &[i64]) -> Vec<i64> {
    let total: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    let mut shares = vec![0i64; weights.len()];
    if amount <= 0 || total <= 0 {
        return shares;
    }
    let amount = i128::from(amount).min(total);
    let mut fractions: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let scaled = amount * i128::from((*w).max(0));
        let share = scaled / total;
        shares[i] = i64::try_from(share).unwrap_or(0);
        given += share;
        let fraction = scaled % total;
        if fraction > 0 {
            fractions.push((fraction, i));
        }
    }
    // The fractions sum to the units still to give, each below one: enough lines to take one.
    fractions.sort_by_key(|&(fraction, i)| (Reverse(fraction), i));
    let remainder = usize::try_from(amount - given).unwrap_or(0);
    for &(_, i) in fractions.iter().take(remainder) {
        shares[i] += 1;
    }
    shares
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// What became of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Applied,
    /// Refused; `listed` when an automatic promotion refused so is listed too (stacking, a
    /// limit, nothing to take off; not its conditions).
    Refused {
        reason: Reason,
        listed: bool,
    },
}

struct Considered<'a> {
    id: PromotionId,
    promotion: &'a Promotion,
    /// Where its code is in the cart's codes, if it is there.
    code_at: Option<usize>,
    code: Option<&'a str>,
    usage: Usage,
    in_scope: Vec<bool>,
    budget_left: Option<i64>,
    alone: i64,
    outcome: Outcome,
}

/// Where `code` is among the cart's codes: as entered, else ignoring case (a caller may name
/// a coupon in the case storage keeps it).
fn code_position(cart: &Cart, code: &str) -> Option<usize> {
    cart.codes.iter().position(|c| c == code).or_else(|| {
        let folded = code.to_lowercase();
        cart.codes.iter().position(|c| c.to_lowercase() == folded)
    })
}

/// Evaluates `cart` against `candidates` at `now`. `code_refusals` are the cart's codes the
/// caller could not resolve to a usable promotion (unknown, or the code itself unusable), each
/// with its reason; they are reported in the cart's code order with the others. A candidate
/// whose code is also in `code_refusals` is not considered (the code cannot be used), nor is a
/// code-triggered promotion without a code. See the module's documentation for the rule.
pub fn evaluate(
    cart: &Cart,
    candidates: &[Candidate<'_>],
    code_refusals: &[(String, Reason)],
    now: UnixMillis,
) -> Evaluation {
    let line_totals: Vec<i64> = cart.lines.iter().map(line_total).collect();
    let subtotal = sum(line_totals.iter().copied());
    let shipping = cart.shipping_minor.max(0);

    // The codes the caller refused, by position in the cart (the others after, by code).
    let mut refused_codes: Vec<(Option<usize>, String, Reason)> = code_refusals
        .iter()
        .map(|(code, reason)| (code_position(cart, code), code.clone(), *reason))
        .collect();
    refused_codes
        .sort_by(|a, b| (a.0.is_none(), a.0, &a.1, a.2).cmp(&(b.0.is_none(), b.0, &b.1, b.2)));
    refused_codes.dedup_by(|later, first| later.0.is_some() && later.0 == first.0);

    // The candidates in a canonical order: by id, then by where their code is in the cart.
    let mut considered: Vec<Considered<'_>> = candidates
        .iter()
        .filter(|c| c.code.is_some() || c.promotion.trigger() == Trigger::Automatic)
        .map(|c| Considered {
            id: c.id,
            promotion: c.promotion,
            code_at: c.code.and_then(|code| code_position(cart, code)),
            code: c.code,
            usage: c.usage,
            in_scope: Vec::new(),
            budget_left: None,
            alone: 0,
            outcome: Outcome::Pending,
        })
        .filter(|c| {
            c.code_at
                .is_none_or(|at| !refused_codes.iter().any(|r| r.0 == Some(at)))
        })
        .collect();
    considered.sort_by(|a, b| {
        let key = |c: &Considered<'_>| (c.id, c.code.is_none(), c.code_at.is_none(), c.code_at);
        let usage = |c: &Considered<'_>| {
            let u = c.usage;
            [
                u.redeemed_minor,
                u.redemptions,
                u.held_minor,
                u.held,
                u.customer_redeemed_minor,
                u.customer_redemptions,
                u.customer_held_minor,
                u.customer_held,
            ]
        };
        // Ids are unique per promotion; the rest only keeps a caller's slip deterministic.
        key(a)
            .cmp(&key(b))
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| usage(b).cmp(&usage(a)))
    });
    // A promotion reached twice (two codes) counts once, by the first code; the later code
    // is answered with what became of it.
    let mut duplicates: Vec<(Option<usize>, Option<&str>, PromotionId)> = Vec::new();
    considered.dedup_by(|later, first| {
        let same = later.id == first.id;
        if same {
            duplicates.push((later.code_at, later.code, later.id));
        }
        same
    });

    // 1 and 2: each alone.
    for c in &mut considered {
        c.in_scope = scope_of(c.promotion, cart);
        if let Err(reason) = conditions_hold_in(c.promotion, cart, now, &c.in_scope) {
            c.outcome = Outcome::Refused {
                reason,
                listed: false,
            };
            continue;
        }
        match limits_allow(&c.promotion.spec().limits, &c.usage, &cart.customer) {
            Err(reason) => {
                c.outcome = Outcome::Refused {
                    reason,
                    listed: true,
                };
                continue;
            }
            Ok(left) => c.budget_left = left,
        }
        c.alone = take(
            c.promotion,
            cart,
            &c.in_scope,
            &line_totals,
            shipping,
            c.budget_left,
        )
        .total();
        if c.alone <= 0 {
            c.outcome = Outcome::Refused {
                reason: Reason::NoDiscount,
                listed: true,
            };
        }
    }

    // 3: the order of the eligible.
    let mut order: Vec<usize> = (0..considered.len())
        .filter(|&i| considered[i].outcome == Outcome::Pending)
        .collect();
    order.sort_by_key(|&i| {
        let c = &considered[i];
        (
            Reverse(c.promotion.priority()),
            Reverse(c.alone),
            c.code.is_none(),
            c.id,
        )
    });

    // 4: stacking.
    let mut class: Option<&str> = None;
    let mut exclusive = false;
    let mut accepted: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        let stacking = &considered[i].promotion.spec().stacking;
        let fits = match class {
            None => true,
            Some(class) => !exclusive && !stacking.exclusive && stacking.class == class,
        };
        if fits {
            if class.is_none() {
                class = Some(&stacking.class);
                exclusive = stacking.exclusive;
            }
            accepted.push(i);
        } else {
            considered[i].outcome = Outcome::Refused {
                reason: Reason::NotCombinable,
                listed: true,
            };
        }
    }

    // 5: application, each on what the ones before left.
    let mut left = line_totals.clone();
    let mut shipping_left = shipping;
    let mut applied: Vec<Applied> = Vec::with_capacity(accepted.len());
    for i in accepted {
        let c = &mut considered[i];
        let taken = take(
            c.promotion,
            cart,
            &c.in_scope,
            &left,
            shipping_left,
            c.budget_left,
        );
        let amount = taken.total();
        if amount <= 0 {
            c.outcome = Outcome::Refused {
                reason: Reason::NoDiscount,
                listed: true,
            };
            continue;
        }
        for (l, off) in left.iter_mut().zip(&taken.lines) {
            *l -= off;
        }
        shipping_left -= taken.shipping;
        c.outcome = Outcome::Applied;
        applied.push(Applied {
            id: c.id,
            code: code_as_entered(cart, c.code_at, c.code),
            amount_minor: amount,
            lines: taken
                .lines
                .iter()
                .enumerate()
                .filter(|(_, off)| **off > 0)
                .map(|(line, off)| LineDiscount {
                    line,
                    amount_minor: *off,
                })
                .collect(),
            shipping_minor: taken.shipping,
            capped_by_budget: taken.capped_by_budget,
        });
    }

    let refused = refusals(cart, &considered, &refused_codes, &duplicates);

    let lines: Vec<LineTotal> = line_totals
        .iter()
        .zip(&left)
        .map(|(total, l)| LineTotal {
            line_total_minor: *total,
            discount_minor: total - l,
            total_minor: *l,
        })
        .collect();
    let discount = sum(lines.iter().map(|l| l.discount_minor));
    let shipping_discount = shipping - shipping_left;
    Evaluation {
        applied,
        refused,
        lines,
        subtotal_minor: subtotal,
        discount_minor: discount,
        shipping_minor: shipping,
        shipping_discount_minor: shipping_discount,
        total_minor: subtotal
            .saturating_sub(discount)
            .saturating_add(shipping)
            .saturating_sub(shipping_discount)
            .max(0),
    }
}

fn code_as_entered(cart: &Cart, at: Option<usize>, code: Option<&str>) -> Option<String> {
    at.and_then(|i| cart.codes.get(i).cloned())
        .or_else(|| code.map(str::to_owned))
}

/// Every code entered and not applied, once, in the cart's order (then codes the caller named
/// that the cart does not hold, by code); then the automatic promotions refused by stacking, a
/// limit or for giving nothing, by id.
fn refusals(
    cart: &Cart,
    considered: &[Considered<'_>],
    refused_codes: &[(Option<usize>, String, Reason)],
    duplicates: &[(Option<usize>, Option<&str>, PromotionId)],
) -> Vec<Refused> {
    let outcome_of = |id: PromotionId| {
        considered
            .iter()
            .find(|c| c.id == id)
            .map_or(Outcome::Pending, |c| c.outcome)
    };
    // (position in the cart, or none; the code; the promotion; the reason)
    let mut by_code: Vec<(Option<usize>, String, Option<PromotionId>, Reason)> = Vec::new();
    for (at, code, reason) in refused_codes {
        let code = code_as_entered(cart, *at, Some(code)).unwrap_or_default();
        by_code.push((*at, code, None, *reason));
    }
    for c in considered.iter().filter(|c| c.code.is_some()) {
        if let Outcome::Refused { reason, .. } = c.outcome {
            let code = code_as_entered(cart, c.code_at, c.code).unwrap_or_default();
            by_code.push((c.code_at, code, Some(c.id), reason));
        }
    }
    for (at, code, id) in duplicates.iter().filter(|d| d.1.is_some()) {
        let reason = match outcome_of(*id) {
            Outcome::Refused { reason, .. } => reason,
            // Applied (or never considered): a promotion counts once per cart.
            _ => Reason::NotCombinable,
        };
        let code = code_as_entered(cart, *at, *code).unwrap_or_default();
        by_code.push((*at, code, Some(*id), reason));
    }
    let applied_at: Vec<usize> = considered
        .iter()
        .filter(|c| c.outcome == Outcome::Applied)
        .filter_map(|c| c.code_at)
        .collect();
    // A code the caller said nothing of gives nothing: unknown.
    for (at, code) in cart.codes.iter().enumerate() {
        if !applied_at.contains(&at) && !by_code.iter().any(|r| r.0 == Some(at)) {
            by_code.push((Some(at), code.clone(), None, Reason::UnknownCode));
        }
    }
    by_code.sort_by(|a, b| {
        (a.0.is_none(), a.0, &a.1, a.2, a.3).cmp(&(b.0.is_none(), b.0, &b.1, b.2, b.3))
    });
    // Exactly once per code: a code applied through one promotion is not also refused.
    by_code.retain(|r| r.0.is_none_or(|at| !applied_at.contains(&at)));
    by_code.dedup_by(|later, first| match (later.0, first.0) {
        (Some(a), Some(b)) => a == b,
        (None, None) => later.1 == first.1,
        _ => false,
    });
    let mut refused: Vec<Refused> = by_code
        .into_iter()
        .map(|(_, code, id, reason)| Refused {
            id,
            code: Some(code),
            reason,
        })
        .collect();
    let mut automatic: Vec<Refused> = considered
        .iter()
        .filter(|c| c.code.is_none())
        .filter_map(|c| match c.outcome {
            Outcome::Refused {
                reason,
                listed: true,
            } => Some(Refused {
                id: Some(c.id),
                code: None,
                reason,
            }),
            _ => None,
        })
        .collect();
    automatic.sort_by_key(|r| r.id);
    refused.append(&mut automatic);
    refused
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

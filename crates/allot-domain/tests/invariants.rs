//! Any interleaving of operations keeps the invariants (issue 20): random operation sequences
//! run against a model whose decisions are the domain's own functions (`check_redeemable`,
//! `CampaignWindow::state_at`, `Adjustment::delta`, `choose_warehouse`, `alert_change`,
//! `check_capture`, `split_refund`, `becomes_paid`, `OrderStatus::transition`, the promotion
//! engine's `evaluate`). The model's state is the test's; after every step the invariants the
//! storage backends must keep are asserted on it.
//!
//! Case counts are small so that the whole file runs in a few seconds in debug.

use std::collections::{BTreeMap, HashMap, HashSet};

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignWindow, CouponCode, WindowState};
use allot_domain::coupon::{CouponState, check_redeemable};
use allot_domain::inventory::{
    Adjustment, AlertChange, Level, ON_HAND_MAX, Quantity, alert_change, choose_warehouse,
};
use allot_domain::order::OrderStatus;
use allot_domain::payment::{Amount, Paid, Refundable, becomes_paid, check_capture, split_refund};
use allot_domain::promotion::{
    Candidate, Cart, CartLine, Customer, Promotion, PromotionId, PromotionSpec, Usage, evaluate,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const USERS: [&str; 3] = ["ann", "bob", "cy"];

// ---------------------------------------------------------------------------------------------
// Campaign issues and uploaded coupons' redemptions.

#[derive(Debug, Clone)]
enum CouponOp {
    /// Issue a campaign code to a user at a time.
    Issue {
        user: usize,
        at: i64,
    },
    /// Allocate an uploaded coupon to a user (or leave it open).
    Allocate {
        coupon: usize,
        user: Option<usize>,
    },
    Redeem {
        coupon: usize,
        user: usize,
        at: i64,
    },
    Bind {
        coupon: usize,
        promotion: Option<i64>,
    },
}

fn coupon_op() -> impl Strategy<Value = CouponOp> {
    prop_oneof![
        (0..3usize, 0..200i64).prop_map(|(user, at)| CouponOp::Issue { user, at }),
        (0..4usize, proptest::option::of(0..3usize))
            .prop_map(|(coupon, user)| CouponOp::Allocate { coupon, user }),
        (0..4usize, 0..3usize, 0..200i64).prop_map(|(coupon, user, at)| CouponOp::Redeem {
            coupon,
            user,
            at
        }),
        (0..4usize, proptest::option::of(1..3i64))
            .prop_map(|(coupon, promotion)| CouponOp::Bind { coupon, promotion }),
    ]
}

struct Uploaded {
    expires_at: i64,
    max_uses: u32,
    uses: u32,
    owner: Option<&'static str>,
    bound_to: Option<i64>,
    /// Who redeemed, in order.
    redeemed_by: Vec<&'static str>,
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn campaigns_and_coupons_keep_their_limits(
        total in 1u64..6,
        per_user in proptest::option::of(1u64..3),
        window in (0i64..50, proptest::option::of(50i64..150)),
        coupons in proptest::collection::vec((20i64..220, 1u32..4), 4),
        ops in proptest::collection::vec(coupon_op(), 1..60),
        seed in any::<u64>(),
    ) {
        let window = CampaignWindow::new(
            UnixMillis::from_millis(window.0),
            window.1.map(UnixMillis::from_millis),
        ).expect("end after start");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut issued: Vec<(String, &'static str)> = Vec::new();
        let mut sequence = 0u64;
        let mut uploaded: Vec<Uploaded> = coupons
            .iter()
            .map(|&(expires_at, max_uses)| Uploaded {
                expires_at,
                max_uses,
                uses: 0,
                owner: None,
                bound_to: None,
                redeemed_by: Vec::new(),
            })
            .collect();
        for op in ops {
            match op {
                CouponOp::Issue { user, at } => {
                    let user = USERS[user];
                    let open = window.state_at(UnixMillis::from_millis(at)) == WindowState::Open;
                    let held = issued.iter().filter(|(_, u)| *u == user).count() as u64;
                    // The service's decision: open, codes left, the user under the limit.
                    if open && (issued.len() as u64) < total && per_user.is_none_or(|l| held < l) {
                        let code = CouponCode::generate(&mut rng, sequence);
                        sequence += 1;
                        let again = CouponCode::parse(code.as_str());
                        prop_assert_eq!(again.as_ref(), Ok(&code));
                        issued.push((code.into_string(), user));
                    }
                }
                CouponOp::Allocate { coupon, user } => {
                    let c = &mut uploaded[coupon];
                    if c.owner.is_none() && c.uses == 0 {
                        c.owner = user.map(|u| USERS[u]);
                    }
                }
                CouponOp::Bind { coupon, promotion } => uploaded[coupon].bound_to = promotion,
                CouponOp::Redeem { coupon, user, at } => {
                    let c = &mut uploaded[coupon];
                    let state = CouponState {
                        expires_at: UnixMillis::from_millis(c.expires_at),
                        uses: c.uses,
                        max_uses: c.max_uses,
                        allocated_to: c.owner,
                        bound_to: c.bound_to,
                    };
                    if check_redeemable(&state, USERS[user], UnixMillis::from_millis(at)).is_ok() {
                        prop_assert!(at < c.expires_at && c.bound_to.is_none());
                        c.uses += 1;
                        c.redeemed_by.push(USERS[user]);
                    }
                }
            }
            // Issued <= total, codes unique, no user above the per-user limit.
            prop_assert!(issued.len() as u64 <= total);
            let codes: HashSet<&str> = issued.iter().map(|(c, _)| c.as_str()).collect();
            prop_assert_eq!(codes.len(), issued.len());
            if let Some(limit) = per_user {
                for u in USERS {
                    prop_assert!(issued.iter().filter(|(_, o)| *o == u).count() as u64 <= limit);
                }
            }
            // Uses <= max uses, counters == rows, only the owner redeems an allocated coupon.
            for c in &uploaded {
                prop_assert!(c.uses <= c.max_uses);
                prop_assert_eq!(c.uses as usize, c.redeemed_by.len());
                if let Some(owner) = c.owner {
                    prop_assert!(c.redeemed_by.iter().all(|u| *u == owner));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stock: adjustments, reservations across warehouses, their release, commit and expiry.

#[derive(Debug, Clone)]
enum StockOp {
    Set {
        warehouse: usize,
        to: i64,
    },
    Add {
        warehouse: usize,
        by: i64,
    },
    Reserve {
        quantity: i64,
        preferred: Option<usize>,
    },
    Release {
        hold: usize,
    },
    /// The reservation's order ships: the stock leaves.
    Commit {
        hold: usize,
    },
    Expire {
        hold: usize,
    },
}

fn stock_op() -> impl Strategy<Value = StockOp> {
    prop_oneof![
        (0..3usize, 0..40i64).prop_map(|(warehouse, to)| StockOp::Set { warehouse, to }),
        (0..3usize, prop_oneof![-30i64..0, 1i64..30])
            .prop_map(|(warehouse, by)| StockOp::Add { warehouse, by }),
        (1..15i64, proptest::option::of(0..3usize)).prop_map(|(quantity, preferred)| {
            StockOp::Reserve {
                quantity,
                preferred,
            }
        }),
        (0..10usize).prop_map(|hold| StockOp::Release { hold }),
        (0..10usize).prop_map(|hold| StockOp::Commit { hold }),
        (0..10usize).prop_map(|hold| StockOp::Expire { hold }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Pending,
    Done,
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn stock_matches_its_ledger_and_never_goes_negative(
        thresholds in proptest::collection::vec(proptest::option::of(0i64..10), 3),
        ops in proptest::collection::vec(stock_op(), 1..80),
    ) {
        let mut levels: Vec<Level<usize>> = (0..3)
            .map(|w| Level { warehouse: w, on_hand: 0, reserved: 0 })
            .collect();
        // The ledger: (warehouse, change of on hand).
        let mut ledger: Vec<(usize, i64)> = Vec::new();
        let mut holds: Vec<(usize, i64, Hold)> = Vec::new();
        let mut alerts = [false; 3];
        for op in ops {
            let before: Vec<i64> = levels.iter().map(Level::available).collect();
            match op {
                StockOp::Set { warehouse, to } | StockOp::Add { warehouse, by: to }
                    if matches!(op, StockOp::Set { .. }) || to != 0 =>
                {
                    let adjustment = match op {
                        StockOp::Set { .. } => Adjustment::set(to),
                        _ => Adjustment::add(to),
                    }
                    .expect("in range");
                    let l = &mut levels[warehouse];
                    if let Some(delta) = adjustment.delta(l.on_hand, l.reserved) {
                        l.on_hand += delta;
                        ledger.push((warehouse, delta));
                    }
                }
                StockOp::Set { .. } | StockOp::Add { .. } => {}
                StockOp::Reserve { quantity, preferred } => {
                    let q = Quantity::parse(quantity).expect("in range");
                    if let Some(w) = choose_warehouse(&levels, preferred, q) {
                        let l = &mut levels[w];
                        prop_assert!(l.available() >= quantity, "chose a warehouse short of stock");
                        l.reserved += quantity;
                        holds.push((w, quantity, Hold::Pending));
                    } else {
                        prop_assert!(levels.iter().all(|l| l.available() < quantity));
                    }
                }
                StockOp::Release { hold } | StockOp::Expire { hold } => {
                    if let Some(h) = holds.get_mut(hold).filter(|h| h.2 == Hold::Pending) {
                        levels[h.0].reserved -= h.1;
                        h.2 = Hold::Done;
                    }
                }
                StockOp::Commit { hold } => {
                    if let Some(h) = holds.get_mut(hold).filter(|h| h.2 == Hold::Pending) {
                        let l = &mut levels[h.0];
                        l.reserved -= h.1;
                        l.on_hand -= h.1;
                        ledger.push((h.0, -h.1));
                        h.2 = Hold::Done;
                    }
                }
            }
            for (w, l) in levels.iter().enumerate() {
                let sum: i64 = ledger.iter().filter(|(x, _)| *x == w).map(|(_, d)| d).sum();
                prop_assert_eq!(l.on_hand, sum, "on hand is the ledger's sum");
                prop_assert!(l.on_hand >= 0 && l.on_hand <= ON_HAND_MAX);
                prop_assert!(l.reserved >= 0 && l.reserved <= l.on_hand);
                let pending: i64 = holds
                    .iter()
                    .filter(|h| h.0 == w && h.2 == Hold::Pending)
                    .map(|h| h.1)
                    .sum();
                prop_assert_eq!(l.reserved, pending, "reserved is the pending holds' sum");
                // The low-stock alert follows available across the threshold, raised once.
                if l.available() != before[w] || !alerts[w] {
                    match alert_change(l.available(), thresholds[w], alerts[w]) {
                        AlertChange::Raise => alerts[w] = true,
                        AlertChange::Clear => alerts[w] = false,
                        AlertChange::Unchanged => {}
                    }
                }
                prop_assert_eq!(alerts[w], thresholds[w].is_some_and(|t| l.available() <= t));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Payments: captures and refunds of one order, and its status.

#[derive(Debug, Clone)]
enum PayOp {
    Capture(i64),
    Refund(i64),
    Move(usize),
}

fn pay_op() -> impl Strategy<Value = PayOp> {
    prop_oneof![
        (1i64..1500).prop_map(PayOp::Capture),
        (1i64..1500).prop_map(PayOp::Refund),
        (0..8usize).prop_map(PayOp::Move),
    ]
}

const STATUSES: [OrderStatus; 7] = OrderStatus::ALL;

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn refunds_never_pass_captures_nor_captures_the_total(
        total in 1i64..3000,
        ops in proptest::collection::vec(pay_op(), 1..40),
    ) {
        let mut status = OrderStatus::Pending;
        let mut payments: Vec<Refundable> = Vec::new();
        for op in ops {
            let paid = Paid {
                captured_minor: payments.iter().map(|p| p.captured_minor).sum(),
                refunded_minor: payments.iter().map(|p| p.refunded_minor).sum(),
            };
            match op {
                PayOp::Capture(n) => {
                    let amount = Amount::parse("amount_minor", n).expect("in range");
                    if check_capture(status, total, paid, amount).is_ok() {
                        payments.push(Refundable {
                            payment_id: payments.len() as i64 + 1,
                            captured_minor: n,
                            refunded_minor: 0,
                        });
                        if becomes_paid(status, total, paid.captured_minor + n) {
                            status = OrderStatus::Confirmed;
                        }
                    }
                }
                PayOp::Refund(n) => {
                    let amount = Amount::parse("amount_minor", n).expect("in range");
                    match split_refund(&payments, amount) {
                        Ok(parts) => {
                            prop_assert_eq!(parts.iter().map(|p| p.1).sum::<i64>(), n);
                            for (id, part) in parts {
                                prop_assert!(part > 0);
                                let p = payments
                                    .iter_mut()
                                    .find(|p| p.payment_id == id)
                                    .expect("a part names a payment");
                                p.refunded_minor += part;
                            }
                        }
                        Err(_) => prop_assert!(n > paid.captured_minor - paid.refunded_minor),
                    }
                }
                PayOp::Move(i) => {
                    let to = STATUSES[i % STATUSES.len()];
                    if status.transition(to).is_ok() {
                        status = to;
                    }
                }
            }
            let captured: i64 = payments.iter().map(|p| p.captured_minor).sum();
            prop_assert!(captured <= total, "captured {} of {}", captured, total);
            for p in &payments {
                prop_assert!(p.refunded_minor >= 0 && p.refunded_minor <= p.captured_minor);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Promotion budgets and redemption limits across holds, redemptions and releases.

#[derive(Debug, Clone)]
enum PromoOp {
    /// Evaluate a cart for a customer and hold what it gives.
    Hold {
        customer: usize,
        price: i64,
        quantity: i64,
    },
    Redeem(usize),
    Release(usize),
}

fn promo_op() -> impl Strategy<Value = PromoOp> {
    prop_oneof![
        3 => (0..3usize, 100i64..5000, 1i64..4)
            .prop_map(|(customer, price, quantity)| PromoOp::Hold { customer, price, quantity }),
        1 => (0..12usize).prop_map(PromoOp::Redeem),
        1 => (0..12usize).prop_map(PromoOp::Release),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    Redeemed,
    Released,
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn promotion_budgets_and_limits_are_never_exceeded(
        percent in 5u32..60,
        budget in proptest::option::of(500i64..6000),
        redemptions in proptest::option::of(1i64..5),
        customer_budget in proptest::option::of(200i64..3000),
        customer_redemptions in proptest::option::of(1i64..3),
        ops in proptest::collection::vec(promo_op(), 1..40),
    ) {
        let spec: PromotionSpec = serde_json::from_value(serde_json::json!({
            "name": "p",
            "trigger": "automatic",
            "conditions": {"currency": "EUR"},
            "actions": [{"type": "percent_off", "percent": percent, "target": "order"}],
            "limits": {
                "budget_minor": budget,
                "redemptions_max": redemptions,
                "per_customer_budget_minor": customer_budget,
                "per_customer_redemptions_max": customer_redemptions,
            },
        }))
        .expect("a promotion spec");
        let promotion = Promotion::parse(spec).expect("a valid promotion");
        let id = PromotionId::parse(1).expect("an id");
        // (customer, amount, state) of each hold.
        let mut holds: Vec<(usize, i64, State)> = Vec::new();
        let usage_of = |holds: &[(usize, i64, State)], customer: usize| {
            let mut u = Usage::default();
            for &(c, amount, state) in holds {
                let mine = c == customer;
                match state {
                    State::Held => {
                        u.held_minor += amount;
                        u.held += 1;
                        if mine {
                            u.customer_held_minor += amount;
                            u.customer_held += 1;
                        }
                    }
                    State::Redeemed => {
                        u.redeemed_minor += amount;
                        u.redemptions += 1;
                        if mine {
                            u.customer_redeemed_minor += amount;
                            u.customer_redemptions += 1;
                        }
                    }
                    State::Released => {}
                }
            }
            u
        };
        for op in ops {
            match op {
                PromoOp::Hold { customer, price, quantity } => {
                    let cart = Cart::parse(Cart {
                        currency: "EUR".into(),
                        lines: vec![CartLine {
                            product: 1,
                            quantity,
                            unit_price_minor: price,
                            categories: Vec::new(),
                            attributes: BTreeMap::new(),
                        }],
                        shipping_minor: 0,
                        customer: Customer {
                            id: Some(format!("c{customer}")),
                            ..Customer::default()
                        },
                        codes: Vec::new(),
                    })
                    .expect("a valid cart");
                    let candidate = Candidate {
                        id,
                        promotion: &promotion,
                        code: None,
                        usage: usage_of(&holds, customer),
                    };
                    let e = evaluate(&cart, &[candidate], &[], UnixMillis::from_millis(0));
                    if let Some(a) = e.applied.first() {
                        prop_assert!(a.amount_minor > 0);
                        holds.push((customer, a.amount_minor, State::Held));
                    }
                }
                PromoOp::Redeem(i) => {
                    if let Some(h) = holds.get_mut(i).filter(|h| h.2 == State::Held) {
                        h.2 = State::Redeemed;
                    }
                }
                PromoOp::Release(i) => {
                    if let Some(h) = holds.get_mut(i).filter(|h| h.2 == State::Held) {
                        h.2 = State::Released;
                    }
                }
            }
            // Held amounts count until redeemed or released: never past a budget or limit.
            let mut per_customer: HashMap<usize, (i64, i64)> = HashMap::new();
            let (mut given, mut count) = (0i64, 0i64);
            for &(c, amount, state) in &holds {
                if state != State::Released {
                    given += amount;
                    count += 1;
                    let e = per_customer.entry(c).or_default();
                    e.0 += amount;
                    e.1 += 1;
                }
            }
            prop_assert!(budget.is_none_or(|b| given <= b), "{} given of {:?}", given, budget);
            prop_assert!(redemptions.is_none_or(|r| count <= r));
            for (amount, n) in per_customer.values() {
                prop_assert!(customer_budget.is_none_or(|b| *amount <= b));
                prop_assert!(customer_redemptions.is_none_or(|r| *n <= r));
            }
        }
    }
}

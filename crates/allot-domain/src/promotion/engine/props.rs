//! Properties of `evaluate` over random carts and promotions: deterministic, the same for any
//! order of its inputs, and never more than what there is to take off or to give away.

use proptest::prelude::*;

use super::*;

const CODES: [&str; 4] = ["A", "B", "봄", "D"];

/// Few distinct values, so that promotions often tie (the order must not then decide), and
/// any value sometimes.
fn percent() -> impl Strategy<Value = u32> {
    prop_oneof![Just(10u32), Just(20), 1u32..=100]
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![Just(500i64), Just(1000), 1i64..8000]
}

fn action() -> impl Strategy<Value = ActionSpec> {
    let target = prop_oneof![Just(Target::Order), Just(Target::MatchingLines)];
    prop_oneof![
        (percent(), target.clone(), proptest::option::of(1i64..3000)).prop_map(
            |(percent, target, cap_minor)| ActionSpec::PercentOff {
                percent,
                target,
                cap_minor
            }
        ),
        (amount(), target.clone()).prop_map(|(amount_minor, target)| ActionSpec::AmountOff {
            amount_minor,
            target
        }),
        (0i64..3000, proptest::option::of(1i64..6)).prop_map(|(unit_price_minor, max_items)| {
            ActionSpec::FixedPrice {
                unit_price_minor,
                max_items,
            }
        }),
        (
            1i64..4,
            1i64..3,
            proptest::option::of(1u32..=100),
            proptest::option::of(1i64..3)
        )
            .prop_map(|(buy, get, percent_off, max_applications)| {
                ActionSpec::BuyXGetY {
                    buy,
                    get,
                    percent_off,
                    max_applications,
                }
            }),
        (1i64..5000, 1u32..=50, 1i64..3000, target).prop_map(|(first, percent, amount, target)| {
            ActionSpec::Tiered {
                tiers: vec![
                    TierSpec {
                        min_subtotal_minor: first,
                        percent: Some(percent),
                        amount_minor: None,
                    },
                    TierSpec {
                        min_subtotal_minor: first + 5000,
                        percent: None,
                        amount_minor: Some(amount),
                    },
                ],
                target,
            }
        }),
        proptest::option::of(1i64..1500)
            .prop_map(|cap_minor| ActionSpec::FreeShipping { cap_minor }),
    ]
}

fn spec() -> impl Strategy<Value = PromotionSpec> {
    (
        prop_oneof![Just(Trigger::Automatic), Just(Trigger::Code)],
        proptest::collection::vec(1i64..=4, 0..3),
        proptest::option::weighted(0.3, 1i64..10000),
        any::<bool>(),
        proptest::collection::vec(action(), 1..=2),
        (
            prop_oneof![4 => Just("a"), 1 => Just("b")],
            proptest::bool::weighted(0.2),
            0i32..=1,
        ),
        (
            proptest::option::weighted(0.25, 1i64..5000),
            proptest::option::weighted(0.25, 1i64..3000),
            proptest::option::weighted(0.25, 1i64..4),
        ),
    )
        .prop_map(
            |(trigger, products, min_subtotal, matching, actions, stacking, limits)| {
                let (budget, customer_budget, customer_redemptions) = limits;
                PromotionSpec {
                    name: "P".to_owned(),
                    description: None,
                    trigger,
                    conditions: ConditionsSpec {
                        min_subtotal_minor: min_subtotal,
                        minimums_of: if matching {
                            Basis::Matching
                        } else {
                            Basis::Cart
                        },
                        products,
                        currency: Some("EUR".to_owned()),
                        ..ConditionsSpec::default()
                    },
                    actions,
                    stacking: StackingSpec {
                        class: stacking.0.to_owned(),
                        exclusive: stacking.1,
                        priority: stacking.2,
                    },
                    limits: LimitsSpec {
                        budget_minor: budget,
                        per_customer_budget_minor: customer_budget,
                        per_customer_redemptions_max: customer_redemptions,
                        redemptions_max: None,
                    },
                }
            },
        )
}

fn usage() -> impl Strategy<Value = Usage> {
    let some =
        (0i64..3000, 0i64..2000, 0i64..3, 0i64..2000).prop_map(|(redeemed, held, count, mine)| {
            Usage {
                redeemed_minor: redeemed,
                held_minor: held,
                redemptions: count,
                customer_redeemed_minor: mine,
                customer_redemptions: count,
                ..Usage::default()
            }
        });
    prop_oneof![Just(Usage::default()), some]
}

fn cart() -> impl Strategy<Value = Cart> {
    let line = (1i64..=4, 1i64..=5, 0i64..=5000).prop_map(|(product, quantity, price)| CartLine {
        product,
        quantity,
        unit_price_minor: price,
        ..CartLine::default()
    });
    (
        proptest::collection::vec(line, 1..=6),
        0i64..=1500,
        any::<bool>(),
        proptest::sample::subsequence(CODES.to_vec(), 0..=CODES.len()),
    )
        .prop_map(|(lines, shipping_minor, signed_in, codes)| Cart {
            currency: "EUR".to_owned(),
            lines,
            shipping_minor,
            customer: Customer {
                id: signed_in.then(|| "42".to_owned()),
                ..Customer::default()
            },
            codes: codes.into_iter().map(str::to_owned).collect(),
        })
}

/// Promotions with their usage and the code that reaches each (code-triggered ones only),
/// and refusals for some codes.
type Case = (
    Cart,
    Vec<(Promotion, Usage, Option<usize>)>,
    Vec<(String, Reason)>,
);

fn case() -> impl Strategy<Value = Case> {
    (
        cart(),
        (
            proptest::collection::vec((spec(), usage()), 0..=6),
            0usize..CODES.len(),
            any::<bool>(),
        ),
        proptest::collection::vec(
            (
                0usize..CODES.len(),
                prop_oneof![Just(Reason::UnknownCode), Just(Reason::CodeUnusable)],
            ),
            0..=2,
        ),
    )
        .prop_map(|(cart, (mut specs, start, twin), refusals)| {
            // Twins tie on everything but their id: the order they come in must not matter.
            if twin && let Some(first) = specs.first().cloned() {
                specs.push(first);
            }
            // A code is bound to one promotion at most (as storage binds them): the k-th
            // code-triggered promotion gets the k-th code after a random start.
            let mut bound = 0usize;
            let promotions = specs
                .into_iter()
                .filter_map(|(spec, usage)| {
                    let code = (spec.trigger == Trigger::Code).then(|| {
                        bound += 1;
                        (start + bound) % CODES.len()
                    });
                    let code = code.filter(|_| bound <= CODES.len());
                    Promotion::parse(spec).ok().map(|p| (p, usage, code))
                })
                .collect();
            let refusals = refusals
                .into_iter()
                .map(|(code, reason)| (CODES[code].to_owned(), reason))
                .collect();
            (cart, promotions, refusals)
        })
}

fn candidates(promotions: &[(Promotion, Usage, Option<usize>)]) -> Vec<Candidate<'_>> {
    promotions
        .iter()
        .enumerate()
        .map(|(i, (promotion, usage, code))| Candidate {
            id: PromotionId(i as i64 + 1),
            promotion,
            code: code.map(|c| CODES[c]),
            usage: *usage,
        })
        .collect()
}

/// Fisher-Yates driven by splitmix64 from `seed`: any permutation, reproducibly.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        items.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #[test]
    fn the_same_for_any_order_of_candidates_and_refusals(
        (cart, promotions, refusals) in case(),
        seed in any::<u64>(),
    ) {
        let cands = candidates(&promotions);
        let first = evaluate(&cart, &cands, &refusals, UnixMillis::from_millis(0));
        prop_assert_eq!(&first, &evaluate(&cart, &cands, &refusals, UnixMillis::from_millis(0)));
        let mut shuffled = cands.clone();
        let mut refusals_shuffled = refusals.clone();
        shuffle(&mut shuffled, seed);
        shuffle(&mut refusals_shuffled, seed.rotate_left(17));
        prop_assert_eq!(
            &first,
            &evaluate(&cart, &shuffled, &refusals_shuffled, UnixMillis::from_millis(0))
        );
    }

    #[test]
    fn never_more_than_there_is_to_take_or_to_give(
        (cart, promotions, refusals) in case(),
    ) {
        let cands = candidates(&promotions);
        let e = evaluate(&cart, &cands, &refusals, UnixMillis::from_millis(0));
        let mut per_line = vec![0i64; cart.lines.len()];
        for a in &e.applied {
            let lines: i64 = a.lines.iter().map(|l| l.amount_minor).sum();
            prop_assert!(a.amount_minor > 0);
            prop_assert_eq!(a.amount_minor, lines + a.shipping_minor);
            for l in &a.lines {
                prop_assert!(l.amount_minor > 0);
                per_line[l.line] += l.amount_minor;
            }
            // What is left of each budget when the cart was evaluated.
            let (promotion, usage, _) = &promotions[(a.id.get() - 1) as usize];
            let limits = &promotion.spec().limits;
            if let Some(budget) = limits.budget_minor {
                prop_assert!(a.amount_minor <= budget - usage.redeemed_minor - usage.held_minor);
            }
            if let Some(budget) = limits.per_customer_budget_minor {
                prop_assert!(
                    a.amount_minor
                        <= budget - usage.customer_redeemed_minor - usage.customer_held_minor
                );
            }
        }
        for (i, l) in e.lines.iter().enumerate() {
            let line = &cart.lines[i];
            prop_assert_eq!(l.line_total_minor, line.unit_price_minor * line.quantity);
            prop_assert!(0 <= l.discount_minor && l.discount_minor <= l.line_total_minor);
            prop_assert_eq!(l.discount_minor, per_line[i]);
            prop_assert_eq!(l.total_minor, l.line_total_minor - l.discount_minor);
        }
        prop_assert_eq!(e.subtotal_minor, cart.subtotal_minor());
        prop_assert!(0 <= e.discount_minor && e.discount_minor <= e.subtotal_minor);
        prop_assert!(
            0 <= e.shipping_discount_minor && e.shipping_discount_minor <= e.shipping_minor
        );
        prop_assert!(e.total_minor >= 0);
        prop_assert_eq!(
            e.total_minor,
            e.subtotal_minor - e.discount_minor + e.shipping_minor - e.shipping_discount_minor
        );
    }

    #[test]
    fn every_code_is_applied_or_refused_exactly_once(
        (cart, promotions, refusals) in case(),
    ) {
        let cands = candidates(&promotions);
        let e = evaluate(&cart, &cands, &refusals, UnixMillis::from_millis(0));
        for code in &cart.codes {
            let applied = e.applied.iter().filter(|a| a.code.as_ref() == Some(code)).count();
            let refused = e.refused.iter().filter(|r| r.code.as_ref() == Some(code)).count();
            prop_assert_eq!(applied + refused, 1, "{}", code);
        }
        // Automatic promotions listed as refused only for stacking, a limit or nothing left.
        for r in e.refused.iter().filter(|r| r.code.is_none()) {
            prop_assert!(!matches!(
                r.reason,
                Reason::MinSubtotalNotMet | Reason::NotInScope | Reason::WrongCurrency
            ));
        }
        // Refused codes keep the cart's order.
        let positions: Vec<usize> = e
            .refused
            .iter()
            .filter_map(|r| r.code.as_ref())
            .filter_map(|c| cart.codes.iter().position(|x| x == c))
            .collect();
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
    }

    /// Storage keeps a checked spec and checks it again when it reads it back: the same
    /// promotion comes out.
    #[test]
    fn a_checked_spec_checks_again_to_itself(
        mut spec in spec(),
        padding in prop_oneof![Just(""), Just(" "), Just("\t ")],
        dressed in any::<bool>(),
    ) {
        spec.name = format!("{padding}Spring sale{padding}");
        if dressed {
            spec.description = Some(format!("{padding}Line one\nline two{padding}"));
            spec.conditions.starts_at = Some("2026-03-01T09:00:00+01:00".to_owned());
            spec.conditions.ends_at = Some("2026-04-01T00:00:00Z".to_owned());
            spec.conditions.customer_tags = vec![format!("{padding}vip")];
            spec.conditions.schedule = Some(ScheduleSpec {
                time_zone: "Europe/Paris".to_owned(),
                weekdays: vec![Weekday::Sat, Weekday::Sun],
                from: Some("22:00".to_owned()),
                until: Some("02:00".to_owned()),
            });
            spec.stacking.class = format!("{padding}weekend{padding}");
        }
        if let Ok(p) = Promotion::parse(spec) {
            let json = serde_json::to_string(p.spec()).expect("a spec serializes");
            let back: PromotionSpec = serde_json::from_str(&json).expect("and reads back");
            prop_assert_eq!(Promotion::parse(back), Ok(p));
        }
    }
}

//! The engine's rules, each with exact figures.

use serde_json::{Value, json};

use super::*;

pub(super) fn promotion(spec: Value) -> Promotion {
    let spec: PromotionSpec = serde_json::from_value(spec).expect("a spec that deserializes");
    Promotion::parse(spec).expect("a valid spec")
}

fn spec_error(spec: Value) -> &'static str {
    let shown = spec.to_string();
    let spec: PromotionSpec = serde_json::from_value(spec).expect("a spec that deserializes");
    match Promotion::parse(spec) {
        Ok(_) => panic!("accepted: {shown}"),
        Err(e) => e.field(),
    }
}

fn line(product: i64, quantity: i64, unit_price_minor: i64) -> CartLine {
    CartLine {
        product,
        quantity,
        unit_price_minor,
        ..CartLine::default()
    }
}

fn cart(lines: Vec<CartLine>) -> Cart {
    Cart {
        currency: "EUR".to_owned(),
        lines,
        customer: Customer {
            id: Some("42".to_owned()),
            role: Some("customer".to_owned()),
            ..Customer::default()
        },
        ..Cart::default()
    }
}

fn now() -> UnixMillis {
    at("2026-03-10T12:00:00Z")
}

fn at(rfc3339: &str) -> UnixMillis {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("a test instant");
    UnixMillis::from_millis(t.timestamp_millis())
}

fn id(n: i64) -> PromotionId {
    PromotionId::parse(n).expect("a positive id")
}

fn auto(n: i64, p: &Promotion) -> Candidate<'_> {
    Candidate {
        id: id(n),
        promotion: p,
        code: None,
        usage: Usage::default(),
    }
}

fn coded<'a>(n: i64, p: &'a Promotion, code: &'a str) -> Candidate<'a> {
    Candidate {
        id: id(n),
        promotion: p,
        code: Some(code),
        usage: Usage::default(),
    }
}

/// The one applied promotion's amount, and each line's discount.
fn alone(p: &Promotion, c: &Cart) -> (i64, Vec<i64>) {
    let e = evaluate(c, &[auto(1, p)], &[], now());
    let amount = e.applied.first().map_or(0, |a| a.amount_minor);
    (amount, e.lines.iter().map(|l| l.discount_minor).collect())
}

fn reason_of(p: &Promotion, c: &Cart) -> Result<(), Reason> {
    conditions_hold(p, c, now())
}

// ---------------------------------------------------------------------------------------------
// Checking specs and carts

#[test]
fn spec_errors_name_their_field() {
    let base = |patch: Value| {
        let mut spec = json!({
            "name": "Spring", "trigger": "automatic",
            "actions": [{"type": "percent_off", "percent": 10}]
        });
        if let (Some(s), Some(p)) = (spec.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                s.insert(k.clone(), v.clone());
            }
        }
        spec
    };
    let cases = [
        (json!({"name": "  "}), "name"),
        (json!({"name": "x".repeat(NAME_MAX_CHARS + 1)}), "name"),
        (json!({"name": "a\u{7}b"}), "name"),
        (
            json!({"description": "d".repeat(DESCRIPTION_MAX_CHARS + 1)}),
            "description",
        ),
        (json!({"actions": []}), "actions"),
        (
            json!({"actions": vec![json!({"type": "free_shipping"}); ACTIONS_MAX + 1]}),
            "actions",
        ),
        (
            json!({"actions": [{"type": "percent_off", "percent": 0}]}),
            "actions.percent",
        ),
        (
            json!({"actions": [{"type": "percent_off", "percent": 101}]}),
            "actions.percent",
        ),
        (
            json!({"actions": [{"type": "percent_off", "percent": 5, "cap_minor": 0}]}),
            "actions.cap_minor",
        ),
        (
            json!({"actions": [{"type": "amount_off", "amount_minor": MONEY_MAX + 1}]}),
            "actions.amount_minor",
        ),
        (
            json!({"actions": [{"type": "fixed_price", "unit_price_minor": -1}]}),
            "actions.unit_price_minor",
        ),
        (
            json!({"actions": [{"type": "fixed_price", "unit_price_minor": 0, "max_items": 0}]}),
            "actions.max_items",
        ),
        (
            json!({"actions": [{"type": "buy_x_get_y", "buy": 0, "get": 1}]}),
            "actions.buy",
        ),
        (
            json!({"actions": [{"type": "buy_x_get_y", "buy": 1, "get": 0}]}),
            "actions.get",
        ),
        (
            json!({"actions": [{"type": "buy_x_get_y", "buy": 1, "get": 1, "percent_off": 0}]}),
            "actions.percent_off",
        ),
        (
            json!({"actions": [{"type": "tiered", "tiers": []}]}),
            "actions.tiers",
        ),
        (
            json!({"actions": [{"type": "tiered", "tiers": [
                {"min_subtotal_minor": 5000, "percent": 5},
                {"min_subtotal_minor": 5000, "percent": 10}]}]}),
            "actions.tiers.min_subtotal_minor",
        ),
        (
            json!({"actions": [{"type": "tiered", "tiers": [
                {"min_subtotal_minor": 5000, "percent": 5, "amount_minor": 100}]}]}),
            "actions.tiers",
        ),
        (
            json!({"actions": [{"type": "tiered", "tiers": [{"min_subtotal_minor": 5000}]}]}),
            "actions.tiers",
        ),
        (
            json!({"conditions": {"min_subtotal_minor": 0}}),
            "conditions.min_subtotal_minor",
        ),
        (
            json!({"conditions": {"min_quantity": 0}}),
            "conditions.min_quantity",
        ),
        (
            json!({"conditions": {"products": [0]}}),
            "conditions.products",
        ),
        (
            json!({"conditions": {"products": vec![1; CONDITION_LIST_MAX + 1]}}),
            "conditions.products",
        ),
        (
            json!({"conditions": {"categories": [-3]}}),
            "conditions.categories",
        ),
        (
            json!({"conditions": {"customer_tags": [""]}}),
            "conditions.customer_tags",
        ),
        (
            json!({"conditions": {"customer_roles": ["r".repeat(LABEL_MAX_CHARS + 1)]}}),
            "conditions.customer_roles",
        ),
        (
            json!({"conditions": {"customer_ids": ["4\n2"]}}),
            "conditions.customer_ids",
        ),
        (
            json!({"conditions": {"starts_at": "2026-03-01"}}),
            "conditions.starts_at",
        ),
        (
            json!({"conditions": {"starts_at": "2026-03-01T00:00:00Z",
                                  "ends_at": "2026-03-01T01:00:00+01:00"}}),
            "conditions.ends_at",
        ),
        (
            json!({"conditions": {"schedule": {"time_zone": "Mars/Olympus"}}}),
            "conditions.schedule.time_zone",
        ),
        (
            json!({"conditions": {"attributes": {"Color": "red"}}}),
            "conditions.attributes",
        ),
        (
            json!({"conditions": {"attributes": {"color": "r".repeat(501)}}}),
            "conditions.attributes",
        ),
        (
            json!({"conditions": {"currency": "eur"}}),
            "conditions.currency",
        ),
        (json!({"stacking": {"class": ""}}), "stacking.class"),
        (
            json!({"limits": {"budget_minor": 1000}}),
            "conditions.currency",
        ),
        (
            json!({"limits": {"per_customer_budget_minor": 1000}}),
            "conditions.currency",
        ),
        (
            json!({"conditions": {"currency": "EUR"}, "limits": {"budget_minor": 0}}),
            "limits.budget_minor",
        ),
        (
            json!({"limits": {"redemptions_max": 0}}),
            "limits.redemptions_max",
        ),
        (
            json!({"limits": {"per_customer_redemptions_max": -1}}),
            "limits.per_customer_redemptions_max",
        ),
    ];
    for (patch, field) in cases {
        assert_eq!(spec_error(base(patch.clone())), field, "{patch}");
    }
}

#[test]
fn a_valid_spec_is_kept_trimmed() {
    let p = promotion(json!({
        "name": "  Spring  ", "description": "  ", "trigger": "code",
        "conditions": {"currency": "EUR", "starts_at": "2026-03-01T00:00:00+01:00",
                       "customer_tags": [" vip "]},
        "actions": [{"type": "fixed_price", "unit_price_minor": 0}],
        "limits": {"budget_minor": 1000}
    }));
    assert_eq!(p.spec().name, "Spring");
    assert_eq!(p.spec().description, None);
    assert_eq!(p.spec().conditions.customer_tags, vec!["vip".to_owned()]);
    assert_eq!(p.starts_at(), Some(at("2026-02-28T23:00:00Z")));
    assert_eq!(p.trigger(), Trigger::Code);
}

#[test]
fn cart_errors_name_their_field_and_codes_are_kept_as_entered() {
    let good = || {
        let mut c = cart(vec![line(1, 2, 1000)]);
        c.codes = vec![
            " 봄맞이 ".to_owned(),
            "spring10".to_owned(),
            "봄맞이".to_owned(),
        ];
        c
    };
    let parsed = Cart::parse(good()).expect("a valid cart");
    assert_eq!(
        parsed.codes,
        vec!["봄맞이".to_owned(), "spring10".to_owned()]
    );

    type Patch = fn(&mut Cart);
    let cases: [(Patch, &str); 11] = [
        (|c| c.currency = "Eur".to_owned(), "currency"),
        (|c| c.lines.clear(), "lines"),
        (
            |c| c.lines = vec![line(1, 1, 1); CART_LINES_MAX + 1],
            "lines",
        ),
        (|c| c.lines[0].quantity = 0, "lines.quantity"),
        (
            |c| c.lines[0].quantity = LINE_QUANTITY_MAX + 1,
            "lines.quantity",
        ),
        (
            |c| c.lines[0].unit_price_minor = -1,
            "lines.unit_price_minor",
        ),
        (
            |c| c.lines = vec![line(1, 1, MONEY_MAX), line(2, 1, 1)],
            "lines",
        ),
        (|c| c.shipping_minor = -5, "shipping_minor"),
        (|c| c.codes = vec!["  ".to_owned()], "codes"),
        (
            |c| c.codes = vec!["C".to_owned(); CART_CODES_MAX + 1],
            "codes",
        ),
        (|c| c.lines[0].product = 0, "lines.product_id"),
    ];
    for (patch, field) in cases {
        let mut c = good();
        patch(&mut c);
        assert_eq!(Cart::parse(c).map(|_| ()).unwrap_err().field(), field);
    }
}

// ---------------------------------------------------------------------------------------------
// Conditions, each met and not

#[test]
fn time_window() {
    let p = promotion(json!({"name": "W", "trigger": "automatic",
        "conditions": {"starts_at": "2026-03-10T12:00:00Z", "ends_at": "2026-03-11T00:00:00Z"},
        "actions": [{"type": "percent_off", "percent": 10}]}));
    let c = cart(vec![line(1, 1, 1000)]);
    assert_eq!(
        conditions_hold(&p, &c, at("2026-03-10T11:59:59.999Z")),
        Err(Reason::NotStarted)
    );
    assert_eq!(conditions_hold(&p, &c, at("2026-03-10T12:00:00Z")), Ok(()));
    assert_eq!(
        conditions_hold(&p, &c, at("2026-03-10T23:59:59.999Z")),
        Ok(())
    );
    assert_eq!(
        conditions_hold(&p, &c, at("2026-03-11T00:00:00Z")),
        Err(Reason::Ended)
    );
}

#[test]
fn schedule_in_paris_across_the_march_change() {
    // Weekend mornings 09:00-12:00 Paris time. 2026-03-29 (a Sunday) is the change to summer
    // time: 09:00 Paris is 08:00 UTC on Saturday the 28th and 07:00 UTC on Sunday the 29th.
    let p = promotion(json!({"name": "Brunch", "trigger": "automatic",
        "conditions": {"schedule": {"time_zone": "Europe/Paris", "weekdays": ["sat", "sun"],
                                    "from": "09:00", "until": "12:00"}},
        "actions": [{"type": "percent_off", "percent": 10}]}));
    let c = cart(vec![line(1, 1, 1000)]);
    let check = |t: &str| conditions_hold(&p, &c, at(t));
    assert_eq!(check("2026-03-28T07:30:00Z"), Err(Reason::OutsideSchedule));
    assert_eq!(check("2026-03-28T08:00:00Z"), Ok(()));
    assert_eq!(check("2026-03-28T10:59:00Z"), Ok(()));
    assert_eq!(check("2026-03-28T11:00:00Z"), Err(Reason::OutsideSchedule));
    assert_eq!(check("2026-03-29T06:59:00Z"), Err(Reason::OutsideSchedule));
    assert_eq!(check("2026-03-29T07:00:00Z"), Ok(()));
    assert_eq!(check("2026-03-29T09:59:00Z"), Ok(()));
    assert_eq!(check("2026-03-29T10:00:00Z"), Err(Reason::OutsideSchedule));
    // A Monday at 10:00 Paris.
    assert_eq!(check("2026-03-30T08:00:00Z"), Err(Reason::OutsideSchedule));
}

#[test]
fn currency() {
    let p = promotion(json!({"name": "KRW only", "trigger": "automatic",
        "conditions": {"currency": "KRW"},
        "actions": [{"type": "percent_off", "percent": 10}]}));
    let mut c = cart(vec![line(1, 1, 1000)]);
    assert_eq!(reason_of(&p, &c), Err(Reason::WrongCurrency));
    c.currency = "KRW".to_owned();
    assert_eq!(reason_of(&p, &c), Ok(()));
}

#[test]
fn customer_roles_tags_and_ids() {
    let c = cart(vec![line(1, 1, 1000)]);
    let with = |conditions: Value| {
        promotion(
            json!({"name": "C", "trigger": "automatic", "conditions": conditions,
            "actions": [{"type": "percent_off", "percent": 10}]}),
        )
    };
    let roles = with(json!({"customer_roles": ["admin", "customer"]}));
    assert_eq!(reason_of(&roles, &c), Ok(()));
    let staff = with(json!({"customer_roles": ["admin"]}));
    assert_eq!(reason_of(&staff, &c), Err(Reason::CustomerNotEligible));

    let tags = with(json!({"customer_tags": ["vip", "gold"]}));
    assert_eq!(reason_of(&tags, &c), Err(Reason::CustomerNotEligible));
    let mut vip = c.clone();
    vip.customer.tags = vec!["gold".to_owned()];
    assert_eq!(reason_of(&tags, &vip), Ok(()));

    let ids = with(json!({"customer_ids": ["42"]}));
    assert_eq!(reason_of(&ids, &c), Ok(()));
    let mut other = c.clone();
    other.customer.id = Some("43".to_owned());
    assert_eq!(reason_of(&ids, &other), Err(Reason::CustomerNotEligible));

    // A guest has no id and no role: a condition on either is not met.
    let mut guest = c.clone();
    guest.customer = Customer::default();
    assert_eq!(reason_of(&ids, &guest), Err(Reason::CustomerNotEligible));
    assert_eq!(reason_of(&roles, &guest), Err(Reason::CustomerNotEligible));
}

#[test]
fn first_order() {
    let p = promotion(json!({"name": "Welcome", "trigger": "code",
        "conditions": {"first_order": true},
        "actions": [{"type": "percent_off", "percent": 10}]}));
    let mut c = cart(vec![line(1, 1, 1000)]);
    assert_eq!(reason_of(&p, &c), Ok(()));
    c.customer.orders_before = 1;
    assert_eq!(reason_of(&p, &c), Err(Reason::NotFirstOrder));
    c.customer = Customer::default();
    assert_eq!(reason_of(&p, &c), Err(Reason::CustomerRequired));
}

#[test]
fn minimums_of_the_cart_or_of_matching_lines() {
    let c = cart(vec![line(1, 2, 1000), line(2, 1, 3000)]);
    let with = |conditions: Value| {
        promotion(
            json!({"name": "M", "trigger": "automatic", "conditions": conditions,
            "actions": [{"type": "percent_off", "percent": 10}]}),
        )
    };
    assert_eq!(
        reason_of(&with(json!({"min_subtotal_minor": 5000})), &c),
        Ok(())
    );
    assert_eq!(
        reason_of(&with(json!({"min_subtotal_minor": 5001})), &c),
        Err(Reason::MinSubtotalNotMet)
    );
    assert_eq!(reason_of(&with(json!({"min_quantity": 3})), &c), Ok(()));
    assert_eq!(
        reason_of(&with(json!({"min_quantity": 4})), &c),
        Err(Reason::MinQuantityNotMet)
    );
    // Of matching lines: only product 1 (2 items, 2,000) counts.
    let matching = |min: Value| {
        let mut conditions = json!({"products": [1], "minimums_of": "matching"});
        if let (Some(c), Some(m)) = (conditions.as_object_mut(), min.as_object()) {
            c.extend(m.clone());
        }
        with(conditions)
    };
    assert_eq!(
        reason_of(&matching(json!({"min_subtotal_minor": 2000})), &c),
        Ok(())
    );
    assert_eq!(
        reason_of(&matching(json!({"min_subtotal_minor": 2001})), &c),
        Err(Reason::MinSubtotalNotMet)
    );
    assert_eq!(
        reason_of(&matching(json!({"min_quantity": 3})), &c),
        Err(Reason::MinQuantityNotMet)
    );
    // Of the cart, with the same scope: the whole 5,000 counts.
    assert_eq!(
        reason_of(
            &with(json!({"products": [1], "min_subtotal_minor": 5000})),
            &c
        ),
        Ok(())
    );
}

#[test]
fn scope_by_product_category_and_attribute() {
    let mut mug = line(1, 1, 1000);
    mug.categories = vec![10, 1]; // "mugs" under "kitchen"
    mug.attributes = [
        ("color".to_owned(), "red".to_owned()),
        ("size_cl".to_owned(), "33".to_owned()),
        ("dishwasher".to_owned(), "true".to_owned()),
    ]
    .into();
    let c = cart(vec![mug, line(2, 1, 500)]);
    let with = |conditions: Value| {
        promotion(
            json!({"name": "S", "trigger": "automatic", "conditions": conditions,
            "actions": [{"type": "percent_off", "percent": 10}]}),
        )
    };
    for (conditions, expected) in [
        (json!({"products": [2]}), Ok(())),
        (json!({"products": [3]}), Err(Reason::NotInScope)),
        // A parent category covers its subcategories (the line carries its ancestors).
        (json!({"categories": [1]}), Ok(())),
        (json!({"categories": [11]}), Err(Reason::NotInScope)),
        (json!({"attributes": {"color": "red"}}), Ok(())),
        (
            json!({"attributes": {"color": "Red"}}),
            Err(Reason::NotInScope),
        ),
        (json!({"attributes": {"size_cl": "33.0"}}), Ok(())),
        (json!({"attributes": {"dishwasher": "TRUE"}}), Ok(())),
        (
            json!({"categories": [1], "attributes": {"color": "blue"}}),
            Err(Reason::NotInScope),
        ),
    ] {
        assert_eq!(
            reason_of(&with(conditions.clone()), &c),
            expected,
            "{conditions}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Actions, exact figures

#[test]
fn percent_off_the_order_spreads_in_proportion_with_a_cap() {
    let c = cart(vec![line(1, 1, 999), line(2, 1, 1), line(3, 3, 333)]);
    // 10% of 1,999 = 199.9 -> 199, spread 99.45 / 0.09 / 99.45 -> 99 / 0 / 99, then the one
    // unit left to the largest fraction (a tie of .45 and .45: the lower index).
    let p = promotion(json!({"name": "P", "trigger": "automatic",
        "actions": [{"type": "percent_off", "percent": 10}]}));
    assert_eq!(alone(&p, &c), (199, vec![100, 0, 99]));
    let capped = promotion(json!({"name": "P", "trigger": "automatic",
        "actions": [{"type": "percent_off", "percent": 10, "cap_minor": 50}]}));
    assert_eq!(alone(&capped, &c).0, 50);
}

#[test]
fn percent_off_matching_lines() {
    let c = cart(vec![line(1, 2, 1000), line(2, 1, 3000)]);
    let p = promotion(json!({"name": "P", "trigger": "automatic",
        "conditions": {"products": [2]},
        "actions": [{"type": "percent_off", "percent": 15, "target": "matching_lines"}]}));
    assert_eq!(alone(&p, &c), (450, vec![0, 450]));
}

#[test]
fn amount_off_never_more_than_the_target() {
    let c = cart(vec![line(1, 1, 300), line(2, 1, 100)]);
    let p = promotion(json!({"name": "A", "trigger": "automatic",
        "actions": [{"type": "amount_off", "amount_minor": 250}]}));
    // 250 over 300 and 100: 187.5 and 62.5 -> 187 and 62, then one to line 0 (tie: index).
    assert_eq!(alone(&p, &c), (250, vec![188, 62]));
    let big = promotion(json!({"name": "A", "trigger": "automatic",
        "conditions": {"products": [2]},
        "actions": [{"type": "amount_off", "amount_minor": 5000, "target": "matching_lines"}]}));
    assert_eq!(alone(&big, &c), (100, vec![0, 100]));
}

#[test]
fn fixed_price_dearest_items_first() {
    let c = cart(vec![line(1, 2, 1500), line(2, 3, 2500), line(3, 1, 800)]);
    // Each item at 1,000 where dearer: line 0 saves 2 x 500, line 1 3 x 1,500, line 2 none.
    let all = promotion(json!({"name": "F", "trigger": "automatic",
        "actions": [{"type": "fixed_price", "unit_price_minor": 1000}]}));
    assert_eq!(alone(&all, &c), (5500, vec![1000, 4500, 0]));
    // At most 4 items: the 3 at 2,500 then 1 at 1,500.
    let four = promotion(json!({"name": "F", "trigger": "automatic",
        "actions": [{"type": "fixed_price", "unit_price_minor": 1000, "max_items": 4}]}));
    assert_eq!(alone(&four, &c), (5000, vec![500, 4500, 0]));
}

#[test]
fn buy_x_get_y_cheapest_free() {
    // 7 items in scope (products 1 and 2); buy 2 get 1: 2 applications, the 2 cheapest free.
    let c = cart(vec![
        line(1, 3, 1000),
        line(2, 2, 400),
        line(3, 5, 100),
        line(2, 2, 700),
    ]);
    let p = promotion(json!({"name": "B", "trigger": "automatic",
        "conditions": {"products": [1, 2]},
        "actions": [{"type": "buy_x_get_y", "buy": 2, "get": 1}]}));
    assert_eq!(alone(&p, &c), (800, vec![0, 800, 0, 0]));
    // Half off, at most one application: one item at 400, 50% off.
    let half = promotion(json!({"name": "B", "trigger": "automatic",
        "conditions": {"products": [1, 2]},
        "actions": [{"type": "buy_x_get_y", "buy": 2, "get": 1, "percent_off": 50,
                     "max_applications": 1}]}));
    assert_eq!(alone(&half, &c), (200, vec![0, 200, 0, 0]));
    // Equal prices: the earlier line's items first.
    let same = cart(vec![line(1, 1, 500), line(2, 1, 500)]);
    let one_one = promotion(json!({"name": "B", "trigger": "automatic",
        "actions": [{"type": "buy_x_get_y", "buy": 1, "get": 1}]}));
    assert_eq!(alone(&one_one, &same), (500, vec![500, 0]));
}

#[test]
fn tiered_highest_tier_reached() {
    let p = promotion(json!({"name": "T", "trigger": "automatic",
        "actions": [{"type": "tiered", "tiers": [
            {"min_subtotal_minor": 5000, "percent": 5},
            {"min_subtotal_minor": 10000, "percent": 10},
            {"min_subtotal_minor": 20000, "amount_minor": 3000}]}]}));
    assert_eq!(alone(&p, &cart(vec![line(1, 1, 4999)])).0, 0);
    assert_eq!(alone(&p, &cart(vec![line(1, 1, 5000)])).0, 250);
    assert_eq!(alone(&p, &cart(vec![line(1, 1, 19999)])).0, 1999);
    assert_eq!(alone(&p, &cart(vec![line(1, 2, 10000)])).0, 3000);
}

#[test]
fn free_shipping_up_to_its_cap() {
    let mut c = cart(vec![line(1, 1, 1000)]);
    c.shipping_minor = 790;
    let p = promotion(json!({"name": "S", "trigger": "automatic",
        "actions": [{"type": "free_shipping", "cap_minor": 500}]}));
    let e = evaluate(&c, &[auto(1, &p)], &[], now());
    assert_eq!(e.applied[0].shipping_minor, 500);
    assert_eq!(e.applied[0].amount_minor, 500);
    assert!(e.applied[0].lines.is_empty());
    assert_eq!(
        (e.shipping_discount_minor, e.discount_minor, e.total_minor),
        (500, 0, 1290)
    );
    // No shipping: nothing to give, refused as such.
    c.shipping_minor = 0;
    let e = evaluate(&c, &[auto(1, &p)], &[], now());
    assert!(e.applied.is_empty());
    assert_eq!(e.refused[0].reason, Reason::NoDiscount);
}

#[test]
fn actions_of_one_promotion_apply_in_turn() {
    // 1,000 off, then 10% of what is left (9,000): 1,900 in all.
    let c = cart(vec![line(1, 1, 10000)]);
    let p = promotion(json!({"name": "Two", "trigger": "automatic",
        "actions": [{"type": "amount_off", "amount_minor": 1000},
                    {"type": "percent_off", "percent": 10}]}));
    assert_eq!(alone(&p, &c), (1900, vec![1900]));
}

// ---------------------------------------------------------------------------------------------
// Stacking, priority and budgets

fn with_stacking(action: Value, stacking: Value) -> Promotion {
    promotion(
        json!({"name": "X", "trigger": "automatic", "actions": [action],
                     "stacking": stacking}),
    )
}

#[test]
fn best_for_the_customer_first_and_an_exclusive_one_alone() {
    let c = cart(vec![line(1, 1, 10000)]);
    let ten = with_stacking(
        json!({"type": "percent_off", "percent": 10}),
        json!({"exclusive": true}),
    );
    let fifteen = with_stacking(
        json!({"type": "amount_off", "amount_minor": 1500}),
        json!({"exclusive": true}),
    );
    let e = evaluate(&c, &[auto(1, &ten), auto(2, &fifteen)], &[], now());
    assert_eq!(e.applied.len(), 1);
    assert_eq!((e.applied[0].id, e.applied[0].amount_minor), (id(2), 1500));
    assert_eq!(
        e.refused,
        vec![Refused {
            id: Some(id(1)),
            code: None,
            reason: Reason::NotCombinable
        }]
    );
    assert_eq!(e.total_minor, 8500);
}

#[test]
fn priority_before_size_and_combining_within_a_class() {
    let c = cart(vec![line(1, 1, 10000)]);
    let small_first = with_stacking(
        json!({"type": "amount_off", "amount_minor": 500}),
        json!({"priority": 10}),
    );
    let ten = with_stacking(json!({"type": "percent_off", "percent": 10}), json!({}));
    let other_class = with_stacking(
        json!({"type": "percent_off", "percent": 50}),
        json!({"class": "clearance", "priority": -1}),
    );
    let e = evaluate(
        &c,
        &[auto(3, &other_class), auto(2, &ten), auto(1, &small_first)],
        &[],
        now(),
    );
    // 500 first (priority), then 10% of 9,500 = 950; the clearance class does not combine.
    let applied: Vec<(PromotionId, i64)> =
        e.applied.iter().map(|a| (a.id, a.amount_minor)).collect();
    assert_eq!(applied, vec![(id(1), 500), (id(2), 950)]);
    assert_eq!(e.refused.len(), 1);
    assert_eq!(
        (e.refused[0].id, e.refused[0].reason),
        (Some(id(3)), Reason::NotCombinable)
    );
    assert_eq!((e.discount_minor, e.total_minor), (1450, 8550));
}

#[test]
fn a_code_wins_a_tie_and_refused_codes_keep_the_cart_order() {
    let mut c = cart(vec![line(1, 1, 10000)]);
    c.codes = vec![
        "NOPE".to_owned(),
        "TEN".to_owned(),
        "BIG".to_owned(),
        "USED".to_owned(),
    ];
    let ten_code = promotion(json!({"name": "T", "trigger": "code",
        "actions": [{"type": "percent_off", "percent": 10}], "stacking": {"exclusive": true}}));
    let ten_auto = promotion(json!({"name": "A", "trigger": "automatic",
        "actions": [{"type": "amount_off", "amount_minor": 1000}]}));
    let big = promotion(json!({"name": "B", "trigger": "code",
        "conditions": {"min_subtotal_minor": 50000},
        "actions": [{"type": "percent_off", "percent": 30}]}));
    let e = evaluate(
        &c,
        &[
            auto(1, &ten_auto),
            coded(7, &big, "BIG"),
            coded(9, &ten_code, "TEN"),
        ],
        &[
            ("USED".to_owned(), Reason::CodeUnusable),
            ("NOPE".to_owned(), Reason::UnknownCode),
        ],
        now(),
    );
    assert_eq!(e.applied.len(), 1);
    assert_eq!(
        (e.applied[0].id, e.applied[0].code.as_deref()),
        (id(9), Some("TEN"))
    );
    let refused: Vec<(Option<i64>, Option<&str>, Reason)> = e
        .refused
        .iter()
        .map(|r| (r.id.map(PromotionId::get), r.code.as_deref(), r.reason))
        .collect();
    assert_eq!(
        refused,
        vec![
            (None, Some("NOPE"), Reason::UnknownCode),
            (Some(7), Some("BIG"), Reason::MinSubtotalNotMet),
            (None, Some("USED"), Reason::CodeUnusable),
            (Some(1), None, Reason::NotCombinable),
        ]
    );
}

#[test]
fn automatic_promotions_whose_conditions_fail_are_not_listed() {
    let c = cart(vec![line(1, 1, 1000)]);
    let far = promotion(json!({"name": "F", "trigger": "automatic",
        "conditions": {"min_subtotal_minor": 100000},
        "actions": [{"type": "percent_off", "percent": 10}]}));
    let e = evaluate(&c, &[auto(1, &far)], &[], now());
    assert!(e.applied.is_empty() && e.refused.is_empty());
    assert_eq!(e.total_minor, 1000);
}

#[test]
fn budgets_cap_the_amount_and_limits_refuse() {
    let c = cart(vec![line(1, 1, 6000), line(2, 1, 4000)]);
    let p = promotion(json!({"name": "Budget", "trigger": "automatic",
        "conditions": {"currency": "EUR"},
        "actions": [{"type": "percent_off", "percent": 20}],
        "limits": {"budget_minor": 10000, "per_customer_budget_minor": 1500,
                   "redemptions_max": 100, "per_customer_redemptions_max": 2}}));
    let with = |usage: Usage| {
        let cand = Candidate {
            usage,
            ..auto(1, &p)
        };
        evaluate(&c, &[cand], &[], now())
    };
    // 20% is 2,000; 9,000 of the budget is used or held: 1,000 left, spread 600 / 400.
    let e = with(Usage {
        redeemed_minor: 8000,
        held_minor: 1000,
        ..Usage::default()
    });
    let a = &e.applied[0];
    assert_eq!((a.amount_minor, a.capped_by_budget), (1000, true));
    assert_eq!(
        a.lines,
        vec![
            LineDiscount {
                line: 0,
                amount_minor: 600
            },
            LineDiscount {
                line: 1,
                amount_minor: 400
            }
        ]
    );
    // The customer's 1,500 is the smaller: 1,300 of it used leaves 200.
    let e = with(Usage {
        customer_redeemed_minor: 1000,
        customer_held_minor: 300,
        ..Usage::default()
    });
    assert_eq!(e.applied[0].amount_minor, 200);
    let refused = |usage: Usage| with(usage).refused.first().map(|r| r.reason);
    assert_eq!(
        refused(Usage {
            redeemed_minor: 10000,
            ..Usage::default()
        }),
        Some(Reason::BudgetExhausted)
    );
    assert_eq!(
        refused(Usage {
            customer_held_minor: 1500,
            ..Usage::default()
        }),
        Some(Reason::CustomerBudgetExhausted)
    );
    assert_eq!(
        refused(Usage {
            redemptions: 99,
            held: 1,
            ..Usage::default()
        }),
        Some(Reason::RedemptionLimitReached)
    );
    assert_eq!(
        refused(Usage {
            customer_redemptions: 1,
            customer_held: 1,
            ..Usage::default()
        }),
        Some(Reason::CustomerLimitReached)
    );
    // One redemption left of each: still given.
    assert_eq!(
        with(Usage {
            redemptions: 98,
            held: 1,
            customer_redemptions: 1,
            ..Usage::default()
        })
        .applied[0]
            .amount_minor,
        1500
    );
    // No customer id: a per-customer limit cannot be kept.
    let mut guest = c.clone();
    guest.customer = Customer::default();
    let e = evaluate(&guest, &[auto(1, &p)], &[], now());
    assert_eq!(e.refused[0].reason, Reason::CustomerRequired);
}

#[test]
fn a_later_promotion_gets_only_what_is_left() {
    let c = cart(vec![line(1, 1, 1000)]);
    let all = with_stacking(
        json!({"type": "fixed_price", "unit_price_minor": 0}),
        json!({"priority": 1}),
    );
    let more = with_stacking(
        json!({"type": "amount_off", "amount_minor": 100}),
        json!({}),
    );
    let e = evaluate(&c, &[auto(1, &all), auto(2, &more)], &[], now());
    assert_eq!(e.applied.len(), 1);
    assert_eq!(e.refused[0].reason, Reason::NoDiscount);
    assert_eq!((e.discount_minor, e.total_minor), (1000, 0));
}

#[test]
fn a_promotion_reached_by_two_codes_counts_once() {
    let mut c = cart(vec![line(1, 1, 1000)]);
    c.codes = vec!["A".to_owned(), "B".to_owned()];
    let p = promotion(json!({"name": "P", "trigger": "code",
        "actions": [{"type": "amount_off", "amount_minor": 100}]}));
    let e = evaluate(&c, &[coded(1, &p, "B"), coded(1, &p, "A")], &[], now());
    assert_eq!(e.applied.len(), 1);
    assert_eq!(e.applied[0].code.as_deref(), Some("A"));
    assert_eq!(e.refused.len(), 1);
    assert_eq!(
        (e.refused[0].code.as_deref(), e.refused[0].reason),
        (Some("B"), Reason::NotCombinable)
    );
    assert_eq!(e.discount_minor, 100);
}

#[test]
fn a_code_promotion_without_its_code_is_not_considered() {
    let c = cart(vec![line(1, 1, 1000)]);
    let p = promotion(json!({"name": "P", "trigger": "code",
        "actions": [{"type": "amount_off", "amount_minor": 100}]}));
    let e = evaluate(&c, &[auto(1, &p)], &[], now());
    assert!(e.applied.is_empty() && e.refused.is_empty());
}

#[test]
fn a_code_in_another_case_is_matched_and_answered_as_entered() {
    let mut c = cart(vec![line(1, 1, 1000)]);
    c.codes = vec!["spring10".to_owned()];
    let p = promotion(json!({"name": "P", "trigger": "code",
        "actions": [{"type": "amount_off", "amount_minor": 100}]}));
    let e = evaluate(&c, &[coded(1, &p, "SPRING10")], &[], now());
    assert_eq!(e.applied[0].code.as_deref(), Some("spring10"));
    assert!(e.refused.is_empty());
}

#[test]
fn ties_are_broken_by_id_whatever_the_order_given() {
    let c = cart(vec![line(1, 1, 10000)]);
    let ten = promotion(json!({"name": "T", "trigger": "automatic",
        "actions": [{"type": "percent_off", "percent": 10}]}));
    let e = evaluate(&c, &[auto(2, &ten), auto(1, &ten)], &[], now());
    let applied: Vec<(PromotionId, i64)> =
        e.applied.iter().map(|a| (a.id, a.amount_minor)).collect();
    // The lower id first: 10% of 10,000, then 10% of the 9,000 left.
    assert_eq!(applied, vec![(id(1), 1000), (id(2), 900)]);
    assert_eq!(e, evaluate(&c, &[auto(1, &ten), auto(2, &ten)], &[], now()));
}

#[test]
fn a_budget_cuts_lines_and_shipping_in_proportion() {
    let mut c = cart(vec![line(1, 1, 1000)]);
    c.shipping_minor = 500;
    let p = promotion(json!({"name": "Both", "trigger": "automatic",
        "conditions": {"currency": "EUR"},
        "actions": [{"type": "percent_off", "percent": 10}, {"type": "free_shipping"}],
        "limits": {"budget_minor": 1000}}));
    let cand = Candidate {
        usage: Usage {
            redeemed_minor: 700,
            ..Usage::default()
        },
        ..auto(1, &p)
    };
    // 100 off the line and 500 off the shipping would be 600; 300 is left: 50 and 250.
    let e = evaluate(&c, &[cand], &[], now());
    let a = &e.applied[0];
    assert_eq!(
        (a.amount_minor, a.shipping_minor, a.capped_by_budget),
        (300, 250, true)
    );
    assert_eq!((e.discount_minor, e.shipping_discount_minor), (50, 250));
    assert_eq!(e.total_minor, 1000 - 50 + 500 - 250);
}

#[test]
fn an_exclusive_one_that_comes_second_is_refused_even_in_the_same_class() {
    let c = cart(vec![line(1, 1, 10000)]);
    let big = with_stacking(json!({"type": "percent_off", "percent": 20}), json!({}));
    let alone = with_stacking(
        json!({"type": "percent_off", "percent": 10}),
        json!({"exclusive": true}),
    );
    let small = with_stacking(
        json!({"type": "amount_off", "amount_minor": 100}),
        json!({}),
    );
    let e = evaluate(
        &c,
        &[auto(1, &alone), auto(2, &big), auto(3, &small)],
        &[],
        now(),
    );
    let applied: Vec<(PromotionId, i64)> =
        e.applied.iter().map(|a| (a.id, a.amount_minor)).collect();
    assert_eq!(applied, vec![(id(2), 2000), (id(3), 100)]);
    assert_eq!(
        e.refused,
        vec![Refused {
            id: Some(id(1)),
            code: None,
            reason: Reason::NotCombinable
        }]
    );
}

#[test]
fn tiers_count_only_the_matching_lines_when_they_target_them() {
    let c = cart(vec![line(1, 1, 6000), line(2, 1, 6000)]);
    let p = promotion(json!({"name": "T", "trigger": "automatic",
        "conditions": {"products": [2]},
        "actions": [{"type": "tiered", "target": "matching_lines", "tiers": [
            {"min_subtotal_minor": 5000, "percent": 5},
            {"min_subtotal_minor": 10000, "percent": 10}]}]}));
    // The cart is 12,000, but the matching line alone is 6,000: the 5% tier, on it only.
    assert_eq!(alone(&p, &c), (300, vec![0, 300]));
}

#[test]
fn a_code_the_caller_refused_is_not_applied_even_with_a_candidate() {
    let mut c = cart(vec![line(1, 1, 1000)]);
    c.codes = vec!["USED".to_owned()];
    let p = promotion(json!({"name": "P", "trigger": "code",
        "actions": [{"type": "amount_off", "amount_minor": 100}]}));
    let e = evaluate(
        &c,
        &[coded(1, &p, "USED")],
        &[("USED".to_owned(), Reason::CodeUnusable)],
        now(),
    );
    assert!(e.applied.is_empty());
    assert_eq!(
        e.refused,
        vec![Refused {
            id: None,
            code: Some("USED".to_owned()),
            reason: Reason::CodeUnusable
        }]
    );
}

#[test]
fn a_code_nobody_answered_for_is_unknown() {
    let mut c = cart(vec![line(1, 1, 1000)]);
    c.codes = vec!["WHO".to_owned()];
    let e = evaluate(&c, &[], &[], now());
    assert_eq!(
        e.refused,
        vec![Refused {
            id: None,
            code: Some("WHO".to_owned()),
            reason: Reason::UnknownCode
        }]
    );
}

#[test]
fn an_unchecked_cart_of_extreme_figures_does_not_bring_the_engine_down() {
    let mut c = cart(vec![
        line(1, i64::MAX, i64::MAX),
        line(2, i64::MAX, i64::MAX),
        line(3, 0, 5),
        line(4, -3, -7),
    ]);
    c.shipping_minor = i64::MAX;
    c.codes = vec!["X".to_owned()];
    let actions = json!([
        {"type": "percent_off", "percent": 100},
        {"type": "amount_off", "amount_minor": MONEY_MAX},
        {"type": "fixed_price", "unit_price_minor": 0},
        {"type": "buy_x_get_y", "buy": 1, "get": 1},
        {"type": "free_shipping"}]);
    let p = promotion(json!({"name": "All", "trigger": "automatic", "actions": actions}));
    let t = promotion(json!({"name": "T", "trigger": "code",
        "actions": [{"type": "tiered", "tiers": [{"min_subtotal_minor": 1, "percent": 50}]}]}));
    let e = evaluate(&c, &[auto(1, &p), coded(2, &t, "X")], &[], now());
    assert!(e.total_minor >= 0);
    assert!(
        e.lines
            .iter()
            .all(|l| l.discount_minor <= l.line_total_minor)
    );
}

//! A promotion's spec in words, for its console page (what a marketer wrote, read back as a
//! sentence per condition and action), and the example specs the create form starts from.

use allot_domain::promotion::{
    ActionSpec, Basis, ConditionsSpec, LimitsSpec, PromotionSpec, ScheduleSpec, StackingSpec,
    Target, TierSpec, Trigger,
};

use super::ui;

/// Most ids of a list (products, categories, customers) written out; the rest are counted.
const IDS_SHOWN_MAX: usize = 12;

pub(super) fn trigger(t: Trigger) -> &'static str {
    match t {
        Trigger::Automatic => "automatic",
        Trigger::Code => "code",
    }
}

/// An amount of the promotion's currency, or in minor units of the cart's when it names none.
pub(super) fn amount(minor: i64, currency: Option<&str>) -> String {
    match currency {
        Some(c) => ui::money(minor, c),
        None => format!("{} (minor units)", ui::int(minor)),
    }
}

fn list<T: ToString>(items: &[T], joiner: &str) -> String {
    let mut shown: Vec<String> = items
        .iter()
        .take(IDS_SHOWN_MAX)
        .map(ToString::to_string)
        .collect();
    if items.len() > IDS_SHOWN_MAX {
        shown.push(format!(
            "{} more",
            ui::int(items.len() as u64 - IDS_SHOWN_MAX as u64)
        ));
    }
    match shown.len() {
        0 => String::new(),
        1 => shown.remove(0),
        n => format!("{} {joiner} {}", shown[..n - 1].join(", "), shown[n - 1]),
    }
}

/// Whether the spec narrows its lines at all (otherwise every line is in scope).
fn scoped(c: &ConditionsSpec) -> bool {
    !c.products.is_empty() || !c.categories.is_empty() || !c.attributes.is_empty()
}

fn basis(b: Basis) -> &'static str {
    match b {
        Basis::Cart => "of the cart",
        Basis::Matching => "of the matching lines",
    }
}

fn target(t: Target) -> &'static str {
    match t {
        Target::Order => "off the order",
        Target::MatchingLines => "off the matching lines",
    }
}

fn schedule(s: &ScheduleSpec) -> String {
    let days = if s.weekdays.is_empty() {
        "every day".to_owned()
    } else {
        let names: Vec<String> = s.weekdays.iter().map(|d| format!("{d:?}")).collect();
        format!("on {}", list(&names, "and"))
    };
    format!(
        "Recurring: {days}, from {} until {} ({})",
        s.from.as_deref().unwrap_or("00:00"),
        s.until.as_deref().unwrap_or("the end of the day"),
        s.time_zone
    )
}

/// One sentence per condition given; "Every cart" when there is none.
pub(super) fn conditions(c: &ConditionsSpec) -> Vec<String> {
    let cur = c.currency.as_deref();
    let mut out = Vec::new();
    if let Some(currency) = cur {
        out.push(format!("Carts in {currency}"));
    }
    if let Some(min) = c.min_subtotal_minor {
        out.push(format!(
            "Subtotal {} at least {}",
            basis(c.minimums_of),
            amount(min, cur)
        ));
    }
    if let Some(min) = c.min_quantity {
        out.push(format!(
            "At least {} items {}",
            ui::int(min),
            basis(c.minimums_of)
        ));
    }
    if scoped(c) {
        let mut scope = Vec::new();
        if !c.products.is_empty() {
            scope.push(format!("products {}", list(&c.products, "or")));
        }
        if !c.categories.is_empty() {
            scope.push(format!(
                "in categories {} (or below)",
                list(&c.categories, "or")
            ));
        }
        let mut line = format!("Lines in scope: {}", scope.join(", or "));
        if scope.is_empty() {
            line = "Lines in scope: any product".to_owned();
        }
        if !c.attributes.is_empty() {
            let attrs: Vec<String> = c
                .attributes
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            line.push_str(&format!(", with {}", list(&attrs, "and")));
        }
        out.push(line);
    }
    if !c.customer_roles.is_empty() {
        out.push(format!(
            "Customers with the role {}",
            list(&c.customer_roles, "or")
        ));
    }
    if !c.customer_tags.is_empty() {
        out.push(format!("Customers tagged {}", list(&c.customer_tags, "or")));
    }
    if !c.customer_ids.is_empty() {
        out.push(format!(
            "Only the customers {}",
            list(&c.customer_ids, "and")
        ));
    }
    if c.first_order {
        out.push("The customer's first order".to_owned());
    }
    if let Some(start) = &c.starts_at {
        out.push(format!("From {start}"));
    }
    if let Some(end) = &c.ends_at {
        out.push(format!("Until {end} (not at it)"));
    }
    if let Some(s) = &c.schedule {
        out.push(schedule(s));
    }
    if out.is_empty() {
        out.push("None: every cart".to_owned());
    }
    out
}

fn tier(t: &TierSpec, cur: Option<&str>) -> String {
    let gives = match (t.percent, t.amount_minor) {
        (Some(p), _) => format!("{p}%"),
        (None, Some(a)) => amount(a, cur),
        (None, None) => "nothing".to_owned(),
    };
    format!("from {}: {gives}", amount(t.min_subtotal_minor, cur))
}

pub(super) fn action(a: &ActionSpec, cur: Option<&str>) -> String {
    match a {
        ActionSpec::PercentOff {
            percent,
            target: t,
            cap_minor,
        } => {
            let cap = cap_minor.map_or(String::new(), |c| {
                format!(", at most {} in all", amount(c, cur))
            });
            format!("{percent}% {}{cap}", target(*t))
        }
        ActionSpec::AmountOff {
            amount_minor,
            target: t,
        } => format!("{} {}", amount(*amount_minor, cur), target(*t)),
        ActionSpec::FixedPrice {
            unit_price_minor,
            max_items,
        } => {
            let max =
                max_items.map_or(String::new(), |m| format!(", at most {} items", ui::int(m)));
            format!(
                "Each matching item at {} (where it costs more){max}",
                amount(*unit_price_minor, cur)
            )
        }
        ActionSpec::BuyXGetY {
            buy,
            get,
            percent_off,
            max_applications,
        } => {
            let how = match percent_off {
                None | Some(100) => "free".to_owned(),
                Some(p) => format!("{p}% off"),
            };
            let max = max_applications
                .map_or(String::new(), |m| format!(", at most {} times", ui::int(m)));
            format!(
                "Buy {buy}, get {get} more {how} (the cheapest matching items){max}",
                buy = ui::int(*buy),
                get = ui::int(*get)
            )
        }
        ActionSpec::Tiered { tiers, target: t } => {
            let steps: Vec<String> = tiers.iter().map(|x| tier(x, cur)).collect();
            format!(
                "Tiered, the highest reached, {}: {}",
                target(*t),
                steps.join("; ")
            )
        }
        ActionSpec::FreeShipping { cap_minor } => match cap_minor {
            Some(c) => format!("Free shipping, at most {}", amount(*c, cur)),
            None => "Free shipping".to_owned(),
        },
    }
}

pub(super) fn stacking(s: &StackingSpec) -> String {
    let how = if s.exclusive {
        "exclusive (combines with nothing)".to_owned()
    } else {
        format!("combines within the class \u{201c}{}\u{201d}", s.class)
    };
    format!("{how}, priority {}", s.priority)
}

pub(super) fn limits(l: &LimitsSpec, cur: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(b) = l.budget_minor {
        out.push(format!("Budget {} in all", amount(b, cur)));
    }
    if let Some(n) = l.redemptions_max {
        out.push(format!("At most {} redemptions in all", ui::int(n)));
    }
    if let Some(b) = l.per_customer_budget_minor {
        out.push(format!("At most {} per customer", amount(b, cur)));
    }
    if let Some(n) = l.per_customer_redemptions_max {
        out.push(format!("At most {} redemptions per customer", ui::int(n)));
    }
    if out.is_empty() {
        out.push("None".to_owned());
    }
    out
}

/// Specs to start from: one per kind of action, each valid as written (a test sends every
/// one to the API).
pub(super) fn examples() -> Vec<(&'static str, PromotionSpec)> {
    let base = |name: &str, trigger: Trigger, actions: Vec<ActionSpec>| PromotionSpec {
        name: name.to_owned(),
        description: None,
        trigger,
        conditions: ConditionsSpec::default(),
        actions,
        stacking: StackingSpec::default(),
        limits: LimitsSpec::default(),
    };
    let mut ten_off = base(
        "10% off from 50 EUR",
        Trigger::Automatic,
        vec![ActionSpec::PercentOff {
            percent: 10,
            target: Target::Order,
            cap_minor: Some(2_000),
        }],
    );
    ten_off.conditions.currency = Some("EUR".to_owned());
    ten_off.conditions.min_subtotal_minor = Some(5_000);
    ten_off.limits.budget_minor = Some(100_000);

    let mut spring = base(
        "SPRING: 5 EUR off, once per customer",
        Trigger::Code,
        vec![ActionSpec::AmountOff {
            amount_minor: 500,
            target: Target::Order,
        }],
    );
    spring.conditions.currency = Some("EUR".to_owned());
    spring.limits.per_customer_redemptions_max = Some(1);
    spring.limits.redemptions_max = Some(1_000);

    let mut three_for_two = base(
        "3 for 2 on category 1",
        Trigger::Automatic,
        vec![ActionSpec::BuyXGetY {
            buy: 2,
            get: 1,
            percent_off: None,
            max_applications: Some(5),
        }],
    );
    three_for_two.conditions.categories = vec![1];

    let mut tiered = base(
        "Spend more, save more",
        Trigger::Automatic,
        vec![ActionSpec::Tiered {
            tiers: vec![
                TierSpec {
                    min_subtotal_minor: 10_000,
                    percent: None,
                    amount_minor: Some(1_000),
                },
                TierSpec {
                    min_subtotal_minor: 20_000,
                    percent: None,
                    amount_minor: Some(2_500),
                },
            ],
            target: Target::Order,
        }],
    );
    tiered.conditions.currency = Some("EUR".to_owned());
    tiered.stacking.exclusive = true;
    tiered.stacking.priority = 10;

    let mut first = base(
        "Free shipping on a first order",
        Trigger::Automatic,
        vec![ActionSpec::FreeShipping {
            cap_minor: Some(900),
        }],
    );
    first.conditions.currency = Some("EUR".to_owned());
    first.conditions.first_order = true;
    first.stacking.class = "shipping".to_owned();

    let mut happy = base(
        "Happy hour: 15% off weekday evenings",
        Trigger::Automatic,
        vec![ActionSpec::PercentOff {
            percent: 15,
            target: Target::MatchingLines,
            cap_minor: None,
        }],
    );
    happy.conditions.products = vec![1, 2];
    happy.conditions.schedule = Some(ScheduleSpec {
        time_zone: "Europe/Paris".to_owned(),
        weekdays: vec![
            allot_domain::promotion::Weekday::Mon,
            allot_domain::promotion::Weekday::Tue,
            allot_domain::promotion::Weekday::Wed,
            allot_domain::promotion::Weekday::Thu,
            allot_domain::promotion::Weekday::Fri,
        ],
        from: Some("17:00".to_owned()),
        until: Some("19:00".to_owned()),
    });

    let mut fixed = base(
        "Mugs at 5 EUR for VIPs",
        Trigger::Code,
        vec![ActionSpec::FixedPrice {
            unit_price_minor: 500,
            max_items: Some(4),
        }],
    );
    fixed.conditions.currency = Some("EUR".to_owned());
    fixed.conditions.products = vec![1];
    fixed.conditions.customer_tags = vec!["vip".to_owned()];

    vec![
        ("Percent off the order", ten_off),
        ("Amount off, by code", spring),
        ("Buy X get Y", three_for_two),
        ("Tiered", tiered),
        ("Free shipping", first),
        ("Schedule", happy),
        ("Fixed price", fixed),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_as_sentences() {
        let (_, spec) = examples().remove(0);
        let c = conditions(&spec.conditions);
        assert_eq!(c[0], "Carts in EUR");
        assert_eq!(c[1], "Subtotal of the cart at least 50.00 EUR");
        assert_eq!(
            action(&spec.actions[0], Some("EUR")),
            "10% off the order, at most 20.00 EUR in all"
        );
        assert_eq!(
            limits(&spec.limits, Some("EUR")),
            vec!["Budget 1,000.00 EUR in all"]
        );
        assert_eq!(
            conditions(&ConditionsSpec::default()),
            vec!["None: every cart"]
        );
    }

    #[test]
    fn long_lists_are_counted_not_written_out() {
        let ids: Vec<i64> = (1..=100).collect();
        let written = list(&ids, "or");
        assert!(written.ends_with("or 88 more"), "{written}");
        assert_eq!(list(&[1, 2], "or"), "1 or 2");
    }
}

//! Checking what comes in: a promotion's spec and a cart, every bound, every error naming its
//! field by path (`conditions.min_subtotal_minor`, `actions.percent`, `lines.quantity`...).

use crate::catalog::{
    ATTRIBUTE_KEY_MAX_CHARS, ATTRIBUTE_TEXT_MAX_CHARS, ATTRIBUTES_MAX, AttributeKey,
};
use crate::promotion::*;

// ---------------------------------------------------------------------------------------------
// Checking a spec

pub(crate) fn check_spec(spec: PromotionSpec) -> Result<Promotion, DomainError> {
    let mut spec = spec;
    spec.name = check_name(&spec.name)?;
    spec.description = check_description(spec.description.take())?;
    let (starts_at, ends_at, schedule) = check_conditions(&mut spec.conditions)?;
    check_actions(&spec.actions)?;
    spec.stacking.class = label("stacking.class", &spec.stacking.class)?;
    check_limits(&spec.limits, spec.conditions.currency.is_some())?;
    Ok(Promotion::from_parts(spec, starts_at, ends_at, schedule))
}

fn check_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > NAME_MAX_CHARS {
        return Err(DomainError::invalid(
            "name",
            format!("must be 1 to {NAME_MAX_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            "must not hold control characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_description(raw: Option<String>) -> Result<Option<String>, DomainError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    let text = raw.trim();
    // Line breaks and tabs are prose; other control characters are not.
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(DomainError::invalid(
            "description",
            "must not hold control characters other than line breaks and tabs",
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

type Window = (
    Option<UnixMillis>,
    Option<UnixMillis>,
    Option<schedule::Schedule>,
);

fn check_conditions(c: &mut ConditionsSpec) -> Result<Window, DomainError> {
    if let Some(v) = c.min_subtotal_minor {
        money("conditions.min_subtotal_minor", v)?;
    }
    if let Some(v) = c.min_quantity {
        count("conditions.min_quantity", v)?;
    }
    ids("conditions.products", &c.products)?;
    ids("conditions.categories", &c.categories)?;
    if c.attributes.len() > CONDITION_LIST_MAX {
        return Err(DomainError::invalid(
            "conditions.attributes",
            format!("at most {CONDITION_LIST_MAX} attributes"),
        ));
    }
    for (key, value) in &c.attributes {
        attribute("conditions.attributes", key, value)?;
    }
    c.customer_roles = labels("conditions.customer_roles", &c.customer_roles)?;
    c.customer_tags = labels("conditions.customer_tags", &c.customer_tags)?;
    c.customer_ids = labels("conditions.customer_ids", &c.customer_ids)?;
    let starts_at = c
        .starts_at
        .as_deref()
        .map(|raw| instant("conditions.starts_at", raw))
        .transpose()?;
    let ends_at = c
        .ends_at
        .as_deref()
        .map(|raw| instant("conditions.ends_at", raw))
        .transpose()?;
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e <= s
    {
        return Err(DomainError::invalid(
            "conditions.ends_at",
            "must be after conditions.starts_at",
        ));
    }
    let schedule = c
        .schedule
        .as_ref()
        .map(schedule::Schedule::parse)
        .transpose()?;
    if let Some(raw) = &c.currency {
        c.currency = Some(currency("conditions.currency", raw)?);
    }
    Ok((starts_at, ends_at, schedule))
}

fn check_actions(actions: &[ActionSpec]) -> Result<(), DomainError> {
    if actions.is_empty() || actions.len() > ACTIONS_MAX {
        return Err(DomainError::invalid(
            "actions",
            format!("must hold 1 to {ACTIONS_MAX} actions"),
        ));
    }
    for action in actions {
        match action {
            ActionSpec::PercentOff {
                percent: p,
                cap_minor,
                ..
            } => {
                percent("actions.percent", *p)?;
                if let Some(cap) = cap_minor {
                    money("actions.cap_minor", *cap)?;
                }
            }
            ActionSpec::AmountOff { amount_minor, .. } => {
                money("actions.amount_minor", *amount_minor)?;
            }
            ActionSpec::FixedPrice {
                unit_price_minor,
                max_items,
            } => {
                if !(0..=MONEY_MAX).contains(unit_price_minor) {
                    return Err(DomainError::invalid(
                        "actions.unit_price_minor",
                        format!("must be from 0 to {MONEY_MAX}"),
                    ));
                }
                if let Some(n) = max_items {
                    count("actions.max_items", *n)?;
                }
            }
            ActionSpec::BuyXGetY {
                buy,
                get,
                percent_off,
                max_applications,
            } => {
                count("actions.buy", *buy)?;
                count("actions.get", *get)?;
                if let Some(p) = percent_off {
                    percent("actions.percent_off", *p)?;
                }
                if let Some(n) = max_applications {
                    count("actions.max_applications", *n)?;
                }
            }
            ActionSpec::Tiered { tiers, .. } => check_tiers(tiers)?,
            ActionSpec::FreeShipping { cap_minor } => {
                if let Some(cap) = cap_minor {
                    money("actions.cap_minor", *cap)?;
                }
            }
        }
    }
    Ok(())
}

fn check_tiers(tiers: &[TierSpec]) -> Result<(), DomainError> {
    if tiers.is_empty() || tiers.len() > TIERS_MAX {
        return Err(DomainError::invalid(
            "actions.tiers",
            format!("must hold 1 to {TIERS_MAX} tiers"),
        ));
    }
    let mut previous: Option<i64> = None;
    for tier in tiers {
        money("actions.tiers.min_subtotal_minor", tier.min_subtotal_minor)?;
        if previous.is_some_and(|p| tier.min_subtotal_minor <= p) {
            return Err(DomainError::invalid(
                "actions.tiers.min_subtotal_minor",
                "tiers must ascend strictly by min_subtotal_minor",
            ));
        }
        previous = Some(tier.min_subtotal_minor);
        match (tier.percent, tier.amount_minor) {
            (Some(p), None) => percent("actions.tiers.percent", p)?,
            (None, Some(a)) => money("actions.tiers.amount_minor", a)?,
            _ => {
                return Err(DomainError::invalid(
                    "actions.tiers",
                    "each tier gives exactly one of percent and amount_minor",
                ));
            }
        }
    }
    Ok(())
}

fn check_limits(limits: &LimitsSpec, has_currency: bool) -> Result<(), DomainError> {
    if let Some(v) = limits.budget_minor {
        money("limits.budget_minor", v)?;
    }
    if let Some(v) = limits.per_customer_budget_minor {
        money("limits.per_customer_budget_minor", v)?;
    }
    if let Some(v) = limits.redemptions_max {
        count("limits.redemptions_max", v)?;
    }
    if let Some(v) = limits.per_customer_redemptions_max {
        count("limits.per_customer_redemptions_max", v)?;
    }
    // A budget in minor units means nothing without the currency they are units of.
    if (limits.budget_minor.is_some() || limits.per_customer_budget_minor.is_some())
        && !has_currency
    {
        return Err(DomainError::invalid(
            "conditions.currency",
            "is required with a money budget (limits.budget_minor, \
             limits.per_customer_budget_minor)",
        ));
    }
    Ok(())
}

fn money(field: &'static str, v: i64) -> Result<(), DomainError> {
    if (1..=MONEY_MAX).contains(&v) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be from 1 to {MONEY_MAX} minor units"),
        ))
    }
}

fn count(field: &'static str, v: i64) -> Result<(), DomainError> {
    if (1..=COUNT_MAX).contains(&v) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be from 1 to {COUNT_MAX}"),
        ))
    }
}

fn percent(field: &'static str, v: u32) -> Result<(), DomainError> {
    if (1..=100).contains(&v) {
        Ok(())
    } else {
        Err(DomainError::invalid(field, "must be from 1 to 100"))
    }
}

fn ids(field: &'static str, list: &[i64]) -> Result<(), DomainError> {
    if list.len() > CONDITION_LIST_MAX {
        return Err(DomainError::invalid(
            field,
            format!("at most {CONDITION_LIST_MAX} ids"),
        ));
    }
    if list.iter().any(|id| *id < 1) {
        return Err(DomainError::invalid(field, "ids must be positive integers"));
    }
    Ok(())
}

/// A role, tag, class, customer id or code: trimmed, 1 to [`LABEL_MAX_CHARS`] characters, no
/// control characters.
fn label(field: &'static str, raw: &str) -> Result<String, DomainError> {
    let text = raw.trim();
    if text.is_empty() || raw.chars().count() > LABEL_MAX_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("each must be 1 to {LABEL_MAX_CHARS} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not hold control characters",
        ));
    }
    Ok(text.to_owned())
}

fn labels(field: &'static str, list: &[String]) -> Result<Vec<String>, DomainError> {
    if list.len() > CONDITION_LIST_MAX {
        return Err(DomainError::invalid(
            field,
            format!("at most {CONDITION_LIST_MAX} entries"),
        ));
    }
    list.iter().map(|raw| label(field, raw)).collect()
}

/// An attribute as the catalog has them: a key of `a-z 0-9 _` (so that a key no product can
/// have, `Color`, is refused rather than never matching), a value as text.
fn attribute(field: &'static str, key: &str, value: &str) -> Result<(), DomainError> {
    if AttributeKey::parse(key).is_err() {
        return Err(DomainError::invalid(
            field,
            format!(
                "keys must be 1 to {ATTRIBUTE_KEY_MAX_CHARS} of a-z, 0-9 and '_' ({key:?} is not)"
            ),
        ));
    }
    if value.chars().count() > ATTRIBUTE_TEXT_MAX_CHARS || value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!(
                "values must be at most {ATTRIBUTE_TEXT_MAX_CHARS} characters, without control \
                 characters"
            ),
        ));
    }
    Ok(())
}

fn instant(field: &'static str, raw: &str) -> Result<UnixMillis, DomainError> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| UnixMillis::from_millis(t.timestamp_millis()))
        .map_err(|_| {
            DomainError::invalid(
                field,
                format!("{raw:?} is not an RFC 3339 time (such as 2026-03-01T09:00:00+01:00)"),
            )
        })
}

fn currency(field: &'static str, raw: &str) -> Result<String, DomainError> {
    if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err(DomainError::invalid(
            field,
            "must be three capital letters (ISO 4217, such as EUR)",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Checking a cart

pub(crate) fn check_cart(cart: Cart) -> Result<Cart, DomainError> {
    let mut cart = cart;
    cart.currency = currency("currency", &cart.currency)?;
    if cart.lines.is_empty() || cart.lines.len() > CART_LINES_MAX {
        return Err(DomainError::invalid(
            "lines",
            format!("must hold 1 to {CART_LINES_MAX} lines"),
        ));
    }
    let mut subtotal: i64 = 0;
    for line in &cart.lines {
        if line.product < 1 {
            return Err(DomainError::invalid(
                "lines.product_id",
                "must be a positive integer",
            ));
        }
        if !(1..=LINE_QUANTITY_MAX).contains(&line.quantity) {
            return Err(DomainError::invalid(
                "lines.quantity",
                format!("must be from 1 to {LINE_QUANTITY_MAX}"),
            ));
        }
        if !(0..=MONEY_MAX).contains(&line.unit_price_minor) {
            return Err(DomainError::invalid(
                "lines.unit_price_minor",
                format!("must be from 0 to {MONEY_MAX}"),
            ));
        }
        ids("lines.category_ids", &line.categories)?;
        if line.attributes.len() > ATTRIBUTES_MAX {
            return Err(DomainError::invalid(
                "lines.attributes",
                format!("at most {ATTRIBUTES_MAX} attributes"),
            ));
        }
        for (key, value) in &line.attributes {
            attribute("lines.attributes", key, value)?;
        }
        subtotal = line
            .unit_price_minor
            .checked_mul(line.quantity)
            .and_then(|total| subtotal.checked_add(total))
            .filter(|total| *total <= MONEY_MAX)
            .ok_or_else(|| {
                DomainError::invalid(
                    "lines",
                    format!("the cart would total more than {MONEY_MAX} minor units"),
                )
            })?;
    }
    if !(0..=MONEY_MAX).contains(&cart.shipping_minor) {
        return Err(DomainError::invalid(
            "shipping_minor",
            format!("must be from 0 to {MONEY_MAX}"),
        ));
    }
    let customer = &mut cart.customer;
    customer.id = customer
        .id
        .as_deref()
        .map(|id| label("customer.id", id))
        .transpose()?;
    customer.role = customer
        .role
        .as_deref()
        .map(|role| label("customer.role", role))
        .transpose()?;
    customer.tags = labels("customer.tags", &customer.tags)?;
    if cart.codes.len() > CART_CODES_MAX {
        return Err(DomainError::invalid(
            "codes",
            format!("at most {CART_CODES_MAX} codes"),
        ));
    }
    let mut codes: Vec<String> = Vec::with_capacity(cart.codes.len());
    for raw in &cart.codes {
        let code = label("codes", raw)?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    cart.codes = codes;
    Ok(cart)
}

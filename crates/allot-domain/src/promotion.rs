//! Promotions: rules that decide whether, and how much, a cart is discounted.
//!
//! A promotion is written as a [`PromotionSpec`] (the form the API takes and storage keeps, as
//! JSON) and used as a [`Promotion`], the spec checked once ([`Promotion::parse`]): a
//! `Promotion` that exists is a valid one. [`engine::evaluate`] decides a cart against the
//! candidate promotions and their usage so far, deterministically: the same cart and the same
//! candidates, in any order, always give the same [`Evaluation`], explained line by line.
//!
//! Money is integer minor units of the cart's currency. A discount never exceeds what is left
//! of a line (so never a line's price, never the subtotal), nor what is left of a budget.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DomainError, UnixMillis};

pub mod engine;
pub mod schedule;

pub use engine::evaluate;

/// Most actions one promotion may have.
pub const ACTIONS_MAX: usize = 5;
/// Most entries in each list of a promotion's conditions (products, categories, customers...).
pub const CONDITION_LIST_MAX: usize = 1_000;
/// Most tiers of a tiered action.
pub const TIERS_MAX: usize = 20;
/// Most codes one cart may carry.
pub const CART_CODES_MAX: usize = 20;
/// Most lines one cart may hold (as an order).
pub const CART_LINES_MAX: usize = crate::order::LINES_MAX;
/// Largest amount of money anywhere in a promotion or a cart (as an order's total).
pub const MONEY_MAX: i64 = crate::order::ORDER_TOTAL_MAX;
/// Most characters of a promotion's name; of its description.
pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 2_000;
/// Most characters of a stacking class, a customer tag, a role or a customer id.
pub const LABEL_MAX_CHARS: usize = 64;
/// Longest a hold may last, and its default.
pub const HOLD_TTL_MAX_SECS: u64 = 24 * 3_600;
pub const HOLD_TTL_DEFAULT_SECS: u64 = 15 * 60;
/// Most units of one cart line.
pub const LINE_QUANTITY_MAX: i64 = 1_000_000;
/// Largest count in a promotion (redemptions, items, applications, a minimum quantity).
pub const COUNT_MAX: i64 = 1_000_000_000;

/// A promotion's id, assigned by storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PromotionId(i64);

impl PromotionId {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if raw >= 1 {
            Ok(PromotionId(raw))
        } else {
            Err(DomainError::invalid("id", "must be a positive integer"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for PromotionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a promotion is reached: by itself for every cart its conditions hold for, or only
/// through a code bound to it (a coupon, a campaign's codes, discount codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Automatic,
    Code,
}

/// What a minimum (subtotal, quantity) or a tier counts: the whole cart, or only the lines in
/// the promotion's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    #[default]
    Cart,
    Matching,
}

/// What an amount or a percentage is taken off: the order (every line, spread in proportion)
/// or the lines in the promotion's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Target {
    #[default]
    Order,
    MatchingLines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Recurring hours: on `weekdays` (all when empty), from `from` until `until` (`HH:MM`,
/// 24-hour clock, `until` exclusive; `until` before `from` runs past midnight), in the named
/// IANA time zone (`Europe/Paris`), daylight saving included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub time_zone: String,
    #[serde(default)]
    pub weekdays: Vec<Weekday>,
    /// `HH:MM`; default `00:00`.
    #[serde(default)]
    pub from: Option<String>,
    /// `HH:MM`; default the end of the day.
    #[serde(default)]
    pub until: Option<String>,
}

/// Conditions: every one given must hold. Empty lists and absent values impose nothing.
///
/// A cart line is *in scope* when it is one of `products` or in one of `categories` (or their
/// subcategories), if either list is given, and has every attribute in `attributes` (compared
/// as text, numbers as numbers, `true`/`false` as booleans).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConditionsSpec {
    #[serde(default)]
    pub min_subtotal_minor: Option<i64>,
    #[serde(default)]
    pub min_quantity: Option<i64>,
    /// What the minimums count: `cart` (default) or `matching` lines.
    #[serde(default)]
    pub minimums_of: Basis,
    #[serde(default)]
    pub products: Vec<i64>,
    #[serde(default)]
    pub categories: Vec<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The customer has one of these roles.
    #[serde(default)]
    pub customer_roles: Vec<String>,
    /// The customer has at least one of these tags.
    #[serde(default)]
    pub customer_tags: Vec<String>,
    /// The customer is one of these accounts (by id, never by email).
    #[serde(default)]
    pub customer_ids: Vec<String>,
    /// Only the customer's first order (no earlier order that was not cancelled).
    #[serde(default)]
    pub first_order: bool,
    /// Not before (inclusive), RFC 3339.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// Not at or after, RFC 3339.
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Only carts in this currency (three capital letters). Required with a money budget.
    #[serde(default)]
    pub currency: Option<String>,
}

/// A tier of a tiered action: reached when what the action's basis counts is at least
/// `min_subtotal_minor`; the highest tier reached applies. Exactly one of `percent` and
/// `amount_minor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub min_subtotal_minor: i64,
    #[serde(default)]
    pub percent: Option<u32>,
    #[serde(default)]
    pub amount_minor: Option<i64>,
}

/// What a promotion gives. Percentages are whole percents (1 to 100) and round down to a whole
/// minor unit; every amount is capped by what is left of what it is taken off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    /// `percent` off the order or the matching lines, at most `cap_minor` in all.
    PercentOff {
        percent: u32,
        #[serde(default)]
        target: Target,
        #[serde(default)]
        cap_minor: Option<i64>,
    },
    /// `amount_minor` off the order or off the matching lines together.
    AmountOff {
        amount_minor: i64,
        #[serde(default)]
        target: Target,
    },
    /// Each matching item at `unit_price_minor` (where it is dearer), at most `max_items`.
    FixedPrice {
        unit_price_minor: i64,
        #[serde(default)]
        max_items: Option<i64>,
    },
    /// For every `buy` matching items, `get` more matching items `percent_off` off (100, the
    /// default: free), the cheapest items being the ones discounted; at most `max_applications`.
    BuyXGetY {
        buy: i64,
        get: i64,
        #[serde(default)]
        percent_off: Option<u32>,
        #[serde(default)]
        max_applications: Option<i64>,
    },
    /// Spend more, save more: the highest tier reached, off the order or the matching lines
    /// (and counted on them).
    Tiered {
        tiers: Vec<TierSpec>,
        #[serde(default)]
        target: Target,
    },
    /// The cart's shipping amount off, at most `cap_minor`.
    FreeShipping {
        #[serde(default)]
        cap_minor: Option<i64>,
    },
}

/// How a promotion combines with others. Promotions combine only within one `class`, and an
/// `exclusive` one with none; `priority` (higher first) orders them (see [`engine`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StackingSpec {
    #[serde(default = "default_class")]
    pub class: String,
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub priority: i32,
}

fn default_class() -> String {
    "default".to_owned()
}

impl Default for StackingSpec {
    fn default() -> Self {
        StackingSpec {
            class: default_class(),
            exclusive: false,
            priority: 0,
        }
    }
}

/// Budgets and limits, never exceeded under any concurrency: money given away and
/// redemptions, in all and per customer (by account id). Held amounts count until their hold
/// is redeemed or released.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default)]
    pub budget_minor: Option<i64>,
    #[serde(default)]
    pub redemptions_max: Option<i64>,
    #[serde(default)]
    pub per_customer_budget_minor: Option<i64>,
    #[serde(default)]
    pub per_customer_redemptions_max: Option<i64>,
}

/// A promotion as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PromotionSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub trigger: Trigger,
    #[serde(default)]
    pub conditions: ConditionsSpec,
    /// 1 to [`ACTIONS_MAX`], applied in turn.
    pub actions: Vec<ActionSpec>,
    #[serde(default)]
    pub stacking: StackingSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
}

/// A checked promotion: its spec, and what checking it parsed (times, the schedule).
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    spec: PromotionSpec,
    starts_at: Option<UnixMillis>,
    ends_at: Option<UnixMillis>,
    schedule: Option<schedule::Schedule>,
    /// The scope's products and categories, sorted and each once: a line is looked up in
    /// them by binary search (a thousand promotions of a thousand products each, per preview).
    products: Vec<i64>,
    categories: Vec<i64>,
}

impl Promotion {
    /// Checks a spec: every bound, every field named by its path (`conditions.min_subtotal_minor`,
    /// `actions.percent`...), a money budget only with a currency.
    pub fn parse(spec: PromotionSpec) -> Result<Promotion, DomainError> {
        engine::check_spec(spec)
    }

    pub fn spec(&self) -> &PromotionSpec {
        &self.spec
    }

    pub fn trigger(&self) -> Trigger {
        self.spec.trigger
    }

    pub fn priority(&self) -> i32 {
        self.spec.stacking.priority
    }

    pub fn starts_at(&self) -> Option<UnixMillis> {
        self.starts_at
    }

    pub fn ends_at(&self) -> Option<UnixMillis> {
        self.ends_at
    }

    pub fn schedule(&self) -> Option<&schedule::Schedule> {
        self.schedule.as_ref()
    }

    pub(crate) fn from_parts(
        spec: PromotionSpec,
        starts_at: Option<UnixMillis>,
        ends_at: Option<UnixMillis>,
        schedule: Option<schedule::Schedule>,
    ) -> Promotion {
        let sorted = |ids: &[i64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        Promotion {
            products: sorted(&spec.conditions.products),
            categories: sorted(&spec.conditions.categories),
            spec,
            starts_at,
            ends_at,
            schedule,
        }
    }

    /// Whether `product` is one of the scope's products.
    pub(crate) fn scope_has_product(&self, product: i64) -> bool {
        self.products.binary_search(&product).is_ok()
    }

    /// Whether `category` is one of the scope's categories.
    pub(crate) fn scope_has_category(&self, category: i64) -> bool {
        self.categories.binary_search(&category).is_ok()
    }

    /// Whether the scope names products or categories at all.
    pub(crate) fn scope_by_catalog(&self) -> bool {
        !self.products.is_empty() || !self.categories.is_empty()
    }
}

/// The customer a cart is for, as known when it is evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Customer {
    /// The account id; none for a guest (per-customer limits then refuse: they need an id).
    pub id: Option<String>,
    pub role: Option<String>,
    pub tags: Vec<String>,
    /// Earlier orders not cancelled (`first_order` holds at 0).
    pub orders_before: u64,
}

/// One line of a cart. `categories` holds the product's category and every ancestor of it;
/// `attributes` the product's attributes as text (numbers in their shortest form, booleans as
/// `true`/`false`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CartLine {
    pub product: i64,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub categories: Vec<i64>,
    pub attributes: BTreeMap<String, String>,
}

/// A cart to evaluate. Bounds (lines, quantities, prices, codes) are the caller's to check:
/// [`Cart::parse`] does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cart {
    pub currency: String,
    pub lines: Vec<CartLine>,
    pub shipping_minor: i64,
    pub customer: Customer,
    /// The codes entered, trimmed but otherwise as entered (campaign codes are Hangul; a coupon's
    /// case is storage's to fold), each once, in the order entered.
    pub codes: Vec<String>,
}

/// Identifies a cart's lines (product, quantity, unit price, in product order): a hold made for
/// a cart is consumed by an order only if the order's lines give the same fingerprint.
pub fn fingerprint(lines: &[(i64, i64, i64)]) -> String {
    let mut sorted = lines.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .map(|(p, q, u)| format!("{p}x{q}@{u}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Cart {
    /// Checks a cart's bounds: 1 to [`CART_LINES_MAX`] lines, quantities 1 to 1,000,000,
    /// prices and shipping 0 to [`MONEY_MAX`], the subtotal within it, at most
    /// [`CART_CODES_MAX`] codes (trimmed, no case change; a code entered twice is kept once), a
    /// currency of three capital letters.
    pub fn parse(cart: Cart) -> Result<Cart, DomainError> {
        engine::check_cart(cart)
    }

    /// This cart's [`fingerprint`].
    pub fn fingerprint(&self) -> String {
        let lines: Vec<(i64, i64, i64)> = self
            .lines
            .iter()
            .map(|l| (l.product, l.quantity, l.unit_price_minor))
            .collect();
        fingerprint(&lines)
    }

    pub fn subtotal_minor(&self) -> i64 {
        self.lines
            .iter()
            .map(|l| l.unit_price_minor * l.quantity)
            .sum()
    }
}

/// What a promotion has given so far: redeemed and still held, in all and for the cart's
/// customer. Read in the same transaction as the decision that relies on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub redeemed_minor: i64,
    pub redemptions: i64,
    pub held_minor: i64,
    pub held: i64,
    pub customer_redeemed_minor: i64,
    pub customer_redemptions: i64,
    pub customer_held_minor: i64,
    pub customer_held: i64,
}

/// A promotion considered for a cart: automatic ones, and those the cart's codes are bound to
/// (`code` then names the code; a promotion reached by two codes is considered once, by the
/// first of them in the cart).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: PromotionId,
    pub promotion: &'a Promotion,
    pub code: Option<&'a str>,
    pub usage: Usage,
}

/// Why a promotion or a code gives nothing to this cart. Machine-readable (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// No coupon, campaign code or discount code by that name is bound to a promotion.
    UnknownCode,
    /// The code itself cannot be used (used up, expired, not this customer's).
    CodeUnusable,
    /// The promotion is switched off.
    Inactive,
    NotStarted,
    Ended,
    OutsideSchedule,
    WrongCurrency,
    MinSubtotalNotMet,
    MinQuantityNotMet,
    NotInScope,
    CustomerNotEligible,
    NotFirstOrder,
    /// A per-customer limit, or a first-order condition, needs a customer id.
    CustomerRequired,
    CustomerLimitReached,
    CustomerBudgetExhausted,
    RedemptionLimitReached,
    BudgetExhausted,
    NotCombinable,
    /// Conditions hold, but nothing is left to take off (earlier promotions took it all).
    NoDiscount,
}

impl Reason {
    pub const ALL: [Reason; 19] = [
        Reason::UnknownCode,
        Reason::CodeUnusable,
        Reason::Inactive,
        Reason::NotStarted,
        Reason::Ended,
        Reason::OutsideSchedule,
        Reason::WrongCurrency,
        Reason::MinSubtotalNotMet,
        Reason::MinQuantityNotMet,
        Reason::NotInScope,
        Reason::CustomerNotEligible,
        Reason::NotFirstOrder,
        Reason::CustomerRequired,
        Reason::CustomerLimitReached,
        Reason::CustomerBudgetExhausted,
        Reason::RedemptionLimitReached,
        Reason::BudgetExhausted,
        Reason::NotCombinable,
        Reason::NoDiscount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownCode => "unknown_code",
            Reason::CodeUnusable => "code_unusable",
            Reason::Inactive => "inactive",
            Reason::NotStarted => "not_started",
            Reason::Ended => "ended",
            Reason::OutsideSchedule => "outside_schedule",
            Reason::WrongCurrency => "wrong_currency",
            Reason::MinSubtotalNotMet => "min_subtotal_not_met",
            Reason::MinQuantityNotMet => "min_quantity_not_met",
            Reason::NotInScope => "not_in_scope",
            Reason::CustomerNotEligible => "customer_not_eligible",
            Reason::NotFirstOrder => "not_first_order",
            Reason::CustomerRequired => "customer_required",
            Reason::CustomerLimitReached => "customer_limit_reached",
            Reason::CustomerBudgetExhausted => "customer_budget_exhausted",
            Reason::RedemptionLimitReached => "redemption_limit_reached",
            Reason::BudgetExhausted => "budget_exhausted",
            Reason::NotCombinable => "not_combinable",
            Reason::NoDiscount => "no_discount",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one applied promotion takes off one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineDiscount {
    /// The line's index in the cart.
    pub line: usize,
    pub amount_minor: i64,
}

/// A promotion the cart gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub id: PromotionId,
    /// The code that reached it; none for an automatic promotion.
    pub code: Option<String>,
    /// Off the lines and the shipping together.
    pub amount_minor: i64,
    /// Per line, only lines it discounts, in line order.
    pub lines: Vec<LineDiscount>,
    pub shipping_minor: i64,
    /// True when what is left of a budget (in all or the customer's) cut the amount.
    pub capped_by_budget: bool,
}

/// A code, or a promotion, the cart does not get, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// None for a code bound to nothing.
    pub id: Option<PromotionId>,
    pub code: Option<String>,
    pub reason: Reason,
}

/// A line's price after every promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTotal {
    pub line_total_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
}

/// The engine's answer for a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// In the order they were applied.
    pub applied: Vec<Applied>,
    /// Every code entered that gives nothing, in the cart's code order; then automatic
    /// promotions refused only by stacking, a limit or for giving nothing (`no_discount`), by id.
    pub refused: Vec<Refused>,
    /// In cart order.
    pub lines: Vec<LineTotal>,
    pub subtotal_minor: i64,
    /// Off the lines, every promotion together.
    pub discount_minor: i64,
    pub shipping_minor: i64,
    pub shipping_discount_minor: i64,
    /// `subtotal - discount + shipping - shipping_discount`, never below zero.
    pub total_minor: i64,
}

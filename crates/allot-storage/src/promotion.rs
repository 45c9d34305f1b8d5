//! Promotions' part of the storage interface: the promotions themselves, the codes bound to
//! them, and the holds and redemptions that spend their budgets and limits.
//!
//! The engine (`allot_domain::promotion`) decides what a cart gets; storage makes it exact. A
//! hold is written only if, in its own transaction, every promotion it spends still fits its
//! limits with the usage read under that transaction (SQLite: inside the single writer;
//! PostgreSQL: the promotions' rows locked in id order); otherwise it is refused as
//! [`PromotionRefusal::Stale`] and the service evaluates again on fresh usage. The tables'
//! CHECK constraints hold the same bounds, so no code path can exceed a budget.
//!
//! Counters: each promotion (and each customer of it) counts money and redemptions *held*
//! (holds not yet redeemed, released or expired) and *redeemed*; a limit bounds their sum.
//! Each code bound to a promotion counts its uses (held or redeemed) against its own maximum.
//! Every change of a hold is one transaction with its counters and its event.

use allot_domain::UnixMillis;
use allot_domain::promotion::{Promotion, PromotionId, PromotionSpec, Reason, Trigger, Usage};
use async_trait::async_trait;

use crate::StorageError;

pub(crate) mod rules;
pub(crate) mod stored;

/// Most promotions one page lists.
pub const PROMOTIONS_PAGE_MAX: u32 = 200;

/// Money and redemptions a promotion has given, in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub redeemed_minor: i64,
    pub redemptions: i64,
    pub held_minor: i64,
    pub held: i64,
}

/// A promotion as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPromotion {
    pub id: PromotionId,
    pub promotion: Promotion,
    pub active: bool,
    /// Raised by every change of the promotion (not of its usage).
    pub version: i64,
    pub totals: Totals,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A promotion to create, or the new form of one (a whole replacement).
#[derive(Debug, Clone)]
pub struct NewPromotion {
    pub promotion: Promotion,
    pub active: bool,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, Default)]
pub struct PromotionQuery {
    pub active: Option<bool>,
    pub trigger: Option<Trigger>,
    /// Ids above this one (0 from the start), ascending.
    pub after: i64,
    pub limit: u32,
}

/// Codes to bind to a promotion: existing coupons and discount codes, or every code a
/// campaign has issued and will issue. A code is bound to at most one promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    Coupons(Vec<String>),
    DiscountCodes(Vec<String>),
    Campaign(i64),
}

/// Where a bound code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeSource {
    Coupon,
    DiscountCode,
    Campaign,
}

impl CodeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeSource::Coupon => "coupon",
            CodeSource::DiscountCode => "discount_code",
            CodeSource::Campaign => "campaign",
        }
    }
}

/// A cart code as storage resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCode {
    pub code: String,
    /// The promotion it reaches, or why it reaches none (`UnknownCode`: bound to nothing;
    /// `CodeUnusable`: used up, expired, or another customer's).
    pub promotion: Result<PromotionId, Reason>,
    /// Where the code comes from, when it is bound (a hold names it with the code it spends).
    pub source: Option<CodeSource>,
}

/// One promotion a hold spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPromotion {
    pub promotion: PromotionId,
    /// The code that reached it, and where the code comes from.
    pub code: Option<(String, CodeSource)>,
    pub amount_minor: i64,
}

/// A hold to write: what the engine decided for a cart, to be checked against fresh usage.
#[derive(Debug, Clone)]
pub struct NewHold {
    /// The customer's account id; none for a guest.
    pub customer: Option<String>,
    pub currency: String,
    /// Identifies the cart's lines (product, quantity, unit price): an order may consume the
    /// hold only for the same lines.
    pub cart_fingerprint: String,
    pub promotions: Vec<HeldPromotion>,
    /// The engine's whole answer as JSON, shown back with the hold (the explanation).
    pub evaluation: String,
    pub discount_minor: i64,
    pub shipping_discount_minor: i64,
    /// A repeated key answers the hold it made and changes nothing.
    pub idempotency_key: Option<String>,
    pub expires_at: UnixMillis,
    pub now: UnixMillis,
    /// Redeemed as it is made, for this reference (the shop's order): a one-call redemption,
    /// one transaction instead of a hold's and its redemption's.
    pub redeem_for: Option<String>,
}

impl Hold {
    /// The hold as [`stored::SET_HOLD_STATUS`] leaves it (read back, it would be the same:
    /// two reads fewer while its promotions are locked).
    pub(crate) fn moved(
        mut self,
        to: HoldStatus,
        reference: Option<&str>,
        now: UnixMillis,
    ) -> Hold {
        self.status = to;
        if let Some(r) = reference {
            self.reference = Some(r.to_owned());
        }
        self.updated_at = now;
        self
    }
}

impl NewHold {
    /// The status the hold is written with, and the move of the counters that makes it.
    pub(crate) fn made(&self) -> (HoldStatus, rules::Move) {
        match self.redeem_for {
            Some(_) => (HoldStatus::Redeemed, rules::Move::HoldAndRedeem),
            None => (HoldStatus::Held, rules::Move::Hold),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    Held,
    Redeemed,
    Released,
    Expired,
    RolledBack,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Redeemed => "redeemed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
            HoldStatus::RolledBack => "rolled_back",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: i64,
    pub status: HoldStatus,
    pub customer: Option<String>,
    pub currency: String,
    pub cart_fingerprint: String,
    pub promotions: Vec<HeldPromotion>,
    pub evaluation: String,
    pub discount_minor: i64,
    pub shipping_discount_minor: i64,
    pub idempotency_key: Option<String>,
    /// What the redemption was for (an order of Allot's is `order-<id>`).
    pub reference: Option<String>,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Why a promotion operation was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionRefusal {
    NotFound,
    HoldNotFound,
    /// A promotion the hold spends no longer fits its limits on fresh usage (or was switched
    /// off or changed): evaluate again.
    Stale {
        promotion: PromotionId,
        reason: Reason,
    },
    /// A code the hold uses is used up now.
    CodeTaken {
        code: String,
    },
    /// The hold is not in a state the operation needs (e.g. redeeming a released hold).
    HoldNotHeld {
        status: HoldStatus,
    },
    HoldExpired,
    /// Binding: codes that exist nowhere, or are bound to another promotion already.
    UnknownCodes(Vec<String>),
    AlreadyBound(Vec<String>),
    /// Coupons with no use left: nothing for the promotion to spend.
    UsedUpCodes(Vec<String>),
    UnknownCampaign,
    /// A new limit below what is already held and redeemed; names the limit.
    LimitBelowUsage {
        field: &'static str,
    },
}

pub type PromotionResult<T> = Result<Result<T, PromotionRefusal>, StorageError>;

#[async_trait]
pub trait PromotionStore: Send + Sync + 'static {
    async fn create_promotion(&self, new: NewPromotion) -> Result<StoredPromotion, StorageError>;

    /// Replaces a promotion's spec and active flag; its usage stays.
    async fn update_promotion(
        &self,
        id: PromotionId,
        new: NewPromotion,
    ) -> PromotionResult<StoredPromotion>;

    async fn promotion(&self, id: PromotionId) -> Result<Option<StoredPromotion>, StorageError>;

    async fn promotions(&self, query: PromotionQuery)
    -> Result<Vec<StoredPromotion>, StorageError>;

    /// A number raised by every change of any promotion (create, update, bind): a server
    /// keeps the active promotions parsed and reloads them when it moves.
    async fn promotions_generation(&self) -> Result<i64, StorageError>;

    /// Every active automatic promotion.
    async fn active_automatic_promotions(&self) -> Result<Vec<StoredPromotion>, StorageError>;

    /// Binds codes to the promotion, all or none; returns how many were bound.
    async fn bind_codes(&self, id: PromotionId, binding: Binding) -> PromotionResult<u64>;

    /// Resolves a cart's codes (upper-cased) for `customer` at `now`, in the order given.
    async fn resolve_codes(
        &self,
        codes: &[String],
        customer: Option<&str>,
        now: UnixMillis,
    ) -> Result<Vec<ResolvedCode>, StorageError>;

    /// The usage of each promotion, in all and for `customer`, in the order given.
    async fn promotion_usage(
        &self,
        ids: &[PromotionId],
        customer: Option<&str>,
    ) -> Result<Vec<Usage>, StorageError>;

    /// How many orders the customer has placed that were not cancelled.
    async fn customer_orders(&self, customer: &str) -> Result<u64, StorageError>;

    /// Writes a hold if every promotion it spends still fits its limits and every code still
    /// has a use left, in one transaction.
    async fn create_hold(&self, hold: NewHold) -> PromotionResult<Hold>;

    async fn hold(&self, id: i64) -> Result<Option<Hold>, StorageError>;

    /// Ends a held hold, giving back what it held.
    async fn release_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold>;

    /// Turns a held, unexpired hold into redemptions for `reference`.
    async fn redeem_hold(
        &self,
        id: i64,
        reference: String,
        now: UnixMillis,
    ) -> PromotionResult<Hold>;

    /// Gives back a redeemed hold's money, redemptions and code uses, exactly once: a hold
    /// already rolled back is answered as it is and nothing changes. A hold still held is
    /// released (what it holds given back, status `released`, event `PromotionHoldReleased`),
    /// so a caller unsure whether it redeemed can always call this; a released or expired
    /// hold has nothing left to give and is answered as it is.
    async fn roll_back_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold>;

    /// Expires up to `limit` holds past their time, giving back what they held; how many.
    async fn expire_holds(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError>;

    /// The holds of a promotion, newest first (for the console): id below `before` (0: from
    /// the newest).
    async fn promotion_holds(
        &self,
        id: PromotionId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Hold>, StorageError>;
}

/// The stored JSON of a spec.
pub(crate) fn spec_json(promotion: &Promotion) -> Result<String, StorageError> {
    serde_json::to_string(promotion.spec()).map_err(crate::catalog::corrupt)
}

/// A stored spec back: parsed and checked again (a row that fails is corrupt).
pub(crate) fn spec_from_json(raw: &str) -> Result<Promotion, StorageError> {
    let spec: PromotionSpec = serde_json::from_str(raw).map_err(crate::catalog::corrupt)?;
    Promotion::parse(spec).map_err(crate::catalog::corrupt)
}

pub(crate) fn trigger_str(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Automatic => "automatic",
        Trigger::Code => "code",
    }
}

/// `PromotionCreated` / `PromotionUpdated`: the promotion as it is after the change.
pub(crate) fn promotion_event(
    kind: allot_domain::event::EventType,
    p: &StoredPromotion,
) -> allot_domain::event::NewEvent {
    let spec = p.promotion.spec();
    let payload = serde_json::json!({
        "promotion_id": p.id.get(),
        "version": p.version,
        "name": spec.name,
        "trigger": trigger_str(spec.trigger),
        "active": p.active,
        "limits": {
            "budget_minor": spec.limits.budget_minor,
            "redemptions_max": spec.limits.redemptions_max,
            "per_customer_budget_minor": spec.limits.per_customer_budget_minor,
            "per_customer_redemptions_max": spec.limits.per_customer_redemptions_max,
        },
    });
    allot_domain::event::NewEvent::api(kind, p.updated_at, payload.to_string())
}

/// `PromotionCodesBound`: how many codes of which source (a campaign: its id).
pub(crate) fn codes_bound_event(
    id: PromotionId,
    binding: &Binding,
    count: u64,
    now: UnixMillis,
) -> allot_domain::event::NewEvent {
    let (source, campaign) = match binding {
        Binding::Coupons(_) => (CodeSource::Coupon, None),
        Binding::DiscountCodes(_) => (CodeSource::DiscountCode, None),
        Binding::Campaign(c) => (CodeSource::Campaign, Some(*c)),
    };
    let payload = serde_json::json!({
        "promotion_id": id.get(),
        "source": source.as_str(),
        "count": count,
        "campaign_id": campaign,
    });
    allot_domain::event::NewEvent::api(
        allot_domain::event::EventType::PromotionCodesBound,
        now,
        payload.to_string(),
    )
}

/// `PromotionHeld`, `PromotionHoldReleased`, `PromotionRedeemed`, `PromotionRolledBack`: the
/// hold as it is after the change, with what it spends.
pub(crate) fn hold_event(
    kind: allot_domain::event::EventType,
    h: &Hold,
) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({
        "hold_id": h.id,
        "status": h.status.as_str(),
        "customer": h.customer,
        "currency": h.currency,
        "discount_minor": h.discount_minor,
        "shipping_discount_minor": h.shipping_discount_minor,
        "reference": h.reference,
        "expires_at_ms": h.expires_at.as_millis(),
        "promotions": rules::items_json(&h.promotions),
    });
    allot_domain::event::NewEvent::api(kind, h.updated_at, payload.to_string())
}

/// `PromotionHoldsExpired`: one summary per run of the expiry job.
pub(crate) fn holds_expired_event(ids: &[i64], now: UnixMillis) -> allot_domain::event::NewEvent {
    let payload = serde_json::json!({"count": ids.len(), "hold_ids": ids});
    allot_domain::event::NewEvent::by(
        allot_domain::event::ACTOR_PROMOTION_HOLD_EXPIRY,
        allot_domain::event::EventType::PromotionHoldsExpired,
        now,
        payload.to_string(),
    )
}

/// The codes of a binding as they are stored: trimmed, upper case, each once, in order.
pub(crate) fn normalized(codes: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(codes.len());
    codes
        .iter()
        .map(|code| code.trim().to_uppercase())
        .filter(|code| seen.insert(code.clone()))
        .collect()
}

/// The engine's view of a promotion's counters, in all and of one customer.
pub(crate) fn usage_of(totals: &Totals, customer: Option<&Totals>) -> Usage {
    let c = customer.copied().unwrap_or_default();
    Usage {
        redeemed_minor: totals.redeemed_minor,
        redemptions: totals.redemptions,
        held_minor: totals.held_minor,
        held: totals.held,
        customer_redeemed_minor: c.redeemed_minor,
        customer_redemptions: c.redemptions,
        customer_held_minor: c.held_minor,
        customer_held: c.held,
    }
}

/// `totals` after a move's deltas.
pub(crate) fn add(totals: &mut Totals, d: &rules::Deltas) {
    totals.held_minor += d.held_minor;
    totals.held += d.held;
    totals.redeemed_minor += d.redeemed_minor;
    totals.redemptions += d.redemptions;
}

/// The event a move of a hold appends (expiry appends one summary per run instead).
pub(crate) fn move_event(mv: rules::Move) -> Option<allot_domain::event::EventType> {
    use allot_domain::event::EventType;
    match mv {
        rules::Move::Hold => Some(EventType::PromotionHeld),
        rules::Move::Redeem | rules::Move::HoldAndRedeem => Some(EventType::PromotionRedeemed),
        rules::Move::Release => Some(EventType::PromotionHoldReleased),
        rules::Move::RollBack => Some(EventType::PromotionRolledBack),
    }
}

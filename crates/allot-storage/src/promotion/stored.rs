//! How promotions and holds are stored and read back: the statements (one text for both
//! backends, `$n` in ascending order of first appearance) and the mapping from their rows.

use allot_domain::UnixMillis;
use allot_domain::promotion::PromotionId;

use super::rules::{CodeFacts, CouponFacts, Deltas, PromotionState};
use super::{CodeSource, HeldPromotion, Hold, HoldStatus, StoredPromotion, Totals, spec_from_json};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::row::Columns;

macro_rules! promotion_columns {
    () => {
        "id, spec, active, version, redeemed_minor, redemptions, held_minor, held, \
         created_at_ms, updated_at_ms"
    };
}

macro_rules! hold_columns {
    () => {
        "id, status, customer, currency, cart_fingerprint, evaluation, discount_minor, \
         shipping_discount_minor, idempotency_key, reference, created_at_ms, expires_at_ms, \
         updated_at_ms"
    };
}

pub(crate) const PROMOTION_BY_ID: &str = concat!(
    "SELECT ",
    promotion_columns!(),
    " FROM promotions WHERE id = $1"
);

/// after, active (null: any), trigger (null: any), limit.
pub(crate) const PROMOTIONS_PAGE: &str = concat!(
    "SELECT ",
    promotion_columns!(),
    " FROM promotions WHERE id > $1
       AND (CAST($2 AS BOOLEAN) IS NULL OR active = $2)
       AND (CAST($3 AS TEXT) IS NULL OR trigger = $3)
     ORDER BY id LIMIT $4"
);

pub(crate) const ACTIVE_AUTOMATIC: &str = concat!(
    "SELECT ",
    promotion_columns!(),
    " FROM promotions WHERE active = $1 AND trigger = 'automatic' ORDER BY id"
);

/// trigger, active, spec, the four limits, now.
pub(crate) const INSERT_PROMOTION: &str = concat!(
    "INSERT INTO promotions (trigger, active, version, spec, budget_minor, redemptions_max,
                             per_customer_budget_minor, per_customer_redemptions_max,
                             created_at_ms, updated_at_ms)
     VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $8) RETURNING ",
    promotion_columns!()
);

/// trigger, active, spec, the four limits, now, id.
pub(crate) const UPDATE_PROMOTION: &str = concat!(
    "UPDATE promotions SET trigger = $1, active = $2, version = version + 1, spec = $3,
            budget_minor = $4, redemptions_max = $5, per_customer_budget_minor = $6,
            per_customer_redemptions_max = $7, updated_at_ms = $8
     WHERE id = $9 RETURNING ",
    promotion_columns!()
);

/// The per-customer limits copied to every customer's row: budget, redemptions, promotion.
pub(crate) const UPDATE_CUSTOMER_LIMITS: &str = "UPDATE promotion_customers
     SET budget_minor = $1, redemptions_max = $2 WHERE promotion_id = $3";

/// The most any one customer has spent of the promotion (money; redemptions), held included.
pub(crate) const CUSTOMER_MOST: &str =
    "SELECT COALESCE(MAX(redeemed_minor + held_minor), 0), COALESCE(MAX(redemptions + held), 0)
     FROM promotion_customers WHERE promotion_id = $1";

pub(crate) const BUMP_GENERATION: &str =
    "UPDATE promotions_generation SET generation = generation + 1 WHERE id = 1";
pub(crate) const GENERATION: &str = "SELECT generation FROM promotions_generation WHERE id = 1";

/// A promotion's limits (budget, redemptions, per customer: budget, redemptions), active flag
/// and counters: customer (may be null), promotion.
pub(crate) const LIMITS_AND_USAGE: &str = "SELECT p.budget_minor, p.redemptions_max,
            p.per_customer_budget_minor, p.per_customer_redemptions_max, p.active,
            p.redeemed_minor, p.redemptions, p.held_minor, p.held,
            c.redeemed_minor, c.redemptions, c.held_minor, c.held
     FROM promotions p
     LEFT JOIN promotion_customers c ON c.promotion_id = p.id AND c.customer = $1
     WHERE p.id = $2";

/// The code's binding: promotion, source, uses, max uses.
pub(crate) const CODE_BINDING: &str =
    "SELECT promotion_id, source, uses, max_uses FROM promotion_codes WHERE code = $1";

pub(crate) const COUPON_FACTS: &str =
    "SELECT expires_at_ms, uses, max_uses, allocated_to FROM coupons WHERE code = $1";

/// Whether a discount code was used (outside promotions, or by a hold: a hold marks it).
pub(crate) const DISCOUNT_USED: &str =
    "SELECT used_at_ms IS NOT NULL FROM discount_codes WHERE code = $1";

/// A campaign code of a bound campaign: its promotion and whom it was issued to.
pub(crate) const CAMPAIGN_CODE: &str = "SELECT b.promotion_id, c.user_id
     FROM campaign_coupons c JOIN promotion_campaigns b ON b.campaign_id = c.campaign_id
     WHERE c.code = $1";

pub(crate) const TAKE_CODE_USE: &str =
    "UPDATE promotion_codes SET uses = uses + 1 WHERE code = $1 AND uses < max_uses";
pub(crate) const GIVE_CODE_USE: &str =
    "UPDATE promotion_codes SET uses = uses - 1 WHERE code = $1 AND uses > 0";

/// A campaign code's use row, made on its first hold: code, promotion, now.
pub(crate) const INSERT_CAMPAIGN_CODE: &str =
    "INSERT INTO promotion_codes (code, promotion_id, source, max_uses, uses, created_at_ms)
     VALUES ($1, $2, 'campaign', 1, 0, $3) ON CONFLICT (code) DO NOTHING";

/// A bound code: code, promotion, source, max uses, now.
pub(crate) const INSERT_CODE: &str =
    "INSERT INTO promotion_codes (code, promotion_id, source, max_uses, uses, created_at_ms)
     VALUES ($1, $2, $3, $4, 0, $5)";

/// A discount code taken by a hold, so the discount-code API cannot use it too: now, code.
pub(crate) const MARK_DISCOUNT_USED: &str =
    "UPDATE discount_codes SET used_at_ms = $1 WHERE code = $2 AND used_at_ms IS NULL";
pub(crate) const CLEAR_DISCOUNT_USED: &str =
    "UPDATE discount_codes SET used_at_ms = NULL WHERE code = $1";

pub(crate) const BIND_CAMPAIGN: &str = "INSERT INTO promotion_campaigns (campaign_id, promotion_id, created_at_ms) VALUES ($1, $2, $3)";
pub(crate) const CAMPAIGN_BINDING: &str =
    "SELECT promotion_id FROM promotion_campaigns WHERE campaign_id = $1";
pub(crate) const CAMPAIGN_EXISTS: &str = "SELECT 1 FROM campaigns WHERE id = $1";
/// Binding: a coupon's uses left: code.
pub(crate) const COUPON_USES_LEFT: &str = "SELECT max_uses - uses FROM coupons WHERE code = $1";
/// Binding: the coupon bound, so that the coupon API and orders refuse it: promotion, code.
pub(crate) const MARK_COUPON_BOUND: &str = "UPDATE coupons SET promotion_id = $1 WHERE code = $2";
pub(crate) const DISCOUNT_EXISTS: &str = "SELECT 1 FROM discount_codes WHERE code = $1";

/// A customer's row of a promotion, its limits copied: customer, promotion.
pub(crate) const ENSURE_CUSTOMER: &str =
    "INSERT INTO promotion_customers (promotion_id, customer, budget_minor, redemptions_max)
     SELECT id, $1, per_customer_budget_minor, per_customer_redemptions_max
     FROM promotions WHERE id = $2
     ON CONFLICT (promotion_id, customer) DO NOTHING";

/// held money, held, redeemed money, redemptions, promotion.
pub(crate) const MOVE_PROMOTION: &str = "UPDATE promotions
     SET held_minor = held_minor + $1, held = held + $2,
         redeemed_minor = redeemed_minor + $3, redemptions = redemptions + $4
     WHERE id = $5";

/// The same for one customer: ..., promotion, customer.
pub(crate) const MOVE_CUSTOMER: &str = "UPDATE promotion_customers
     SET held_minor = held_minor + $1, held = held + $2,
         redeemed_minor = redeemed_minor + $3, redemptions = redemptions + $4
     WHERE promotion_id = $5 AND customer = $6";

/// customer, currency, fingerprint, evaluation, discount, shipping discount, key, now, expiry.
/// No row back: a hold of this key was made meanwhile (PostgreSQL: by another instance; the
/// single writer of SQLite has looked for it first).
// Parameters appear in their order: SQLite numbers `$n` by first appearance.
pub(crate) const INSERT_HOLD: &str = "INSERT INTO promotion_holds
         (customer, currency, cart_fingerprint, evaluation, discount_minor,
          shipping_discount_minor, idempotency_key, created_at_ms, expires_at_ms, updated_at_ms,
          status, reference)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10, $11)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";

pub(crate) const INSERT_ITEM: &str = "INSERT INTO promotion_hold_items
         (hold_id, position, promotion_id, code, source, amount_minor)
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const HOLD_BY_ID: &str = concat!(
    "SELECT ",
    hold_columns!(),
    " FROM promotion_holds WHERE id = $1"
);
pub(crate) const HOLD_BY_KEY: &str = concat!(
    "SELECT ",
    hold_columns!(),
    " FROM promotion_holds WHERE idempotency_key = $1"
);

pub(crate) const ITEMS_OF_HOLD: &str = "SELECT promotion_id, code, source, amount_minor
     FROM promotion_hold_items WHERE hold_id = $1 ORDER BY position";

/// status, reference (null: kept), now, id.
pub(crate) const SET_HOLD_STATUS: &str = "UPDATE promotion_holds
     SET status = $1, reference = COALESCE($2, reference), updated_at_ms = $3 WHERE id = $4";

/// Held holds past their time, oldest expiry first: now, limit.
pub(crate) const HOLDS_TO_EXPIRE: &str = "SELECT id FROM promotion_holds
     WHERE status = 'held' AND expires_at_ms <= $1 ORDER BY expires_at_ms, id LIMIT $2";

/// A promotion's holds, newest first: promotion, below this id, limit.
pub(crate) const HOLDS_OF_PROMOTION: &str = "SELECT DISTINCT hold_id FROM promotion_hold_items
     WHERE promotion_id = $1 AND hold_id < $2 ORDER BY hold_id DESC LIMIT $3";

/// Orders of a customer that were not cancelled.
pub(crate) const CUSTOMER_ORDERS: &str =
    "SELECT COUNT(*) FROM orders WHERE customer = $1 AND status <> 'cancelled'";

#[cfg(test)]
pub(crate) const ALL: &[&str] = &[
    PROMOTION_BY_ID,
    PROMOTIONS_PAGE,
    ACTIVE_AUTOMATIC,
    INSERT_PROMOTION,
    UPDATE_PROMOTION,
    UPDATE_CUSTOMER_LIMITS,
    CUSTOMER_MOST,
    BUMP_GENERATION,
    GENERATION,
    LIMITS_AND_USAGE,
    CODE_BINDING,
    COUPON_FACTS,
    DISCOUNT_USED,
    CAMPAIGN_CODE,
    TAKE_CODE_USE,
    GIVE_CODE_USE,
    INSERT_CAMPAIGN_CODE,
    INSERT_CODE,
    MARK_DISCOUNT_USED,
    CLEAR_DISCOUNT_USED,
    BIND_CAMPAIGN,
    CAMPAIGN_BINDING,
    CAMPAIGN_EXISTS,
    COUPON_USES_LEFT,
    MARK_COUPON_BOUND,
    DISCOUNT_EXISTS,
    ENSURE_CUSTOMER,
    MOVE_PROMOTION,
    MOVE_CUSTOMER,
    INSERT_HOLD,
    INSERT_ITEM,
    HOLD_BY_ID,
    HOLD_BY_KEY,
    ITEMS_OF_HOLD,
    SET_HOLD_STATUS,
    HOLDS_TO_EXPIRE,
    HOLDS_OF_PROMOTION,
    CUSTOMER_ORDERS,
];

pub(crate) fn promotion_from(r: &impl Columns) -> Result<StoredPromotion, StorageError> {
    Ok(StoredPromotion {
        id: PromotionId::parse(r.int(0)?).map_err(corrupt)?,
        promotion: spec_from_json(&r.text(1)?)?,
        active: r.flag(2)?,
        version: r.int(3)?,
        totals: Totals {
            redeemed_minor: r.int(4)?,
            redemptions: r.int(5)?,
            held_minor: r.int(6)?,
            held: r.int(7)?,
        },
        created_at: UnixMillis::from_millis(r.int(8)?),
        updated_at: UnixMillis::from_millis(r.int(9)?),
    })
}

/// A hold's row without its items (see [`ITEMS_OF_HOLD`]).
pub(crate) fn hold_from(r: &impl Columns) -> Result<Hold, StorageError> {
    Ok(Hold {
        id: r.int(0)?,
        status: hold_status(&r.text(1)?)?,
        customer: r.opt_text(2)?,
        currency: r.text(3)?,
        cart_fingerprint: r.text(4)?,
        promotions: Vec::new(),
        evaluation: r.text(5)?,
        discount_minor: r.int(6)?,
        shipping_discount_minor: r.int(7)?,
        idempotency_key: r.opt_text(8)?,
        reference: r.opt_text(9)?,
        created_at: UnixMillis::from_millis(r.int(10)?),
        expires_at: UnixMillis::from_millis(r.int(11)?),
        updated_at: UnixMillis::from_millis(r.int(12)?),
    })
}

pub(crate) fn item_from(r: &impl Columns) -> Result<HeldPromotion, StorageError> {
    let code = match (r.opt_text(1)?, r.opt_text(2)?) {
        (Some(code), Some(source)) => Some((code, code_source(&source)?)),
        _ => None,
    };
    Ok(HeldPromotion {
        promotion: PromotionId::parse(r.int(0)?).map_err(corrupt)?,
        code,
        amount_minor: r.int(3)?,
    })
}

/// [`LIMITS_AND_USAGE`]'s row: the limits, the active flag, the counters in all and of the
/// customer (none without a customer row).
pub(crate) fn limits_and_usage_from(r: &impl Columns) -> Result<PromotionState, StorageError> {
    let limits = super::rules::Limits {
        budget_minor: r.opt_int(0)?,
        redemptions_max: r.opt_int(1)?,
        per_customer_budget_minor: r.opt_int(2)?,
        per_customer_redemptions_max: r.opt_int(3)?,
    };
    let totals = Totals {
        redeemed_minor: r.int(5)?,
        redemptions: r.int(6)?,
        held_minor: r.int(7)?,
        held: r.int(8)?,
    };
    let customer = match r.opt_int(9)? {
        Some(redeemed_minor) => Some(Totals {
            redeemed_minor,
            redemptions: r.int(10)?,
            held_minor: r.int(11)?,
            held: r.int(12)?,
        }),
        None => None,
    };
    Ok(PromotionState {
        limits,
        active: r.flag(4)?,
        totals,
        customer,
    })
}

/// [`CODE_BINDING`]'s row, with what else the source needs filled in by the caller.
pub(crate) fn binding_from(r: &impl Columns) -> Result<(PromotionId, CodeFacts), StorageError> {
    let promotion = PromotionId::parse(r.int(0)?).map_err(corrupt)?;
    let facts = CodeFacts {
        source: code_source(&r.text(1)?)?,
        uses: r.int(2)?,
        max_uses: r.int(3)?,
        coupon: None,
        discount_used: false,
        issued_to: None,
    };
    Ok((promotion, facts))
}

pub(crate) fn coupon_facts_from(r: &impl Columns) -> Result<CouponFacts, StorageError> {
    Ok(CouponFacts {
        expires_at_ms: r.int(0)?,
        uses: r.int(1)?,
        max_uses: r.int(2)?,
        allocated_to: r.opt_text(3)?,
    })
}

/// The parameters of [`MOVE_PROMOTION`] (and the first five of [`MOVE_CUSTOMER`]).
pub(crate) fn move_params(d: &Deltas) -> [i64; 4] {
    [d.held_minor, d.held, d.redeemed_minor, d.redemptions]
}

pub(crate) fn hold_status(raw: &str) -> Result<HoldStatus, StorageError> {
    Ok(match raw {
        "held" => HoldStatus::Held,
        "redeemed" => HoldStatus::Redeemed,
        "released" => HoldStatus::Released,
        "expired" => HoldStatus::Expired,
        "rolled_back" => HoldStatus::RolledBack,
        other => return Err(corrupt(format!("unknown hold status {other:?}"))),
    })
}

pub(crate) fn code_source(raw: &str) -> Result<CodeSource, StorageError> {
    Ok(match raw {
        "coupon" => CodeSource::Coupon,
        "discount_code" => CodeSource::DiscountCode,
        "campaign" => CodeSource::Campaign,
        other => return Err(corrupt(format!("unknown code source {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_statement_names_its_parameters_in_order() {
        for sql in super::ALL {
            assert!(crate::row::ascending_parameters(sql), "{sql}");
        }
    }
}

//! Promotions on PostgreSQL, exact across instances. A write that spends or gives back a
//! promotion's budget is one transaction that takes its locks in one order: the hold's row
//! (for a move of an existing hold), then the promotions' rows in id order, then their
//! customer rows, then the codes' rows in code order (a new hold inserts its own row first,
//! which nobody else can see yet). Usage is read once the locks are held (from the locked rows
//! themselves, or by a later statement, which in READ COMMITTED sees what committed before it),
//! so no two instances can both fit the last of a budget; the tables' CHECKs hold the same
//! bounds. A refusal drops the transaction: nothing of it stays. A transaction PostgreSQL ends
//! as a deadlock's victim is run again (see [`DEADLOCK_ATTEMPTS`]).
//!
//! The `*_in` functions are also called by an order's own transaction.

use super::conn::{Db, Tx};
use std::collections::BTreeMap;

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use allot_domain::promotion::{PromotionId, Reason, Usage};
use async_trait::async_trait;
use tokio_postgres::error::SqlState;

use super::PgStore;
use super::promotion_batch::HoldWrite;
use crate::StorageError;
use crate::catalog::corrupt;
use crate::promotion::rules::{
    self, CodeFacts, Limits, Move, PromotionState, Step, code_usable, limit_below_usage,
};
use crate::promotion::stored::*;
use crate::promotion::{
    Binding, CodeSource, HeldPromotion, Hold, HoldStatus, NewHold, NewPromotion, PromotionQuery,
    PromotionRefusal, PromotionResult, PromotionStore, ResolvedCode, StoredPromotion, Totals,
    codes_bound_event, hold_event, holds_expired_event, promotion_event, spec_json, trigger_str,
};
use crate::row::Columns;

/// Runs a transaction again (up to [`DEADLOCK_ATTEMPTS`] in all) while PostgreSQL ends it
/// as a deadlock's victim.
macro_rules! again_after_deadlock {
    ($run:expr) => {{
        let mut attempt = 1;
        loop {
            let result = $run;
            if attempt < DEADLOCK_ATTEMPTS && deadlocked(&result) {
                attempt += 1;
                continue;
            }
            break result;
        }
    }};
}

const LOCK_PROMOTIONS: &str = "SELECT id FROM promotions WHERE id = ANY($1) ORDER BY id FOR UPDATE";
const LOCK_CUSTOMERS: &str = "SELECT promotion_id FROM promotion_customers
     WHERE promotion_id = ANY($1) AND customer = $2 ORDER BY promotion_id FOR UPDATE";
const LOCK_CODES: &str =
    "SELECT code FROM promotion_codes WHERE code = ANY($1) ORDER BY code FOR UPDATE";
/// [`LIMITS_AND_USAGE`] of several promotions at once (then the id): customer, ids.
const USAGE_OF_MANY: &str = "SELECT p.budget_minor, p.redemptions_max,
            p.per_customer_budget_minor, p.per_customer_redemptions_max, p.active,
            p.redeemed_minor, p.redemptions, p.held_minor, p.held,
            c.redeemed_minor, c.redemptions, c.held_minor, c.held, p.id
     FROM promotions p
     LEFT JOIN promotion_customers c ON c.promotion_id = p.id AND c.customer = $1
     WHERE p.id = ANY($2)";
/// [`LOCK_PROMOTIONS`], answering each locked row: id, limits, active, counters.
pub(super) const LOCK_AND_READ_PROMOTIONS: &str = "SELECT id, budget_minor, redemptions_max,
            per_customer_budget_minor, per_customer_redemptions_max, active,
            redeemed_minor, redemptions, held_minor, held
     FROM promotions WHERE id = ANY($1) ORDER BY id FOR UPDATE";
/// [`LOCK_CUSTOMERS`], answering each locked row: promotion, counters.
const LOCK_AND_READ_CUSTOMERS: &str = "SELECT promotion_id, redeemed_minor, redemptions,
            held_minor, held
     FROM promotion_customers
     WHERE promotion_id = ANY($1) AND customer = $2 ORDER BY promotion_id FOR UPDATE";
/// Binding: the coupons among these codes, with the uses they have left, their rows locked in
/// id order, as an order's batch locks them: a redemption racing the binding either came
/// first (its use is not left to bind) or waits and then sees the binding. (Expiry is the
/// code's resolution's to check, on the service's clock, as for any bound coupon.)
const COUPONS_USES_LEFT: &str = "SELECT code, CAST(max_uses - uses AS BIGINT)
     FROM coupons WHERE code = ANY($1) ORDER BY id FOR UPDATE";
/// Binding: the coupons bound, so that the coupon API and orders refuse them: promotion, codes.
const MARK_COUPONS_BOUND: &str = "UPDATE coupons SET promotion_id = $1 WHERE code = ANY($2)";
/// Binding: the discount codes among these codes (one use each).
const DISCOUNT_CODES_OF: &str =
    "SELECT code, CAST(1 AS BIGINT) FROM discount_codes WHERE code = ANY($1)";
const BOUND_CODES_OF: &str = "SELECT code FROM promotion_codes WHERE code = ANY($1)";
/// codes, promotion, source, their maximum uses, now.
const INSERT_CODES: &str =
    "INSERT INTO promotion_codes (code, promotion_id, source, max_uses, uses, created_at_ms)
     SELECT c, $2, $3, m, 0, $5 FROM unnest($1::text[], $4::bigint[]) AS u(c, m)";
const LOCK_HOLD: &str = "SELECT id FROM promotion_holds WHERE id = $1 FOR UPDATE";
/// Two expiry runs (on two instances) take disjoint holds.
const LOCK_HOLDS_TO_EXPIRE: &str = "SELECT id FROM promotion_holds
     WHERE status = 'held' AND expires_at_ms <= $1
     ORDER BY expires_at_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED";
pub(super) fn pid(raw: i64) -> Result<PromotionId, StorageError> {
    PromotionId::parse(raw).map_err(corrupt)
}

async fn load_promotion(c: &impl Db, id: i64) -> Result<Option<StoredPromotion>, StorageError> {
    c.query_opt(PROMOTION_BY_ID, &[&id])
        .await?
        .map(|r| promotion_from(&r))
        .transpose()
}

async fn create(tx: &impl Db, new: &NewPromotion) -> Result<StoredPromotion, StorageError> {
    let spec = new.promotion.spec();
    let l = Limits::of(&spec.limits);
    let row = tx
        .query_one(
            INSERT_PROMOTION,
            &[
                &trigger_str(spec.trigger),
                &new.active,
                &spec_json(&new.promotion)?,
                &l.budget_minor,
                &l.redemptions_max,
                &l.per_customer_budget_minor,
                &l.per_customer_redemptions_max,
                &new.now.as_millis(),
            ],
        )
        .await?;
    let stored = promotion_from(&row)?;
    tx.execute(BUMP_GENERATION, &[]).await?;
    super::event::append(tx, promotion_event(EventType::PromotionCreated, &stored)).await?;
    Ok(stored)
}

async fn limits_and_usage(
    c: &impl Db,
    id: i64,
    customer: Option<&str>,
) -> Result<Option<PromotionState>, StorageError> {
    c.query_opt(LIMITS_AND_USAGE, &[&customer, &id])
        .await?
        .map(|r| limits_and_usage_from(&r))
        .transpose()
}

async fn update(
    tx: &impl Db,
    id: PromotionId,
    new: &NewPromotion,
) -> PromotionResult<StoredPromotion> {
    if tx
        .query(LOCK_PROMOTIONS, &[&vec![id.get()]])
        .await?
        .is_empty()
    {
        return Ok(Err(PromotionRefusal::NotFound));
    }
    let Some(PromotionState { totals, .. }) = limits_and_usage(tx, id.get(), None).await? else {
        return Ok(Err(PromotionRefusal::NotFound));
    };
    let most = tx.query_one(CUSTOMER_MOST, &[&id.get()]).await?;
    let customer_most = Totals {
        redeemed_minor: most.int(0)?,
        redemptions: most.int(1)?,
        held_minor: 0,
        held: 0,
    };
    let spec = new.promotion.spec();
    let l = Limits::of(&spec.limits);
    if let Some(field) = limit_below_usage(&l, &totals, &customer_most) {
        return Ok(Err(PromotionRefusal::LimitBelowUsage { field }));
    }
    let row = tx
        .query_one(
            UPDATE_PROMOTION,
            &[
                &trigger_str(spec.trigger),
                &new.active,
                &spec_json(&new.promotion)?,
                &l.budget_minor,
                &l.redemptions_max,
                &l.per_customer_budget_minor,
                &l.per_customer_redemptions_max,
                &new.now.as_millis(),
                &id.get(),
            ],
        )
        .await?;
    let stored = promotion_from(&row)?;
    tx.execute(
        UPDATE_CUSTOMER_LIMITS,
        &[
            &l.per_customer_budget_minor,
            &l.per_customer_redemptions_max,
            &id.get(),
        ],
    )
    .await?;
    tx.execute(BUMP_GENERATION, &[]).await?;
    super::event::append(tx, promotion_event(EventType::PromotionUpdated, &stored)).await?;
    Ok(Ok(stored))
}

async fn bind(
    tx: &impl Db,
    id: PromotionId,
    binding: &Binding,
    now: UnixMillis,
) -> PromotionResult<u64> {
    // The promotion's row locked: binds of one promotion take turns; a code bound twice at
    // once is decided by the key of promotion_codes (the loser fails and is retried by none:
    // its caller hears AlreadyBound after the fact, see the trait impl).
    if tx
        .query(LOCK_PROMOTIONS, &[&vec![id.get()]])
        .await?
        .is_empty()
    {
        return Ok(Err(PromotionRefusal::NotFound));
    }
    let count = match binding {
        Binding::Campaign(campaign) => {
            if tx.query_opt(CAMPAIGN_EXISTS, &[campaign]).await?.is_none() {
                return Ok(Err(PromotionRefusal::UnknownCampaign));
            }
            if tx.query_opt(CAMPAIGN_BINDING, &[campaign]).await?.is_some() {
                return Ok(Err(PromotionRefusal::AlreadyBound(vec![
                    campaign.to_string(),
                ])));
            }
            tx.execute(BIND_CAMPAIGN, &[campaign, &id.get(), &now.as_millis()])
                .await?;
            1
        }
        Binding::Coupons(codes) | Binding::DiscountCodes(codes) => {
            // A set at a time: a binding of thousands of codes is a few statements, not
            // thousands of round trips under the promotion's lock.
            let source = match binding {
                Binding::Coupons(_) => CodeSource::Coupon,
                _ => CodeSource::DiscountCode,
            };
            let codes = crate::promotion::normalized(codes);
            let existing = match source {
                CodeSource::Coupon => tx.query(COUPONS_USES_LEFT, &[&codes]).await?,
                _ => tx.query(DISCOUNT_CODES_OF, &[&codes]).await?,
            };
            let mut max_uses = std::collections::HashMap::with_capacity(existing.len());
            for r in &existing {
                max_uses.insert(r.text(0)?, r.int(1)?);
            }
            let unknown: Vec<String> = codes
                .iter()
                .filter(|c| !max_uses.contains_key(*c))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Ok(Err(PromotionRefusal::UnknownCodes(unknown)));
            }
            let bound: std::collections::HashSet<String> = tx
                .query(BOUND_CODES_OF, &[&codes])
                .await?
                .iter()
                .map(|r| r.text(0))
                .collect::<Result<_, _>>()?;
            let taken: Vec<String> = codes
                .iter()
                .filter(|c| bound.contains(*c))
                .cloned()
                .collect();
            if !taken.is_empty() {
                return Ok(Err(PromotionRefusal::AlreadyBound(taken)));
            }
            let used_up: Vec<String> = codes
                .iter()
                .filter(|c| max_uses.get(*c).is_some_and(|left| *left < 1))
                .cloned()
                .collect();
            if !used_up.is_empty() {
                return Ok(Err(PromotionRefusal::UsedUpCodes(used_up)));
            }
            let maxima: Vec<i64> = codes
                .iter()
                .map(|c| max_uses.get(c).copied().unwrap_or(1))
                .collect();
            tx.execute(
                INSERT_CODES,
                &[
                    &codes,
                    &id.get(),
                    &source.as_str(),
                    &maxima,
                    &now.as_millis(),
                ],
            )
            .await?;
            if source == CodeSource::Coupon {
                tx.execute(MARK_COUPONS_BOUND, &[&id.get(), &codes]).await?;
            }
            codes.len() as u64
        }
    };
    tx.execute(BUMP_GENERATION, &[]).await?;
    super::event::append(tx, codes_bound_event(id, binding, count, now)).await?;
    Ok(Ok(count))
}

async fn campaign_code(
    c: &impl Db,
    code: &str,
) -> Result<Option<(i64, Option<String>)>, StorageError> {
    match c.query_opt(CAMPAIGN_CODE, &[&code]).await? {
        Some(r) => Ok(Some((r.int(0)?, r.opt_text(1)?))),
        None => Ok(None),
    }
}

/// The promotion a code reaches for `customer` at `now`, and where the code comes from; or
/// why it reaches none.
async fn resolve_one(
    c: &impl Db,
    code: &str,
    customer: Option<&str>,
    now: UnixMillis,
) -> Result<Result<(PromotionId, CodeSource), Reason>, StorageError> {
    let bound = c
        .query_opt(CODE_BINDING, &[&code])
        .await?
        .map(|r| binding_from(&r))
        .transpose()?;
    let (promotion, facts) = match bound {
        Some((promotion, mut facts)) => {
            match facts.source {
                CodeSource::Coupon => {
                    facts.coupon = c
                        .query_opt(COUPON_FACTS, &[&code])
                        .await?
                        .map(|r| coupon_facts_from(&r))
                        .transpose()?;
                }
                CodeSource::DiscountCode => {
                    facts.discount_used = match c.query_opt(DISCOUNT_USED, &[&code]).await? {
                        Some(r) => r.flag(0)?,
                        None => true,
                    };
                }
                CodeSource::Campaign => {
                    facts.issued_to = campaign_code(c, code).await?.and_then(|(_, u)| u);
                }
            }
            (promotion, facts)
        }
        None => match campaign_code(c, code).await? {
            Some((promotion, issued_to)) => (pid(promotion)?, CodeFacts::campaign(0, issued_to)),
            None => return Ok(Err(Reason::UnknownCode)),
        },
    };
    Ok(code_usable(&facts, customer, now.as_millis()).map(|()| (promotion, facts.source)))
}

async fn with_items(c: &impl Db, mut hold: Hold) -> Result<Hold, StorageError> {
    hold.promotions = c
        .query(ITEMS_OF_HOLD, &[&hold.id])
        .await?
        .iter()
        .map(item_from)
        .collect::<Result<_, _>>()?;
    Ok(hold)
}

pub(super) async fn load_hold(c: &impl Db, id: i64) -> Result<Option<Hold>, StorageError> {
    match c.query_opt(HOLD_BY_ID, &[&id]).await? {
        Some(r) => Ok(Some(with_items(c, hold_from(&r)?).await?)),
        None => Ok(None),
    }
}

pub(super) async fn hold_by_key(c: &impl Db, key: &str) -> Result<Option<Hold>, StorageError> {
    match c.query_opt(HOLD_BY_KEY, &[&key]).await? {
        Some(r) => Ok(Some(with_items(c, hold_from(&r)?).await?)),
        None => Ok(None),
    }
}

/// A hold with its items, by id, in an order's transaction (its caller: orders).
#[allow(dead_code)]
pub(super) async fn hold_in(tx: &Tx<'_>, id: i64) -> Result<Option<Hold>, StorageError> {
    load_hold(tx, id).await
}

/// Locks the rows a change of these items touches, in the one order every writer uses:
/// promotions by id, the customer's rows, the codes by code.
async fn lock_rows(
    tx: &impl Db,
    items: &[HeldPromotion],
    customer: Option<&str>,
) -> Result<(), StorageError> {
    let mut ids: Vec<i64> = items.iter().map(|i| i.promotion.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    tx.query(LOCK_PROMOTIONS, &[&ids]).await?;
    if let Some(c) = customer {
        tx.query(LOCK_CUSTOMERS, &[&ids, &c]).await?;
    }
    let mut codes: Vec<&str> = items
        .iter()
        .filter_map(|i| i.code.as_ref().map(|(c, _)| c.as_str()))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    if !codes.is_empty() {
        tx.query(LOCK_CODES, &[&codes]).await?;
    }
    Ok(())
}

/// What a create of a hold did.
pub(super) enum Made {
    New(Hold),
    /// The hold of its key, made before: nothing written.
    Replayed(Hold),
    /// Another instance made the hold of its key while this one decided: read it after.
    KeyTaken,
}

/// The hold, in `tx`; the caller commits only a new one.
pub(super) async fn create_hold(tx: &impl Db, new: &NewHold) -> PromotionResult<Made> {
    if let Some(key) = &new.idempotency_key
        && let Some(h) = hold_by_key(tx, key).await?
    {
        return Ok(Ok(Made::Replayed(h)));
    }
    let customer = new.customer.as_deref();
    let (status, made) = new.made();
    // The hold's row first, before any lock: a racing create with the same key is waited
    // for here (the key's index), never while this one holds promotions others wait for.
    let inserted = tx
        .query_opt(
            INSERT_HOLD,
            &[
                &customer,
                &new.currency,
                &new.cart_fingerprint,
                &new.evaluation,
                &new.discount_minor,
                &new.shipping_discount_minor,
                &new.idempotency_key,
                &new.now.as_millis(),
                &new.expires_at.as_millis(),
                &status.as_str(),
                &new.redeem_for,
            ],
        )
        .await?;
    let Some(row) = inserted else {
        return Ok(Ok(Made::KeyTaken));
    };
    let id = row.int(0)?;
    let states = lock_and_read(tx, &new.promotions, customer).await?;
    if let Err(refusal) = rules::check_hold(&new.promotions, states, customer.is_some()) {
        return Ok(Err(refusal));
    }
    let mut items = Vec::with_capacity(new.promotions.len());
    for item in &new.promotions {
        let mut item = item.clone();
        if let Some((code, _)) = &item.code {
            match take_code(tx, code, item.promotion, customer, new.now).await? {
                Some(source) => item.code = Some((code.clone(), source)),
                None => return Ok(Err(PromotionRefusal::CodeTaken { code: code.clone() })),
            }
        }
        items.push(item);
    }
    for (position, item) in items.iter().enumerate() {
        let (code, source) = match &item.code {
            Some((c, s)) => (Some(c.as_str()), Some(s.as_str())),
            None => (None, None),
        };
        tx.execute(
            INSERT_ITEM,
            &[
                &id,
                &(position as i64),
                &item.promotion.get(),
                &code,
                &source,
                &item.amount_minor,
            ],
        )
        .await?;
        if let Some(c) = customer {
            tx.execute(ENSURE_CUSTOMER, &[&c, &item.promotion.get()])
                .await?;
        }
    }
    move_counters(tx, &items, customer, made).await?;
    // As the row was written (read back, it would be the same): two round trips fewer while
    // the promotions are locked.
    let hold = Hold {
        id,
        status,
        customer: new.customer.clone(),
        currency: new.currency.clone(),
        cart_fingerprint: new.cart_fingerprint.clone(),
        promotions: items,
        evaluation: new.evaluation.clone(),
        discount_minor: new.discount_minor,
        shipping_discount_minor: new.shipping_discount_minor,
        idempotency_key: new.idempotency_key.clone(),
        reference: new.redeem_for.clone(),
        created_at: new.now,
        expires_at: new.expires_at,
        updated_at: new.now,
    };
    if let Some(kind) = crate::promotion::move_event(made) {
        super::event::append(tx, hold_event(kind, &hold)).await?;
    }
    Ok(Ok(Made::New(hold)))
}

/// A promotion's state from a row of [`LOCK_AND_READ_PROMOTIONS`] (no customer's yet).
pub(super) fn locked_state(r: &tokio_postgres::Row) -> Result<PromotionState, StorageError> {
    Ok(PromotionState {
        limits: Limits {
            budget_minor: r.opt_int(1)?,
            redemptions_max: r.opt_int(2)?,
            per_customer_budget_minor: r.opt_int(3)?,
            per_customer_redemptions_max: r.opt_int(4)?,
        },
        active: r.flag(5)?,
        totals: Totals {
            redeemed_minor: r.int(6)?,
            redemptions: r.int(7)?,
            held_minor: r.int(8)?,
            held: r.int(9)?,
        },
        customer: None,
    })
}

/// Locks the rows a new hold spends (promotions in id order, the customer's rows, the codes
/// in code order) and reads each promotion's state from the locked rows: a row locked
/// `FOR UPDATE` is read as its latest committed version. The customer's rows change only
/// under their promotion's lock, so they are read as they are too.
async fn lock_and_read(
    tx: &impl Db,
    items: &[HeldPromotion],
    customer: Option<&str>,
) -> Result<BTreeMap<PromotionId, Option<PromotionState>>, StorageError> {
    let mut ids: Vec<i64> = items.iter().map(|i| i.promotion.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut states: BTreeMap<PromotionId, Option<PromotionState>> = BTreeMap::new();
    for id in &ids {
        states.insert(pid(*id)?, None);
    }
    for r in tx.query(LOCK_AND_READ_PROMOTIONS, &[&ids]).await? {
        states.insert(pid(r.int(0)?)?, Some(locked_state(&r)?));
    }
    if let Some(c) = customer {
        for r in tx.query(LOCK_AND_READ_CUSTOMERS, &[&ids, &c]).await? {
            if let Some(Some(state)) = states.get_mut(&pid(r.int(0)?)?) {
                state.customer = Some(Totals {
                    redeemed_minor: r.int(1)?,
                    redemptions: r.int(2)?,
                    held_minor: r.int(3)?,
                    held: r.int(4)?,
                });
            }
        }
    }
    let mut codes: Vec<&str> = items
        .iter()
        .filter_map(|i| i.code.as_ref().map(|(c, _)| c.as_str()))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    if !codes.is_empty() {
        tx.query(LOCK_CODES, &[&codes]).await?;
    }
    Ok(states)
}

/// Takes one use of a code for the promotion, if it still reaches it for this customer: the
/// code's source, or none (taken, gone, or now another's).
async fn take_code(
    tx: &impl Db,
    code: &str,
    promotion: PromotionId,
    customer: Option<&str>,
    now: UnixMillis,
) -> Result<Option<CodeSource>, StorageError> {
    let source = match resolve_one(tx, code, customer, now).await? {
        Ok((p, source)) if p == promotion => source,
        _ => return Ok(None),
    };
    if source == CodeSource::Campaign {
        tx.execute(
            INSERT_CAMPAIGN_CODE,
            &[&code, &promotion.get(), &now.as_millis()],
        )
        .await?;
    }
    // Conditional: under a race the row's latest version decides, never a stale read.
    if tx.execute(TAKE_CODE_USE, &[&code]).await? != 1 {
        return Ok(None);
    }
    if source == CodeSource::DiscountCode
        && tx
            .execute(MARK_DISCOUNT_USED, &[&now.as_millis(), &code])
            .await?
            != 1
    {
        return Ok(None);
    }
    Ok(Some(source))
}

async fn move_counters(
    tx: &impl Db,
    items: &[HeldPromotion],
    customer: Option<&str>,
    mv: Move,
) -> Result<(), StorageError> {
    for item in items {
        let d = mv.deltas(item.amount_minor);
        let [a, b, c, e] = move_params(&d);
        let p = item.promotion.get();
        tx.execute(MOVE_PROMOTION, &[&a, &b, &c, &e, &p]).await?;
        if let Some(cust) = customer {
            tx.execute(MOVE_CUSTOMER, &[&a, &b, &c, &e, &p, &cust])
                .await?;
        }
        if d.code_uses < 0
            && let Some((code, source)) = &item.code
        {
            tx.execute(GIVE_CODE_USE, &[code]).await?;
            if *source == CodeSource::DiscountCode {
                tx.execute(CLEAR_DISCOUNT_USED, &[code]).await?;
            }
        }
    }
    Ok(())
}

/// Moves a hold as `step` says (see [`rules`]), its row and then its promotions' locked
/// first; or answers it as it is, or refuses, writing nothing.
async fn transition(
    tx: &impl Db,
    id: i64,
    step: impl FnOnce(&Hold) -> Step,
    reference: Option<&str>,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    if tx.query_opt(LOCK_HOLD, &[&id]).await?.is_none() {
        return Ok(Err(PromotionRefusal::HoldNotFound));
    }
    let Some(hold) = load_hold(tx, id).await? else {
        return Ok(Err(PromotionRefusal::HoldNotFound));
    };
    let (mv, to) = match step(&hold) {
        Step::AsItIs => return Ok(Ok(hold)),
        Step::NotHeld => {
            return Ok(Err(PromotionRefusal::HoldNotHeld {
                status: hold.status,
            }));
        }
        Step::Expired => return Ok(Err(PromotionRefusal::HoldExpired)),
        Step::Apply(mv, to) => (mv, to),
    };
    let customer = hold.customer.as_deref();
    lock_rows(tx, &hold.promotions, customer).await?;
    move_counters(tx, &hold.promotions, customer, mv).await?;
    tx.execute(
        SET_HOLD_STATUS,
        &[&to.as_str(), &reference, &now.as_millis(), &id],
    )
    .await?;
    let hold = hold.moved(to, reference, now);
    if let Some(kind) = crate::promotion::move_event(mv) {
        super::event::append(tx, hold_event(kind, &hold)).await?;
    }
    Ok(Ok(hold))
}

/// Turns a held, unexpired hold into redemptions for `reference`, in `tx`.
pub(super) async fn redeem_hold_in(
    tx: &Tx<'_>,
    id: i64,
    reference: &str,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    transition(
        tx,
        id,
        |h| rules::redeem_step(h.status, now >= h.expires_at),
        Some(reference),
        now,
    )
    .await
}

/// Ends a held hold, giving back what it held, in `tx`.
pub(super) async fn release_hold_in(
    tx: &Tx<'_>,
    id: i64,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    transition(tx, id, |h| rules::release_step(h.status), None, now).await
}

/// Gives back what a hold took, exactly once (see [`rules::roll_back_step`]), in `tx`.
pub(super) async fn roll_back_hold_in(
    tx: &Tx<'_>,
    id: i64,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    transition(tx, id, |h| rules::roll_back_step(h.status), None, now).await
}

async fn expire(tx: &impl Db, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
    let ids: Vec<i64> = tx
        .query(LOCK_HOLDS_TO_EXPIRE, &[&now.as_millis(), &i64::from(limit)])
        .await?
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<_, _>>()?;
    let mut holds = Vec::with_capacity(ids.len());
    for id in &ids {
        holds.push(
            load_hold(tx, *id)
                .await?
                .ok_or_else(|| corrupt("a hold just locked is missing"))?,
        );
    }
    // Every promotion of the batch locked at once in id order (then customers, then codes),
    // as every other writer takes them.
    let all: Vec<HeldPromotion> = holds.iter().flat_map(|h| h.promotions.clone()).collect();
    lock_rows(tx, &all, None).await?;
    let mut by_customer: BTreeMap<&str, Vec<HeldPromotion>> = BTreeMap::new();
    for h in &holds {
        if let Some(c) = h.customer.as_deref() {
            by_customer
                .entry(c)
                .or_default()
                .extend(h.promotions.iter().cloned());
        }
    }
    for (c, items) in &by_customer {
        let mut ids: Vec<i64> = items.iter().map(|i| i.promotion.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        tx.query(LOCK_CUSTOMERS, &[&ids, c]).await?;
    }
    for h in &holds {
        move_counters(tx, &h.promotions, h.customer.as_deref(), Move::Release).await?;
        tx.execute(
            SET_HOLD_STATUS,
            &[
                &HoldStatus::Expired.as_str(),
                &None::<&str>,
                &now.as_millis(),
                &h.id,
            ],
        )
        .await?;
    }
    if !ids.is_empty() {
        super::event::append(tx, holds_expired_event(&ids, now)).await?;
    }
    Ok(ids.len() as u64)
}

#[async_trait]
impl PromotionStore for PgStore {
    async fn create_promotion(&self, new: NewPromotion) -> Result<StoredPromotion, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stored = create(&tx, &new).await?;
        super::commit(tx).await?;
        Ok(stored)
    }

    async fn update_promotion(
        &self,
        id: PromotionId,
        new: NewPromotion,
    ) -> PromotionResult<StoredPromotion> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = update(&tx, id, &new).await?;
        if updated.is_ok() {
            super::commit(tx).await?;
        }
        Ok(updated)
    }

    async fn promotion(&self, id: PromotionId) -> Result<Option<StoredPromotion>, StorageError> {
        let client = self.client().await?;
        load_promotion(&*client, id.get()).await
    }

    async fn promotions(
        &self,
        query: PromotionQuery,
    ) -> Result<Vec<StoredPromotion>, StorageError> {
        let client = self.client().await?;
        let limit = i64::from(query.limit.min(crate::promotion::PROMOTIONS_PAGE_MAX));
        client
            .query(
                PROMOTIONS_PAGE,
                &[
                    &query.after,
                    &query.active,
                    &query.trigger.map(trigger_str),
                    &limit,
                ],
            )
            .await?
            .iter()
            .map(promotion_from)
            .collect()
    }

    async fn promotions_generation(&self) -> Result<i64, StorageError> {
        let client = self.client().await?;
        client.query_one(GENERATION, &[]).await?.int(0)
    }

    async fn active_automatic_promotions(&self) -> Result<Vec<StoredPromotion>, StorageError> {
        let client = self.client().await?;
        client
            .query(ACTIVE_AUTOMATIC, &[&true])
            .await?
            .iter()
            .map(promotion_from)
            .collect()
    }

    async fn bind_codes(&self, id: PromotionId, binding: Binding) -> PromotionResult<u64> {
        let now = crate::event::wall_now();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let bound = match bind(&tx, id, &binding, now).await {
            Ok(bound) => bound,
            // Bound by a concurrent binding of another promotion after this one looked.
            Err(StorageError::Postgres(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                let codes = match &binding {
                    Binding::Coupons(c) | Binding::DiscountCodes(c) => {
                        crate::promotion::normalized(c)
                    }
                    Binding::Campaign(c) => vec![c.to_string()],
                };
                return Ok(Err(PromotionRefusal::AlreadyBound(codes)));
            }
            Err(e) => return Err(e),
        };
        if bound.is_ok() {
            super::commit(tx).await?;
        }
        Ok(bound)
    }

    async fn resolve_codes(
        &self,
        codes: &[String],
        customer: Option<&str>,
        now: UnixMillis,
    ) -> Result<Vec<ResolvedCode>, StorageError> {
        let client = self.client().await?;
        let mut out = Vec::with_capacity(codes.len());
        for code in codes {
            let resolved = resolve_one(&*client, code, customer, now).await?;
            out.push(ResolvedCode {
                code: code.clone(),
                source: resolved.as_ref().ok().map(|&(_, s)| s),
                promotion: resolved.map(|(p, _)| p),
            });
        }
        Ok(out)
    }

    async fn promotion_usage(
        &self,
        ids: &[PromotionId],
        customer: Option<&str>,
    ) -> Result<Vec<Usage>, StorageError> {
        // One round trip for every promotion of a preview, however many are automatic.
        let client = self.client().await?;
        let raw: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        let mut found = std::collections::HashMap::with_capacity(raw.len());
        for r in client.query(USAGE_OF_MANY, &[&customer, &raw]).await? {
            let state = limits_and_usage_from(&r)?;
            found.insert(r.int(13)?, state);
        }
        Ok(ids
            .iter()
            .map(|id| {
                let state = found.get(&id.get()).copied().unwrap_or_default();
                crate::promotion::usage_of(&state.totals, state.customer.as_ref())
            })
            .collect())
    }

    async fn customer_orders(&self, customer: &str) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let n = client
            .query_one(CUSTOMER_ORDERS, &[&customer])
            .await?
            .int(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_hold(&self, hold: NewHold) -> PromotionResult<Hold> {
        self.holds.submit(HoldWrite::Create(hold)).await
    }

    async fn hold(&self, id: i64) -> Result<Option<Hold>, StorageError> {
        let client = self.client().await?;
        load_hold(&*client, id).await
    }

    async fn release_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold> {
        self.holds.submit(HoldWrite::Release { id, now }).await
    }

    async fn redeem_hold(
        &self,
        id: i64,
        reference: String,
        now: UnixMillis,
    ) -> PromotionResult<Hold> {
        self.holds
            .submit(HoldWrite::Redeem { id, reference, now })
            .await
    }

    async fn roll_back_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold> {
        self.holds.submit(HoldWrite::RollBack { id, now }).await
    }

    async fn expire_holds(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
        again_after_deadlock!(self.expire_once(now, limit).await)
    }

    async fn promotion_holds(
        &self,
        id: PromotionId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Hold>, StorageError> {
        let bound = if before <= 0 { i64::MAX } else { before };
        let client = self.client().await?;
        let ids: Vec<i64> = client
            .query(HOLDS_OF_PROMOTION, &[&id.get(), &bound, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for hold in ids {
            out.extend(load_hold(&*client, hold).await?);
        }
        Ok(out)
    }
}

/// Times a transaction is run when PostgreSQL ends it as a deadlock's victim. Every writer
/// here takes its locks in one order, but an order's transaction may take a hold's
/// promotions after its own rows (stock, codes): a victim is run again rather than failed.
const DEADLOCK_ATTEMPTS: usize = 3;

fn deadlocked<T>(result: &Result<T, StorageError>) -> bool {
    result.as_ref().err().is_some_and(is_deadlock)
}

/// Whether PostgreSQL ended the transaction as a deadlock's victim.
pub(super) fn is_deadlock(e: &StorageError) -> bool {
    matches!(e, StorageError::Postgres(e) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED))
}

impl PgStore {
    async fn expire_once(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = expire(&tx, now, limit).await?;
        super::commit(tx).await?;
        Ok(n)
    }
}

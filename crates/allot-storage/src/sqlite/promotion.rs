//! Promotions on SQLite. Every write is one operation on the single writer, inside a savepoint
//! a refusal rolls back whole, so a hold reads its promotions' usage and writes its counters
//! with no other write in between: nothing can slip past a limit between the check and the
//! write. The rules (what fits, how counters move) are [`crate::promotion::rules`]'s; the
//! tables' CHECKs hold the same bounds.
//!
//! The `*_in` functions are also called by an order's own operation (part of its savepoint),
//! so an order consumes or gives back its hold in the order's transaction.

use std::collections::BTreeMap;

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use allot_domain::promotion::{PromotionId, Reason, Usage};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, all_or_nothing};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::promotion::rules::{
    self, CodeFacts, Limits, Move, PromotionState, Step, code_usable, limit_below_usage,
};
use crate::promotion::stored::*;
use crate::promotion::{
    Binding, CodeSource, Hold, HoldStatus, NewHold, NewPromotion, PromotionQuery, PromotionRefusal,
    PromotionResult, PromotionStore, ResolvedCode, StoredPromotion, Totals, codes_bound_event,
    hold_event, holds_expired_event, promotion_event, spec_json, trigger_str,
};

fn load_promotion(conn: &Connection, id: i64) -> Result<Option<StoredPromotion>, StorageError> {
    conn.prepare_cached(PROMOTION_BY_ID)?
        .query_row(params![id], |r| Ok(promotion_from(r)))
        .optional()?
        .transpose()
}

fn create(conn: &Connection, new: &NewPromotion) -> Result<StoredPromotion, StorageError> {
    let spec = new.promotion.spec();
    let l = Limits::of(&spec.limits);
    let stored = conn.prepare_cached(INSERT_PROMOTION)?.query_row(
        params![
            trigger_str(spec.trigger),
            new.active,
            spec_json(&new.promotion)?,
            l.budget_minor,
            l.redemptions_max,
            l.per_customer_budget_minor,
            l.per_customer_redemptions_max,
            new.now.as_millis()
        ],
        |r| Ok(promotion_from(r)),
    )??;
    conn.prepare_cached(BUMP_GENERATION)?.execute([])?;
    super::event::append(conn, promotion_event(EventType::PromotionCreated, &stored))?;
    Ok(stored)
}

/// The limits, active flag and usage of a promotion (of `customer` too, if given).
fn limits_and_usage(
    conn: &Connection,
    id: i64,
    customer: Option<&str>,
) -> Result<Option<PromotionState>, StorageError> {
    conn.prepare_cached(LIMITS_AND_USAGE)?
        .query_row(params![customer, id], |r| Ok(limits_and_usage_from(r)))
        .optional()?
        .transpose()
}

fn update(
    conn: &Connection,
    id: PromotionId,
    new: &NewPromotion,
) -> Result<Result<StoredPromotion, PromotionRefusal>, StorageError> {
    let Some(PromotionState { totals, .. }) = limits_and_usage(conn, id.get(), None)? else {
        return Ok(Err(PromotionRefusal::NotFound));
    };
    let customer_most = conn
        .prepare_cached(CUSTOMER_MOST)?
        .query_row(params![id.get()], |r| {
            Ok(Totals {
                redeemed_minor: r.get(0)?,
                redemptions: r.get(1)?,
                held_minor: 0,
                held: 0,
            })
        })?;
    let spec = new.promotion.spec();
    let l = Limits::of(&spec.limits);
    if let Some(field) = limit_below_usage(&l, &totals, &customer_most) {
        return Ok(Err(PromotionRefusal::LimitBelowUsage { field }));
    }
    let stored = conn.prepare_cached(UPDATE_PROMOTION)?.query_row(
        params![
            trigger_str(spec.trigger),
            new.active,
            spec_json(&new.promotion)?,
            l.budget_minor,
            l.redemptions_max,
            l.per_customer_budget_minor,
            l.per_customer_redemptions_max,
            new.now.as_millis(),
            id.get()
        ],
        |r| Ok(promotion_from(r)),
    )??;
    conn.prepare_cached(UPDATE_CUSTOMER_LIMITS)?
        .execute(params![
            l.per_customer_budget_minor,
            l.per_customer_redemptions_max,
            id.get()
        ])?;
    conn.prepare_cached(BUMP_GENERATION)?.execute([])?;
    super::event::append(conn, promotion_event(EventType::PromotionUpdated, &stored))?;
    Ok(Ok(stored))
}

fn exists(conn: &Connection, sql: &str, key: &dyn rusqlite::ToSql) -> Result<bool, StorageError> {
    Ok(conn.prepare_cached(sql)?.exists(params![key])?)
}

fn bound_to(conn: &Connection, code: &str) -> Result<bool, StorageError> {
    exists(conn, CODE_BINDING, &code)
}

fn bind(
    conn: &Connection,
    id: PromotionId,
    binding: &Binding,
    now: UnixMillis,
) -> Result<Result<u64, PromotionRefusal>, StorageError> {
    if !exists(conn, PROMOTION_BY_ID, &id.get())? {
        return Ok(Err(PromotionRefusal::NotFound));
    }
    let count = match binding {
        Binding::Campaign(campaign) => {
            if !exists(conn, CAMPAIGN_EXISTS, campaign)? {
                return Ok(Err(PromotionRefusal::UnknownCampaign));
            }
            if exists(conn, CAMPAIGN_BINDING, campaign)? {
                return Ok(Err(PromotionRefusal::AlreadyBound(vec![
                    campaign.to_string(),
                ])));
            }
            conn.prepare_cached(BIND_CAMPAIGN)?.execute(params![
                campaign,
                id.get(),
                now.as_millis()
            ])?;
            1
        }
        Binding::Coupons(codes) | Binding::DiscountCodes(codes) => {
            let source = match binding {
                Binding::Coupons(_) => CodeSource::Coupon,
                _ => CodeSource::DiscountCode,
            };
            let codes = crate::promotion::normalized(codes);
            let (mut unknown, mut taken, mut used_up, mut found) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for code in codes {
                let max_uses = match source {
                    CodeSource::Coupon => conn
                        .prepare_cached(COUPON_USES_LEFT)?
                        .query_row(params![code], |r| r.get::<_, i64>(0))
                        .optional()?,
                    _ => exists(conn, DISCOUNT_EXISTS, &code)?.then_some(1),
                };
                match max_uses {
                    None => unknown.push(code),
                    Some(_) if bound_to(conn, &code)? => taken.push(code),
                    Some(left) if left < 1 => used_up.push(code),
                    Some(max) => found.push((code, max)),
                }
            }
            if !unknown.is_empty() {
                return Ok(Err(PromotionRefusal::UnknownCodes(unknown)));
            }
            if !taken.is_empty() {
                return Ok(Err(PromotionRefusal::AlreadyBound(taken)));
            }
            if !used_up.is_empty() {
                return Ok(Err(PromotionRefusal::UsedUpCodes(used_up)));
            }
            let mut insert = conn.prepare_cached(INSERT_CODE)?;
            let mut mark = conn.prepare_cached(MARK_COUPON_BOUND)?;
            for (code, max) in &found {
                insert.execute(params![
                    code,
                    id.get(),
                    source.as_str(),
                    max,
                    now.as_millis()
                ])?;
                if source == CodeSource::Coupon {
                    mark.execute(params![id.get(), code])?;
                }
            }
            found.len() as u64
        }
    };
    conn.prepare_cached(BUMP_GENERATION)?.execute([])?;
    super::event::append(conn, codes_bound_event(id, binding, count, now))?;
    Ok(Ok(count))
}

/// The promotion a code reaches for `customer` at `now`, and where the code comes from; or
/// why it reaches none.
fn resolve_one(
    conn: &Connection,
    code: &str,
    customer: Option<&str>,
    now: UnixMillis,
) -> Result<Result<(PromotionId, CodeSource), Reason>, StorageError> {
    let bound = conn
        .prepare_cached(CODE_BINDING)?
        .query_row(params![code], |r| Ok(binding_from(r)))
        .optional()?
        .transpose()?;
    let campaign = || -> Result<Option<(i64, Option<String>)>, StorageError> {
        Ok(conn
            .prepare_cached(CAMPAIGN_CODE)?
            .query_row(params![code], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    };
    let (promotion, facts) = match bound {
        Some((promotion, mut facts)) => {
            match facts.source {
                CodeSource::Coupon => {
                    facts.coupon = conn
                        .prepare_cached(COUPON_FACTS)?
                        .query_row(params![code], |r| Ok(coupon_facts_from(r)))
                        .optional()?
                        .transpose()?;
                }
                CodeSource::DiscountCode => {
                    facts.discount_used = conn
                        .prepare_cached(DISCOUNT_USED)?
                        .query_row(params![code], |r| r.get::<_, bool>(0))
                        .optional()?
                        .unwrap_or(true);
                }
                CodeSource::Campaign => {
                    facts.issued_to = campaign()?.and_then(|(_, user)| user);
                }
            }
            (promotion, facts)
        }
        None => match campaign()? {
            Some((promotion, issued_to)) => (
                PromotionId::parse(promotion).map_err(corrupt)?,
                CodeFacts::campaign(0, issued_to),
            ),
            None => return Ok(Err(Reason::UnknownCode)),
        },
    };
    Ok(code_usable(&facts, customer, now.as_millis()).map(|()| (promotion, facts.source)))
}

fn usage(
    conn: &Connection,
    ids: &[PromotionId],
    customer: Option<&str>,
) -> Result<Vec<Usage>, StorageError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let PromotionState {
            totals: t,
            customer: c,
            ..
        } = limits_and_usage(conn, id.get(), customer)?.unwrap_or_default();
        out.push(crate::promotion::usage_of(&t, c.as_ref()));
    }
    Ok(out)
}

/// A hold with its items, by id.
pub(super) fn hold_in(conn: &Connection, id: i64) -> Result<Option<Hold>, StorageError> {
    let hold = conn
        .prepare_cached(HOLD_BY_ID)?
        .query_row(params![id], |r| Ok(hold_from(r)))
        .optional()?
        .transpose()?;
    hold.map(|h| with_items(conn, h)).transpose()
}

fn with_items(conn: &Connection, mut hold: Hold) -> Result<Hold, StorageError> {
    hold.promotions = crate::row::collect(
        conn.prepare_cached(ITEMS_OF_HOLD)?
            .query_map(params![hold.id], |r| Ok(item_from(r)))?,
    )?;
    Ok(hold)
}

fn create_hold(conn: &Connection, new: &NewHold) -> PromotionResult<Hold> {
    if let Some(key) = &new.idempotency_key
        && let Some(h) = conn
            .prepare_cached(HOLD_BY_KEY)?
            .query_row(params![key], |r| Ok(hold_from(r)))
            .optional()?
            .transpose()?
    {
        return Ok(Ok(with_items(conn, h)?));
    }
    all_or_nothing(conn, |conn| create_hold_inner(conn, new))
}

fn create_hold_inner(conn: &Connection, new: &NewHold) -> PromotionResult<Hold> {
    let customer = new.customer.as_deref();
    let (status, made) = new.made();
    // The writer runs one operation at a time: what is read here is what the hold is
    // written against, with nothing in between.
    let mut ids: Vec<PromotionId> = new.promotions.iter().map(|i| i.promotion).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut states = BTreeMap::new();
    for id in ids {
        states.insert(id, limits_and_usage(conn, id.get(), customer)?);
    }
    if let Err(refusal) = rules::check_hold(&new.promotions, states, customer.is_some()) {
        return Ok(Err(refusal));
    }
    let mut items = Vec::with_capacity(new.promotions.len());
    for item in &new.promotions {
        let mut item = item.clone();
        if let Some((code, _)) = &item.code {
            match take_code(conn, code, item.promotion, customer, new.now)? {
                Some(source) => item.code = Some((code.clone(), source)),
                None => return Ok(Err(PromotionRefusal::CodeTaken { code: code.clone() })),
            }
        }
        items.push(item);
    }
    let id: i64 = conn.prepare_cached(INSERT_HOLD)?.query_row(
        params![
            customer,
            new.currency,
            new.cart_fingerprint,
            new.evaluation,
            new.discount_minor,
            new.shipping_discount_minor,
            new.idempotency_key,
            new.now.as_millis(),
            new.expires_at.as_millis(),
            status.as_str(),
            new.redeem_for
        ],
        |r| r.get(0),
    )?;
    let mut insert = conn.prepare_cached(INSERT_ITEM)?;
    for (position, item) in items.iter().enumerate() {
        let (code, source) = match &item.code {
            Some((c, s)) => (Some(c.as_str()), Some(s.as_str())),
            None => (None, None),
        };
        insert.execute(params![
            id,
            position as i64,
            item.promotion.get(),
            code,
            source,
            item.amount_minor
        ])?;
        if let Some(c) = customer {
            conn.prepare_cached(ENSURE_CUSTOMER)?
                .execute(params![c, item.promotion.get()])?;
        }
    }
    move_counters(conn, &items, customer, made)?;
    let hold = hold_in(conn, id)?.ok_or_else(|| corrupt("a hold just made is missing"))?;
    if let Some(kind) = crate::promotion::move_event(made) {
        super::event::append(conn, hold_event(kind, &hold))?;
    }
    Ok(Ok(hold))
}

/// Takes one use of a code for the promotion, if it still reaches it for this customer: the
/// code's source, or none (taken, gone, or now another's).
fn take_code(
    conn: &Connection,
    code: &str,
    promotion: PromotionId,
    customer: Option<&str>,
    now: UnixMillis,
) -> Result<Option<CodeSource>, StorageError> {
    let source = match resolve_one(conn, code, customer, now)? {
        Ok((p, source)) if p == promotion => source,
        _ => return Ok(None),
    };
    if source == CodeSource::Campaign {
        conn.prepare_cached(INSERT_CAMPAIGN_CODE)?.execute(params![
            code,
            promotion.get(),
            now.as_millis()
        ])?;
    }
    if conn.prepare_cached(TAKE_CODE_USE)?.execute(params![code])? != 1 {
        return Ok(None);
    }
    if source == CodeSource::DiscountCode
        && conn
            .prepare_cached(MARK_DISCOUNT_USED)?
            .execute(params![now.as_millis(), code])?
            != 1
    {
        return Ok(None);
    }
    Ok(Some(source))
}

/// Applies `mv` to the counters of every promotion the items spend, of the customer, and to
/// the codes' uses.
fn move_counters(
    conn: &Connection,
    items: &[crate::promotion::HeldPromotion],
    customer: Option<&str>,
    mv: Move,
) -> Result<(), StorageError> {
    for item in items {
        let d = mv.deltas(item.amount_minor);
        let [a, b, c, e] = move_params(&d);
        conn.prepare_cached(MOVE_PROMOTION)?
            .execute(params![a, b, c, e, item.promotion.get()])?;
        if let Some(cust) = customer {
            conn.prepare_cached(MOVE_CUSTOMER)?.execute(params![
                a,
                b,
                c,
                e,
                item.promotion.get(),
                cust
            ])?;
        }
        if d.code_uses < 0
            && let Some((code, source)) = &item.code
        {
            conn.prepare_cached(GIVE_CODE_USE)?.execute(params![code])?;
            if *source == CodeSource::DiscountCode {
                conn.prepare_cached(CLEAR_DISCOUNT_USED)?
                    .execute(params![code])?;
            }
        }
    }
    Ok(())
}

/// Moves a hold as `step` says (see [`rules`]): the counters, its status, its event; or
/// answers it as it is, or refuses. Decides before it writes, so a refusal writes nothing.
fn transition(
    conn: &Connection,
    id: i64,
    step: impl FnOnce(&Hold) -> Step,
    reference: Option<&str>,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    let Some(hold) = hold_in(conn, id)? else {
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
    move_counters(conn, &hold.promotions, hold.customer.as_deref(), mv)?;
    conn.prepare_cached(SET_HOLD_STATUS)?.execute(params![
        to.as_str(),
        reference,
        now.as_millis(),
        id
    ])?;
    let hold = hold.moved(to, reference, now);
    if let Some(kind) = crate::promotion::move_event(mv) {
        super::event::append(conn, hold_event(kind, &hold))?;
    }
    Ok(Ok(hold))
}

/// Turns a held, unexpired hold into redemptions for `reference`.
pub(super) fn redeem_hold_in(
    conn: &Connection,
    id: i64,
    reference: &str,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    transition(
        conn,
        id,
        |h| rules::redeem_step(h.status, now >= h.expires_at),
        Some(reference),
        now,
    )
}

/// Gives back what a hold took, exactly once (see [`rules::roll_back_step`]).
pub(super) fn roll_back_hold_in(
    conn: &Connection,
    id: i64,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    transition(conn, id, |h| rules::roll_back_step(h.status), None, now)
}

fn expire(conn: &Connection, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
    let ids: Vec<i64> = conn
        .prepare_cached(HOLDS_TO_EXPIRE)?
        .query_map(params![now.as_millis(), i64::from(limit)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &ids {
        let hold = hold_in(conn, *id)?.ok_or_else(|| corrupt("a hold just found is missing"))?;
        move_counters(
            conn,
            &hold.promotions,
            hold.customer.as_deref(),
            Move::Release,
        )?;
        conn.prepare_cached(SET_HOLD_STATUS)?.execute(params![
            HoldStatus::Expired.as_str(),
            None::<&str>,
            now.as_millis(),
            id
        ])?;
    }
    if !ids.is_empty() {
        super::event::append(conn, holds_expired_event(&ids, now))?;
    }
    Ok(ids.len() as u64)
}

#[async_trait]
impl PromotionStore for SqliteStore {
    async fn create_promotion(&self, new: NewPromotion) -> Result<StoredPromotion, StorageError> {
        self.write(2, move |conn, _| create(conn, &new)).await
    }

    async fn update_promotion(
        &self,
        id: PromotionId,
        new: NewPromotion,
    ) -> PromotionResult<StoredPromotion> {
        self.write(2, move |conn, _| {
            all_or_nothing(conn, |conn| update(conn, id, &new))
        })
        .await
    }

    async fn promotion(&self, id: PromotionId) -> Result<Option<StoredPromotion>, StorageError> {
        self.read(move |conn| load_promotion(conn, id.get())).await
    }

    async fn promotions(
        &self,
        query: PromotionQuery,
    ) -> Result<Vec<StoredPromotion>, StorageError> {
        self.read(move |conn| {
            let limit = query.limit.min(crate::promotion::PROMOTIONS_PAGE_MAX);
            crate::row::collect(conn.prepare_cached(PROMOTIONS_PAGE)?.query_map(
                params![
                    query.after,
                    query.active,
                    query.trigger.map(trigger_str),
                    i64::from(limit)
                ],
                |r| Ok(promotion_from(r)),
            )?)
        })
        .await
    }

    async fn promotions_generation(&self) -> Result<i64, StorageError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(GENERATION)?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    async fn active_automatic_promotions(&self) -> Result<Vec<StoredPromotion>, StorageError> {
        self.read(|conn| {
            crate::row::collect(
                conn.prepare_cached(ACTIVE_AUTOMATIC)?
                    .query_map(params![true], |r| Ok(promotion_from(r)))?,
            )
        })
        .await
    }

    async fn bind_codes(&self, id: PromotionId, binding: Binding) -> PromotionResult<u64> {
        let weight = match &binding {
            Binding::Coupons(c) | Binding::DiscountCodes(c) => c.len() + 1,
            Binding::Campaign(_) => 1,
        };
        let now = crate::event::wall_now();
        self.write(weight, move |conn, _| {
            all_or_nothing(conn, |conn| bind(conn, id, &binding, now))
        })
        .await
    }

    async fn resolve_codes(
        &self,
        codes: &[String],
        customer: Option<&str>,
        now: UnixMillis,
    ) -> Result<Vec<ResolvedCode>, StorageError> {
        let codes = codes.to_vec();
        let customer = customer.map(str::to_owned);
        self.read(move |conn| {
            let mut out = Vec::with_capacity(codes.len());
            for code in codes {
                let resolved = resolve_one(conn, &code, customer.as_deref(), now)?;
                out.push(ResolvedCode {
                    code,
                    source: resolved.as_ref().ok().map(|&(_, s)| s),
                    promotion: resolved.map(|(p, _)| p),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn promotion_usage(
        &self,
        ids: &[PromotionId],
        customer: Option<&str>,
    ) -> Result<Vec<Usage>, StorageError> {
        let ids = ids.to_vec();
        let customer = customer.map(str::to_owned);
        self.read(move |conn| usage(conn, &ids, customer.as_deref()))
            .await
    }

    async fn customer_orders(&self, customer: &str) -> Result<u64, StorageError> {
        let customer = customer.to_owned();
        self.read(move |conn| {
            let n: i64 = conn
                .prepare_cached(CUSTOMER_ORDERS)?
                .query_row(params![customer], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn create_hold(&self, hold: NewHold) -> PromotionResult<Hold> {
        let weight = 2 * hold.promotions.len() + 2;
        self.write(weight, move |conn, _| create_hold(conn, &hold))
            .await
    }

    async fn hold(&self, id: i64) -> Result<Option<Hold>, StorageError> {
        self.read(move |conn| hold_in(conn, id)).await
    }

    async fn release_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold> {
        self.write(2, move |conn, _| {
            transition(conn, id, |h| rules::release_step(h.status), None, now)
        })
        .await
    }

    async fn redeem_hold(
        &self,
        id: i64,
        reference: String,
        now: UnixMillis,
    ) -> PromotionResult<Hold> {
        self.write(2, move |conn, _| redeem_hold_in(conn, id, &reference, now))
            .await
    }

    async fn roll_back_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold> {
        self.write(2, move |conn, _| roll_back_hold_in(conn, id, now))
            .await
    }

    async fn expire_holds(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
        let weight = limit as usize + 1;
        self.write(weight, move |conn, _| expire(conn, now, limit))
            .await
    }

    async fn promotion_holds(
        &self,
        id: PromotionId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Hold>, StorageError> {
        let bound = if before <= 0 { i64::MAX } else { before };
        self.read(move |conn| {
            let ids: Vec<i64> = conn
                .prepare_cached(HOLDS_OF_PROMOTION)?
                .query_map(params![id.get(), bound, i64::from(limit)], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for hold in ids {
                out.extend(hold_in(conn, hold)?);
            }
            Ok(out)
        })
        .await
    }
}

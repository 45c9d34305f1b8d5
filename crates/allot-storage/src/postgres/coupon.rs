//! Coupon management on PostgreSQL, correct across instances:
//! - allocation takes a transaction-scoped advisory lock on (user, type), so two instances
//!   cannot both hand one user a coupon of a type (no hoarding), and picks the oldest free coupon
//!   with `FOR UPDATE SKIP LOCKED`, so concurrent allocations never block on or share one coupon;
//! - redemption locks the coupon's row, then applies the domain rule;
//! - counters change in the same transaction as what they count, in a slot of their type
//!   ([`slots`]): allocations and redemptions of one type on different connections do not
//!   queue on one row until each other's commit.

use super::conn::{Conn, Db};
use allot_domain::UnixMillis;
use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::user::{IdempotencyKey, UserId};
use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::PgStore;
use crate::StorageError;
use crate::coupon::{
    Allocation, Coupon, CouponCounters, CouponStore, ExistingCodes, NewCoupon, PerType,
    RedeemOutcome, Redemption, RedemptionFilter, add_by_key, allocated_event, by_type, counters_of,
    coupon_of, may_redeem, parse_type, per_type_of, purged_event, redeemed_event, redemption_of,
    reversed_event, sort_counters, type_key, uploaded_event,
};
pub(super) use crate::coupon::{COLUMNS, TYPES, sql, type_index};

/// The coupon by its code, its row locked for the redemption's transaction.
const BY_CODE_LOCKED: &str = concat!(
    "SELECT ",
    crate::coupon::coupon_columns!(),
    " FROM coupons WHERE code = $1 FOR UPDATE"
);

const BY_CODES: &str = concat!(
    "SELECT ",
    crate::coupon::coupon_columns!(),
    " FROM coupons WHERE code = ANY($1)"
);

/// The counters' writes on PostgreSQL (the reads add the slots up: [`sql::COUNTERS`]). Each
/// type has 16 rows, its slots (migration 0031); a transaction writes the slot of its
/// connection, `coupon_counter_slot()` (the backend's pid modulo 16), the same one for every
/// type, so it locks one row per type as before and only transactions on connections of the
/// same slot wait for each other's commit. A slot alone may go below zero (a use counted in
/// one slot, given back in another); each type's sum is exact at every commit.
pub(super) mod slots {
    pub(crate) const COUNT_ALLOCATED: &str = "UPDATE coupon_counters SET allocated = allocated + 1 \
         WHERE type = $1 AND slot = coupon_counter_slot()";
    pub(crate) const COUNT_REDEEMED: &str = "UPDATE coupon_counters SET redeemed = redeemed + 1 \
         WHERE type = $1 AND slot = coupon_counter_slot()";
    /// Each type of `$1` counted `$2` more redemptions (an order batch's).
    pub(crate) const COUNT_REDEEMED_MANY: &str = "UPDATE coupon_counters c \
         SET redeemed = redeemed + u.n \
         FROM unnest($1::text[], $2::bigint[]) AS u(t, n) \
         WHERE c.type = u.t AND c.slot = coupon_counter_slot()";
    /// One redemption less, if the type counts any (as on SQLite: never below zero in sum).
    pub(crate) const UNCOUNT_REDEEMED: &str = "UPDATE coupon_counters SET redeemed = redeemed - 1 \
         WHERE type = $1 AND slot = coupon_counter_slot() \
           AND (SELECT SUM(redeemed) FROM coupon_counters WHERE type = $1) > 0";
    pub(crate) const COUNT_CREATED: &str = "UPDATE coupon_counters SET created = created + $1 \
         WHERE type = $2 AND slot = coupon_counter_slot()";
    pub(crate) const COUNT_PURGED: &str = "UPDATE coupon_counters SET purged = purged + $1 \
         WHERE type = $2 AND slot = coupon_counter_slot()";
}

/// Runs a counter's `statement`, which must change exactly one slot's row: a missing slot
/// would lose the count silently.
async fn count(
    tx: &impl Db,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), StorageError> {
    match tx.execute(statement, params).await? {
        1 => Ok(()),
        n => Err(StorageError::Corrupt(format!(
            "a coupon counter's update changed {n} rows, not one slot's"
        ))),
    }
}

/// The row's id and its coupon (see [`COLUMNS`]).
pub(super) fn coupon(r: &Row) -> Result<(i64, Coupon), StorageError> {
    coupon_of(r)
}

async fn existing(client: &impl Db, codes: &[String]) -> Result<Vec<String>, StorageError> {
    Ok(client
        .query("SELECT code FROM coupons WHERE code = ANY($1)", &[&codes])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

async fn existing_codes(
    client: &Conn,
    codes: Vec<UploadedCode>,
) -> Result<Vec<UploadedCode>, StorageError> {
    let raw: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
    let found = existing(client, &raw).await?;
    Ok(codes
        .into_iter()
        .filter(|c| found.iter().any(|f| f == c.as_str()))
        .collect())
}

async fn upload(
    client: &mut Conn,
    coupons: &[NewCoupon],
    now: UnixMillis,
) -> Result<Result<usize, ExistingCodes>, StorageError> {
    let codes: Vec<String> = coupons.iter().map(|c| c.code.as_str().to_owned()).collect();
    let clashes = |found: Vec<String>| {
        ExistingCodes(
            codes
                .iter()
                .enumerate()
                .filter(|(_, c)| found.contains(c))
                .map(|(i, _)| i)
                .collect(),
        )
    };
    let tx = client.transaction().await?;
    let found = existing(&tx, &codes).await?;
    if !found.is_empty() {
        return Ok(Err(clashes(found)));
    }
    let upload_id: i64 = tx
        .query_one(
            sql::NEW_UPLOAD,
            &[&(coupons.len() as i32), &now.as_millis()],
        )
        .await?
        .get(0);
    let types: Vec<Option<&str>> = coupons
        .iter()
        .map(|c| c.coupon_type.map(CouponType::as_str))
        .collect();
    let kinds: Vec<&str> = coupons.iter().map(|c| c.discount.kind().as_str()).collect();
    let amounts: Vec<i64> = coupons.iter().map(|c| c.discount.amount()).collect();
    let expiries: Vec<i64> = coupons.iter().map(|c| c.expires_at.as_millis()).collect();
    let uses: Vec<i32> = coupons.iter().map(|c| c.max_uses.get() as i32).collect();
    let inserted = tx
        .execute(
            "INSERT INTO coupons (code, type, discount_kind, discount_amount, expires_at_ms, max_uses, upload_id, created_at_ms)
             SELECT c, t, k, a, e, m, $7, $8
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[]) AS u(c, t, k, a, e, m)",
            &[&codes, &types, &kinds, &amounts, &expiries, &uses, &upload_id, &now.as_millis()],
        )
        .await;
    match inserted {
        Ok(_) => {}
        // Another instance stored one of these codes meanwhile.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            drop(tx);
            return Ok(Err(clashes(existing(client, &codes).await?)));
        }
        Err(e) => return Err(e.into()),
    }
    let per_type = per_type_of(coupons);
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            count(&tx, slots::COUNT_CREATED, &[n, &TYPES[i]]).await?;
        }
    }
    let event = uploaded_event(upload_id, coupons.len(), &per_type, now);
    super::event::append(&tx, event).await?;
    super::commit(tx).await?;
    Ok(Ok(coupons.len()))
}

async fn allocate(
    client: &mut Conn,
    user: &UserId,
    coupon_type: Option<CouponType>,
    now: UnixMillis,
) -> Result<Allocation, StorageError> {
    let t = coupon_type.map(CouponType::as_str);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!(
            "coupon-holder:{}:{}",
            user.as_str(),
            t.unwrap_or("NONE")
        )],
    )
    .await?;
    let held = tx
        .query_opt(sql::HELD, &[&user.as_str(), &t, &now.as_millis()])
        .await?;
    if let Some(row) = held {
        return Ok(Allocation::Held(coupon(&row)?.1));
    }
    let pick = match t {
        Some(_) => ALLOCATION_PICK_TYPED,
        None => ALLOCATION_PICK_UNTYPED,
    };
    tx.execute(ALLOCATION_PICK_PLAN, &[]).await?;
    let Some(free) = tx.query_opt(pick, &[&t, &now.as_millis()]).await? else {
        return Ok(Allocation::NoneAvailable);
    };
    let id: i64 = free.get(0);
    let row = tx
        .query_one(sql::ALLOCATE, &[&user.as_str(), &now.as_millis(), &id])
        .await?;
    let (_, coupon) = coupon(&row)?;
    tx.execute(
        sql::RECORD_ALLOCATION,
        &[&coupon.code, &t, &user.as_str(), &now.as_millis()],
    )
    .await?;
    count(&tx, slots::COUNT_ALLOCATED, &[&type_key(coupon_type)]).await?;
    super::event::append(&tx, allocated_event(&coupon, user, now)).await?;
    super::commit(tx).await?;
    Ok(Allocation::New(coupon))
}

async fn get(client: &Conn, code: &str) -> Result<Option<Coupon>, StorageError> {
    client
        .query_opt(sql::BY_CODE, &[&code])
        .await?
        .map(|r| coupon(&r).map(|(_, c)| c))
        .transpose()
}

/// Run in an allocation's transaction before its pick: no plan that sorts. Statistics older
/// than an upload (none yet before autovacuum's first ANALYZE; a new type; an upload under
/// autovacuum's threshold) say a type's free coupons are a handful, and the planner then reads
/// all of them through a bitmap and sorts them (49 ms and a 6 MB sort on disk for each
/// allocation of 200,000 coupons just uploaded, `scripts/profile.sh` on PostgreSQL) instead of
/// taking the first from the index in order. The index gives the order, so no sort is ever
/// needed; the statements after the pick (writes by key) have no sort to avoid.
pub const ALLOCATION_PICK_PLAN: &str = "SELECT set_config('enable_sort', 'off', true)";

/// The first free coupon of type `$1` at `$2`, locked, for an allocation. `id + 0`: the order
/// only the free coupons' partial indexes give (migration 0029), so the plan never walks the
/// coupons allocated so far through the primary key (public for the plan's test).
pub const ALLOCATION_PICK_TYPED: &str = "SELECT id FROM coupons
     WHERE allocated_to IS NULL AND type = $1 AND expires_at_ms > $2 AND uses < max_uses
       AND promotion_id IS NULL
     ORDER BY id + 0 LIMIT 1 FOR UPDATE SKIP LOCKED";

/// [`ALLOCATION_PICK_TYPED`] of an untyped coupon (`$1` NULL).
pub const ALLOCATION_PICK_UNTYPED: &str = "SELECT id FROM coupons
     WHERE allocated_to IS NULL AND type IS NULL AND expires_at_ms > $2 AND uses < max_uses
       AND promotion_id IS NULL AND $1::text IS NULL
     ORDER BY id + 0 LIMIT 1 FOR UPDATE SKIP LOCKED";

async fn redeem(
    client: &mut Conn,
    code: &str,
    user: &UserId,
    now: UnixMillis,
    key: Option<&str>,
) -> Result<RedeemOutcome, StorageError> {
    let tx = client.transaction().await?;
    let outcome = redeem_locked(&tx, code, user, now, key).await?;
    if matches!(outcome, RedeemOutcome::Redeemed(_)) {
        super::commit(tx).await?;
    }
    Ok(outcome)
}

/// Redeems once if the rules allow, in `tx`, the coupon's row locked first. A use over the
/// API belongs to no order (orders redeem in their own batch, `order_batch`).
async fn redeem_locked(
    tx: &impl Db,
    code: &str,
    user: &UserId,
    now: UnixMillis,
    key: Option<&str>,
) -> Result<RedeemOutcome, StorageError> {
    let order: Option<i64> = None;
    let Some(row) = tx.query_opt(BY_CODE_LOCKED, &[&code]).await? else {
        return Ok(RedeemOutcome::NotFound);
    };
    let (id, current) = coupon(&row)?;
    // The row is locked: a first call with this key has committed or rolled back by now, and
    // this statement (READ COMMITTED) sees which.
    if let Some(key) = key
        && tx
            .query_opt(sql::REDEMPTION_BY_KEY, &[&key])
            .await?
            .is_some()
    {
        return Ok(RedeemOutcome::Replayed(current));
    }
    if let Err(refusal) = may_redeem(&current, user, now) {
        return Ok(RedeemOutcome::Refused(refusal));
    }
    let row = tx.query_one(sql::USE, &[&id]).await?;
    let (_, coupon) = coupon(&row)?;
    let t = coupon.coupon_type.map(CouponType::as_str);
    tx.execute(
        sql::RECORD_REDEMPTION,
        &[
            &coupon.code,
            &t,
            &user.as_str(),
            &now.as_millis(),
            &order,
            &key,
        ],
    )
    .await?;
    count(tx, slots::COUNT_REDEEMED, &[&type_key(coupon.coupon_type)]).await?;
    let event = redeemed_event(&coupon, i64::from(coupon.uses), user.as_str(), order, now);
    super::event::append(tx, event).await?;
    Ok(RedeemOutcome::Redeemed(coupon))
}

/// Gives back the coupon uses the order made: each redemption is marked reversed, its use
/// returned to the coupon and taken off the redeemed counter.
pub(super) async fn give_back(
    tx: &impl Db,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let reversed = tx
        .query(sql::REVERSE_REDEMPTIONS, &[&now.as_millis(), &order])
        .await?;
    for r in &reversed {
        let code: String = r.try_get(0)?;
        let raw_type: Option<String> = r.try_get(1)?;
        let event = reversed_event(&code, raw_type.as_deref(), order, now);
        super::event::append(tx, event).await?;
        let t = parse_type(raw_type)?;
        tx.execute(sql::GIVE_USE_BACK, &[&code]).await?;
        tx.execute(slots::UNCOUNT_REDEEMED, &[&type_key(t)]).await?;
    }
    Ok(())
}

async fn purge(
    client: &mut Conn,
    now: UnixMillis,
    trigger: &str,
) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "WITH gone AS (DELETE FROM coupons WHERE uses = 0 AND expires_at_ms <= $1 RETURNING type)
             SELECT coalesce(type, 'NONE'), count(*) FROM gone GROUP BY 1",
            &[&now.as_millis()],
        )
        .await?;
    let mut per_type: PerType = [0; 4];
    for r in &rows {
        add_by_key(&mut per_type, r.try_get(0)?, r.try_get(1)?);
    }
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            count(&tx, slots::COUNT_PURGED, &[n, &TYPES[i]]).await?;
        }
    }
    let total: i64 = per_type.iter().sum();
    tx.execute(sql::RECORD_PURGE, &[&now.as_millis(), &trigger, &total])
        .await?;
    if let Some(event) = purged_event(&per_type, trigger, now) {
        super::event::append(&tx, event).await?;
    }
    super::commit(tx).await?;
    Ok(by_type(&per_type))
}

async fn counters(client: &Conn, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError> {
    let expired_rows = client.query(sql::EXPIRED, &[&now.as_millis()]).await?;
    let mut expired: PerType = [0; 4];
    for r in &expired_rows {
        add_by_key(&mut expired, r.try_get(0)?, r.try_get(1)?);
    }
    let mut out = Vec::with_capacity(4);
    for r in client.query(sql::COUNTERS, &[]).await? {
        out.push(counters_of(&r, &expired)?);
    }
    sort_counters(&mut out);
    Ok(out)
}

async fn redemptions(client: &Conn, f: RedemptionFilter) -> Result<Vec<Redemption>, StorageError> {
    let t: Option<Option<&str>> = f.coupon_type.map(|t| t.map(CouponType::as_str));
    let rows = client
        .query(
            "SELECT id, code, type, user_id, redeemed_at_ms FROM coupon_redemptions
             WHERE id > $1
               AND ($2::text IS NULL OR user_id = $2)
               AND ($3::text IS NULL OR code = $3)
               AND (NOT $4 OR type IS NOT DISTINCT FROM $5::text)
               AND ($6::bigint IS NULL OR redeemed_at_ms >= $6)
               AND ($7::bigint IS NULL OR redeemed_at_ms < $7)
             ORDER BY id LIMIT $8",
            &[
                &f.after_id,
                &f.user_id,
                &f.code,
                &t.is_some(),
                &t.flatten(),
                &f.from.map(UnixMillis::as_millis),
                &f.until.map(UnixMillis::as_millis),
                &i64::from(f.limit),
            ],
        )
        .await?;
    rows.iter().map(redemption_of).collect()
}

#[async_trait]
impl CouponStore for PgStore {
    async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError> {
        let mut client = self.client().await?;
        upload(&mut client, &coupons, now).await
    }

    async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError> {
        let client = self.client().await?;
        existing_codes(&client, codes).await
    }

    async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError> {
        let mut client = self.client().await?;
        allocate(&mut client, &user, coupon_type, now).await
    }

    async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError> {
        let client = self.client().await?;
        get(&client, code.as_str()).await
    }

    async fn coupons_by_code(&self, codes: Vec<UploadedCode>) -> Result<Vec<Coupon>, StorageError> {
        let client = self.client().await?;
        let raw: Vec<&str> = codes.iter().map(UploadedCode::as_str).collect();
        client
            .query(BY_CODES, &[&raw])
            .await?
            .iter()
            .map(|r| coupon(r).map(|(_, c)| c))
            .collect()
    }

    async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
        key: Option<IdempotencyKey>,
    ) -> Result<RedeemOutcome, StorageError> {
        let mut client = self.client().await?;
        let key = key.as_ref().map(IdempotencyKey::as_str);
        redeem(&mut client, code.as_str(), &user, now, key).await
    }

    async fn redemptions(&self, f: RedemptionFilter) -> Result<Vec<Redemption>, StorageError> {
        let client = self.client().await?;
        redemptions(&client, f).await
    }

    async fn coupon_counters(&self, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError> {
        let client = self.client().await?;
        counters(&client, now).await
    }

    async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
        let mut client = self.client().await?;
        purge(&mut client, now, trigger).await
    }
}

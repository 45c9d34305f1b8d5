//! Coupons on SQLite. Writes run in the writer's batch transaction, each in its own
//! savepoint; counters change in the same savepoint as what they count.

use allot_domain::UnixMillis;
use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::user::{IdempotencyKey, UserId};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::event::append;
use crate::StorageError;
use crate::coupon::{
    Allocation, Coupon, CouponCounters, CouponStore, ExistingCodes, NewCoupon, PerType,
    RedeemOutcome, Redemption, RedemptionFilter, TYPES, add_by_key, allocated_event, by_type,
    counters_of, coupon_of, may_redeem, parse_type, per_type_of, purged_event, redeemed_event,
    redemption_of, reversed_event, sort_counters, sql, type_index, type_key, uploaded_event,
};
use crate::row::collect;

pub(super) fn by_code(
    conn: &Connection,
    code: &str,
) -> Result<Option<(i64, Coupon)>, StorageError> {
    conn.prepare_cached(sql::BY_CODE)?
        .query_row(params![code], |r| Ok(coupon_of(r)))
        .optional()?
        .transpose()
}

pub(super) fn existing(
    conn: &Connection,
    codes: Vec<UploadedCode>,
) -> Result<Vec<UploadedCode>, StorageError> {
    let mut exists = conn.prepare_cached("SELECT 1 FROM coupons WHERE code = ?1")?;
    let mut found = Vec::new();
    for code in codes {
        if exists.exists(params![code.as_str()])? {
            found.push(code);
        }
    }
    Ok(found)
}

fn upload(
    conn: &Connection,
    coupons: &[NewCoupon],
    now: UnixMillis,
) -> Result<Result<usize, ExistingCodes>, StorageError> {
    let mut exists = conn.prepare_cached("SELECT 1 FROM coupons WHERE code = ?1")?;
    let mut clashes = Vec::new();
    for (i, c) in coupons.iter().enumerate() {
        if exists.exists(params![c.code.as_str()])? {
            clashes.push(i);
        }
    }
    if !clashes.is_empty() {
        return Ok(Err(ExistingCodes(clashes)));
    }
    let upload_id: i64 = conn
        .prepare_cached(sql::NEW_UPLOAD)?
        .query_row(params![coupons.len(), now.as_millis()], |r| r.get(0))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO coupons (code, type, discount_kind, discount_amount, expires_at_ms, max_uses,
                              upload_id, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for c in coupons {
        insert.execute(params![
            c.code.as_str(),
            c.coupon_type.map(CouponType::as_str),
            c.discount.kind().as_str(),
            c.discount.amount(),
            c.expires_at.as_millis(),
            c.max_uses.get(),
            upload_id,
            now.as_millis(),
        ])?;
    }
    let per_type = per_type_of(coupons);
    let mut count = conn.prepare_cached(sql::COUNT_CREATED)?;
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            count.execute(params![n, TYPES[i]])?;
        }
    }
    append(
        conn,
        uploaded_event(upload_id, coupons.len(), &per_type, now),
    )?;
    Ok(Ok(coupons.len()))
}

fn allocate(
    conn: &Connection,
    user: &UserId,
    coupon_type: Option<CouponType>,
    now: UnixMillis,
) -> Result<Allocation, StorageError> {
    let t = coupon_type.map(CouponType::as_str);
    // No hoarding: an unredeemed, unexpired coupon of this type already held comes back.
    let held = conn
        .prepare_cached(sql::HELD)?
        .query_row(params![user.as_str(), t, now.as_millis()], |r| {
            Ok(coupon_of(r))
        })
        .optional()?;
    if let Some(held) = held {
        return Ok(Allocation::Held(held?.1));
    }
    let free = conn
        .prepare_cached(
            "SELECT id FROM coupons
             WHERE allocated_to IS NULL AND type IS ?1 AND expires_at_ms > ?2 AND uses < max_uses
               AND promotion_id IS NULL
             ORDER BY id LIMIT 1",
        )?
        .query_row(params![t, now.as_millis()], |r| r.get::<_, i64>(0))
        .optional()?;
    let Some(id) = free else {
        return Ok(Allocation::NoneAvailable);
    };
    let row = conn
        .prepare_cached(sql::ALLOCATE)?
        .query_row(params![user.as_str(), now.as_millis(), id], |r| {
            Ok(coupon_of(r))
        })?;
    let (_, coupon) = row?;
    conn.prepare_cached(sql::RECORD_ALLOCATION)?
        .execute(params![coupon.code, t, user.as_str(), now.as_millis()])?;
    conn.prepare_cached(sql::COUNT_ALLOCATED)?
        .execute(params![type_key(coupon_type)])?;
    append(conn, allocated_event(&coupon, user, now))?;
    Ok(Allocation::New(coupon))
}

fn by_codes(conn: &Connection, codes: &[UploadedCode]) -> Result<Vec<Coupon>, StorageError> {
    let mut found = Vec::with_capacity(codes.len());
    for code in codes {
        if let Some((_, coupon)) = by_code(conn, code.as_str())? {
            found.push(coupon);
        }
    }
    Ok(found)
}

fn get(conn: &Connection, code: &str) -> Result<Option<Coupon>, StorageError> {
    Ok(by_code(conn, code)?.map(|(_, c)| c))
}

/// Redeems once if the rules allow; `order` is the order the use is for, if any.
pub(super) fn redeem(
    conn: &Connection,
    code: &str,
    user: &UserId,
    now: UnixMillis,
    key: Option<&str>,
) -> Result<RedeemOutcome, StorageError> {
    let Some((id, coupon)) = by_code(conn, code)? else {
        return Ok(RedeemOutcome::NotFound);
    };
    if let Some(key) = key
        && conn
            .prepare_cached(sql::REDEMPTION_BY_KEY)?
            .exists(params![key])?
    {
        return Ok(RedeemOutcome::Replayed(coupon));
    }
    if let Err(refusal) = may_redeem(&coupon, user, now) {
        return Ok(RedeemOutcome::Refused(refusal));
    }
    let coupon = record_redemption(conn, id, user, now, None, key)?;
    Ok(RedeemOutcome::Redeemed(coupon))
}

/// Records a redemption of the coupon `id` that its rule allowed: its use, the redemption row,
/// the counter and the event.
pub(super) fn record_redemption(
    conn: &Connection,
    id: i64,
    user: &UserId,
    now: UnixMillis,
    order: Option<i64>,
    key: Option<&str>,
) -> Result<Coupon, StorageError> {
    let row = conn
        .prepare_cached(sql::USE)?
        .query_row(params![id], |r| Ok(coupon_of(r)))?;
    let (_, coupon) = row?;
    conn.prepare_cached(sql::RECORD_REDEMPTION)?
        .execute(params![
            coupon.code,
            coupon.coupon_type.map(CouponType::as_str),
            user.as_str(),
            now.as_millis(),
            order,
            key
        ])?;
    conn.prepare_cached(sql::COUNT_REDEEMED)?
        .execute(params![type_key(coupon.coupon_type)])?;
    append(
        conn,
        redeemed_event(&coupon, i64::from(coupon.uses), user.as_str(), order, now),
    )?;
    Ok(coupon)
}

/// Gives back the coupon uses the order made: each redemption is marked reversed, its use
/// returned to the coupon and taken off the redeemed counter.
pub(super) fn give_back(
    conn: &Connection,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let reversed: Vec<(String, Option<String>)> = conn
        .prepare_cached(sql::REVERSE_REDEMPTIONS)?
        .query_map(params![now.as_millis(), order], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (code, t) in reversed {
        conn.prepare_cached(sql::GIVE_USE_BACK)?
            .execute(params![code])?;
        conn.prepare_cached(sql::UNCOUNT_REDEEMED)?
            .execute(params![type_key(parse_type(t.clone())?)])?;
        append(conn, reversed_event(&code, t.as_deref(), order, now))?;
    }
    Ok(())
}

/// Deletes every unused coupon past its expiry; returns how many of each type.
fn purge(
    conn: &Connection,
    now: UnixMillis,
    trigger: &str,
) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
    let mut per_type: PerType = [0; 4];
    {
        let mut stmt = conn.prepare_cached(
            "DELETE FROM coupons WHERE uses = 0 AND expires_at_ms <= ?1 RETURNING type",
        )?;
        let mut rows = stmt.query(params![now.as_millis()])?;
        while let Some(row) = rows.next()? {
            per_type[type_index(parse_type(row.get(0)?)?)] += 1;
        }
    }
    let total: i64 = per_type.iter().sum();
    let mut count = conn.prepare_cached(sql::COUNT_PURGED)?;
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            count.execute(params![n, TYPES[i]])?;
        }
    }
    conn.prepare_cached(sql::RECORD_PURGE)?
        .execute(params![now.as_millis(), trigger, total])?;
    if let Some(event) = purged_event(&per_type, trigger, now) {
        append(conn, event)?;
    }
    Ok(by_type(&per_type))
}

fn counters(conn: &Connection, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError> {
    let mut expired: PerType = [0; 4];
    {
        let mut stmt = conn.prepare_cached(sql::EXPIRED)?;
        let mut rows = stmt.query(params![now.as_millis()])?;
        while let Some(row) = rows.next()? {
            let t: String = row.get(0)?;
            add_by_key(&mut expired, &t, row.get(1)?);
        }
    }
    let mut stmt = conn.prepare_cached(sql::COUNTERS)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::with_capacity(4);
    while let Some(row) = rows.next()? {
        out.push(counters_of(row, &expired)?);
    }
    sort_counters(&mut out);
    Ok(out)
}

fn redemptions(conn: &Connection, f: &RedemptionFilter) -> Result<Vec<Redemption>, StorageError> {
    let mut sql = String::from(
        "SELECT id, code, type, user_id, redeemed_at_ms FROM coupon_redemptions WHERE id > ?1",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![f.after_id.into()];
    let mut push = |clause: &str, v: rusqlite::types::Value, sql: &mut String| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(u) = &f.user_id {
        push("user_id =", u.clone().into(), &mut sql);
    }
    if let Some(c) = &f.code {
        push("code =", c.clone().into(), &mut sql);
    }
    if let Some(t) = &f.coupon_type {
        match t {
            Some(t) => push("type =", t.as_str().to_owned().into(), &mut sql),
            None => sql.push_str(" AND type IS NULL"),
        }
    }
    if let Some(from) = f.from {
        push("redeemed_at_ms >=", from.as_millis().into(), &mut sql);
    }
    if let Some(until) = f.until {
        push("redeemed_at_ms <", until.as_millis().into(), &mut sql);
    }
    args.push(i64::from(f.limit).into());
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    collect(stmt.query_map(rusqlite::params_from_iter(args), |r| Ok(redemption_of(r)))?)
}

#[async_trait]
impl CouponStore for SqliteStore {
    async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError> {
        let weight = coupons.len();
        self.write(weight, move |conn, _| upload(conn, &coupons, now))
            .await
    }

    async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError> {
        self.read(move |conn| existing(conn, codes)).await
    }

    async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError> {
        self.write(1, move |conn, _| allocate(conn, &user, coupon_type, now))
            .await
    }

    async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError> {
        let code = code.clone();
        self.read(move |conn| get(conn, code.as_str())).await
    }

    async fn coupons_by_code(&self, codes: Vec<UploadedCode>) -> Result<Vec<Coupon>, StorageError> {
        self.read(move |conn| by_codes(conn, &codes)).await
    }

    async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
        key: Option<IdempotencyKey>,
    ) -> Result<RedeemOutcome, StorageError> {
        let code = code.clone();
        self.write(1, move |conn, _| {
            redeem(
                conn,
                code.as_str(),
                &user,
                now,
                key.as_ref().map(IdempotencyKey::as_str),
            )
        })
        .await
    }

    async fn redemptions(&self, filter: RedemptionFilter) -> Result<Vec<Redemption>, StorageError> {
        self.read(move |conn| redemptions(conn, &filter)).await
    }

    async fn coupon_counters(&self, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError> {
        self.read(move |conn| counters(conn, now)).await
    }

    async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
        self.write(1_000, move |conn, _| purge(conn, now, trigger))
            .await
    }
}

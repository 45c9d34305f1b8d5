//! Coupon management operations. Writes run in the writer's batch transaction, each in its
//! own savepoint; counters change in the same savepoint as what they count.

use allot_domain::UnixMillis;
use allot_domain::coupon::{CouponState, CouponType, check_redeemable};
use allot_domain::event::{EventType, NewEvent};
use allot_domain::user::UserId;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use crate::{
    Allocation, Coupon, CouponCounters, ExistingCodes, NewCoupon, RedeemOutcome, Redemption,
    RedemptionFilter, StorageError,
};

const COLUMNS: &str = "code, type, discount_kind, discount_amount, expires_at_ms, max_uses, \
                       uses, allocated_to, allocated_at_ms, created_at_ms";

fn type_key(t: Option<CouponType>) -> &'static str {
    t.map_or("NONE", CouponType::as_str)
}

fn parse_type(raw: Option<String>) -> Result<Option<CouponType>, StorageError> {
    raw.map(|t| CouponType::parse(&t).map_err(|e| StorageError::Corrupt(e.to_string())))
        .transpose()
}

fn coupon_row(r: &Row<'_>) -> rusqlite::Result<(Coupon, Option<String>)> {
    Ok((
        Coupon {
            code: r.get(0)?,
            coupon_type: None,
            discount_kind: r.get(2)?,
            discount_amount: r.get(3)?,
            expires_at: UnixMillis::from_millis(r.get(4)?),
            max_uses: r.get(5)?,
            uses: r.get(6)?,
            allocated_to: r.get(7)?,
            allocated_at: r.get::<_, Option<i64>>(8)?.map(UnixMillis::from_millis),
            created_at: UnixMillis::from_millis(r.get(9)?),
        },
        r.get(1)?,
    ))
}

fn finish(row: (Coupon, Option<String>)) -> Result<Coupon, StorageError> {
    let (mut coupon, t) = row;
    coupon.coupon_type = parse_type(t)?;
    Ok(coupon)
}

pub(super) fn by_code(
    conn: &Connection,
    code: &str,
) -> Result<Option<(i64, Coupon)>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, id FROM coupons WHERE code = ?1"
    ))?
    .query_row(params![code], |r| {
        Ok((coupon_row(r)?, r.get::<_, i64>(10)?))
    })
    .optional()?
    .map(|(row, id)| Ok((id, finish(row)?)))
    .transpose()
}

pub(super) fn existing(
    conn: &Connection,
    codes: Vec<allot_domain::coupon::UploadedCode>,
) -> Result<Vec<allot_domain::coupon::UploadedCode>, StorageError> {
    let mut exists = conn.prepare_cached("SELECT 1 FROM coupons WHERE code = ?1")?;
    let mut found = Vec::new();
    for code in codes {
        if exists.exists(params![code.as_str()])? {
            found.push(code);
        }
    }
    Ok(found)
}

pub(super) fn upload(
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
    conn.prepare_cached("INSERT INTO coupon_uploads (count, created_at_ms) VALUES (?1, ?2)")?
        .execute(params![coupons.len(), now.as_millis()])?;
    let upload_id = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO coupons (code, type, discount_kind, discount_amount, expires_at_ms, max_uses,
                              upload_id, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut per_type = [0i64; 4];
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
        per_type[type_index(c.coupon_type)] += 1;
    }
    let mut count =
        conn.prepare_cached("UPDATE coupon_counters SET created = created + ?2 WHERE type = ?1")?;
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            count.execute(params![TYPES[i], n])?;
        }
    }
    // One summary event for the upload, never one per coupon.
    let payload = json!({"upload_id": upload_id, "count": coupons.len(), "per_type": per_type_json(&per_type)});
    super::event::append(
        conn,
        NewEvent::api(EventType::CouponsUploaded, now, payload.to_string()),
    )?;
    Ok(Ok(coupons.len()))
}

const TYPES: [&str; 4] = ["NONE", "FREE", "STANDARD", "MEGADEAL"];

fn per_type_json(per_type: &[i64; 4]) -> serde_json::Value {
    crate::event::counts_by_type(&TYPES, per_type)
}

fn type_index(t: Option<CouponType>) -> usize {
    match t {
        None => 0,
        Some(CouponType::Free) => 1,
        Some(CouponType::Standard) => 2,
        Some(CouponType::Megadeal) => 3,
    }
}

pub(super) fn allocate(
    conn: &Connection,
    user: &UserId,
    coupon_type: Option<CouponType>,
    now: UnixMillis,
) -> Result<Allocation, StorageError> {
    let t = coupon_type.map(CouponType::as_str);
    // No hoarding: an unredeemed, unexpired coupon of this type already held comes back.
    let held = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM coupons
             WHERE allocated_to = ?1 AND type IS ?2 AND uses = 0 AND expires_at_ms > ?3
             ORDER BY id LIMIT 1"
        ))?
        .query_row(params![user.as_str(), t, now.as_millis()], coupon_row)
        .optional()?;
    if let Some(row) = held {
        return Ok(Allocation::Held(finish(row)?));
    }
    let free = conn
        .prepare_cached(
            "SELECT id FROM coupons
             WHERE allocated_to IS NULL AND type IS ?1 AND expires_at_ms > ?2 AND uses < max_uses
             ORDER BY id LIMIT 1",
        )?
        .query_row(params![t, now.as_millis()], |r| r.get::<_, i64>(0))
        .optional()?;
    let Some(id) = free else {
        return Ok(Allocation::NoneAvailable);
    };
    let row = conn
        .prepare_cached(&format!(
            "UPDATE coupons SET allocated_to = ?2, allocated_at_ms = ?3
             WHERE id = ?1 AND allocated_to IS NULL RETURNING {COLUMNS}"
        ))?
        .query_row(params![id, user.as_str(), now.as_millis()], coupon_row)?;
    let coupon = finish(row)?;
    conn.prepare_cached(
        "INSERT INTO coupon_allocations (code, type, user_id, allocated_at_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![coupon.code, t, user.as_str(), now.as_millis()])?;
    conn.prepare_cached("UPDATE coupon_counters SET allocated = allocated + 1 WHERE type = ?1")?
        .execute(params![type_key(coupon_type)])?;
    let payload = json!({"code": coupon.code, "type": t, "user_id": user.as_str()});
    super::event::append(
        conn,
        NewEvent::api(EventType::CouponAllocated, now, payload.to_string()),
    )?;
    Ok(Allocation::New(coupon))
}

pub(super) fn get(conn: &Connection, code: &str) -> Result<Option<Coupon>, StorageError> {
    Ok(by_code(conn, code)?.map(|(_, c)| c))
}

/// Redeems once if the rules allow; `order` is the order the use is for, if any.
pub(super) fn redeem(
    conn: &Connection,
    code: &str,
    user: &UserId,
    now: UnixMillis,
    order: Option<i64>,
) -> Result<RedeemOutcome, StorageError> {
    let Some((id, coupon)) = by_code(conn, code)? else {
        return Ok(RedeemOutcome::NotFound);
    };
    let state = CouponState {
        expires_at: coupon.expires_at,
        uses: coupon.uses,
        max_uses: coupon.max_uses,
        allocated_to: coupon.allocated_to.as_deref(),
    };
    if let Err(refusal) = check_redeemable(&state, user.as_str(), now) {
        return Ok(RedeemOutcome::Refused(refusal));
    }
    let coupon = record_redemption(conn, id, user, now, order)?;
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
) -> Result<Coupon, StorageError> {
    let row = conn
        .prepare_cached(&format!(
            "UPDATE coupons SET uses = uses + 1 WHERE id = ?1 AND uses < max_uses RETURNING {COLUMNS}"
        ))?
        .query_row(params![id], coupon_row)?;
    let coupon = finish(row)?;
    conn.prepare_cached(
        "INSERT INTO coupon_redemptions (code, type, user_id, redeemed_at_ms, order_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        coupon.code,
        coupon.coupon_type.map(CouponType::as_str),
        user.as_str(),
        now.as_millis(),
        order
    ])?;
    conn.prepare_cached("UPDATE coupon_counters SET redeemed = redeemed + 1 WHERE type = ?1")?
        .execute(params![type_key(coupon.coupon_type)])?;
    let event =
        crate::event::coupon_redeemed_event(&coupon, coupon.uses, user.as_str(), order, now);
    super::event::append(conn, event)?;
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
        .prepare_cached(
            "UPDATE coupon_redemptions SET reversed_at_ms = ?2
             WHERE order_id = ?1 AND reversed_at_ms IS NULL RETURNING code, type",
        )?
        .query_map(params![order, now.as_millis()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (code, t) in reversed {
        conn.prepare_cached("UPDATE coupons SET uses = uses - 1 WHERE code = ?1 AND uses > 0")?
            .execute(params![code])?;
        conn.prepare_cached(
            "UPDATE coupon_counters SET redeemed = redeemed - 1 WHERE type = ?1 AND redeemed > 0",
        )?
        .execute(params![type_key(parse_type(t.clone())?)])?;
        let payload = json!({"code": code, "type": t, "order_id": order});
        super::event::append(
            conn,
            NewEvent::api(
                EventType::CouponRedemptionReversed,
                now,
                payload.to_string(),
            ),
        )?;
    }
    Ok(())
}

/// Deletes every unused coupon past its expiry; returns how many of each type.
pub(super) fn purge(
    conn: &Connection,
    now: UnixMillis,
    trigger: &str,
) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
    let mut per_type = [0i64; 4];
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
    let mut count =
        conn.prepare_cached("UPDATE coupon_counters SET purged = purged + ?2 WHERE type = ?1")?;
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            count.execute(params![TYPES[i], n])?;
        }
    }
    conn.prepare_cached(
        "INSERT INTO coupon_purges (purged_at_ms, trigger, count) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![now.as_millis(), trigger, total])?;
    if total > 0 {
        let actor = if trigger == "job" {
            allot_domain::event::ACTOR_COUPON_PURGE
        } else {
            allot_domain::event::ACTOR_API
        };
        let payload =
            json!({"count": total, "per_type": per_type_json(&per_type), "trigger": trigger});
        super::event::append(
            conn,
            NewEvent::by(actor, EventType::CouponsPurged, now, payload.to_string()),
        )?;
    }
    Ok(per_type
        .iter()
        .enumerate()
        .map(|(i, n)| (parse_type(Some(TYPES[i].to_owned())).ok().flatten(), *n))
        .collect())
}

pub(super) fn counters(
    conn: &Connection,
    now: UnixMillis,
) -> Result<Vec<CouponCounters>, StorageError> {
    let mut expired = [0i64; 4];
    {
        let mut stmt = conn.prepare_cached(
            "SELECT coalesce(type, 'NONE'), count(*) FROM coupons WHERE expires_at_ms <= ?1 GROUP BY 1",
        )?;
        let mut rows = stmt.query(params![now.as_millis()])?;
        while let Some(row) = rows.next()? {
            let t: String = row.get(0)?;
            if let Some(i) = TYPES.iter().position(|k| *k == t) {
                expired[i] = row.get(1)?;
            }
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT type, created, allocated, redeemed, purged FROM coupon_counters")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::with_capacity(4);
    while let Some(row) = rows.next()? {
        let t: String = row.get(0)?;
        let i = TYPES.iter().position(|k| *k == t).unwrap_or(0);
        out.push(CouponCounters {
            coupon_type: if i == 0 { None } else { parse_type(Some(t))? },
            created: row.get(1)?,
            allocated: row.get(2)?,
            redeemed: row.get(3)?,
            expired: expired[i],
            purged: row.get(4)?,
        });
    }
    out.sort_by_key(|c| type_index(c.coupon_type));
    Ok(out)
}

pub(super) fn redemptions(
    conn: &Connection,
    f: &RedemptionFilter,
) -> Result<Vec<Redemption>, StorageError> {
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
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, code, t, user_id, at) = row?;
        out.push(Redemption {
            id,
            code,
            coupon_type: parse_type(t)?,
            user_id,
            redeemed_at: UnixMillis::from_millis(at),
        });
    }
    Ok(out)
}

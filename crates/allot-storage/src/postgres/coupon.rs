//! Coupon management on PostgreSQL, correct across instances:
//! - allocation takes a transaction-scoped advisory lock on (user, type), so two instances
//!   cannot both hand one user a coupon of a type (no hoarding), and picks the oldest free coupon
//!   with `FOR UPDATE SKIP LOCKED`, so concurrent allocations never block on or share one coupon;
//! - redemption locks the coupon's row, then applies the domain rule;
//! - counters change in the same transaction as what they count.

use allot_domain::UnixMillis;
use allot_domain::coupon::{CouponState, CouponType, UploadedCode, check_redeemable};
use allot_domain::event::{EventType, NewEvent};
use allot_domain::user::UserId;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Row};

use crate::{
    Allocation, Coupon, CouponCounters, ExistingCodes, NewCoupon, RedeemOutcome, StorageError,
};

pub(super) const COLUMNS: &str = "code, type, discount_kind, discount_amount, expires_at_ms, max_uses, \
                       uses, allocated_to, allocated_at_ms, created_at_ms, id";
pub(super) const TYPES: [&str; 4] = ["NONE", "FREE", "STANDARD", "MEGADEAL"];

pub(super) fn type_index(t: Option<CouponType>) -> usize {
    match t {
        None => 0,
        Some(CouponType::Free) => 1,
        Some(CouponType::Standard) => 2,
        Some(CouponType::Megadeal) => 3,
    }
}

fn parse_type(raw: Option<String>) -> Result<Option<CouponType>, StorageError> {
    raw.map(|t| CouponType::parse(&t).map_err(|e| StorageError::Corrupt(e.to_string())))
        .transpose()
}

pub(super) fn coupon(r: &Row) -> Result<(i64, Coupon), StorageError> {
    Ok((
        r.get(10),
        Coupon {
            code: r.get(0),
            coupon_type: parse_type(r.get(1))?,
            discount_kind: r.get(2),
            discount_amount: r.get(3),
            expires_at: UnixMillis::from_millis(r.get(4)),
            max_uses: r.get::<_, i32>(5) as u32,
            uses: r.get::<_, i32>(6) as u32,
            allocated_to: r.get(7),
            allocated_at: r.get::<_, Option<i64>>(8).map(UnixMillis::from_millis),
            created_at: UnixMillis::from_millis(r.get(9)),
        },
    ))
}

async fn existing(
    client: &impl GenericClient,
    codes: &[String],
) -> Result<Vec<String>, StorageError> {
    Ok(client
        .query("SELECT code FROM coupons WHERE code = ANY($1)", &[&codes])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(super) async fn existing_codes(
    client: &Client,
    codes: Vec<UploadedCode>,
) -> Result<Vec<UploadedCode>, StorageError> {
    let raw: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
    let found = existing(client, &raw).await?;
    Ok(codes
        .into_iter()
        .filter(|c| found.iter().any(|f| f == c.as_str()))
        .collect())
}

pub(super) async fn upload(
    client: &mut Client,
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
            "INSERT INTO coupon_uploads (count, created_at_ms) VALUES ($1, $2) RETURNING id",
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
    let mut per_type = [0i64; 4];
    for c in coupons {
        per_type[type_index(c.coupon_type)] += 1;
    }
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            tx.execute(
                "UPDATE coupon_counters SET created = created + $2 WHERE type = $1",
                &[&TYPES[i], n],
            )
            .await?;
        }
    }
    // One summary event for the upload, never one per coupon.
    let payload = serde_json::json!({
        "upload_id": upload_id,
        "count": coupons.len(),
        "per_type": crate::event::counts_by_type(&TYPES, &per_type),
    });
    let event = NewEvent::api(EventType::CouponsUploaded, now, payload.to_string());
    super::event::append(&tx, event).await?;
    tx.commit().await?;
    Ok(Ok(coupons.len()))
}

pub(super) async fn allocate(
    client: &mut Client,
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
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM coupons
                 WHERE allocated_to = $1 AND type IS NOT DISTINCT FROM $2 AND uses = 0 AND expires_at_ms > $3
                 ORDER BY id LIMIT 1"
            ),
            &[&user.as_str(), &t, &now.as_millis()],
        )
        .await?;
    if let Some(row) = held {
        return Ok(Allocation::Held(coupon(&row)?.1));
    }
    let pick = match t {
        Some(_) => "SELECT id FROM coupons
                    WHERE allocated_to IS NULL AND type = $1 AND expires_at_ms > $2 AND uses < max_uses
                    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        None => "SELECT id FROM coupons
                 WHERE allocated_to IS NULL AND type IS NULL AND expires_at_ms > $2 AND uses < max_uses
                   AND $1::text IS NULL
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    };
    let Some(free) = tx.query_opt(pick, &[&t, &now.as_millis()]).await? else {
        return Ok(Allocation::NoneAvailable);
    };
    let id: i64 = free.get(0);
    let row = tx
        .query_one(
            &format!("UPDATE coupons SET allocated_to = $2, allocated_at_ms = $3 WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id, &user.as_str(), &now.as_millis()],
        )
        .await?;
    let (_, coupon) = coupon(&row)?;
    tx.execute(
        "INSERT INTO coupon_allocations (code, type, user_id, allocated_at_ms) VALUES ($1, $2, $3, $4)",
        &[&coupon.code, &t, &user.as_str(), &now.as_millis()],
    )
    .await?;
    tx.execute(
        "UPDATE coupon_counters SET allocated = allocated + 1 WHERE type = $1",
        &[&TYPES[type_index(coupon_type)]],
    )
    .await?;
    let payload = serde_json::json!({"code": coupon.code, "type": t, "user_id": user.as_str()});
    let event = NewEvent::api(EventType::CouponAllocated, now, payload.to_string());
    super::event::append(&tx, event).await?;
    tx.commit().await?;
    Ok(Allocation::New(coupon))
}

pub(super) async fn get(client: &Client, code: &str) -> Result<Option<Coupon>, StorageError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM coupons WHERE code = $1"),
            &[&code],
        )
        .await?
        .map(|r| coupon(&r).map(|(_, c)| c))
        .transpose()
}

pub(super) async fn redeem(
    client: &mut Client,
    code: &str,
    user: &UserId,
    now: UnixMillis,
) -> Result<RedeemOutcome, StorageError> {
    let tx = client.transaction().await?;
    let outcome = redeem_locked(&tx, code, user, now).await?;
    if matches!(outcome, RedeemOutcome::Redeemed(_)) {
        tx.commit().await?;
    }
    Ok(outcome)
}

/// Redeems once if the rules allow, in `tx`, the coupon's row locked first. A use over the
/// API belongs to no order (orders redeem in their own batch, `order_batch`).
async fn redeem_locked(
    tx: &impl GenericClient,
    code: &str,
    user: &UserId,
    now: UnixMillis,
) -> Result<RedeemOutcome, StorageError> {
    let order: Option<i64> = None;
    let Some(row) = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM coupons WHERE code = $1 FOR UPDATE"),
            &[&code],
        )
        .await?
    else {
        return Ok(RedeemOutcome::NotFound);
    };
    let (id, current) = coupon(&row)?;
    let state = CouponState {
        expires_at: current.expires_at,
        uses: current.uses,
        max_uses: current.max_uses,
        allocated_to: current.allocated_to.as_deref(),
    };
    if let Err(refusal) = check_redeemable(&state, user.as_str(), now) {
        return Ok(RedeemOutcome::Refused(refusal));
    }
    let row = tx
        .query_one(
            &format!("UPDATE coupons SET uses = uses + 1 WHERE id = $1 AND uses < max_uses RETURNING {COLUMNS}"),
            &[&id],
        )
        .await?;
    let (_, coupon) = coupon(&row)?;
    let t = coupon.coupon_type.map(CouponType::as_str);
    tx.execute(
        "INSERT INTO coupon_redemptions (code, type, user_id, redeemed_at_ms, order_id)
         VALUES ($1, $2, $3, $4, $5)",
        &[&coupon.code, &t, &user.as_str(), &now.as_millis(), &order],
    )
    .await?;
    tx.execute(
        "UPDATE coupon_counters SET redeemed = redeemed + 1 WHERE type = $1",
        &[&TYPES[type_index(coupon.coupon_type)]],
    )
    .await?;
    let payload = serde_json::json!({
        "code": coupon.code,
        "type": t,
        "user_id": user.as_str(),
        "order_id": order,
        "uses": coupon.uses,
    });
    let event = NewEvent::api(EventType::CouponRedeemed, now, payload.to_string());
    super::event::append(tx, event).await?;
    Ok(RedeemOutcome::Redeemed(coupon))
}

/// Gives back the coupon uses the order made: each redemption is marked reversed, its use
/// returned to the coupon and taken off the redeemed counter.
pub(super) async fn give_back(
    tx: &impl GenericClient,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let reversed = tx
        .query(
            "UPDATE coupon_redemptions SET reversed_at_ms = $2
             WHERE order_id = $1 AND reversed_at_ms IS NULL RETURNING code, type",
            &[&order, &now.as_millis()],
        )
        .await?;
    for r in &reversed {
        let code: String = r.try_get(0)?;
        let raw_type: Option<String> = r.try_get(1)?;
        let payload = serde_json::json!({"code": code, "type": raw_type, "order_id": order});
        let event = NewEvent::api(
            EventType::CouponRedemptionReversed,
            now,
            payload.to_string(),
        );
        super::event::append(tx, event).await?;
        let t = parse_type(raw_type)?;
        tx.execute(
            "UPDATE coupons SET uses = uses - 1 WHERE code = $1 AND uses > 0",
            &[&code],
        )
        .await?;
        tx.execute(
            "UPDATE coupon_counters SET redeemed = redeemed - 1 WHERE type = $1 AND redeemed > 0",
            &[&TYPES[type_index(t)]],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn purge(
    client: &mut Client,
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
    let mut per_type = [0i64; 4];
    for r in &rows {
        let t: String = r.get(0);
        if let Some(i) = TYPES.iter().position(|k| *k == t) {
            per_type[i] = r.get(1);
        }
    }
    for (i, n) in per_type.iter().enumerate() {
        if *n > 0 {
            tx.execute(
                "UPDATE coupon_counters SET purged = purged + $2 WHERE type = $1",
                &[&TYPES[i], n],
            )
            .await?;
        }
    }
    let total: i64 = per_type.iter().sum();
    tx.execute(
        "INSERT INTO coupon_purges (purged_at_ms, trigger, count) VALUES ($1, $2, $3)",
        &[&now.as_millis(), &trigger, &total],
    )
    .await?;
    if total > 0 {
        let actor = if trigger == "job" {
            allot_domain::event::ACTOR_COUPON_PURGE
        } else {
            allot_domain::event::ACTOR_API
        };
        let payload = serde_json::json!({
            "count": total,
            "per_type": crate::event::counts_by_type(&TYPES, &per_type),
            "trigger": trigger,
        });
        let event = NewEvent::by(actor, EventType::CouponsPurged, now, payload.to_string());
        super::event::append(&tx, event).await?;
    }
    tx.commit().await?;
    Ok(per_type
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                if i == 0 {
                    None
                } else {
                    parse_type(Some(TYPES[i].to_owned())).ok().flatten()
                },
                *n,
            )
        })
        .collect())
}

pub(super) async fn counters(
    client: &Client,
    now: UnixMillis,
) -> Result<Vec<CouponCounters>, StorageError> {
    let expired_rows = client
        .query(
            "SELECT coalesce(type, 'NONE'), count(*) FROM coupons WHERE expires_at_ms <= $1 GROUP BY 1",
            &[&now.as_millis()],
        )
        .await?;
    let mut expired = [0i64; 4];
    for r in &expired_rows {
        let t: String = r.get(0);
        if let Some(i) = TYPES.iter().position(|k| *k == t) {
            expired[i] = r.get(1);
        }
    }
    let mut out = Vec::with_capacity(4);
    for r in client
        .query(
            "SELECT type, created, allocated, redeemed, purged FROM coupon_counters",
            &[],
        )
        .await?
    {
        let t: String = r.get(0);
        let i = TYPES.iter().position(|k| *k == t).unwrap_or(0);
        out.push(CouponCounters {
            coupon_type: if i == 0 { None } else { parse_type(Some(t))? },
            created: r.get(1),
            allocated: r.get(2),
            redeemed: r.get(3),
            expired: expired[i],
            purged: r.get(4),
        });
    }
    out.sort_by_key(|c| type_index(c.coupon_type));
    Ok(out)
}

//! Campaign operations. `issue` runs inside the writer's batch transaction, in a savepoint, so
//! a failure at any step undoes the whole issue.

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignId, CampaignWindow, CouponCode};
use allot_domain::event::{EventType, NewEvent};
use allot_domain::user::UserId;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use serde_json::json;

use super::event::append;

use super::writer::WriterState;
use crate::{Campaign, IssueOutcome, IssueRequest, IssuedCoupon, NewCampaign, StorageError};

/// Draws allowed per issue before giving up. With 11,182^8 codes a single collision is already
/// astronomically rare; the bound only keeps a broken generator from looping forever.
const DRAWS_MAX: usize = 16;

pub(super) fn create(
    conn: &Connection,
    new: &NewCampaign,
    now: UnixMillis,
) -> Result<Campaign, StorageError> {
    conn.prepare_cached(
        "INSERT INTO campaigns (name, starts_at_ms, ends_at_ms, total, per_user_limit, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        new.name.as_str(),
        new.window.starts_at.as_millis(),
        new.window.ends_at.map(UnixMillis::as_millis),
        new.total.get(),
        new.per_user_limit.map(|l| l.get()),
        now.as_millis(),
    ])?;
    let id = CampaignId::parse(conn.last_insert_rowid())
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let payload = json!({
        "campaign_id": id.get(),
        "name": new.name.as_str(),
        "total": new.total.get(),
        "per_user_limit": new.per_user_limit.map(|l| l.get()),
        "starts_at_ms": new.window.starts_at.as_millis(),
        "ends_at_ms": new.window.ends_at.map(UnixMillis::as_millis),
    });
    append(
        conn,
        NewEvent::api(EventType::CampaignCreated, now, payload.to_string()),
    )?;
    Ok(Campaign {
        id,
        name: new.name.as_str().to_owned(),
        window: new.window.clone(),
        total: new.total.get(),
        per_user_limit: new.per_user_limit.map(|l| l.get()),
        issued: 0,
        created_at: now,
    })
}

pub(super) fn get(conn: &Connection, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
    conn.prepare_cached(
        "SELECT id, name, starts_at_ms, ends_at_ms, total, per_user_limit, issued, created_at_ms
         FROM campaigns WHERE id = ?1",
    )?
    .query_row(params![id.get()], campaign_row)
    .optional()?
    .transpose()
}

fn campaign_row(r: &Row<'_>) -> rusqlite::Result<Result<Campaign, StorageError>> {
    let id: i64 = r.get(0)?;
    let starts: i64 = r.get(2)?;
    let ends: Option<i64> = r.get(3)?;
    let limit: Option<i64> = r.get(5)?;
    let name: String = r.get(1)?;
    let total: i64 = r.get(4)?;
    let issued: i64 = r.get(6)?;
    let created: i64 = r.get(7)?;
    Ok((|| {
        let corrupt = |e: allot_domain::DomainError| StorageError::Corrupt(e.to_string());
        Ok(Campaign {
            id: CampaignId::parse(id).map_err(corrupt)?,
            name,
            window: CampaignWindow::new(
                UnixMillis::from_millis(starts),
                ends.map(UnixMillis::from_millis),
            )
            .map_err(corrupt)?,
            total,
            per_user_limit: limit.map(|l| l as u32),
            issued,
            created_at: UnixMillis::from_millis(created),
        })
    })())
}

pub(super) fn issue(
    conn: &Connection,
    state: &mut WriterState,
    req: &IssueRequest,
) -> Result<IssueOutcome, StorageError> {
    let campaign = req.campaign_id.get();
    if let Some(key) = &req.idempotency_key {
        let seen = conn
            .prepare_cached(
                "SELECT code, seq FROM campaign_coupons
                 WHERE campaign_id = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![campaign, key.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        if let Some((code, seq)) = seen {
            return Ok(IssueOutcome::Replayed {
                code: parse_code(&code)?,
                seq,
            });
        }
    }

    // Claim the next sequence number. The condition (and the table's CHECK behind it) is what
    // makes "exactly total" hold.
    let claimed = conn
        .prepare_cached(
            "UPDATE campaigns SET issued = issued + 1
             WHERE id = ?1 AND issued < total
             RETURNING issued, per_user_limit",
        )?
        .query_row(params![campaign], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })
        .optional()?;
    let Some((seq, per_user_limit)) = claimed else {
        let exists = conn
            .prepare_cached("SELECT 1 FROM campaigns WHERE id = ?1")?
            .exists(params![campaign])?;
        return Ok(if exists {
            IssueOutcome::Exhausted
        } else {
            IssueOutcome::CampaignNotFound
        });
    };

    if let (Some(user), Some(limit)) = (&req.user_id, per_user_limit) {
        let held: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM campaign_coupons WHERE campaign_id = ?1 AND user_id = ?2",
            )?
            .query_row(params![campaign, user.as_str()], |r| r.get(0))?;
        if held >= limit {
            conn.prepare_cached("UPDATE campaigns SET issued = issued - 1 WHERE id = ?1")?
                .execute(params![campaign])?;
            return Ok(IssueOutcome::UserLimitReached);
        }
    }

    let sequence = match state.campaign_code_sequence {
        Some(n) => n,
        None => resume_sequence(conn)?,
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO campaign_coupons (code, campaign_id, seq, user_id, idempotency_key, issued_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut rng = rand::rng();
    for _ in 0..DRAWS_MAX {
        let code = CouponCode::generate(&mut rng, sequence);
        let inserted = insert.execute(params![
            code.as_str(),
            campaign,
            seq,
            req.user_id.as_ref().map(|u| u.as_str()),
            req.idempotency_key.as_ref().map(|k| k.as_str()),
            req.now.as_millis(),
        ]);
        match inserted {
            Ok(_) => {
                let payload = json!({
                    "campaign_id": campaign,
                    "code": code.as_str(),
                    "seq": seq,
                    "user_id": req.user_id.as_ref().map(|u| u.as_str()),
                });
                append(
                    conn,
                    NewEvent::api(EventType::CouponIssued, req.now, payload.to_string()),
                )?;
                // Only now, with the row in: a failed issue must not move the sequence.
                state.campaign_code_sequence = Some(sequence + 1);
                return Ok(IssueOutcome::Issued { code, seq });
            }
            // The code exists (in any campaign): draw another.
            Err(rusqlite::Error::SqliteFailure(e, Some(message)))
                if e.code == ErrorCode::ConstraintViolation
                    && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    && message.contains("campaign_coupons.code") =>
            {
                tracing::info!(campaign, "campaign code collision redrawn");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Corrupt(format!(
        "{DRAWS_MAX} draws in a row collided: the code generator is broken"
    )))
}

/// Where the code sequence goes on after a restart: just past the run of the greatest stored
/// code (one index probe).
fn resume_sequence(conn: &Connection) -> Result<u64, StorageError> {
    let greatest: Option<String> = conn
        .prepare_cached("SELECT max(code) FROM campaign_coupons")?
        .query_row([], |r| r.get(0))?;
    Ok(greatest
        .as_deref()
        .and_then(CouponCode::sequence_after)
        .unwrap_or(0))
}

pub(super) fn coupons(
    conn: &Connection,
    id: CampaignId,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<IssuedCoupon>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT code, seq, user_id, issued_at_ms FROM campaign_coupons
         WHERE campaign_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![id.get(), after_seq, limit], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (code, seq, user_id, at) = row?;
        out.push(IssuedCoupon {
            code: parse_code(&code)?,
            seq,
            user_id,
            issued_at: UnixMillis::from_millis(at),
        });
    }
    Ok(out)
}

pub(super) fn codes(
    conn: &Connection,
    id: CampaignId,
    holder: Option<&UserId>,
    limit: u32,
) -> Result<Vec<CouponCode>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT code FROM campaign_coupons
         WHERE campaign_id = ?1 AND (?2 IS NULL OR user_id = ?2) ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![id.get(), holder.map(UserId::as_str), limit], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for code in rows {
        out.push(parse_code(&code?)?);
    }
    Ok(out)
}

fn parse_code(raw: &str) -> Result<CouponCode, StorageError> {
    CouponCode::parse(raw).map_err(|e| StorageError::Corrupt(format!("stored code {raw:?}: {e}")))
}

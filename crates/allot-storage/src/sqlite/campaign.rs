//! Campaigns on SQLite. `issue` runs inside the writer's batch transaction, in a savepoint,
//! so a failure at any step undoes the whole issue.

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignId, CouponCode};
use allot_domain::user::UserId;
use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::SqliteStore;
use super::event::append;
use super::writer::WriterState;
use crate::StorageError;
use crate::campaign::{
    Campaign, CampaignStore, Count, DRAWS_MAX, IssueOutcome, IssueRequest, IssuedCoupon,
    NewCampaign, campaign_of, created, created_event, decide_issue, first_page, issued_coupon_of,
    issued_event, parse_code, sql,
};

fn create(conn: &Connection, new: &NewCampaign, now: UnixMillis) -> Result<Campaign, StorageError> {
    let id: i64 = conn.prepare_cached(sql::CREATE)?.query_row(
        params![
            new.name.as_str(),
            new.window.starts_at.as_millis(),
            new.window.ends_at.map(UnixMillis::as_millis),
            new.total.get(),
            new.per_user_limit.map(|l| l.get()),
            now.as_millis(),
        ],
        |r| r.get(0),
    )?;
    let campaign = created(id, new, now)?;
    append(conn, created_event(&campaign))?;
    Ok(campaign)
}

fn get(conn: &Connection, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
    conn.prepare_cached(sql::BY_ID)?
        .query_row(params![id.get()], |r| Ok(campaign_of(r)))
        .optional()?
        .transpose()
}

fn list(
    conn: &Connection,
    statement: &str,
    first: Option<i64>,
    limit: u32,
) -> Result<Vec<Campaign>, StorageError> {
    let mut stmt = conn.prepare_cached(statement)?;
    let rows = stmt.query_map(params![first, limit], |r| Ok(campaign_of(r)))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn issue(
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

    // Claim the next sequence number first, in one statement: its condition (and the table's
    // CHECK behind it) makes "exactly total" hold, and no read is spent on the common case.
    // The count it returns is then decided like any other; a refusal gives the claim back.
    let claimed = conn
        .prepare_cached(
            "UPDATE campaigns SET issued = issued + 1
             WHERE id = ?1 AND issued < total
             RETURNING issued, total, per_user_limit",
        )?
        .query_row(params![campaign], |r| {
            Ok(Count {
                issued: r.get::<_, i64>(0)? - 1,
                total: r.get(1)?,
                per_user_limit: r.get(2)?,
            })
        })
        .optional()?;
    let Some(count) = claimed else {
        let exists = conn
            .prepare_cached("SELECT 1 FROM campaigns WHERE id = ?1")?
            .exists(params![campaign])?;
        return Ok(if exists {
            IssueOutcome::Exhausted
        } else {
            IssueOutcome::CampaignNotFound
        });
    };
    let held = match (&req.user_id, count.per_user_limit) {
        (Some(user), Some(_)) => Some(
            conn.prepare_cached(
                "SELECT count(*) FROM campaign_coupons WHERE campaign_id = ?1 AND user_id = ?2",
            )?
            .query_row(params![campaign, user.as_str()], |r| r.get::<_, i64>(0))?,
        ),
        _ => None,
    };
    let seq = match decide_issue(count, held) {
        Ok(seq) => seq,
        Err(refusal) => {
            conn.prepare_cached("UPDATE campaigns SET issued = issued - 1 WHERE id = ?1")?
                .execute(params![campaign])?;
            return Ok(refusal);
        }
    };

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
                append(
                    conn,
                    issued_event(campaign, &code, seq, req.user_id.as_ref(), req.now),
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

fn coupons(
    conn: &Connection,
    id: CampaignId,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<IssuedCoupon>, StorageError> {
    let mut stmt = conn.prepare_cached(sql::COUPONS)?;
    let rows = stmt.query_map(params![id.get(), after_seq, limit], |r| {
        Ok(issued_coupon_of(r))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn codes(
    conn: &Connection,
    id: CampaignId,
    holder: Option<&UserId>,
    limit: u32,
) -> Result<Vec<CouponCode>, StorageError> {
    let mut stmt = conn.prepare_cached(sql::CODES)?;
    let rows = stmt.query_map(params![id.get(), holder.map(UserId::as_str), limit], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for code in rows {
        out.push(parse_code(&code?)?);
    }
    Ok(out)
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError> {
        self.write(1, move |conn, _| create(conn, &new, now)).await
    }

    async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
        self.read(move |conn| get(conn, id)).await
    }

    async fn campaigns(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Campaign>, StorageError> {
        self.read(move |conn| list(conn, sql::LIST, Some(first_page(before_id)), limit))
            .await
    }

    async fn running_campaigns(
        &self,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Campaign>, StorageError> {
        self.read(move |conn| list(conn, sql::RUNNING, Some(now.as_millis()), limit))
            .await
    }

    async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError> {
        self.write(1, move |conn, state| issue(conn, state, &request))
            .await
    }

    async fn campaign_coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, StorageError> {
        self.read(move |conn| coupons(conn, id, after_seq, limit))
            .await
    }

    async fn campaign_codes(
        &self,
        id: CampaignId,
        holder: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<CouponCode>, StorageError> {
        self.read(move |conn| codes(conn, id, holder.as_ref(), limit))
            .await
    }
}

//! Campaign issuance on PostgreSQL, correct across instances: each issue is one transaction
//! whose conditional UPDATE takes the campaign row's lock, so issues of one campaign serialise
//! in the database (the per-user count and the sequence number are exact) and `issued` can never
//! pass `total` (the UPDATE's condition and the table's CHECK). This is the simple form; batching
//! many claims per statement, for throughput, comes with the rest of issue 6.

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignId, CampaignWindow, CouponCode};
use tokio_postgres::Client;

use crate::{Campaign, IssueOutcome, IssueRequest, NewCampaign, StorageError};

const DRAWS_MAX: usize = 16;

pub(super) async fn create(
    client: &Client,
    new: &NewCampaign,
    now: UnixMillis,
) -> Result<Campaign, StorageError> {
    let limit = new.per_user_limit.map(|l| l.get() as i32);
    let id: i64 = client
        .query_one(
            "INSERT INTO campaigns (name, starts_at_ms, ends_at_ms, total, per_user_limit, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &new.name.as_str(),
                &new.window.starts_at.as_millis(),
                &new.window.ends_at.map(UnixMillis::as_millis),
                &new.total.get(),
                &limit,
                &now.as_millis(),
            ],
        )
        .await?
        .get(0);
    Ok(Campaign {
        id: CampaignId::parse(id).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        name: new.name.as_str().to_owned(),
        window: new.window.clone(),
        total: new.total.get(),
        per_user_limit: new.per_user_limit.map(|l| l.get()),
        issued: 0,
        created_at: now,
    })
}

pub(super) async fn get(client: &Client, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
    let row = client
        .query_opt(
            "SELECT name, starts_at_ms, ends_at_ms, total, per_user_limit, issued, created_at_ms
             FROM campaigns WHERE id = $1",
            &[&id.get()],
        )
        .await?;
    row.map(|r| {
        Ok(Campaign {
            id,
            name: r.get(0),
            window: CampaignWindow::new(
                UnixMillis::from_millis(r.get(1)),
                r.get::<_, Option<i64>>(2).map(UnixMillis::from_millis),
            )
            .map_err(|e| StorageError::Corrupt(e.to_string()))?,
            total: r.get(3),
            per_user_limit: r.get::<_, Option<i32>>(4).map(|l| l as u32),
            issued: r.get(5),
            created_at: UnixMillis::from_millis(r.get(6)),
        })
    })
    .transpose()
}

pub(super) async fn issue(
    client: &mut Client,
    req: &IssueRequest,
) -> Result<IssueOutcome, StorageError> {
    let campaign = req.campaign_id.get();
    let tx = client.transaction().await?;
    let claimed = tx
        .query_opt(
            "UPDATE campaigns SET issued = issued + 1 WHERE id = $1 AND issued < total
             RETURNING issued, per_user_limit",
            &[&campaign],
        )
        .await?;
    // With the row lock held, an idempotency key seen before is found for sure.
    if let Some(key) = &req.idempotency_key {
        let seen = tx
            .query_opt(
                "SELECT code, seq FROM campaign_coupons WHERE campaign_id = $1 AND idempotency_key = $2",
                &[&campaign, &key.as_str()],
            )
            .await?;
        if let Some(row) = seen {
            tx.rollback().await?;
            return Ok(IssueOutcome::Replayed {
                code: parse_code(row.get(0))?,
                seq: row.get(1),
            });
        }
    }
    let Some(row) = claimed else {
        let exists = tx
            .query_opt("SELECT 1 FROM campaigns WHERE id = $1", &[&campaign])
            .await?;
        tx.rollback().await?;
        return Ok(if exists.is_some() {
            IssueOutcome::Exhausted
        } else {
            IssueOutcome::CampaignNotFound
        });
    };
    let seq: i64 = row.get(0);
    let limit: Option<i32> = row.get(1);
    if let (Some(user), Some(limit)) = (&req.user_id, limit) {
        let held: i64 = tx
            .query_one(
                "SELECT count(*) FROM campaign_coupons WHERE campaign_id = $1 AND user_id = $2",
                &[&campaign, &user.as_str()],
            )
            .await?
            .get(0);
        if held >= i64::from(limit) {
            tx.rollback().await?;
            return Ok(IssueOutcome::UserLimitReached);
        }
    }
    for _ in 0..DRAWS_MAX {
        let code = {
            let mut rng = rand::rng();
            // The sequence only orders codes near each other; seq serves well across instances.
            CouponCode::generate(&mut rng, seq as u64)
        };
        let inserted = tx
            .query_opt(
                "INSERT INTO campaign_coupons (code, campaign_id, seq, user_id, idempotency_key, issued_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (code) DO NOTHING RETURNING 1",
                &[
                    &code.as_str(),
                    &campaign,
                    &seq,
                    &req.user_id.as_ref().map(|u| u.as_str()),
                    &req.idempotency_key.as_ref().map(|k| k.as_str()),
                    &req.now.as_millis(),
                ],
            )
            .await;
        match inserted {
            Ok(Some(_)) => {
                tx.commit().await?;
                return Ok(IssueOutcome::Issued { code, seq });
            }
            Ok(None) => tracing::info!(campaign, "campaign code collision redrawn"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Corrupt(format!(
        "{DRAWS_MAX} draws in a row collided"
    )))
}

pub(super) async fn codes(
    client: &Client,
    id: CampaignId,
) -> Result<Vec<CouponCode>, StorageError> {
    let rows = client
        .query(
            "SELECT code FROM campaign_coupons WHERE campaign_id = $1 ORDER BY seq",
            &[&id.get()],
        )
        .await?;
    rows.iter().map(|r| parse_code(r.get(0))).collect()
}

fn parse_code(raw: &str) -> Result<CouponCode, StorageError> {
    CouponCode::parse(raw).map_err(|e| StorageError::Corrupt(format!("stored code {raw:?}: {e}")))
}

//! Campaign issuance on PostgreSQL, correct across instances and fast on one hot campaign.
//!
//! The classic design, one transaction per issue (`UPDATE ... SET issued = issued + 1 WHERE
//! issued < total` then an `INSERT`), serialises every request on the campaign row's lock and
//! pays a commit each: about a thousand issues a second. Here each instance gathers the issue
//! requests that arrive while its previous transaction commits and serves them together: one
//! transaction per campaign per batch locks the row (`FOR UPDATE`), reads the idempotency keys
//! and per-user counts the batch needs, decides every request in arrival order, moves `issued`
//! once and inserts all the codes in one statement. Nothing is answered before the commit, so
//! an acknowledged code is durable; the row lock still orders batches of all instances, so the
//! count, the sequence numbers, the per-user limit and the keys stay exact, and the table's
//! `CHECK (issued <= total)` stands behind it all.

use super::conn::{Conn, Db};
use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignId, CouponCode};
use allot_domain::event::{NewEvent, Origin};
use allot_domain::user::UserId;
use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::PgStore;
use super::batch::Batch;
use crate::StorageError;
use crate::campaign::{
    Campaign, CampaignStore, Count, DRAWS_MAX, IssueOutcome, IssueRequest, IssuedCoupon,
    NewCampaign, campaign_of, created, created_event, decide_issue, first_page, issued_coupon_of,
    issued_event, parse_code, sql,
};

async fn create(
    client: &mut Conn,
    new: &NewCampaign,
    now: UnixMillis,
) -> Result<Campaign, StorageError> {
    let limit = new.per_user_limit.map(|l| l.get() as i32);
    let tx = client.transaction().await?;
    let id: i64 = tx
        .query_one(
            sql::CREATE,
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
    let campaign = created(id, new, now)?;
    super::event::append(&tx, created_event(&campaign)).await?;
    super::commit(tx).await?;
    Ok(campaign)
}

async fn get(client: &Conn, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
    client
        .query_opt(sql::BY_ID, &[&id.get()])
        .await?
        .map(|r| campaign_of(&r))
        .transpose()
}

/// Requests served in one transaction at most.
const BATCH_MAX: usize = 2_048;

/// Campaign issues, served in batches (see [`super::batch`]).
pub(super) struct Issues;

#[async_trait]
impl Batch for Issues {
    type Request = IssueRequest;
    type Output = IssueOutcome;
    const MAX: usize = BATCH_MAX;

    async fn serve(
        client: &mut Conn,
        requests: &[IssueRequest],
        origins: &[Option<Origin>],
    ) -> Vec<Result<IssueOutcome, StorageError>> {
        let mut answers: Vec<Option<Result<IssueOutcome, StorageError>>> =
            (0..requests.len()).map(|_| None).collect();
        // One transaction per campaign, in id order (the same lock order in every instance),
        // each campaign's requests in arrival order.
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| (requests[i].campaign_id.get(), i));
        for group in order.chunk_by(|&a, &b| requests[a].campaign_id == requests[b].campaign_id) {
            let id = requests[group[0]].campaign_id;
            let batch: Vec<&IssueRequest> = group.iter().map(|&i| &requests[i]).collect();
            let batch_origins: Vec<Option<Origin>> = group.iter().map(|&i| origins[i]).collect();
            match issue_batch(client, id, &batch, &batch_origins).await {
                Ok(outcomes) => {
                    for (&i, outcome) in group.iter().zip(outcomes) {
                        answers[i] = Some(Ok(outcome));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, campaign = id.get(), "campaign issue batch failed");
                    for &i in group {
                        answers[i] = Some(Err(e.for_each_caller()));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(StorageError::Closed)))
            .collect()
    }
}

/// Serves the requests of one campaign, in order, in one transaction.
async fn issue_batch(
    client: &mut Conn,
    id: CampaignId,
    requests: &[&IssueRequest],
    origins: &[Option<Origin>],
) -> Result<Vec<IssueOutcome>, StorageError> {
    let campaign = id.get();
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT total, issued, per_user_limit FROM campaigns WHERE id = $1 FOR UPDATE",
            &[&campaign],
        )
        .await?
    else {
        return Ok(vec![IssueOutcome::CampaignNotFound; requests.len()]);
    };
    let mut count = Count {
        issued: row.try_get(1)?,
        total: row.try_get(0)?,
        per_user_limit: row.try_get::<_, Option<i32>>(2)?.map(|l| l as u32),
    };

    // With the row lock held, what earlier batches stored is all there is to know.
    let keys: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.idempotency_key.as_ref().map(|k| k.as_str()))
        .collect();
    let mut seen: HashMap<String, (String, i64)> = HashMap::new();
    if !keys.is_empty() {
        for r in tx
            .query(
                "SELECT idempotency_key, code, seq FROM campaign_coupons
                 WHERE campaign_id = $1 AND idempotency_key = ANY($2)",
                &[&campaign, &keys],
            )
            .await?
        {
            seen.insert(r.get(0), (r.get(1), r.get(2)));
        }
    }
    let mut held: HashMap<String, i64> = HashMap::new();
    if count.per_user_limit.is_some() {
        let users: Vec<&str> = requests
            .iter()
            .filter_map(|r| r.user_id.as_ref().map(|u| u.as_str()))
            .collect();
        if !users.is_empty() {
            for r in tx
                .query(
                    "SELECT user_id, count(*) FROM campaign_coupons
                     WHERE campaign_id = $1 AND user_id = ANY($2) GROUP BY user_id",
                    &[&campaign, &users],
                )
                .await?
            {
                held.insert(r.get(0), r.get(1));
            }
        }
    }

    let mut outcomes = Vec::with_capacity(requests.len());
    let mut rows = NewRows::default();
    // A generator that may cross the awaits below (the thread-local one may not).
    let mut rng = StdRng::from_rng(&mut rand::rng());
    for request in requests {
        let key = request.idempotency_key.as_ref().map(|k| k.as_str());
        if let Some((code, seq)) = key.and_then(|k| seen.get(k)) {
            outcomes.push(IssueOutcome::Replayed {
                code: parse_code(code)?,
                seq: *seq,
            });
            continue;
        }
        let user = request.user_id.as_ref().map(|u| u.as_str());
        let user_held = match (user, count.per_user_limit) {
            (Some(user), Some(_)) => Some(held.get(user).copied().unwrap_or(0)),
            _ => None,
        };
        let seq = match decide_issue(count, user_held) {
            Ok(seq) => seq,
            Err(refusal) => {
                outcomes.push(refusal);
                continue;
            }
        };
        if let (Some(user), Some(_)) = (user, user_held) {
            match held.get_mut(user) {
                Some(n) => *n += 1,
                None => {
                    held.insert(user.to_owned(), 1);
                }
            }
        }
        count.issued = seq;
        // The sequence only orders codes near each other; seq serves well across instances.
        let code = CouponCode::generate(&mut rng, seq as u64);
        if let Some(key) = key {
            seen.insert(key.to_owned(), (code.as_str().to_owned(), seq));
        }
        rows.push(code.as_str(), seq, user, key, request.now.as_millis());
        outcomes.push(IssueOutcome::Issued { code, seq });
    }
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(outcomes);
    }
    tx.execute(
        "UPDATE campaigns SET issued = $2 WHERE id = $1",
        &[&campaign, &count.issued],
    )
    .await?;
    // Codes are random: a rare one collides with a code of any campaign and is drawn again.
    let mut pending = rows;
    for _ in 0..DRAWS_MAX {
        let stored: HashSet<i64> = tx
            .query(
                "INSERT INTO campaign_coupons (code, campaign_id, seq, user_id, idempotency_key, issued_at_ms)
                 SELECT code, $1, seq, user_id, key, at
                 FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
                      AS t(code, seq, user_id, key, at)
                 ON CONFLICT (code) DO NOTHING RETURNING seq",
                &[
                    &campaign,
                    &pending.codes,
                    &pending.seqs,
                    &pending.users,
                    &pending.keys,
                    &pending.ats,
                ],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let collided = pending.without(&stored);
        if collided.is_empty() {
            // One CouponIssued per code, in seq order, in one statement for the batch; each
            // made by its own caller.
            let events: Vec<NewEvent> = requests
                .iter()
                .zip(&outcomes)
                .zip(origins)
                .filter_map(|((r, o), origin)| match o {
                    IssueOutcome::Issued { code, seq } => Some(
                        issued_event(campaign, code, *seq, r.user_id.as_ref(), r.now)
                            .made_by(*origin),
                    ),
                    _ => None,
                })
                .collect();
            super::event::append_events(&tx, &events).await?;
            super::commit(tx).await?;
            return Ok(outcomes);
        }
        tracing::info!(
            campaign,
            collisions = collided.len(),
            "campaign codes redrawn"
        );
        pending = NewRows::default();
        for (seq, user, key, at) in collided {
            let code = CouponCode::generate(&mut rng, seq as u64);
            for outcome in outcomes.iter_mut() {
                if let IssueOutcome::Issued { code: c, seq: s } = outcome
                    && *s == seq
                {
                    *c = code.clone();
                }
            }
            pending.push(code.as_str(), seq, user.as_deref(), key.as_deref(), at);
        }
    }
    Err(StorageError::Corrupt(format!(
        "{DRAWS_MAX} draws in a row collided"
    )))
}

/// Rows to insert, column by column (one array parameter each).
#[derive(Default)]
struct NewRows {
    codes: Vec<String>,
    seqs: Vec<i64>,
    users: Vec<Option<String>>,
    keys: Vec<Option<String>>,
    ats: Vec<i64>,
}

type Collided = (i64, Option<String>, Option<String>, i64);

impl NewRows {
    fn push(&mut self, code: &str, seq: i64, user: Option<&str>, key: Option<&str>, at: i64) {
        self.codes.push(code.to_owned());
        self.seqs.push(seq);
        self.users.push(user.map(str::to_owned));
        self.keys.push(key.map(str::to_owned));
        self.ats.push(at);
    }

    fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The rows whose seq is not in `stored`: their codes were taken.
    fn without(self, stored: &HashSet<i64>) -> Vec<Collided> {
        let mut rest = Vec::new();
        for (i, seq) in self.seqs.iter().enumerate() {
            if !stored.contains(seq) {
                rest.push((
                    *seq,
                    self.users[i].clone(),
                    self.keys[i].clone(),
                    self.ats[i],
                ));
            }
        }
        rest
    }
}

async fn coupons(
    client: &Conn,
    id: CampaignId,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<IssuedCoupon>, StorageError> {
    let rows = client
        .query(sql::COUPONS, &[&id.get(), &after_seq, &i64::from(limit)])
        .await?;
    rows.iter().map(issued_coupon_of).collect()
}

async fn codes(
    client: &Conn,
    id: CampaignId,
    holder: Option<&UserId>,
    limit: u32,
) -> Result<Vec<CouponCode>, StorageError> {
    let rows = client
        .query(
            sql::CODES,
            &[&id.get(), &holder.map(UserId::as_str), &i64::from(limit)],
        )
        .await?;
    rows.iter().map(|r| parse_code(r.get(0))).collect()
}

#[async_trait]
impl CampaignStore for PgStore {
    async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError> {
        let mut client = self.client().await?;
        create(&mut client, &new, now).await
    }

    async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
        let client = self.client().await?;
        get(&client, id).await
    }

    async fn campaigns(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Campaign>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(sql::LIST, &[&first_page(before_id), &i64::from(limit)])
            .await?;
        rows.iter().map(campaign_of).collect()
    }

    async fn running_campaigns(
        &self,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Campaign>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(sql::RUNNING, &[&now.as_millis(), &i64::from(limit)])
            .await?;
        rows.iter().map(campaign_of).collect()
    }

    async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError> {
        self.issuer.submit(request).await
    }

    async fn campaign_coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, StorageError> {
        let client = self.client().await?;
        coupons(&client, id, after_seq, limit).await
    }

    async fn campaign_codes(
        &self,
        id: CampaignId,
        holder: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<CouponCode>, StorageError> {
        let client = self.client().await?;
        codes(&client, id, holder.as_ref(), limit).await
    }
}

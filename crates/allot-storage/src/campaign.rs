//! Campaigns' part of the storage interface: the trait, its records, and the rule that decides
//! an issue (room left, the user's limit), which both backends call with the facts they read
//! (SQLite in its single writer, PostgreSQL under the campaign row's lock), keeping only I/O.

use allot_domain::UnixMillis;
use allot_domain::campaign::{
    CampaignId, CampaignName, CampaignWindow, CouponCode, PerUserLimit, TotalCoupons,
};
use allot_domain::event::{EventType, NewEvent};
use allot_domain::user::{IdempotencyKey, UserId};
use async_trait::async_trait;

use crate::StorageError;
use crate::row::Columns;

/// What it takes to create a campaign; every field already valid.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: CampaignName,
    pub window: CampaignWindow,
    pub total: TotalCoupons,
    pub per_user_limit: Option<PerUserLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub window: CampaignWindow,
    pub total: i64,
    pub per_user_limit: Option<u32>,
    pub issued: i64,
    pub created_at: UnixMillis,
}

/// One request for a campaign coupon.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub campaign_id: CampaignId,
    pub user_id: Option<UserId>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// A new code, the `seq`-th of its campaign.
    Issued {
        code: CouponCode,
        seq: i64,
    },
    /// The idempotency key was seen before: the code issued then.
    Replayed {
        code: CouponCode,
        seq: i64,
    },
    /// All `total` codes are issued.
    Exhausted,
    /// The user holds `per_user_limit` codes of this campaign already.
    UserLimitReached,
    CampaignNotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCoupon {
    pub code: CouponCode,
    pub seq: i64,
    pub user_id: Option<String>,
    pub issued_at: UnixMillis,
}

#[async_trait]
pub trait CampaignStore {
    /// Creates a campaign with nothing issued.
    async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError>;

    /// The campaign with its issued count as committed.
    async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError>;

    /// Campaigns newest first, those with `id < before_id` (all when `None`), at most `limit`:
    /// a keyset page on the primary key, whatever the number of campaigns.
    async fn campaigns(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Campaign>, StorageError>;

    /// Campaigns open at `now` (started, not ended) with codes left, newest first, at most
    /// `limit`.
    async fn running_campaigns(
        &self,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Campaign>, StorageError>;

    /// Issues the campaign's next code, unless all are issued or the user is at the campaign's
    /// limit; a known idempotency key returns the code it got before. Exactly `total` codes are
    /// ever issued per campaign, under any concurrency and across restarts. Does not look at
    /// the campaign's time window: the service decides that with its clock.
    async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError>;

    /// Issued codes in issue order, those with `seq > after_seq`, at most `limit`.
    async fn campaign_coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, StorageError>;

    /// The first `limit` codes of the campaign in issue order; only those issued to `holder`
    /// when given.
    async fn campaign_codes(
        &self,
        id: CampaignId,
        holder: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<CouponCode>, StorageError>;
}

/// The `before` bound of a first page (every id is below it).
pub(crate) fn first_page(before_id: Option<i64>) -> i64 {
    before_id.unwrap_or(i64::MAX)
}

/// Draws allowed per issue before giving up. With 11,182^8 codes a single collision is already
/// astronomically rare; the bound only keeps a broken generator from looping forever.
pub(crate) const DRAWS_MAX: usize = 16;

/// A campaign's count as the deciding backend sees it (exact: in the single writer, or under
/// the row lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    pub issued: i64,
    pub total: i64,
    pub per_user_limit: Option<u32>,
}

/// Decides one issue that is not a replay (a known key answers its first code before this):
/// the sequence number of the code to issue, or the refusal. `held` is how many codes of the
/// campaign the requesting user holds (none asked for an anonymous request or no limit).
pub(crate) fn decide_issue(count: Count, held: Option<i64>) -> Result<i64, IssueOutcome> {
    if count.issued >= count.total {
        return Err(IssueOutcome::Exhausted);
    }
    if let (Some(limit), Some(held)) = (count.per_user_limit, held)
        && held >= i64::from(limit)
    {
        return Err(IssueOutcome::UserLimitReached);
    }
    Ok(count.issued + 1)
}

/// The campaign just created, as stored.
pub(crate) fn created(
    id: i64,
    new: &NewCampaign,
    now: UnixMillis,
) -> Result<Campaign, StorageError> {
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

pub(crate) fn created_event(c: &Campaign) -> NewEvent {
    let payload = serde_json::json!({
        "campaign_id": c.id.get(),
        "name": c.name,
        "total": c.total,
        "per_user_limit": c.per_user_limit,
        "starts_at_ms": c.window.starts_at.as_millis(),
        "ends_at_ms": c.window.ends_at.map(UnixMillis::as_millis),
    });
    NewEvent::api(
        EventType::CampaignCreated,
        c.created_at,
        payload.to_string(),
    )
}

/// `CouponIssued`, one per code.
pub(crate) fn issued_event(
    campaign: i64,
    code: &CouponCode,
    seq: i64,
    user: Option<&UserId>,
    at: UnixMillis,
) -> NewEvent {
    let payload = serde_json::json!({
        "campaign_id": campaign,
        "code": code.as_str(),
        "seq": seq,
        "user_id": user.map(UserId::as_str),
    });
    NewEvent::api(EventType::CouponIssued, at, payload.to_string())
}

/// The statements both backends run as they are. Parameters are numbered in the order they
/// first appear, since that is how SQLite numbers `$N` (`sqlite::tests` holds each to it).
pub(crate) mod sql {
    pub(crate) const CREATE: &str = "INSERT INTO campaigns \
         (name, starts_at_ms, ends_at_ms, total, per_user_limit, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
    /// The columns [`super::campaign_of`] reads, in its order.
    pub(crate) const BY_ID: &str = "SELECT id, name, starts_at_ms, ends_at_ms, total, \
         per_user_limit, issued, created_at_ms FROM campaigns WHERE id = $1";
    /// Newest first, below `$1`, by the primary key: a range, whichever the page.
    pub(crate) const LIST: &str = "SELECT id, name, starts_at_ms, ends_at_ms, total, \
         per_user_limit, issued, created_at_ms FROM campaigns \
         WHERE id < $1 ORDER BY id DESC LIMIT $2";
    /// Open at `$1` with codes left, newest first. Walks the primary key backwards and
    /// filters: campaigns are created by hand (hundreds, not millions), and the running ones
    /// are among the newest, so the walk is short.
    pub(crate) const RUNNING: &str = "SELECT id, name, starts_at_ms, ends_at_ms, total, \
         per_user_limit, issued, created_at_ms FROM campaigns \
         WHERE starts_at_ms <= $1 AND (ends_at_ms IS NULL OR ends_at_ms > $1) \
         AND issued < total ORDER BY id DESC LIMIT $2";
    pub(crate) const COUPONS: &str = "SELECT code, seq, user_id, issued_at_ms \
         FROM campaign_coupons WHERE campaign_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    /// The codes in issue order, of one holder when `$2` is not null.
    pub(crate) const CODES: &str = "SELECT code FROM campaign_coupons \
         WHERE campaign_id = $1 AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) \
         ORDER BY seq LIMIT $3";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[CREATE, BY_ID, LIST, RUNNING, COUPONS, CODES];
}

/// A campaign from a row of [`sql::BY_ID`].
pub(crate) fn campaign_of(r: &impl Columns) -> Result<Campaign, StorageError> {
    let corrupt = |e: allot_domain::DomainError| StorageError::Corrupt(e.to_string());
    Ok(Campaign {
        id: CampaignId::parse(r.int(0)?).map_err(corrupt)?,
        name: r.text(1)?,
        window: CampaignWindow::new(
            UnixMillis::from_millis(r.int(2)?),
            r.opt_int(3)?.map(UnixMillis::from_millis),
        )
        .map_err(corrupt)?,
        total: r.int(4)?,
        per_user_limit: r
            .opt_int(5)?
            .map(|l| u32::try_from(l).map_err(|e| StorageError::Corrupt(e.to_string())))
            .transpose()?,
        issued: r.int(6)?,
        created_at: UnixMillis::from_millis(r.int(7)?),
    })
}

pub(crate) fn parse_code(raw: &str) -> Result<CouponCode, StorageError> {
    CouponCode::parse(raw).map_err(|e| StorageError::Corrupt(format!("stored code {raw:?}: {e}")))
}

/// An issued code from a row of [`sql::COUPONS`].
pub(crate) fn issued_coupon_of(r: &impl Columns) -> Result<IssuedCoupon, StorageError> {
    Ok(IssuedCoupon {
        code: parse_code(&r.text(0)?)?,
        seq: r.int(1)?,
        user_id: r.opt_text(2)?,
        issued_at: UnixMillis::from_millis(r.int(3)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(issued: i64, total: i64, per_user_limit: Option<u32>) -> Count {
        Count {
            issued,
            total,
            per_user_limit,
        }
    }

    #[test]
    fn issues_the_next_sequence_number_until_total() {
        assert_eq!(decide_issue(count(0, 2, None), None), Ok(1));
        assert_eq!(decide_issue(count(1, 2, None), None), Ok(2));
        assert_eq!(
            decide_issue(count(2, 2, None), None),
            Err(IssueOutcome::Exhausted)
        );
    }

    #[test]
    fn a_full_campaign_is_exhausted_before_any_limit_is_looked_at() {
        assert_eq!(
            decide_issue(count(5, 5, Some(1)), Some(1)),
            Err(IssueOutcome::Exhausted)
        );
    }

    #[test]
    fn the_per_user_limit_holds_for_known_users_only() {
        assert_eq!(
            decide_issue(count(3, 10, Some(2)), Some(2)),
            Err(IssueOutcome::UserLimitReached)
        );
        assert_eq!(decide_issue(count(3, 10, Some(2)), Some(1)), Ok(4));
        assert_eq!(decide_issue(count(3, 10, Some(2)), None), Ok(4));
    }
}

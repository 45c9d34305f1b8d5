//! What the storage hands back: plain records built from domain types.

use allot_domain::UnixMillis;
use allot_domain::discount::DiscountCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountCodeRecord {
    pub code: DiscountCode,
    pub created_at: UnixMillis,
    pub used_at: Option<UnixMillis>,
}

use allot_domain::campaign::{
    CampaignId, CampaignName, CampaignWindow, CouponCode, PerUserLimit, TotalCoupons,
};
use allot_domain::user::{IdempotencyKey, UserId};

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

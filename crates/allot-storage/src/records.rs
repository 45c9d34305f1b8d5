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

use allot_domain::coupon::{CouponType, Discount, MaxUses, RedeemRefusal, UploadedCode};

#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub code: UploadedCode,
    pub coupon_type: Option<CouponType>,
    pub discount: Discount,
    pub expires_at: UnixMillis,
    pub max_uses: MaxUses,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub code: String,
    pub coupon_type: Option<CouponType>,
    pub discount_kind: String,
    pub discount_amount: i64,
    pub expires_at: UnixMillis,
    pub max_uses: u32,
    pub uses: u32,
    pub allocated_to: Option<String>,
    pub allocated_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
}

/// Upload entries that clash with stored coupons: their index in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingCodes(pub Vec<usize>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// A coupon allocated to the user now.
    New(Coupon),
    /// The user already held an unredeemed coupon of that type: the same one again.
    Held(Coupon),
    NoneAvailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    Redeemed(Coupon),
    Refused(RedeemRefusal),
    NotFound,
}

#[derive(Debug, Clone, Default)]
pub struct RedemptionFilter {
    pub user_id: Option<String>,
    pub code: Option<String>,
    /// `Some(None)` asks for untyped coupons.
    pub coupon_type: Option<Option<CouponType>>,
    pub from: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
    /// Records with an id greater than this.
    pub after_id: i64,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub id: i64,
    pub code: String,
    pub coupon_type: Option<CouponType>,
    pub user_id: String,
    pub redeemed_at: UnixMillis,
}

/// Counters of one type (`None`: untyped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCounters {
    pub coupon_type: Option<CouponType>,
    pub created: i64,
    pub allocated: i64,
    pub redeemed: i64,
    /// Stored coupons past their expiry now.
    pub expired: i64,
    pub purged: i64,
}

use allot_domain::sale::{CheckoutCode, ItemId, SaleHour};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: i64,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub items_total: i64,
    pub sold: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleItem {
    pub id: i64,
    pub sale_id: i64,
    pub name: String,
    pub image_url: String,
    pub sold_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub sale: Sale,
    pub item: ItemId,
    pub user: UserId,
    pub user_limit: u32,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Code { code: CheckoutCode, item: SaleItem },
    UnknownItem,
    NotInCurrentSale,
    ItemSold,
    UserLimitReached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    Sold { item: SaleItem, user_id: String },
    ItemSold,
    UserLimitReached,
    SaleOver,
    UnknownCode,
}

/// A purchase's outcome and whether an earlier purchase of the same code decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub outcome: PurchaseOutcome,
    pub replayed: bool,
}

/// What opening a sale needs.
#[derive(Debug, Clone, Copy)]
pub struct NewSale {
    pub hour: SaleHour,
    pub items: u32,
}

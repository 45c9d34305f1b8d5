//! `couponpb.CouponService`: each message read into the arguments of its operation's one parse
//! ([`super::campaign`]), the use case run, the answer written as a message.

use allot_domain::DomainError;
use allot_domain::campaign::CampaignId;
use allot_storage::Campaign;

use super::campaign::{IssueCoupon, codes_shown, new_campaign};
use crate::ServiceError;
use crate::caller::Caller;
use crate::pb::couponpb as pb;
use crate::service::Services;
use crate::time::{from_timestamp, to_timestamp};

pub(crate) async fn create_campaign(
    services: &Services,
    req: pb::CreateCampaignRequest,
) -> Result<pb::CreateCampaignResponse, ServiceError> {
    let instant = |field: &'static str, t: &Option<crate::pb::Timestamp>| {
        t.as_ref()
            .map(|t| {
                from_timestamp(t)
                    .ok_or_else(|| DomainError::invalid(field, "is not a valid instant"))
            })
            .transpose()
    };
    // proto3 has no absent number: 0 is "no limit" here, and a total of 0 is refused as such.
    let new = new_campaign(
        &req.name,
        instant("start_time", &req.start_time)?,
        instant("end_time", &req.end_time)?,
        Some(req.total_coupons),
        (req.per_user_limit != 0).then_some(req.per_user_limit),
    )?;
    let campaign = services.campaigns.create(new).await?;
    Ok(pb::CreateCampaignResponse {
        campaign_id: campaign.id.get(),
    })
}

/// `caller`: staff get the campaign's codes (the first
/// [`crate::service::campaign::GET_CAMPAIGN_CODES_MAX`]; past them `issued_coupons` is larger
/// than the list and the REST listing pages through the rest); see [`codes_shown`].
pub(crate) async fn get_campaign(
    services: &Services,
    caller: Caller,
    req: pb::GetCampaignRequest,
) -> Result<pb::GetCampaignResponse, ServiceError> {
    let id = CampaignId::parse(req.campaign_id)?;
    let shown = codes_shown(&caller)?;
    let (campaign, codes) = services.campaigns.get_with_codes(id, shown).await?;
    Ok(pb::GetCampaignResponse {
        campaign: Some(campaign_message(&campaign)),
        coupon_codes: codes.into_iter().map(|c| c.into_string()).collect(),
    })
}

pub(crate) async fn issue_coupon(
    services: &Services,
    caller: Caller,
    req: pb::IssueCouponRequest,
) -> Result<pb::IssueCouponResponse, ServiceError> {
    let issue = IssueCoupon::parse(
        &caller,
        CampaignId::parse(req.campaign_id)?,
        given(&req.user_id),
        given(&req.idempotency_key),
    )?;
    let issued = services
        .campaigns
        .issue(issue.campaign, issue.user, issue.key)
        .await?;
    Ok(pb::IssueCouponResponse {
        coupon_code: issued.code.into_string(),
    })
}

/// An empty string is a field left out: proto3 has no absent string.
fn given(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn campaign_message(c: &Campaign) -> pb::Campaign {
    pb::Campaign {
        id: c.id.get(),
        name: c.name.clone(),
        start_time: Some(to_timestamp(c.window.starts_at)),
        total_coupons: c.total,
        end_time: c.window.ends_at.map(to_timestamp),
        issued_coupons: c.issued,
        per_user_limit: c.per_user_limit.map_or(0, i64::from),
    }
}

//! `couponpb.CouponService`.

use allot_domain::DomainError;
use allot_domain::auth::Role;
use allot_domain::campaign::CampaignId;
use allot_domain::user::{IdempotencyKey, UserId};
use allot_storage::Campaign;

use crate::ServiceError;
use crate::caller::Caller;
use crate::pb::couponpb as pb;
use crate::service::Services;
use crate::service::campaign::{CodesShown, new_campaign};
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
/// [`crate::service::campaign::GET_CAMPAIGN_CODES_MAX`]; past them
/// `issued_coupons` is larger than the list and the REST listing pages through the rest), a
/// customer only the codes issued to it, a customer API key and an anonymous caller of the
/// open contract none: issued codes are other people's credentials.
pub(crate) async fn get_campaign(
    services: &Services,
    caller: Caller,
    req: pb::GetCampaignRequest,
) -> Result<pb::GetCampaignResponse, ServiceError> {
    let id = CampaignId::parse(req.campaign_id)?;
    let shown = match caller.0 {
        Some(user) if user.role == Role::Customer => match user.customer_user_id() {
            Some(own) => CodesShown::IssuedTo(UserId::parse(&own)?),
            None => CodesShown::None,
        },
        Some(_) => CodesShown::All,
        None => CodesShown::None,
    };
    let (campaign, codes) = services.campaigns.get_with_codes(id, shown).await?;
    Ok(pb::GetCampaignResponse {
        campaign: Some(campaign_message(&campaign)),
        coupon_codes: codes.into_iter().map(|c| c.into_string()).collect(),
    })
}

/// `caller`: a customer issues only for itself (its own id when `user_id` is empty).
pub(crate) async fn issue_coupon(
    services: &Services,
    caller: Caller,
    req: pb::IssueCouponRequest,
) -> Result<pb::IssueCouponResponse, ServiceError> {
    let id = CampaignId::parse(req.campaign_id)?;
    let given = (!req.user_id.is_empty()).then_some(req.user_id.as_str());
    let user = caller
        .user_field(given, "user_id")?
        .map(|u| UserId::parse(&u))
        .transpose()?;
    let key = (!req.idempotency_key.is_empty())
        .then(|| IdempotencyKey::parse(&req.idempotency_key))
        .transpose()?;
    let issued = services.campaigns.issue(id, user, key).await?;
    Ok(pb::IssueCouponResponse {
        coupon_code: issued.code.into_string(),
    })
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

//! REST for campaigns: `/api/v1/campaigns`.

use allot_domain::DomainError;
use allot_domain::campaign::CampaignId;
use allot_storage::Campaign;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery, OptionalJson, PathId, whole};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::Caller;
use crate::rpc::campaign::{IssueCoupon, new_campaign};
use crate::service::campaign::{CAMPAIGNS_PAGE_MAX, COUPONS_PAGE_MAX};
use crate::time::parse_rfc3339;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/campaigns", post(create).get(list))
        .route("/api/v1/campaigns/{id}", get(read))
        .route(
            "/api/v1/campaigns/{id}/coupons",
            get(list_coupons).post(issue),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateCampaignBody {
    /// 1 to 200 characters, trimmed; no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    /// RFC 3339; issuance opens at this instant, to the millisecond.
    #[schema(format = DateTime)]
    pub start_time: Option<String>,
    /// 1 to 10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(default, deserialize_with = "whole")]
    pub total_coupons: Option<i64>,
    /// Optional RFC 3339 instant after `start_time` when issuance closes.
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    /// Optional most codes one `user_id` may hold, 1 to 2,147,483,647.
    #[schema(minimum = 1, maximum = 2_147_483_647_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub per_user_limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignView {
    pub id: i64,
    pub name: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub total_coupons: i64,
    pub issued: i64,
    pub remaining: i64,
    pub per_user_limit: Option<u32>,
    pub created_at: String,
}

impl From<Campaign> for CampaignView {
    fn from(c: Campaign) -> Self {
        CampaignView {
            id: c.id.get(),
            name: c.name,
            start_time: rfc3339(c.window.starts_at),
            end_time: c.window.ends_at.map(rfc3339),
            total_coupons: c.total,
            issued: c.issued,
            remaining: c.total - c.issued,
            per_user_limit: c.per_user_limit,
            created_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct IssueBody {
    /// Who receives the code; needed when the campaign has a per-user limit. 1 to 128
    /// characters, no white space.
    #[schema(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$")]
    pub user_id: Option<String>,
    /// A retry with the same key returns the same code. The `Idempotency-Key` header works too.
    /// 1 to 128 characters, no white space.
    #[schema(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IssuedView {
    pub campaign_id: i64,
    /// At most 10 characters: Hangul syllables and digits.
    pub code: String,
    /// 1 for the first code issued, `total_coupons` for the last.
    pub seq: i64,
    /// True when an idempotency key matched an earlier issue.
    pub replayed: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Return codes with `seq` greater than this (0 to start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1 to 10,000 (default 1,000).
    #[param(minimum = 1, maximum = 10_000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CampaignCouponView)] // `CouponView` is the uploaded coupons' (coupon.rs)
pub(crate) struct CouponView {
    pub code: String,
    pub seq: i64,
    pub user_id: Option<String>,
    pub issued_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CouponPage {
    pub coupons: Vec<CouponView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

/// Create a campaign.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns",
    request_body = CreateCampaignBody,
    responses(
        (status = 201, description = "Created", body = CampaignView),
        (status = 400, description = "Not JSON of this shape", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateCampaignBody>,
) -> Result<(StatusCode, Json<CampaignView>), ServiceError> {
    let new = new_campaign(
        body.name.as_deref().unwrap_or_default(),
        instant("start_time", body.start_time.as_deref())?,
        instant("end_time", body.end_time.as_deref())?,
        body.total_coupons,
        body.per_user_limit,
    )?;
    let campaign = state.services.campaigns.create(new).await?;
    Ok((StatusCode::CREATED, Json(campaign.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Return campaigns with an id below this (`next_before` of the previous page); from the
    /// newest when left out.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size, 1 to 1,000 (default 50).
    #[param(minimum = 1, maximum = 1_000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignPage {
    pub campaigns: Vec<CampaignView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// List campaigns, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    params(ListQuery),
    responses((status = 200, description = "A page of campaigns", body = CampaignPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<CampaignPage>, ServiceError> {
    if q.before.is_some_and(|b| b < 1) {
        return Err(DomainError::invalid("before", "must be 1 or more").into());
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=CAMPAIGNS_PAGE_MAX).contains(&limit) {
        return Err(
            DomainError::invalid("limit", format!("must be 1 to {CAMPAIGNS_PAGE_MAX}")).into(),
        );
    }
    let campaigns = state.services.campaigns.list(q.before, limit).await?;
    let next_before = (campaigns.len() == limit as usize)
        .then(|| campaigns.last().map(|c| c.id.get()))
        .flatten();
    Ok(Json(CampaignPage {
        campaigns: campaigns.into_iter().map(CampaignView::from).collect(),
        next_before,
    }))
}

/// Read a campaign with its counts.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 404, description = "No such campaign", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    PathId(id): PathId<CampaignId>,
) -> Result<Json<CampaignView>, ServiceError> {
    let campaign = state.services.campaigns.get(id).await?;
    Ok(Json(campaign.into()))
}

/// List issued codes in issue order, a page at a time.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/coupons", tag = "campaigns",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id"), PageQuery),
    responses(
        (status = 200, description = "A page of issued codes", body = CouponPage),
        (status = 404, description = "No such campaign", body = ErrorBody)))]
pub(crate) async fn list_coupons(
    State(state): State<AppState>,
    PathId(id): PathId<CampaignId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<CouponPage>, ServiceError> {
    let after = page.after.unwrap_or(0);
    if after < 0 {
        return Err(DomainError::invalid("after", "must be 0 or more").into());
    }
    let limit = page.limit.unwrap_or(1_000);
    if !(1..=COUPONS_PAGE_MAX).contains(&limit) {
        return Err(
            DomainError::invalid("limit", format!("must be 1 to {COUPONS_PAGE_MAX}")).into(),
        );
    }
    let coupons = state.services.campaigns.coupons(id, after, limit).await?;
    let next_after = (coupons.len() == limit as usize)
        .then(|| coupons.last().map(|c| c.seq))
        .flatten();
    Ok(Json(CouponPage {
        coupons: coupons
            .into_iter()
            .map(|c| CouponView {
                code: c.code.into_string(),
                seq: c.seq,
                user_id: c.user_id,
                issued_at: rfc3339(c.issued_at),
            })
            .collect(),
        next_after,
    }))
}

/// Issue the campaign's next code (first come, first served).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/coupons", tag = "campaigns",
    params(
        ("id" = i64, Path, minimum = 1, description = "Campaign id"),
        ("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$", description = "Makes a retry return the same code; 1 to 128 characters, no white space (keys are the caller's own: another caller's same key gets its own code)")),
    request_body(content = Option<IssueBody>, description = "Optional"),
    responses(
        (status = 201, description = "A new code, durably recorded", body = IssuedView),
        (status = 200, description = "The code of an earlier request with the same idempotency key", body = IssuedView),
        (status = 404, description = "No such campaign (`not_found`)", body = ErrorBody),
        (status = 409, description = "`not_started`, `ended`, `sold_out` or `user_limit_reached`", body = ErrorBody),
        (status = 422, description = "A bad field", body = ErrorBody)))]
pub(crate) async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<CampaignId>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<IssueBody>,
) -> Result<(StatusCode, Json<IssuedView>), ServiceError> {
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| DomainError::invalid("idempotency_key", "must be printable ASCII"))
        })
        .transpose()?;
    let key = body.idempotency_key.or(header_key);
    let issue = IssueCoupon::parse(&caller, id, body.user_id.as_deref(), key.as_deref())?;
    let issued = state
        .services
        .campaigns
        .issue(issue.campaign, issue.user, issue.key)
        .await?;
    let status = if issued.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(IssuedView {
            campaign_id: id.get(),
            code: issued.code.into_string(),
            seq: issued.seq,
            replayed: issued.replayed,
        }),
    ))
}

fn instant(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<allot_domain::UnixMillis>, DomainError> {
    raw.map(|s| {
        parse_rfc3339(s).ok_or_else(|| DomainError::invalid(field, "must be an RFC 3339 instant"))
    })
    .transpose()
}

//! REST for promotions: `/api/v1/promotions` (managed by marketing), the preview
//! (`/evaluate`), and holds that a checkout redeems, releases or rolls back.

use std::collections::BTreeMap;

use allot_domain::DomainError;
use allot_domain::promotion::{
    ActionSpec, ConditionsSpec, HOLD_TTL_DEFAULT_SECS, HOLD_TTL_MAX_SECS, LimitsSpec, Promotion,
    PromotionId, PromotionSpec, StackingSpec, Trigger,
};
use allot_storage::{Hold, StoredPromotion};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery, HoldId, PathId, whole, whole_required};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::Caller;
use crate::service::promotion::{
    CartRequest, CustomerRequest, EvaluationView, HOLDS_PAGE_DEFAULT, LineRequest, PAGE_DEFAULT,
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/promotions", post(create).get(list))
        .route("/api/v1/promotions/evaluate", post(evaluate))
        .route("/api/v1/promotions/holds", post(hold))
        .route("/api/v1/promotions/redemptions", post(redeem_cart))
        .route("/api/v1/promotions/holds/{id}", get(read_hold))
        .route("/api/v1/promotions/holds/{id}/release", post(release))
        .route("/api/v1/promotions/holds/{id}/redeem", post(redeem))
        .route("/api/v1/promotions/holds/{id}/rollback", post(roll_back))
        .route("/api/v1/promotions/{id}", get(read).put(update))
        .route("/api/v1/promotions/{id}/codes", post(bind))
        .route("/api/v1/promotions/{id}/holds", get(holds))
}

/// A promotion as written (`PromotionSpec`), and whether it is on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromotionBody {
    /// 1 to 200 characters.
    pub name: String,
    /// At most 2,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    pub trigger: Trigger,
    #[serde(default)]
    pub conditions: ConditionsSpec,
    /// 1 to 5, applied in turn.
    pub actions: Vec<ActionSpec>,
    #[serde(default)]
    pub stacking: StackingSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Default true.
    #[serde(default)]
    pub active: Option<bool>,
}

impl PromotionBody {
    fn parse(self) -> Result<(Promotion, bool), DomainError> {
        let spec = PromotionSpec {
            name: self.name,
            description: self.description,
            trigger: self.trigger,
            conditions: self.conditions,
            actions: self.actions,
            stacking: self.stacking,
            limits: self.limits,
        };
        Ok((Promotion::parse(spec)?, self.active.unwrap_or(true)))
    }
}

/// What a promotion has given so far.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageView {
    /// Money given by redeemed holds.
    pub redeemed_minor: i64,
    pub redemptions: i64,
    /// Money set aside by holds not yet redeemed, released or expired.
    pub held_minor: i64,
    pub held: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PromotionView {
    pub id: i64,
    pub active: bool,
    /// Raised by every change of the promotion (not of its usage).
    pub version: i64,
    pub name: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    pub conditions: ConditionsSpec,
    pub actions: Vec<ActionSpec>,
    pub stacking: StackingSpec,
    pub limits: LimitsSpec,
    pub usage: UsageView,
    pub created_at: String,
    pub updated_at: String,
}

impl From<StoredPromotion> for PromotionView {
    fn from(p: StoredPromotion) -> Self {
        let spec = p.promotion.spec().clone();
        PromotionView {
            id: p.id.get(),
            active: p.active,
            version: p.version,
            name: spec.name,
            description: spec.description,
            trigger: spec.trigger,
            conditions: spec.conditions,
            actions: spec.actions,
            stacking: spec.stacking,
            limits: spec.limits,
            usage: UsageView {
                redeemed_minor: p.totals.redeemed_minor,
                redemptions: p.totals.redemptions,
                held_minor: p.totals.held_minor,
                held: p.totals.held,
            },
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PromotionPageView {
    pub promotions: Vec<PromotionView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only promotions switched on (true) or off (false).
    pub active: Option<bool>,
    /// Only `automatic` or `code` promotions.
    pub trigger: Option<Trigger>,
    /// Promotions with an id above this (`next_after` of the previous page); 0 to start.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Create a promotion.
#[utoipa::path(post, path = "/api/v1/promotions", tag = "promotions",
    request_body = PromotionBody,
    responses(
        (status = 201, description = "Created", body = PromotionView),
        (status = 400, description = "Not JSON of this shape (an unknown field included)", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field by its path (`conditions.min_subtotal_minor`, `actions.percent`...); nothing is stored", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PromotionBody>,
) -> Result<(StatusCode, Json<PromotionView>), ServiceError> {
    let (promotion, active) = body.parse()?;
    let stored = state.services.promotions.create(promotion, active).await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// List promotions by id, a page at a time.
#[utoipa::path(get, path = "/api/v1/promotions", tag = "promotions",
    params(ListQuery),
    responses((status = 200, description = "A page of promotions", body = PromotionPageView)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<PromotionPageView>, ServiceError> {
    let page = state
        .services
        .promotions
        .list(
            q.active,
            q.trigger,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(PAGE_DEFAULT),
        )
        .await?;
    Ok(Json(PromotionPageView {
        promotions: page.promotions.into_iter().map(Into::into).collect(),
        next_after: page.next_after,
    }))
}

/// Read a promotion with its usage.
#[utoipa::path(get, path = "/api/v1/promotions/{id}", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Promotion id")),
    responses(
        (status = 200, description = "The promotion", body = PromotionView),
        (status = 404, description = "`promotion_not_found`", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    PathId(id): PathId<PromotionId>,
) -> Result<Json<PromotionView>, ServiceError> {
    Ok(Json(state.services.promotions.get(id).await?.into()))
}

/// Replace a promotion's spec and active flag; what it has given so far stays.
#[utoipa::path(put, path = "/api/v1/promotions/{id}", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Promotion id")),
    request_body = PromotionBody,
    responses(
        (status = 200, description = "The promotion as it is now", body = PromotionView),
        (status = 400, description = "Not JSON of this shape (an unknown field included)", body = ErrorBody),
        (status = 404, description = "`promotion_not_found`", body = ErrorBody),
        (status = 409, description = "`limit_below_usage`: a limit below what is already held and redeemed, naming the limit; nothing is changed", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field by its path; nothing is changed", body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    PathId(id): PathId<PromotionId>,
    ApiJson(body): ApiJson<PromotionBody>,
) -> Result<Json<PromotionView>, ServiceError> {
    let (promotion, active) = body.parse()?;
    let stored = state
        .services
        .promotions
        .update(id, promotion, active)
        .await?;
    Ok(Json(stored.into()))
}

/// Codes to bind to a promotion: any of the lists, and a campaign.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BindBody {
    /// Uploaded coupons' codes (each must exist).
    #[serde(default)]
    pub coupons: Vec<String>,
    /// Discount codes (each must exist).
    #[serde(default)]
    pub discount_codes: Vec<String>,
    /// A campaign: every code it has issued and will issue.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub campaign_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BoundView {
    /// How many codes were bound (a campaign counts as one).
    pub bound: u64,
}

/// Bind coupons, discount codes or a campaign's codes to a promotion: a code then reaches
/// it. Each list is bound all or none, in the order coupons, discount codes, campaign.
#[utoipa::path(post, path = "/api/v1/promotions/{id}/codes", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Promotion id")),
    request_body = BindBody,
    responses(
        (status = 200, description = "Bound", body = BoundView),
        (status = 404, description = "`promotion_not_found`", body = ErrorBody),
        (status = 409, description = "`already_bound`: codes bound to another promotion, or `codes_used_up`: coupons with no use left (listed in `codes`)", body = ErrorBody),
        (status = 422, description = "`unknown_codes` (listed in `codes`), `unknown_campaign`, or `invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn bind(
    State(state): State<AppState>,
    PathId(id): PathId<PromotionId>,
    ApiJson(body): ApiJson<BindBody>,
) -> Result<Json<BoundView>, ServiceError> {
    let bound = state
        .services
        .promotions
        .bind(id, body.coupons, body.discount_codes, body.campaign_id)
        .await?;
    Ok(Json(BoundView { bound }))
}

/// A line of a cart. What it leaves out of a product in the catalog comes from the catalog.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CartLineBody {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole_required")]
    pub product_id: i64,
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "whole_required")]
    pub quantity: i64,
    /// Minor units of the cart's currency; the catalog's price when left out (required for
    /// a product not in the catalog).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "whole")]
    pub unit_price_minor: Option<i64>,
    /// The product's categories, ancestors included; the catalog's when left out.
    #[serde(default)]
    pub category_ids: Option<Vec<i64>>,
    /// The product's attributes as text; the catalog's when left out.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// The customer a cart is for. Role and earlier orders of an Allot user come from its account
/// when left out. A signed-in customer is always itself: its id may be left out, and it may
/// not give a role, tags or a count of orders (all read from its account).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct CustomerBody {
    /// The account id (for an Allot user, its id in decimal); none for a guest.
    pub id: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Earlier orders that were not cancelled.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "whole")]
    pub orders_before: Option<u64>,
}

/// A cart to evaluate.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CartBody {
    /// Three capital letters; the catalog products' when left out.
    pub currency: Option<String>,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<CartLineBody>,
    /// What the order charges for shipping (free-shipping actions take it off).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "whole")]
    pub shipping_minor: Option<i64>,
    pub customer: Option<CustomerBody>,
    /// Promotion codes entered (coupons, campaign codes, discount codes bound to a
    /// promotion); at most 20.
    #[schema(max_items = 20)]
    #[serde(default)]
    pub codes: Vec<String>,
}

/// A cart to hold, and for how long.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct HoldBody {
    #[serde(flatten)]
    pub cart: CartBody,
    /// Seconds until the hold expires by itself, 1 to 86,400 (default 900).
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(default, deserialize_with = "whole")]
    pub ttl_seconds: Option<u64>,
}

/// The cart a caller may evaluate: a signed-in customer only as itself.
fn cart_request(caller: &Caller, body: CartBody) -> Result<CartRequest, ServiceError> {
    let CartBody {
        currency,
        lines,
        shipping_minor,
        customer,
        codes,
    } = body;
    let customer = match caller.customer()? {
        Some(own) => {
            let given = customer.unwrap_or_default();
            if let Some(id) = &given.id {
                caller.may_act_for(id, "customer.id")?;
            }
            let claimed = [
                ("customer.role", given.role.is_some()),
                ("customer.tags", !given.tags.is_empty()),
                ("customer.orders_before", given.orders_before.is_some()),
            ];
            if let Some((field, _)) = claimed.iter().find(|(_, given)| *given) {
                return Err(ServiceError::Forbidden {
                    field: Some(field),
                    message: format!("{field}: a customer's comes from its account"),
                });
            }
            Some(CustomerRequest {
                id: Some(own),
                ..CustomerRequest::default()
            })
        }
        None => customer.map(|c| CustomerRequest {
            id: c.id,
            role: c.role,
            tags: c.tags,
            orders_before: c.orders_before,
        }),
    };
    Ok(CartRequest {
        currency,
        lines: lines
            .into_iter()
            .map(|l| LineRequest {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
                category_ids: l.category_ids,
                attributes: l.attributes,
            })
            .collect(),
        shipping_minor,
        customer,
        codes,
    })
}

/// Preview: what a cart gets (each line's discount, the totals, every code refused and why).
/// Changes nothing.
#[utoipa::path(post, path = "/api/v1/promotions/evaluate", tag = "promotions",
    request_body = CartBody,
    responses(
        (status = 200, description = "The evaluation", body = EvaluationView),
        (status = 403, description = "`forbidden`: a customer evaluating as another customer, or giving its role, tags or orders", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field (`lines.unit_price_minor` of a product not in the catalog, `currency`...)", body = ErrorBody)))]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CartBody>,
) -> Result<Json<EvaluationView>, ServiceError> {
    let request = cart_request(&caller, body)?;
    let evaluated = state.services.promotions.evaluate(request).await?;
    Ok(Json(evaluated.view()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HoldView {
    pub id: i64,
    /// `held`, `redeemed`, `released`, `expired` or `rolled_back`.
    pub status: &'static str,
    /// The customer's account id; null for a guest.
    pub customer: Option<String>,
    pub currency: String,
    pub expires_at: String,
    /// What the redemption was for (an order of Allot's is `order-<id>`).
    pub reference: Option<String>,
    /// What the engine gave the cart when it was held.
    #[schema(value_type = EvaluationView)]
    pub evaluation: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Hold> for HoldView {
    fn from(h: Hold) -> Self {
        HoldView {
            id: h.id,
            status: h.status.as_str(),
            customer: h.customer,
            currency: h.currency,
            expires_at: rfc3339(h.expires_at),
            reference: h.reference,
            evaluation: serde_json::from_str(&h.evaluation).unwrap_or(serde_json::Value::Null),
            created_at: rfc3339(h.created_at),
            updated_at: rfc3339(h.updated_at),
        }
    }
}

/// Hold what a cart gets: its promotions' money and redemptions and its codes' uses are set
/// aside (no other checkout can count on them) until the hold is redeemed, released, or
/// expires by itself.
#[utoipa::path(post, path = "/api/v1/promotions/holds", tag = "promotions",
    params(("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 visible characters; a retry with the same key answers the first hold and holds nothing more")),
    request_body = HoldBody,
    responses(
        (status = 201, description = "Held (or the hold of an earlier request with the same key)", body = HoldView),
        (status = 403, description = "`forbidden`: a customer holding as another customer", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<(StatusCode, Json<HoldView>), ServiceError> {
    let key = super::idempotency::key_of(&headers)?;
    let ttl = body.ttl_seconds.unwrap_or(HOLD_TTL_DEFAULT_SECS);
    if !(1..=HOLD_TTL_MAX_SECS).contains(&ttl) {
        return Err(DomainError::invalid(
            "ttl_seconds",
            format!("must be 1 to {HOLD_TTL_MAX_SECS}"),
        )
        .into());
    }
    let request = cart_request(&caller, body.cart)?;
    let hold = state.services.promotions.hold(request, ttl, key).await?;
    Ok((StatusCode::CREATED, Json(hold.into())))
}

/// A cart to redeem at once, and what for.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RedeemCartBody {
    #[serde(flatten)]
    pub cart: CartBody,
    /// What the redemption is for (the shop's order number): 1 to 200 characters.
    pub reference: String,
}

/// Redeem what a cart gets, in one call: a hold made redeemed (status `redeemed`) in one
/// transaction, for a checkout with nothing to wait for between holding and redeeming. Its
/// budgets and limits are checked as a hold's; it is rolled back like any redeemed hold.
#[utoipa::path(post, path = "/api/v1/promotions/redemptions", tag = "promotions",
    params(("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 visible characters; a retry with the same key answers the first redemption and redeems nothing more")),
    request_body = RedeemCartBody,
    responses(
        (status = 201, description = "Redeemed (or the redemption of an earlier request with the same key)", body = HoldView),
        (status = 403, description = "`forbidden`: a customer redeeming as another customer", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn redeem_cart(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RedeemCartBody>,
) -> Result<(StatusCode, Json<HoldView>), ServiceError> {
    let key = super::idempotency::key_of(&headers)?;
    let request = cart_request(&caller, body.cart)?;
    let hold = state
        .services
        .promotions
        .redeem_cart(request, &body.reference, key)
        .await?;
    Ok((StatusCode::CREATED, Json(hold.into())))
}

/// Read a hold.
#[utoipa::path(get, path = "/api/v1/promotions/holds/{id}", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Hold id")),
    responses(
        (status = 200, description = "The hold", body = HoldView),
        (status = 404, description = "`hold_not_found`", body = ErrorBody)))]
pub(crate) async fn read_hold(
    State(state): State<AppState>,
    PathId(HoldId(id)): PathId<HoldId>,
) -> Result<Json<HoldView>, ServiceError> {
    Ok(Json(state.services.promotions.get_hold(id).await?.into()))
}

/// Release a held hold: what it held is given back.
#[utoipa::path(post, path = "/api/v1/promotions/holds/{id}/release", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Hold id")),
    responses(
        (status = 200, description = "Released", body = HoldView),
        (status = 404, description = "`hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_held`: redeemed, released, expired or rolled back already (its `status`)", body = ErrorBody)))]
pub(crate) async fn release(
    State(state): State<AppState>,
    PathId(HoldId(id)): PathId<HoldId>,
) -> Result<Json<HoldView>, ServiceError> {
    Ok(Json(state.services.promotions.release(id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RedeemBody {
    /// What the redemption is for (the shop's order number): 1 to 200 characters.
    pub reference: String,
}

/// Redeem a held hold: its promotions count as used, for `reference`.
#[utoipa::path(post, path = "/api/v1/promotions/holds/{id}/redeem", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Hold id")),
    request_body = RedeemBody,
    responses(
        (status = 200, description = "Redeemed", body = HoldView),
        (status = 404, description = "`hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_held` (its `status`), or `hold_expired`: past its time", body = ErrorBody)))]
pub(crate) async fn redeem(
    State(state): State<AppState>,
    PathId(HoldId(id)): PathId<HoldId>,
    ApiJson(body): ApiJson<RedeemBody>,
) -> Result<Json<HoldView>, ServiceError> {
    Ok(Json(
        state
            .services
            .promotions
            .redeem(id, body.reference)
            .await?
            .into(),
    ))
}

/// Roll back a hold (a cancelled or refunded order): a redeemed hold's money, redemptions and
/// code uses are given back exactly once; a held one is released; calling again (or on a hold
/// released or expired) answers the hold as it is and gives back nothing more.
#[utoipa::path(post, path = "/api/v1/promotions/holds/{id}/rollback", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Hold id")),
    responses(
        (status = 200, description = "Rolled back or released (now or before)", body = HoldView),
        (status = 404, description = "`hold_not_found`", body = ErrorBody)))]
pub(crate) async fn roll_back(
    State(state): State<AppState>,
    PathId(HoldId(id)): PathId<HoldId>,
) -> Result<Json<HoldView>, ServiceError> {
    Ok(Json(state.services.promotions.roll_back(id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HoldsQuery {
    /// Holds with an id below this (`next_before` of the previous page); from the newest
    /// when left out.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HoldPageView {
    pub holds: Vec<HoldView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// A promotion's holds, newest first.
#[utoipa::path(get, path = "/api/v1/promotions/{id}/holds", tag = "promotions",
    params(("id" = i64, Path, minimum = 1, description = "Promotion id"), HoldsQuery),
    responses(
        (status = 200, description = "A page of holds", body = HoldPageView),
        (status = 404, description = "`promotion_not_found`", body = ErrorBody)))]
pub(crate) async fn holds(
    State(state): State<AppState>,
    PathId(id): PathId<PromotionId>,
    ApiQuery(q): ApiQuery<HoldsQuery>,
) -> Result<Json<HoldPageView>, ServiceError> {
    if q.before.is_some_and(|b| b < 1) {
        return Err(DomainError::invalid("before", "must be 1 or more").into());
    }
    let limit = q.limit.unwrap_or(HOLDS_PAGE_DEFAULT);
    let holds = state
        .services
        .promotions
        .holds(id, q.before.unwrap_or(0), limit)
        .await?;
    let next_before = (holds.len() == limit as usize)
        .then(|| holds.last().map(|h| h.id))
        .flatten();
    Ok(Json(HoldPageView {
        holds: holds.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

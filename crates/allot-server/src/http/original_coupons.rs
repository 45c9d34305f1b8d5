//! The original coupon management system's HTTP contract (seed 001, issue 18), served at the
//! root path on Allot's coupons: `POST /upload`, `GET /request-new`, `GET /request-status`,
//! `POST /redeem`, `GET /validate`. Its clients work unchanged; the coupons, counters,
//! records, MEGADEAL admission and events are the same ones `/api/v1/coupons` serves.
//!
//! The original's wire forms are kept: successes `{"data": ...}` (the upload `{"coupons":
//! {...}}`), errors `{"error": {"code": <status>, "message": "..."}}`, validation failures
//! 422 `{"errors": [{"<field>": "Invalid value"}, ...]}`, JSON or urlencoded bodies (the
//! upload JSON only: the original's urlencoded parser was not the extended one, so it never
//! read a list of coupons from a form either). Allot's own refusals in front of the contract
//! (credentials, roles, the body limit, the per-client code-use limit) keep Allot's body, as
//! every route's do.
//!
//! What the original got wrong is not copied: MEGADEAL keeps Allot's admission (5 in flight,
//! 10 per second, 10 s wait, slots given back), expiry is honoured when handing coupons out,
//! and a tracking id answers only the user it was made for.

use std::collections::HashMap;

use allot_domain::coupon::{CouponType, Discount, DiscountKind, MaxUses, UPLOAD_MAX, UploadedCode};
use allot_domain::user::UserId;
use allot_storage::{Coupon, NewCoupon};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ErrorBody;
use super::extract::whole_number;
use super::limits::UPLOAD_BODY_BYTES_MAX;
use crate::ServiceError;
use crate::caller::Caller;
use crate::error::EntryError;
use crate::service::coupon::{TicketFailure, TicketState};
use crate::time::{parse_rfc3339, rfc3339};

/// The original's message while a MEGADEAL request waits for admission (answered with 202).
const NOT_READY: &str = "Coupon not ready yet. Try again later.";
const COUPON_INVALID: &str = "Coupon invalid";
const COUPON_EXHAUSTED: &str = "Coupon exhausted";
const COUPON_EXPIRED: &str = "Coupon expired";
/// MEGADEAL refusals: not admitted within the wait limit, the queue full, none left.
const RATE_LIMIT_REACHED: &str = "Rate limit reached";
const QUEUE_FULL: &str = "Too many users in the queue, try again later";
const NONE_REMAINING: &str = "Not enough coupons remaining, try again later";
/// The original's validation message, the same for every field.
const INVALID_VALUE: &str = "Invalid value";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/upload",
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_BYTES_MAX)),
        )
        .route("/request-new", get(request_new))
        .route("/request-status", get(request_status))
        .route("/redeem", post(redeem))
        .route("/validate", get(validate))
}

// ---- Answers -------------------------------------------------------------------------------

/// A coupon as the original answers it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OriginalCoupon {
    /// The coupon's id in Allot's store.
    pub id: i64,
    /// When it was uploaded: ISO 8601 in UTC with milliseconds.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Upper-cased: codes are case-insensitive.
    pub coupon_code: String,
    #[schema(value_type = OriginalCouponType)]
    pub coupon_type: &'static str,
    pub discount_amount: i64,
    #[schema(value_type = OriginalDiscountType)]
    pub discount_type: String,
    #[schema(format = DateTime)]
    pub expiry_date: String,
    pub max_usages: u32,
}

/// A coupon handed to a user. A coupon is handed to one user at most, so the allocation's id
/// is its coupon's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OriginalUserCoupon {
    pub id: i64,
    /// When it was handed to the user.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Times redeemed.
    pub usages: u32,
    pub user_id: String,
    pub coupon: OriginalCoupon,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)] // documents the names
pub(crate) enum OriginalCouponType {
    FREE,
    STANDARD,
    MEGADEAL,
    NONE,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)] // documents the names
pub(crate) enum OriginalDiscountType {
    FLAT,
    PERCENTAGE,
}

impl From<Coupon> for OriginalCoupon {
    fn from(c: Coupon) -> Self {
        OriginalCoupon {
            id: c.id,
            created_at: rfc3339(c.created_at),
            coupon_code: c.code,
            coupon_type: c.coupon_type.map_or("NONE", CouponType::as_str),
            discount_amount: c.discount_amount,
            discount_type: c.discount_kind,
            expiry_date: rfc3339(c.expires_at),
            max_usages: c.max_uses,
        }
    }
}

impl From<Coupon> for OriginalUserCoupon {
    fn from(c: Coupon) -> Self {
        OriginalUserCoupon {
            id: c.id,
            created_at: rfc3339(c.allocated_at.unwrap_or(c.created_at)),
            usages: c.uses,
            user_id: c.allocated_to.clone().unwrap_or_default(),
            coupon: c.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserCouponData {
    pub data: OriginalUserCoupon,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tracking {
    /// Poll `/request-status` with it (for 10 minutes): a random UUID.
    #[schema(format = "uuid")]
    pub tracking_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrackingData {
    pub data: Tracking,
}

/// A coupon of a type, or (MEGADEAL) a tracking id to poll.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum RequestNewAnswer {
    Coupon(UserCouponData),
    Tracking(TrackingData),
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AllocatedCoupon {
    pub coupon: OriginalUserCoupon,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RequestStatusData {
    pub data: AllocatedCoupon,
}

/// The uploaded coupons by their codes as sent.
#[derive(Debug, ToSchema)]
pub(crate) struct UploadedCoupons {
    #[schema(value_type = HashMap<String, OriginalCoupon>)]
    pub coupons: Vec<(String, OriginalCoupon)>,
}

impl Serialize for UploadedCoupons {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct InOrder<'a>(&'a [(String, OriginalCoupon)]);
        impl Serialize for InOrder<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("coupons", &InOrder(&self.coupons))?;
        map.end()
    }
}

// ---- Refusals ------------------------------------------------------------------------------

/// `{"error": {"code": <the HTTP status>, "message": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OriginalError {
    pub error: OriginalErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OriginalErrorDetail {
    /// The HTTP status again.
    pub code: u16,
    pub message: String,
}

/// 422: `{"errors": [{"<field>": "Invalid value"}, ...]}`, one object per bad field (an
/// upload's by its path: `coupons[3].discountType`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OriginalValidationErrors {
    #[schema(value_type = Vec<HashMap<String, String>>)]
    pub errors: Vec<HashMap<String, &'static str>>,
}

/// The original's error body, or Allot's for what Allot answers before the contract is reached
/// (the request timeout, a per-client rate limit).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the two bodies
pub(crate) enum OriginalOrApiError {
    Original(OriginalError),
    Api(ErrorBody),
}

/// Why an original route did not succeed.
pub(crate) enum Refusal {
    /// 422 naming the fields at fault.
    Invalid(Vec<String>),
    /// The original's error body with this status.
    Error {
        status: StatusCode,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// Allot's refusals in front of the contract, in Allot's body (credentials, roles, the body
    /// limit, the per-client rate limit), as on every other route.
    Api(ServiceError),
}

impl Refusal {
    fn error(status: StatusCode, message: &str) -> Refusal {
        Refusal::Error {
            status,
            message: message.to_owned(),
            retry_after_secs: None,
        }
    }

    fn invalid(field: &str) -> Refusal {
        Refusal::Invalid(vec![field.to_owned()])
    }
}

/// The one mapping of the service's errors onto the original's statuses and messages.
impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        match e {
            // A coupon bound to a promotion is spent through the promotion only: for the
            // original's client it is not a coupon it may use.
            E::NotFound { .. } | E::NotOwner | E::CouponBound { .. } => {
                Refusal::error(StatusCode::BAD_REQUEST, COUPON_INVALID)
            }
            E::Exhausted => Refusal::error(StatusCode::TOO_MANY_REQUESTS, COUPON_EXHAUSTED),
            E::Expired => Refusal::error(StatusCode::GONE, COUPON_EXPIRED),
            E::MegadealBusy { retry_after_secs } => Refusal::Error {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: QUEUE_FULL.to_owned(),
                retry_after_secs: Some(retry_after_secs),
            },
            E::InvalidArgument { field, .. } => Refusal::invalid(original_field(field)),
            E::InvalidEntries { entries } => {
                Refusal::Invalid(entries.iter().map(entry_path).collect())
            }
            E::BadRequest { message, .. } => Refusal::Error {
                status: StatusCode::BAD_REQUEST,
                message,
                retry_after_secs: None,
            },
            E::Unavailable(_) | E::MegadealUnavailable(_) | E::Busy { .. } => {
                let retry_after_secs = match &e {
                    E::Unavailable(_) => crate::error::STORAGE_RETRY_AFTER_SECS,
                    _ => 1,
                };
                // The cause is logged, never answered.
                tracing::warn!(error = ?e, "original coupon route: unavailable");
                Refusal::Error {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: e.to_string(),
                    retry_after_secs: Some(retry_after_secs),
                }
            }
            E::Forbidden { .. }
            | E::Unauthenticated
            | E::PayloadTooLarge { .. }
            | E::RateLimited { .. }
            | E::RequestTimeout { .. } => Refusal::Api(e),
            other => {
                tracing::error!(error = ?other, "original coupon route: unexpected error");
                Refusal::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(OriginalValidationErrors {
                    errors: fields
                        .into_iter()
                        .map(|f| HashMap::from([(f, INVALID_VALUE)]))
                        .collect(),
                }),
            )
                .into_response(),
            Refusal::Error {
                status,
                message,
                retry_after_secs,
            } => {
                let mut response = (
                    status,
                    Json(OriginalError {
                        error: OriginalErrorDetail {
                            code: status.as_u16(),
                            message,
                        },
                    }),
                )
                    .into_response();
                if let Some(secs) = retry_after_secs {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
                }
                response
            }
            Refusal::Api(e) => e.into_response(),
        }
    }
}

/// A field of Allot's coupon under the original's name.
fn original_field(field: &str) -> &str {
    match field {
        "code" => "couponCode",
        "type" => "couponType",
        "discount_kind" => "discountType",
        "discount_amount" => "discountAmount",
        "expires_at" => "expiryDate",
        "max_uses" => "maxUsages",
        "user_id" => "userId",
        other => other,
    }
}

/// An upload entry's field by its path in the body, under the original's field names.
fn entry_path(e: &EntryError) -> String {
    match e.field {
        "coupon" => format!("coupons[{}]", e.index),
        field => format!("coupons[{}].{}", e.index, original_field(field)),
    }
}

// ---- Input ---------------------------------------------------------------------------------

/// The fields of a query string or a body, each as text: a string, or a number written out
/// (the original's validators took either); `Err` for any other value, or a name given twice.
struct Fields(HashMap<String, Result<String, ()>>);

impl Fields {
    fn from_query(raw: Option<&str>) -> Fields {
        Fields::from_pairs(form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned())
    }

    fn from_pairs(pairs: impl Iterator<Item = (String, String)>) -> Fields {
        let mut fields = HashMap::new();
        for (name, value) in pairs {
            fields
                .entry(name)
                .and_modify(|v| *v = Err(()))
                .or_insert(Ok(value));
        }
        Fields(fields)
    }

    /// A JSON object's fields; anything else holds none (the original read no fields from it).
    fn from_json(value: &Value) -> Fields {
        let fields = match value {
            Value::Object(object) => object
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(()),
                    };
                    (k.clone(), text)
                })
                .collect(),
            _ => HashMap::new(),
        };
        Fields(fields)
    }

    /// A field that must be given and not empty.
    fn required(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Ok(v)) if !v.is_empty() => Some(v),
            _ => None,
        }
    }

    /// A field that may be left out or empty (`Ok(None)`).
    fn optional(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Ok(v)) if v.is_empty() => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(())) => Err(()),
        }
    }
}

/// Collects the fields at fault, in the order the original's validators name them.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.0.push(field.to_owned());
        }
        value
    }

    /// The checked values, or 422 naming every field at fault.
    fn done<T>(self, values: Option<T>) -> Result<T, Refusal> {
        match values {
            Some(values) if self.0.is_empty() => Ok(values),
            _ => Err(Refusal::Invalid(self.0)),
        }
    }
}

/// A user id as Allot takes one (1 to 128 characters, no white space), for whom the caller may
/// act: a customer only for itself (403 otherwise, in Allot's body as every route's).
fn user_of(caller: &Caller, raw: &str) -> Result<UserId, Refusal> {
    let user = UserId::parse(raw).map_err(|_| Refusal::invalid("userId"))?;
    caller.may_act_for(user.as_str(), "userId")?;
    Ok(user)
}

/// A request body's fields: JSON (`application/json`) or a form
/// (`application/x-www-form-urlencoded`); any other body holds none, as the original read it.
async fn body_fields(req: Request, state: &AppState) -> Result<Fields, Refusal> {
    let content_type = content_type(&req);
    let bytes = read_body(req, state).await?;
    if is_json(&content_type) {
        Ok(Fields::from_json(&json_of(&bytes)?))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Ok(Fields::from_pairs(
            form_urlencoded::parse(&bytes).into_owned(),
        ))
    } else {
        Ok(Fields(HashMap::new()))
    }
}

/// The request's content type, lower-cased ("" when it has none).
fn content_type(req: &Request) -> String {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, Refusal> {
    let limit = super::limits::body_bytes_max(req.method(), super::call_path(&req));
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::Api(ServiceError::PayloadTooLarge { limit_bytes: limit })
        } else {
            Refusal::error(
                StatusCode::BAD_REQUEST,
                "The request body could not be read",
            )
        }
    })
}

/// The body as JSON; an empty body is an empty object (what the original's parser made of it).
fn json_of(bytes: &[u8]) -> Result<Value, Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|_| {
        Refusal::error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        )
    })
}

// ---- Routes --------------------------------------------------------------------------------

/// One coupon of an upload.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documents the entry; it is read field by field
pub(crate) struct OriginalUploadEntry {
    /// 1 to 64 of A-Z, a-z, 0-9, `-` and `_`; case-insensitive (stored upper-cased), unique
    /// in the upload and among stored coupons.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub coupon_code: String,
    /// FREE, STANDARD, MEGADEAL, or NONE (or absent) for an untyped coupon.
    #[schema(value_type = Option<OriginalCouponType>)]
    pub coupon_type: Option<String>,
    /// A whole number: minor units for FLAT (0 to 10^12), percent for PERCENTAGE (0 to 100).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub discount_amount: i64,
    #[schema(value_type = OriginalDiscountType)]
    pub discount_type: String,
    /// ISO 8601 with a time zone, in the future.
    #[schema(format = DateTime)]
    pub expiry_date: String,
    /// 1 to 2,147,483,647.
    #[schema(minimum = 1, maximum = 2_147_483_647_i64)]
    pub max_usages: i64,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; it is read field by field
pub(crate) struct OriginalUploadBody {
    #[schema(min_items = 1, max_items = 50_000)]
    pub coupons: Vec<OriginalUploadEntry>,
}

/// The original coupon system's upload: 1 to 50,000 coupons, all or nothing.
///
/// JSON only. A bad field, a code twice in the upload, a code already stored or an expiry in
/// the past is 422 naming each entry's field (`coupons[3].couponCode`); nothing is stored.
#[utoipa::path(post, path = "/upload", tag = "original-coupons",
    request_body = OriginalUploadBody,
    responses(
        (status = 200, description = "Every coupon stored, by its code as sent", body = UploadedCoupons),
        (status = 400, description = "The body is not JSON", body = OriginalError),
        (status = 422, description = "Bad fields, each named by its path; nothing stored", body = OriginalValidationErrors),
        (status = 503, description = "Storage unavailable (or the request timed out), with Retry-After", body = OriginalOrApiError)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<UploadedCoupons>, Refusal> {
    let content_type = content_type(&req);
    let bytes = read_body(req, &state).await?;
    let body = if is_json(&content_type) {
        json_of(&bytes)?
    } else {
        Value::Null
    };
    let coupons = match body.get("coupons") {
        Some(Value::Array(list)) if (1..=UPLOAD_MAX).contains(&list.len()) => list,
        _ => return Err(Refusal::invalid("coupons")),
    };
    let mut sent = Vec::with_capacity(coupons.len());
    let entries: Vec<Result<NewCoupon, Vec<EntryError>>> = coupons
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let entry = parse_entry(i, v);
            if entry.is_ok() {
                sent.push(
                    v.get("couponCode")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                );
            }
            entry
        })
        .collect();
    let stored = state.services.coupons.upload_and_read(entries).await?;
    Ok(Json(UploadedCoupons {
        coupons: sent
            .into_iter()
            .zip(stored)
            .map(|(code, c)| (code, c.into()))
            .collect(),
    }))
}

/// One upload entry, every field checked (so one answer names every bad field).
fn parse_entry(index: usize, v: &Value) -> Result<NewCoupon, Vec<EntryError>> {
    let mut errors = Vec::new();
    let mut bad = |field: &'static str| {
        errors.push(EntryError {
            index,
            field,
            message: INVALID_VALUE.to_owned(),
        });
    };
    if !v.is_object() {
        bad("coupon");
        return Err(errors);
    }
    let text = |field: &str| v.get(field).and_then(Value::as_str);
    let int = |field: &str| match v.get(field) {
        Some(Value::Number(n)) => whole_number(n),
        _ => None,
    };
    let code = text("couponCode").and_then(|c| UploadedCode::parse(c).ok());
    if code.is_none() {
        bad("couponCode");
    }
    let coupon_type = match v.get("couponType") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s == "NONE" => Some(None),
        Some(Value::String(s)) => CouponType::parse(s).ok().map(Some),
        Some(_) => None,
    };
    if coupon_type.is_none() {
        bad("couponType");
    }
    let kind = text("discountType").and_then(|k| DiscountKind::parse(k).ok());
    if kind.is_none() {
        bad("discountType");
    }
    let amount = int("discountAmount");
    let discount = kind.zip(amount).and_then(|(k, a)| Discount::new(k, a).ok());
    if amount.is_none() || (kind.is_some() && discount.is_none()) {
        bad("discountAmount");
    }
    let expires_at = text("expiryDate").and_then(parse_iso8601);
    if expires_at.is_none() {
        bad("expiryDate");
    }
    let max_uses = int("maxUsages").and_then(|n| MaxUses::parse(n).ok());
    if max_uses.is_none() {
        bad("maxUsages");
    }
    match (code, coupon_type, discount, expires_at, max_uses) {
        (Some(code), Some(coupon_type), Some(discount), Some(expires_at), Some(max_uses)) => {
            Ok(NewCoupon {
                code,
                coupon_type,
                discount,
                expires_at,
                max_uses,
            })
        }
        _ => Err(errors),
    }
}

/// ISO 8601 as JavaScript writes and reads it: a date and time with a time zone (RFC 3339,
/// `2027-01-01T00:00:00.000Z`), or a date alone, which JavaScript reads as midnight UTC.
fn parse_iso8601(raw: &str) -> Option<allot_domain::UnixMillis> {
    parse_rfc3339(raw).or_else(|| {
        let date = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
        (raw.len() == 10).then_some(())?;
        let at = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
        Some(allot_domain::UnixMillis::from_millis(at))
    })
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)] // documents the query; it is read field by field
pub(crate) struct RequestNewQuery {
    /// 1 to 128 characters, no white space; a customer only its own.
    #[param(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub userId: String,
    /// FREE, STANDARD, MEGADEAL or NONE (the default).
    #[param(value_type = Option<OriginalCouponType>)]
    pub couponType: Option<String>,
}

/// Hand the user a coupon of the type: the one of that type it holds unredeemed, else the
/// oldest free, unexpired one. MEGADEAL answers a tracking id at once; the request then waits
/// for admission (5 in flight, 10 a second, at most 10 s) and `/request-status` tells its
/// outcome.
#[utoipa::path(get, path = "/request-new", tag = "original-coupons",
    params(RequestNewQuery),
    responses(
        (status = 200, description = "The user's coupon, or (MEGADEAL) a tracking id", body = RequestNewAnswer),
        (status = 422, description = "`userId` or `couponType` invalid", body = OriginalValidationErrors),
        (status = 429, description = "MEGADEAL: `Too many users in the queue, try again later`, with Retry-After", body = OriginalError),
        (status = 500, description = "`No available coupon of type X` (the original's status)", body = OriginalError),
        (status = 503, description = "Storage or the MEGADEAL admission state unavailable (or the request timed out), with Retry-After", body = OriginalOrApiError)))]
pub(crate) async fn request_new(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<RequestNewAnswer>, Refusal> {
    let fields = Fields::from_query(query.as_deref());
    let mut checks = Checks::default();
    let user = checks.check("userId", fields.required("userId"));
    let coupon_type = checks.check(
        "couponType",
        match fields.optional("couponType") {
            Ok(None) | Ok(Some("NONE")) => Some(None),
            Ok(Some(t)) => CouponType::parse(t).ok().map(Some),
            Err(()) => None,
        },
    );
    let (user, coupon_type) = checks.done(user.zip(coupon_type))?;
    let user = user_of(&caller, user)?;
    let coupons = &state.services.coupons;
    if coupon_type == Some(CouponType::Megadeal) {
        let tracking_id = coupons.request_ticket(user).await?;
        return Ok(Json(RequestNewAnswer::Tracking(TrackingData {
            data: Tracking { tracking_id },
        })));
    }
    match coupons.request(user, coupon_type).await {
        Ok(allocated) => Ok(Json(RequestNewAnswer::Coupon(UserCouponData {
            data: allocated.coupon.into(),
        }))),
        Err(ServiceError::NoCouponAvailable) => Err(Refusal::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "No available coupon of type {}",
                coupon_type.map_or("NONE", CouponType::as_str)
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)] // documents the query; it is read field by field
pub(crate) struct RequestStatusQuery {
    /// The user the tracking id was made for.
    #[param(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub userId: String,
    #[param(required = true, min_length = 1)]
    pub trackingId: String,
}

/// Where a MEGADEAL request stands. A tracking id answers only the user it was made for:
/// anyone else, an unknown id and one past its 10 minutes are all `Coupon invalid`.
#[utoipa::path(get, path = "/request-status", tag = "original-coupons",
    params(RequestStatusQuery),
    responses(
        (status = 200, description = "Allocated: the user's coupon", body = RequestStatusData),
        (status = 202, description = "`Coupon not ready yet. Try again later.`", body = OriginalError),
        (status = 400, description = "`Coupon invalid`: no such tracking id for this user", body = OriginalError),
        (status = 422, description = "`userId` or `trackingId` invalid", body = OriginalValidationErrors),
        (status = 429, description = "`Rate limit reached` (not admitted within 10 s) or `Not enough coupons remaining, try again later`", body = OriginalError),
        (status = 503, description = "Storage or the MEGADEAL admission state unavailable (or the request timed out), with Retry-After", body = OriginalOrApiError)))]
pub(crate) async fn request_status(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let fields = Fields::from_query(query.as_deref());
    let mut checks = Checks::default();
    let user = checks.check("userId", fields.required("userId"));
    let tracking = checks.check("trackingId", fields.required("trackingId"));
    let (user, tracking) = checks.done(user.zip(tracking))?;
    let user = user_of(&caller, user)?;
    match state.services.coupons.ticket(tracking, &user).await? {
        TicketState::Pending => Ok(Refusal::error(StatusCode::ACCEPTED, NOT_READY).into_response()),
        TicketState::Done(coupon) => Ok(Json(RequestStatusData {
            data: AllocatedCoupon {
                coupon: coupon.into(),
            },
        })
        .into_response()),
        TicketState::Failed(TicketFailure::Busy { retry_after_secs }) => Err(Refusal::Error {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: RATE_LIMIT_REACHED.to_owned(),
            retry_after_secs: Some(retry_after_secs),
        }),
        TicketState::Failed(TicketFailure::NoCouponAvailable) => Err(Refusal::error(
            StatusCode::TOO_MANY_REQUESTS,
            NONE_REMAINING,
        )),
        TicketState::Failed(TicketFailure::Internal) => Err(Refusal::Error {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "The request failed; request a new coupon".to_owned(),
            retry_after_secs: Some(1),
        }),
    }
}

/// `{userId, couponCode}`, as JSON or a form.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documents the body; it is read field by field
pub(crate) struct OriginalRedeemBody {
    /// 1 to 128 characters, no white space; a customer only its own.
    #[schema(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$")]
    pub user_id: String,
    #[schema(min_length = 1)]
    pub coupon_code: String,
}

/// Redeem the user's coupon once: `usages` goes up by one, never past `maxUsages`, whatever the
/// concurrency.
#[utoipa::path(post, path = "/redeem", tag = "original-coupons",
    request_body(content(
        (OriginalRedeemBody = "application/json"),
        (OriginalRedeemBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Redeemed: the user's coupon as it is now", body = UserCouponData),
        (status = 400, description = "`Coupon invalid`: no such coupon of this user (or a body that is not JSON)", body = OriginalError),
        (status = 410, description = "`Coupon expired`", body = OriginalError),
        (status = 422, description = "`userId` or `couponCode` invalid", body = OriginalValidationErrors),
        (status = 429, description = "`Coupon exhausted`; or Allot's `rate_limited` (too many code uses from this client), with Retry-After", body = OriginalOrApiError),
        (status = 503, description = "Storage unavailable (or the request timed out), with Retry-After", body = OriginalOrApiError)))]
pub(crate) async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Json<UserCouponData>, Refusal> {
    let fields = body_fields(req, &state).await?;
    let (user, code) = user_and_code(&fields)?;
    let user = user_of(&caller, user)?;
    let coupon = state.services.coupons.redeem_own(code, user).await?;
    Ok(Json(UserCouponData {
        data: coupon.into(),
    }))
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)] // documents the query; it is read field by field
pub(crate) struct ValidateQuery {
    /// 1 to 128 characters, no white space; a customer only its own.
    #[param(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub userId: String,
    #[param(required = true, min_length = 1)]
    pub couponCode: String,
}

/// Check, changing nothing, that the user could redeem its coupon now.
#[utoipa::path(get, path = "/validate", tag = "original-coupons",
    params(ValidateQuery),
    responses(
        (status = 200, description = "Redeemable now: the user's coupon", body = UserCouponData),
        (status = 400, description = "`Coupon invalid`: no such coupon of this user", body = OriginalError),
        (status = 410, description = "`Coupon expired`", body = OriginalError),
        (status = 422, description = "`userId` or `couponCode` invalid", body = OriginalValidationErrors),
        (status = 429, description = "`Coupon exhausted`; or Allot's `rate_limited` (too many code uses from this client), with Retry-After", body = OriginalOrApiError),
        (status = 503, description = "Storage unavailable (or the request timed out), with Retry-After", body = OriginalOrApiError)))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<UserCouponData>, Refusal> {
    let fields = Fields::from_query(query.as_deref());
    let (user, code) = user_and_code(&fields)?;
    let user = user_of(&caller, user)?;
    let coupon = state.services.coupons.validate_own(code, &user).await?;
    Ok(Json(UserCouponData {
        data: coupon.into(),
    }))
}

fn user_and_code(fields: &Fields) -> Result<(&str, &str), Refusal> {
    let mut checks = Checks::default();
    let user = checks.check("userId", fields.required("userId"));
    let code = checks.check("couponCode", fields.required("couponCode"));
    checks.done(user.zip(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_dates_are_read() {
        let at = |s| parse_iso8601(s).map(|t| t.as_millis());
        assert_eq!(at("2027-01-01T00:00:00.000Z"), Some(1_798_761_600_000));
        assert_eq!(at("2027-01-01"), Some(1_798_761_600_000));
        assert_eq!(at("2027-01-01T01:00:00+01:00"), Some(1_798_761_600_000));
        assert_eq!(at("2027-1-1"), None);
        assert_eq!(at("tomorrow"), None);
    }

    #[test]
    fn every_bad_field_of_an_entry_is_named_by_its_path() {
        let entry = serde_json::json!({"couponCode": "a b", "couponType": "GOLD",
            "discountType": "PERCENTAGE", "discountAmount": 150, "expiryDate": "soon",
            "maxUsages": 0});
        let errors = parse_entry(3, &entry).unwrap_err();
        let paths: Vec<String> = errors.iter().map(entry_path).collect();
        assert_eq!(
            paths,
            [
                "coupons[3].couponCode",
                "coupons[3].couponType",
                "coupons[3].discountAmount",
                "coupons[3].expiryDate",
                "coupons[3].maxUsages"
            ]
        );
        let good = serde_json::json!({"couponCode": "spring-1", "discountType": "FLAT",
            "discountAmount": 20, "expiryDate": "2030-01-01T00:00:00.000Z", "maxUsages": 1});
        let coupon = parse_entry(0, &good).unwrap();
        assert_eq!(coupon.code.as_str(), "SPRING-1");
        assert_eq!(coupon.coupon_type, None);
    }

    #[test]
    fn a_name_given_twice_is_not_a_value() {
        let fields = Fields::from_query(Some("userId=a&userId=b&couponCode=X%2DY"));
        assert_eq!(fields.required("userId"), None);
        assert_eq!(fields.required("couponCode"), Some("X-Y"));
        assert_eq!(fields.optional("couponType"), Ok(None));
    }
}

//! REST for coupon management: `/api/v1/coupons`, `/api/v1/redemptions`.

use allot_domain::coupon::{CouponType, Discount, DiscountKind, MaxUses, UPLOAD_MAX, UploadedCode};
use allot_domain::user::UserId;
use allot_domain::{DomainError, UnixMillis};
use allot_storage::{Coupon, CouponCounters, NewCoupon, RedemptionFilter};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery, whole_number};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::caller::Caller;
use crate::error::EntryError;
use crate::service::coupon::{TicketFailure, TicketState};
use crate::time::parse_rfc3339;

/// 50,000 coupons of a few hundred bytes each, with room to spare.
const UPLOAD_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
const PAGE_MAX: u32 = 1_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/coupons",
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_BYTES_MAX)),
        )
        .route("/api/v1/coupons/csv", post(upload_csv))
        .route("/api/v1/coupons/requests", post(request))
        .route("/api/v1/coupons/requests/{ticket}", get(ticket))
        .route("/api/v1/coupons/stats", get(stats))
        .route("/api/v1/coupons/purge", post(purge))
        .route("/api/v1/coupons/megadeal", get(megadeal))
        .route("/api/v1/coupons/{code}", get(read))
        .route("/api/v1/coupons/{code}/validate", post(validate))
        .route("/api/v1/coupons/{code}/redeem", post(redeem))
        .route("/api/v1/redemptions", get(redemptions))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CouponView {
    pub code: String,
    /// `FREE`, `STANDARD`, `MEGADEAL`, or null for an untyped coupon.
    #[serde(rename = "type")]
    pub coupon_type: Option<&'static str>,
    /// `FLAT` or `PERCENTAGE`.
    pub discount_kind: String,
    /// Minor units for FLAT, percent 0..100 for PERCENTAGE.
    pub discount_amount: i64,
    pub expires_at: String,
    pub max_uses: u32,
    pub uses: u32,
    pub allocated_to: Option<String>,
    pub allocated_at: Option<String>,
    pub created_at: String,
}

impl From<Coupon> for CouponView {
    fn from(c: Coupon) -> Self {
        CouponView {
            code: c.code,
            coupon_type: c.coupon_type.map(CouponType::as_str),
            discount_kind: c.discount_kind,
            discount_amount: c.discount_amount,
            expires_at: rfc3339(c.expires_at),
            max_uses: c.max_uses,
            uses: c.uses,
            allocated_to: c.allocated_to,
            allocated_at: c.allocated_at.map(rfc3339),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// One coupon of an upload: `{"code", "type", "discount_kind", "discount_amount",
/// "expires_at", "max_uses"}`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct UploadBody {
    /// 1 to 50,000 coupons. Each: `code` (1 to 64 of A-Z 0-9 - _, case-insensitive), `type`
    /// (FREE, STANDARD, MEGADEAL or null), `discount_kind` (FLAT or PERCENTAGE),
    /// `discount_amount` (integer), `expires_at` (RFC 3339, in the future), `max_uses` (>= 1).
    #[schema(value_type = Vec<UploadEntry>, min_items = 1, max_items = 50_000)]
    pub coupons: Vec<Value>,
}

/// One coupon of an upload (read field by field, so every bad field of every entry is named).
/// Beyond its shape: `discount_amount` is at most 100 for PERCENTAGE, `expires_at` is in the
/// future, and codes are unique in the upload and among stored coupons.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the entry; it is read field by field
pub(crate) struct UploadEntry {
    /// 1 to 64 of A-Z, 0-9, `-` and `_` (stored upper-cased).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    /// FREE, STANDARD, MEGADEAL, or null for an untyped coupon.
    #[serde(rename = "type")]
    #[schema(value_type = Option<CouponTypeName>)]
    pub coupon_type: Option<String>,
    #[schema(value_type = DiscountKindName)]
    pub discount_kind: String,
    /// Minor units for FLAT (0 to 10^12), percent for PERCENTAGE (0 to 100).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub discount_amount: i64,
    /// RFC 3339, in the future.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// 1 to 2,147,483,647.
    #[schema(minimum = 1, maximum = 2_147_483_647_i64)]
    pub max_uses: i64,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)] // documents the names
pub(crate) enum CouponTypeName {
    FREE,
    STANDARD,
    MEGADEAL,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)] // documents the names
pub(crate) enum DiscountKindName {
    FLAT,
    PERCENTAGE,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    pub created: usize,
}

/// Upload coupons in bulk: all or nothing.
#[utoipa::path(post, path = "/api/v1/coupons", tag = "coupons",
    request_body = UploadBody,
    responses(
        (status = 201, description = "Every coupon stored", body = Created),
        (status = 400, description = "Not JSON of this shape", body = ErrorBody),
        (status = 422, description = "Bad entries, each listed in `details` by index and field; nothing stored", body = ErrorBody)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UploadBody>,
) -> Result<(StatusCode, Json<Created>), ServiceError> {
    if body.coupons.is_empty() || body.coupons.len() > UPLOAD_MAX {
        return Err(ServiceError::InvalidArgument {
            field: "coupons",
            message: format!("coupons: must hold 1 to {UPLOAD_MAX} coupons"),
        });
    }
    let entries = body
        .coupons
        .iter()
        .enumerate()
        .map(|(i, v)| parse_entry(i, v))
        .collect();
    let created = state.services.coupons.upload(entries).await?;
    Ok((StatusCode::CREATED, Json(Created { created })))
}

fn parse_entry(index: usize, v: &Value) -> Result<NewCoupon, Vec<EntryError>> {
    let mut errors = Vec::new();
    let mut bad = |e: DomainError| {
        let DomainError::Invalid { field, message } = e;
        errors.push(EntryError {
            index,
            field,
            message,
        });
    };
    let text = |field: &'static str| -> Result<&str, DomainError> {
        match v.get(field) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Err(DomainError::invalid(field, "is required")),
            Some(_) => Err(DomainError::invalid(field, "must be a string")),
        }
    };
    let int = |field: &'static str| -> Result<i64, DomainError> {
        match v.get(field) {
            Some(Value::Number(n)) => {
                whole_number(n).ok_or_else(|| DomainError::invalid(field, "must be a whole number"))
            }
            None | Some(Value::Null) => Err(DomainError::invalid(field, "is required")),
            Some(_) => Err(DomainError::invalid(field, "must be a number")),
        }
    };
    if !v.is_object() {
        bad(DomainError::invalid("coupon", "must be an object"));
        return Err(errors);
    }
    let code = text("code")
        .and_then(UploadedCode::parse)
        .map_err(&mut bad)
        .ok();
    let coupon_type = match v.get("type") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => CouponType::parse(s).map(Some).map_err(&mut bad).ok(),
        Some(_) => {
            bad(DomainError::invalid("type", "must be a string or null"));
            None
        }
    };
    let kind = text("discount_kind")
        .and_then(DiscountKind::parse)
        .map_err(&mut bad)
        .ok();
    let amount = int("discount_amount").map_err(&mut bad).ok();
    let discount = match (kind, amount) {
        (Some(k), Some(a)) => Discount::new(k, a).map_err(&mut bad).ok(),
        _ => None,
    };
    let expires_at = text("expires_at")
        .and_then(|s| {
            parse_rfc3339(s).ok_or_else(|| DomainError::invalid("expires_at", "must be RFC 3339"))
        })
        .map_err(&mut bad)
        .ok();
    let max_uses = int("max_uses")
        .and_then(MaxUses::parse)
        .map_err(&mut bad)
        .ok();
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

/// Rows stored per transaction by the CSV upload.
const CSV_CHUNK_ROWS: usize = 5_000;
/// Longest CSV line accepted.
const CSV_LINE_BYTES_MAX: usize = 4_096;
/// Most data rows one CSV upload takes: as many as one JSON upload ([`UPLOAD_MAX`]). Larger
/// sets are sent as several files.
const CSV_ROWS_MAX: usize = UPLOAD_MAX;
/// Largest CSV body, in bytes: 50,000 rows of about 330 bytes. With the rows bound it keeps one
/// upload's work and the time it holds the writer bounded.
const CSV_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest one CSV upload may take to arrive and be stored, in milliseconds: a client that
/// trickles its body does not hold a connection and a handler for ever.
const CSV_UPLOAD_TIME_MAX_MS: u64 = 120_000;
pub(crate) const CSV_COLUMNS: [&str; 6] = [
    "code",
    "type",
    "discount_kind",
    "discount_amount",
    "expires_at",
    "max_uses",
];

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CsvCreated {
    pub created: usize,
    /// Transactions of up to 5,000 rows.
    pub chunks: usize,
}

/// Upload coupons from a CSV file, streamed: at most 50,000 rows and 16 MiB, received and
/// stored within 120 s (past any of them: 422 naming `csv` and the limit).
///
/// The first line is a header naming the columns `code,type,discount_kind,discount_amount,
/// expires_at,max_uses` in any order; `type` may be empty for an untyped coupon. Rows are
/// checked with the same rules as the JSON upload and stored in chunks of 5,000, each all or
/// nothing. The first chunk with a bad row stops the upload: the answer lists its bad rows
/// (`index` counts data rows from 0 over the whole file) and says how many coupons the chunks
/// before it stored.
#[utoipa::path(post, path = "/api/v1/coupons/csv", tag = "coupons",
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 201, description = "Every row stored", body = CsvCreated),
        (status = 422, description = "Bad rows of the first bad chunk in `details`; earlier chunks stay stored", body = ErrorBody)))]
pub(crate) async fn upload_csv(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<CsvCreated>), ServiceError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut reader = CsvReader::default();
    let mut chunk: Vec<Result<NewCoupon, Vec<EntryError>>> = Vec::with_capacity(CSV_CHUNK_ROWS);
    let mut created = 0usize;
    let mut chunks = 0usize;
    let mut done = false;
    let mut received = 0usize;
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(CSV_UPLOAD_TIME_MAX_MS);
    let over = |message: String| -> ServiceError { DomainError::invalid("csv", message).into() };
    while !done {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                over(format!(
                    "not received and stored within {CSV_UPLOAD_TIME_MAX_MS} ms (the upload's \
                     time limit); {created} coupons of earlier chunks were stored"
                ))
            })?;
        match next {
            Some(Ok(bytes)) => {
                received += bytes.len();
                if received > CSV_BODY_BYTES_MAX {
                    return Err(over(format!(
                        "larger than {CSV_BODY_BYTES_MAX} bytes (the upload's size limit); \
                         {created} coupons of earlier chunks were stored"
                    )));
                }
                pending.extend_from_slice(&bytes);
            }
            Some(Err(e)) => {
                return Err(ServiceError::bad_request(
                    None,
                    format!("reading the body: {e}"),
                ));
            }
            None => {
                done = true;
                if !pending.is_empty() && pending.last() != Some(&b'\n') {
                    pending.push(b'\n');
                }
            }
        }
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + nl];
            start += nl + 1;
            let Some(row) = reader.line(line).map_err(|e| match e {
                CsvRefusal::RowsOver => over(format!(
                    "more than {CSV_ROWS_MAX} rows (the upload's row limit); send several \
                     files; {created} coupons of earlier chunks were stored"
                )),
                CsvRefusal::Refused(e) => e,
            })?
            else {
                continue;
            };
            chunk.push(row);
            if chunk.len() == CSV_CHUNK_ROWS {
                created += store_chunk(&state, &mut chunk, reader.rows, created).await?;
                chunks += 1;
            }
        }
        pending.drain(..start);
        if pending.len() > CSV_LINE_BYTES_MAX {
            return Err(ServiceError::bad_request(
                None,
                format!(
                    "row {}: longer than {CSV_LINE_BYTES_MAX} bytes",
                    reader.rows
                ),
            ));
        }
    }
    if reader.header.is_none() {
        return Err(DomainError::invalid("csv", "the header line is missing").into());
    }
    if !chunk.is_empty() {
        created += store_chunk(&state, &mut chunk, reader.rows, created).await?;
        chunks += 1;
    }
    if created == 0 {
        return Err(DomainError::invalid("csv", "holds no rows").into());
    }
    Ok((StatusCode::CREATED, Json(CsvCreated { created, chunks })))
}

/// Stores one chunk; on bad rows, re-numbers them over the whole file and says what was kept.
async fn store_chunk(
    state: &AppState,
    chunk: &mut Vec<Result<NewCoupon, Vec<EntryError>>>,
    rows_so_far: usize,
    created_before: usize,
) -> Result<usize, ServiceError> {
    let first_row = rows_so_far - chunk.len();
    match state.services.coupons.upload(std::mem::take(chunk)).await {
        Ok(n) => Ok(n),
        Err(ServiceError::InvalidEntries { mut entries }) => {
            // Rows were numbered over the file already except existing-code clashes, which the
            // service numbers within the chunk.
            for e in &mut entries {
                if e.index < first_row {
                    e.index += first_row;
                }
            }
            tracing::info!(
                op = "coupons.upload_csv",
                created_before,
                first_row,
                "stopped at a bad chunk"
            );
            Err(ServiceError::InvalidEntries { entries })
        }
        Err(e) => Err(e),
    }
}

/// The CSV upload's lines, one at a time (each without its `\n`): the header, then rows as
/// the JSON upload's entries, numbered from 0.
#[derive(Debug, Default)]
pub(crate) struct CsvReader {
    /// The column of each of [`CSV_COLUMNS`], once the header is read.
    pub(crate) header: Option<Vec<usize>>,
    /// Data rows read.
    pub(crate) rows: usize,
}

pub(crate) enum CsvRefusal {
    /// A row past [`CSV_ROWS_MAX`].
    RowsOver,
    Refused(ServiceError),
}

impl CsvReader {
    /// Reads one line: `None` for the header and blank lines, else the row as an entry.
    pub(crate) fn line(
        &mut self,
        raw: &[u8],
    ) -> Result<Option<Result<NewCoupon, Vec<EntryError>>>, CsvRefusal> {
        let rows = self.rows;
        let line = std::str::from_utf8(raw)
            .map_err(|_| {
                CsvRefusal::Refused(ServiceError::bad_request(
                    None,
                    format!("row {rows}: not UTF-8"),
                ))
            })?
            .trim_end_matches('\r');
        if line.trim().is_empty() {
            return Ok(None);
        }
        let Some(columns) = &self.header else {
            self.header = Some(csv_header(line).map_err(CsvRefusal::Refused)?);
            return Ok(None);
        };
        if rows == CSV_ROWS_MAX {
            return Err(CsvRefusal::RowsOver);
        }
        self.rows += 1;
        Ok(Some(parse_entry(rows, &csv_row(columns, line))))
    }
}

fn csv_header(line: &str) -> Result<Vec<usize>, ServiceError> {
    let names: Vec<&str> = line.split(',').map(str::trim).collect();
    CSV_COLUMNS
        .iter()
        .map(|c| {
            names.iter().position(|n| n == c).ok_or_else(|| {
                DomainError::invalid(
                    "csv",
                    format!(
                        "the header must name the columns {}; {c} is missing",
                        CSV_COLUMNS.join(",")
                    ),
                )
                .into()
            })
        })
        .collect()
}

/// One CSV row as the JSON object the JSON upload takes, so both share their checks.
fn csv_row(columns: &[usize], line: &str) -> Value {
    let cells: Vec<&str> = line.split(',').map(str::trim).collect();
    let cell = |i: usize| cells.get(columns[i]).copied().unwrap_or("");
    let number = |raw: &str| match raw.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) if raw.is_empty() => Value::Null,
        Err(_) => Value::from(raw),
    };
    let text = |raw: &str| {
        if raw.is_empty() {
            Value::Null
        } else {
            Value::from(raw)
        }
    };
    serde_json::json!({
        "code": text(cell(0)),
        "type": text(cell(1)),
        "discount_kind": text(cell(2)),
        "discount_amount": number(cell(3)),
        "expires_at": text(cell(4)),
        "max_uses": number(cell(5)),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RequestBody {
    /// 1 to 128 characters, no white space; a customer may leave it out (itself).
    #[schema(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub user_id: Option<String>,
    /// FREE, STANDARD, MEGADEAL, or null/absent for an untyped coupon.
    #[serde(rename = "type")]
    #[schema(value_type = Option<CouponTypeName>)]
    pub coupon_type: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestQuery {
    /// MEGADEAL only: `false` answers 202 with a ticket at once instead of waiting.
    pub wait: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AllocatedView {
    pub coupon: CouponView,
    /// True when the user already held this unredeemed coupon of the type.
    pub held: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TicketView {
    pub ticket: String,
    /// `pending` or `done`; failures answer their error instead.
    pub status: &'static str,
    pub coupon: Option<CouponView>,
}

/// Request a coupon for a user, optionally of a type.
#[utoipa::path(post, path = "/api/v1/coupons/requests", tag = "coupons",
    request_body = RequestBody, params(RequestQuery),
    responses(
        (status = 200, description = "A coupon for the user", body = AllocatedView),
        (status = 202, description = "MEGADEAL with wait=false: a ticket to poll", body = TicketView),
        (status = 409, description = "`no_coupon_available`", body = ErrorBody),
        (status = 422, description = "A bad field", body = ErrorBody),
        (status = 429, description = "`megadeal_busy`, with Retry-After", body = ErrorBody)))]
pub(crate) async fn request(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RequestQuery>,
    ApiJson(body): ApiJson<RequestBody>,
) -> Result<Response, ServiceError> {
    let user = user_id(
        caller
            .user_field(body.user_id.as_deref(), "user_id")?
            .as_deref(),
    )?;
    let coupon_type = body
        .coupon_type
        .as_deref()
        .map(CouponType::parse)
        .transpose()?;
    if coupon_type == Some(CouponType::Megadeal) && query.wait == Some(false) {
        let ticket = state.services.coupons.request_ticket(user).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(TicketView {
                ticket,
                status: "pending",
                coupon: None,
            }),
        )
            .into_response());
    }
    let allocated = state.services.coupons.request(user, coupon_type).await?;
    Ok(Json(AllocatedView {
        coupon: allocated.coupon.into(),
        held: allocated.held,
    })
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// 1 to 128 characters, no white space; a customer may leave it out (itself).
    #[param(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub user_id: Option<String>,
}

/// Poll a MEGADEAL ticket; only its own user may read it.
#[utoipa::path(get, path = "/api/v1/coupons/requests/{ticket}", tag = "coupons",
    params(("ticket" = String, Path), UserQuery),
    responses(
        (status = 200, description = "`pending`, or `done` with the coupon", body = TicketView),
        (status = 404, description = "No such ticket for this user", body = ErrorBody),
        (status = 409, description = "`no_coupon_available`", body = ErrorBody),
        (status = 429, description = "`megadeal_busy`: not admitted within the wait limit", body = ErrorBody)))]
pub(crate) async fn ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket): Path<String>,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<Json<TicketView>, ServiceError> {
    let user = user_id(
        caller
            .user_field(query.user_id.as_deref(), "user_id")?
            .as_deref(),
    )?;
    match state.services.coupons.ticket(&ticket, &user).await? {
        TicketState::Pending => Ok(Json(TicketView {
            ticket,
            status: "pending",
            coupon: None,
        })),
        TicketState::Done(c) => Ok(Json(TicketView {
            ticket,
            status: "done",
            coupon: Some(c.into()),
        })),
        TicketState::Failed(TicketFailure::Busy { retry_after_secs }) => {
            Err(ServiceError::MegadealBusy { retry_after_secs })
        }
        TicketState::Failed(TicketFailure::NoCouponAvailable) => {
            Err(ServiceError::NoCouponAvailable)
        }
        TicketState::Failed(TicketFailure::Internal) => Err(ServiceError::Unavailable(
            allot_storage::StorageError::Busy("the request failed; ask again".to_owned()),
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct UserBody {
    /// 1 to 128 characters, no white space; a customer may leave it out (itself).
    #[schema(
        required = true,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CouponAnswer {
    pub coupon: CouponView,
}

/// Check, changing nothing, that the user could redeem the coupon now.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/validate", tag = "coupons",
    params(("code" = String, Path)), request_body = UserBody,
    responses(
        (status = 200, description = "Redeemable now", body = CouponAnswer),
        (status = 403, description = "`not_owner`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`exhausted`, or `coupon_bound`: bound to a promotion, used through its holds only", body = ErrorBody),
        (status = 410, description = "`expired`", body = ErrorBody)))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Json<CouponAnswer>, ServiceError> {
    let user = user_id(
        caller
            .user_field(body.user_id.as_deref(), "user_id")?
            .as_deref(),
    )?;
    let coupon = state.services.coupons.validate(&code, &user).await?;
    Ok(Json(CouponAnswer {
        coupon: coupon.into(),
    }))
}

/// Redeem the coupon once, for the user. With an `Idempotency-Key` header, the redemption keeps
/// the key in its own transaction: a retry answers the coupon as it is now, marked
/// `Idempotent-Replayed: true`, and spends no second use, even after a crash between the commit
/// and the answer.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/redeem", tag = "coupons",
    params(("code" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$", description = "1 to 128 characters, no white space; a retry with the same key for the same coupon spends nothing and answers the coupon (keys are the caller's own)")),
    request_body = UserBody,
    responses(
        (status = 200, description = "Redeemed (or, `Idempotent-Replayed: true`, redeemed by an earlier request with the same Idempotency-Key); the coupon as it is now", body = CouponAnswer),
        (status = 403, description = "`not_owner`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`exhausted`, or `coupon_bound`: bound to a promotion, used through its holds only", body = ErrorBody),
        (status = 410, description = "`expired`", body = ErrorBody)))]
pub(crate) async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Response, ServiceError> {
    let user = user_id(
        caller
            .user_field(body.user_id.as_deref(), "user_id")?
            .as_deref(),
    )?;
    let key = super::idempotency::key_of(&headers)?;
    let (coupon, replayed) = state.services.coupons.redeem(&code, user, key).await?;
    let answer = Json(CouponAnswer {
        coupon: coupon.into(),
    });
    Ok(if replayed {
        (
            [(
                super::idempotency::REPLAYED,
                HeaderValue::from_static("true"),
            )],
            answer,
        )
            .into_response()
    } else {
        answer.into_response()
    })
}

/// Read a coupon.
#[utoipa::path(get, path = "/api/v1/coupons/{code}", tag = "coupons",
    params(("code" = String, Path)),
    responses(
        (status = 200, description = "The coupon", body = CouponView),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<CouponView>, ServiceError> {
    Ok(Json(state.services.coupons.get(&code).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RedemptionQuery {
    /// 1 to 128 characters, no white space.
    #[param(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$")]
    pub user_id: Option<String>,
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub code: Option<String>,
    /// FREE, STANDARD, MEGADEAL, or NONE for untyped coupons.
    #[serde(rename = "type")]
    #[param(pattern = "^(FREE|STANDARD|MEGADEAL|NONE)$")]
    pub coupon_type: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Records after this id (from `next_after`).
    pub after: Option<i64>,
    /// 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RedemptionView {
    pub id: i64,
    pub code: String,
    #[serde(rename = "type")]
    pub coupon_type: Option<&'static str>,
    pub user_id: String,
    pub redeemed_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RedemptionPage {
    pub redemptions: Vec<RedemptionView>,
    pub next_after: Option<i64>,
}

/// The record of every use, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/redemptions", tag = "coupons",
    params(RedemptionQuery),
    responses(
        (status = 200, description = "A page of redemptions, oldest first", body = RedemptionPage),
        (status = 422, description = "A bad filter", body = ErrorBody)))]
pub(crate) async fn redemptions(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RedemptionQuery>,
) -> Result<Json<RedemptionPage>, ServiceError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(DomainError::invalid("limit", format!("must be 1 to {PAGE_MAX}")).into());
    }
    let time = |field: &'static str,
                raw: Option<&str>|
     -> Result<Option<UnixMillis>, DomainError> {
        raw.map(|s| parse_rfc3339(s).ok_or_else(|| DomainError::invalid(field, "must be RFC 3339")))
            .transpose()
    };
    // Parsed like the stored values they are compared with: a filter no coupon or user could
    // match (white space, control characters) is refused, not sent to storage.
    let filter = RedemptionFilter {
        user_id: q
            .user_id
            .as_deref()
            .map(|u| UserId::parse(u).map(|u| u.as_str().to_owned()))
            .transpose()?,
        code: q
            .code
            .as_deref()
            .map(|c| UploadedCode::parse(c).map(|c| c.as_str().to_owned()))
            .transpose()?,
        coupon_type: match q.coupon_type.as_deref() {
            None => None,
            Some("NONE") => Some(None),
            Some(t) => Some(Some(CouponType::parse(t)?)),
        },
        from: time("from", q.from.as_deref())?,
        until: time("until", q.until.as_deref())?,
        after_id: q.after.unwrap_or(0),
        limit,
    };
    let page = state.services.coupons.redemptions(filter).await?;
    let next_after = (page.len() == limit as usize)
        .then(|| page.last().map(|r| r.id))
        .flatten();
    Ok(Json(RedemptionPage {
        redemptions: page
            .into_iter()
            .map(|r| RedemptionView {
                id: r.id,
                code: r.code,
                coupon_type: r.coupon_type.map(CouponType::as_str),
                user_id: r.user_id,
                redeemed_at: rfc3339(r.redeemed_at),
            })
            .collect(),
        next_after,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CountersView {
    /// FREE, STANDARD, MEGADEAL, or null for untyped coupons.
    #[serde(rename = "type")]
    pub coupon_type: Option<&'static str>,
    /// Coupons ever uploaded.
    pub created: i64,
    /// Allocations ever made.
    pub allocated: i64,
    /// Uses (redemptions) ever made.
    pub redeemed: i64,
    /// Stored coupons past their expiry now.
    pub expired: i64,
    /// Unused expired coupons deleted by purges.
    pub purged: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stats {
    pub types: Vec<CountersView>,
}

/// Counters per type, exact: each changes in the transaction of what it counts.
#[utoipa::path(get, path = "/api/v1/coupons/stats", tag = "coupons",
    responses((status = 200, description = "Counters per type", body = Stats)))]
pub(crate) async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ServiceError> {
    let counters = state.services.coupons.counters().await?;
    Ok(Json(Stats {
        types: counters
            .into_iter()
            .map(|c: CouponCounters| CountersView {
                coupon_type: c.coupon_type.map(CouponType::as_str),
                created: c.created,
                allocated: c.allocated,
                redeemed: c.redeemed,
                expired: c.expired,
                purged: c.purged,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Purged {
    pub purged: i64,
}

/// Delete unused expired coupons now (the background job does it on its interval too).
#[utoipa::path(post, path = "/api/v1/coupons/purge", tag = "coupons",
    responses((status = 200, description = "How many were deleted", body = Purged)))]
pub(crate) async fn purge(State(state): State<AppState>) -> Result<Json<Purged>, ServiceError> {
    let purged = state.services.coupons.purge("admin").await?;
    Ok(Json(Purged { purged }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MegadealStatus {
    /// Served now; with a shared Redis, across all instances.
    pub in_flight: usize,
    /// Most requests ever served at once since start (with Redis: across all instances,
    /// since the Redis data began).
    pub peak_in_flight: usize,
    /// Waiting in this instance's queue.
    pub queued: usize,
    pub in_flight_max: usize,
    pub per_second_max: usize,
    pub wait_max_ms: u64,
}

/// MEGADEAL admission: what is being served and queued now, and the limits.
#[utoipa::path(get, path = "/api/v1/coupons/megadeal", tag = "coupons",
    responses(
        (status = 200, description = "Admission status", body = MegadealStatus),
        (status = 503, description = "`megadeal_unavailable`: the shared admission state (Redis) is unreachable", body = ErrorBody)))]
pub(crate) async fn megadeal(
    State(state): State<AppState>,
) -> Result<Json<MegadealStatus>, ServiceError> {
    let (status, limits) = state.services.coupons.megadeal_status().await?;
    Ok(Json(MegadealStatus {
        in_flight: status.in_flight,
        peak_in_flight: status.peak_in_flight,
        queued: status.queued,
        in_flight_max: limits.in_flight_max,
        per_second_max: limits.per_second_max,
        wait_max_ms: limits.wait_max.as_millis() as u64,
    }))
}

fn user_id(raw: Option<&str>) -> Result<UserId, DomainError> {
    UserId::parse(raw.ok_or_else(|| DomainError::invalid("user_id", "is required"))?)
}

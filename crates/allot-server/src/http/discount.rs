//! REST for discount codes: `/api/v1/discount-codes`.

use allot_domain::discount::UseOutcome;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiJson, whole};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::rpc::discount::GenerateCodes;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/discount-codes/batches", post(generate))
        .route("/api/v1/discount-codes/{code}", get(get_code))
        .route("/api/v1/discount-codes/{code}/use", post(use_code))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct GenerateBody {
    /// How many codes, 1 to 2000.
    #[schema(minimum = 1, maximum = 2000)]
    #[serde(default, deserialize_with = "whole")]
    pub count: Option<u64>,
    /// Symbols per code, 7 or 8.
    #[schema(minimum = 7, maximum = 8)]
    #[serde(default, deserialize_with = "whole")]
    pub length: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GeneratedCodes {
    pub count: usize,
    pub length: u8,
    /// The new codes, each unique across all time.
    pub codes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CodeUsed {
    pub code: String,
    /// Always `used`: the other outcomes are errors (404 `not_found`, 409 `already_used`).
    pub result: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CodeState {
    pub code: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub used: bool,
    /// RFC 3339, UTC; null while unused.
    pub used_at: Option<String>,
}

/// Generate a batch of new one-time codes, all or nothing. With an `Idempotency-Key` header,
/// the batch keeps the key with its codes in its own transaction: a retry answers the same
/// codes (200, `Idempotent-Replayed: true`) and makes none, even after a crash between the
/// commit and the answer.
#[utoipa::path(post, path = "/api/v1/discount-codes/batches", tag = "discount-codes",
    request_body = GenerateBody,
    params(("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$", description = "1 to 128 characters, no white space; a retry with the same key answers the first batch's codes (keys are the caller's own: another caller's same key makes its own batch)")),
    responses(
        (status = 201, description = "The codes were created and stored durably", body = GeneratedCodes),
        (status = 200, description = "A retry of an earlier request with the same Idempotency-Key: that batch's codes, nothing made (header `Idempotent-Replayed: true`)", body = GeneratedCodes),
        (status = 400, description = "The body is not valid JSON of this shape", body = ErrorBody),
        (status = 422, description = "count or length out of range, or a malformed Idempotency-Key; nothing stored", body = ErrorBody)))]
pub(crate) async fn generate(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<GenerateBody>,
) -> Result<Response, ServiceError> {
    let GenerateCodes { count, length } = GenerateCodes::parse(body.count, body.length)?;
    let key = super::idempotency::key_of(&headers)?;
    let batch = state.services.discount.generate(count, length, key).await?;
    let codes = Json(GeneratedCodes {
        count: batch.codes.len(),
        length: batch
            .codes
            .first()
            .map_or(length.get(), |c| c.as_str().len() as u8),
        codes: batch.codes.into_iter().map(|c| c.into_string()).collect(),
    });
    Ok(if batch.replayed {
        (
            StatusCode::OK,
            [(
                super::idempotency::REPLAYED,
                HeaderValue::from_static("true"),
            )],
            codes,
        )
            .into_response()
    } else {
        (StatusCode::CREATED, codes).into_response()
    })
}

/// Use a code once.
#[utoipa::path(post, path = "/api/v1/discount-codes/{code}/use", tag = "discount-codes",
    params(("code" = String, Path, description = "The code; trimmed and upper-cased")),
    responses(
        (status = 200, description = "Used now, by this request", body = CodeUsed),
        (status = 404, description = "Bad format or no such code (`not_found`)", body = ErrorBody),
        (status = 409, description = "Used earlier (`already_used`)", body = ErrorBody)))]
pub(crate) async fn use_code(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<CodeUsed>, ServiceError> {
    match state.services.discount.use_code(&code).await? {
        UseOutcome::Used => Ok(Json(CodeUsed {
            code: code.trim().to_ascii_uppercase(),
            result: "used",
        })),
        UseOutcome::Invalid => Err(ServiceError::NotFound {
            what: "discount code",
        }),
        UseOutcome::AlreadyUsed => Err(ServiceError::AlreadyUsed),
    }
}

/// Read a code's state.
#[utoipa::path(get, path = "/api/v1/discount-codes/{code}", tag = "discount-codes",
    params(("code" = String, Path, description = "The code; trimmed and upper-cased")),
    responses(
        (status = 200, description = "The code and when it was created and used", body = CodeState),
        (status = 404, description = "No such code", body = ErrorBody)))]
pub(crate) async fn get_code(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<CodeState>, ServiceError> {
    let record = state.services.discount.get(&code).await?;
    Ok(Json(CodeState {
        code: record.code.into_string(),
        created_at: rfc3339(record.created_at),
        used: record.used_at.is_some(),
        used_at: record.used_at.map(rfc3339),
    }))
}

//! The one JSON error shape of the REST API, and the one mapping from service errors to HTTP
//! status codes.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServiceError;
use crate::error::ErrorKind;

/// `{"error": {"code": "...", "message": "...", "field": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Machine-readable, stable: `invalid_argument`, `bad_request`, `not_found`,
    /// `already_used`, `not_started`, `ended`, `sold_out`, `user_limit_reached`,
    /// `unavailable`, `internal`.
    pub code: &'static str,
    /// For people; may change between releases.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<&'static str>,
}

pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::FailedPrecondition | ErrorKind::ResourceExhausted => {
            StatusCode::CONFLICT
        }
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = status_of(self.kind());
        let message = match &self {
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                self.to_string()
            }
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "storage unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field: self.field(),
            },
        };
        (status, Json(body)).into_response()
    }
}

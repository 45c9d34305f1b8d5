//! A JSON body extractor whose rejections use the API's error shape instead of plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::ServiceError;

pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = super::limits::body_bytes_max(req.method(), super::call_path(&req));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_error(rejection, limit)),
        }
    }
}

fn rejection_to_error(rejection: JsonRejection, limit: usize) -> ServiceError {
    match rejection {
        JsonRejection::BytesRejection(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            ServiceError::PayloadTooLarge { limit_bytes: limit }
        }
        JsonRejection::JsonDataError(e) => {
            // serde names the path of the bad field in its message ("count: invalid type...").
            ServiceError::bad_request(None, format!("invalid JSON body: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => ServiceError::bad_request(
            None,
            "expected a JSON body with content-type: application/json",
        ),
        other => {
            ServiceError::bad_request(None, format!("invalid JSON body: {}", other.body_text()))
        }
    }
}

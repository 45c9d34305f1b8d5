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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ServiceError {
    match rejection {
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

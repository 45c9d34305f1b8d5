//! A JSON body extractor and a query extractor whose rejections use the API's error shape
//! instead of plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
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
        if !json_content_type(req.headers()) {
            return Err(missing_json_content_type());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| rejection_to_error(JsonRejection::BytesRejection(e), limit))?;
        if holds_nul(&bytes) {
            return Err(ServiceError::InvalidArgument {
                field: "body",
                message: "body: no string may hold NUL (\\u0000)".to_owned(),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_error(rejection, limit)),
        }
    }
}

/// `application/json` or `application/<anything>+json`, as axum's `Json` takes.
fn json_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

fn missing_json_content_type() -> ServiceError {
    ServiceError::bad_request(
        None,
        "expected a JSON body with content-type: application/json",
    )
}

/// Whether a JSON text holds the escape `\u0000` (a NUL character in a string; a raw NUL byte
/// is not JSON at all). No text of the API means NUL, and PostgreSQL's text cannot hold it, so
/// it is refused at the edge on every backend alike.
fn holds_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"\\u0000")
            && json[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
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
        JsonRejection::MissingJsonContentType(_) => missing_json_content_type(),
        other => {
            ServiceError::bad_request(None, format!("invalid JSON body: {}", other.body_text()))
        }
    }
}

/// A typed query string: a parameter that does not parse is 422 `invalid_argument` naming it
/// (axum's `Query` answers a plain-text 400 that names nothing).
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                // "Failed to deserialize query string: limit: invalid digit found in string"
                let text = rejection.body_text();
                let detail = text.split_once(": ").map_or(text.as_str(), |(_, d)| d);
                let name = detail.split_once(':').map_or("", |(n, _)| n.trim());
                Err(ServiceError::InvalidArgument {
                    field: query_field(name),
                    message: detail.to_owned(),
                })
            }
        }
    }
}

/// The error's `field` is `&'static`: the parameter's name when it is one of the API's query
/// parameters, else `query`.
fn query_field(name: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "after", "limit", "cursor", "user_id", "code", "type", "from", "until", "wait",
    ];
    NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .unwrap_or("query")
}

/// The largest magnitude up to which every whole `f64` is exactly one integer (2^53).
const WHOLE_FLOAT_MAX: f64 = 9_007_199_254_740_992.0;

/// An integer of a JSON body. JSON has one number type and JSON Schema counts `3.0` as the
/// integer 3, so a client (or a generator) that writes whole numbers with a fraction part is
/// understood; `3.5` is not an integer.
pub(crate) fn whole_number(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= WHOLE_FLOAT_MAX)
            .map(|f| f as i64)
    })
}

/// `#[serde(default, deserialize_with = "whole")]` for an optional integer field of a typed
/// body: [`whole_number`], then the field's own type (out of its range is an error).
pub(crate) fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize;
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => whole_number(&n)
            .and_then(|i| T::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid value: {n}, expected an integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "invalid type: {other}, expected an integer"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(holds_nul(br#"{"a": "x\u0000"}"#));
        assert!(holds_nul(br#"{"a": "\\\u0000"}"#));
        assert!(!holds_nul(br#"{"a": "\\u0000"}"#));
        assert!(holds_nul(br#"["\u00001"]"#));
        assert!(json_content_type(&{
            let mut h = http::HeaderMap::new();
            h.insert(
                "content-type",
                "application/problem+json; charset=utf-8".parse().unwrap(),
            );
            h
        }));
    }
}

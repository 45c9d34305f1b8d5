//! The REST edge's extractors and refusals: typed JSON bodies, typed query strings and path
//! ids, each refused in the API's error shape (never axum's plain text), and the integer
//! forms JSON allows.

use allot_domain::DomainError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::InvalidField;
use crate::ServiceError;

/// A typed JSON body: the struct the handler reads is the one the OpenAPI document describes.
/// A body that is not JSON is 400 `bad_request`; a field that does not fit its type (missing,
/// of another JSON type, out of range) is 422 `invalid_argument` naming it by its path in the
/// body (`price.amount_minor`; list indices left out: `lines.quantity`), like a value a domain
/// type refuses after; an unknown field, where the body refuses them, is 400.
pub(crate) struct ApiJson<T>(pub T);

/// Why [`ApiJson`] or [`ApiQuery`] refused a request: a service error (not JSON, too large),
/// or a field named by its path.
pub(crate) enum Refusal {
    Service(ServiceError),
    Field(InvalidField),
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        Refusal::Service(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Service(e) => e.into_response(),
            Refusal::Field(e) => e.into_response(),
        }
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = super::limits::body_bytes_max(req.method(), super::call_path(&req));
        if !json_content_type(req.headers()) {
            return Err(missing_json_content_type().into());
        }
        let bytes = body_bytes(req, state, limit).await?;
        an_object(&bytes)?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out (a campaign code's issue): none, only white space, or
/// `null` is `T::default()`; any other is read as [`ApiJson`] reads one (a field that does not
/// fit is 422 naming it). No content type is asked for, since callers that send no body send
/// none.
pub(crate) struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = super::limits::body_bytes_max(req.method(), super::call_path(&req));
        let bytes = body_bytes(req, state, limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if bytes.trim_ascii() != b"null" {
            an_object(&bytes)?;
        }
        parse_body::<Option<T>>(&bytes).map(|body| OptionalJson(body.unwrap_or_default()))
    }
}

/// The request's body within its route's limit, holding no NUL.
async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
    limit: usize,
) -> Result<axum::body::Bytes, Refusal> {
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ServiceError::PayloadTooLarge { limit_bytes: limit }
            } else {
                ServiceError::bad_request(None, format!("invalid body: {}", e.body_text()))
            }
        })?;
    if holds_nul(&bytes) {
        return Err(ServiceError::InvalidArgument {
            field: "body",
            message: "body: no string may hold NUL (\\u0000)".to_owned(),
        }
        .into());
    }
    Ok(bytes)
}

/// Every request body of the API is a JSON object. serde would also read a struct from a JSON
/// array (its fields by position), so a body whose every field may be left out (a webhook's
/// PATCH) took `[]` as "change nothing": the contract fuzzer found it. Anything but an object
/// is 422 naming the body; text that is not JSON at all is left to the parser's 400.
fn an_object(bytes: &[u8]) -> Result<(), Refusal> {
    match bytes.trim_ascii_start().first() {
        Some(b'{') | None => Ok(()),
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            Err(ServiceError::InvalidArgument {
                field: "body",
                message: "body: must be a JSON object".to_owned(),
            }
            .into())
        }
        Some(_) => Ok(()),
    }
}

/// Deserializes a JSON body into `T`, refusing it as [`ApiJson`] does.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut json).map_err(refusal)?;
    json.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

fn not_json(e: &serde_json::Error) -> Refusal {
    ServiceError::bad_request(None, format!("invalid JSON body: {e}")).into()
}

fn refusal(e: serde_path_to_error::Error<serde_json::Error>) -> Refusal {
    let inner = e.inner();
    if inner.classify() != serde_json::error::Category::Data {
        return not_json(inner);
    }
    // serde's message without serde_json's position: the path says where.
    let text = inner.to_string();
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    field_refusal(
        e.path(),
        text.strip_suffix(&position).unwrap_or(&text),
        "body",
    )
}

/// A value serde refused at `path`: 422 naming the field (`whole`, `body` or `query`, when the
/// path is empty), or 400 for a field the type does not know (where it refuses those).
fn field_refusal(path: &serde_path_to_error::Path, message: &str, whole: &str) -> Refusal {
    if message.starts_with("unknown field `") {
        return ServiceError::bad_request(None, message.to_owned()).into();
    }
    let mut field = field_path(path);
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let message = match missing {
        Some(name) => {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(name);
            "is required"
        }
        None => message,
    };
    if field.is_empty() {
        field.push_str(whole);
    }
    Refusal::Field(InvalidField {
        message: format!("{field}: {message}"),
        field,
    })
}

/// `price.amount_minor`, `lines.quantity`: the names of a path, without list indices (every
/// entry of a list has the same fields, and the error names a field, not a value).
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut field = String::new();
    for segment in path.iter() {
        let name = match segment {
            Segment::Map { key } => key.as_str(),
            Segment::Enum { variant } => variant.as_str(),
            Segment::Seq { .. } | Segment::Unknown => continue,
        };
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(name);
    }
    field
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

/// An id in a path (`/api/v1/products/{id}`): a positive integer that names a `T`. Anything
/// else cannot name one, so it is 404 `not_found` like an id that names nothing, on every
/// route alike.
pub(crate) struct PathId<T>(pub T);

/// What a path id names.
pub(crate) trait Resource: Sized {
    /// The noun of its 404 (`product not found`).
    const WHAT: &'static str;
    fn from_id(id: i64) -> Option<Self>;
}

impl<S, T> FromRequestParts<S> for PathId<T>
where
    T: Resource,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let not_found = ServiceError::NotFound { what: T::WHAT };
        let Ok(axum::extract::Path(raw)) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await
        else {
            return Err(not_found);
        };
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id >= 1)
            .and_then(T::from_id)
            .map(PathId)
            .ok_or(not_found)
    }
}

macro_rules! resources {
    ($($id:ty => $what:literal),* $(,)?) => {$(
        impl Resource for $id {
            const WHAT: &'static str = $what;
            fn from_id(id: i64) -> Option<Self> {
                <$id>::parse(id).ok()
            }
        }
    )*};
}

resources!(
    allot_domain::catalog::ProductId => "product",
    allot_domain::catalog::CategoryId => "category",
    allot_domain::catalog::WarehouseId => "warehouse",
    allot_domain::inventory::ReservationId => "reservation",
    allot_domain::campaign::CampaignId => "campaign",
    allot_domain::promotion::PromotionId => "promotion",
);

macro_rules! plain_ids {
    ($($(#[$doc:meta])* $name:ident => $what:literal),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct $name(pub i64);

        impl Resource for $name {
            const WHAT: &'static str = $what;
            fn from_id(id: i64) -> Option<Self> {
                Some($name(id))
            }
        }
    )*};
}

plain_ids!(
    /// An order's id: positive; storage says whether it names one.
    OrderId => "order",
    /// A flash sale's id.
    SaleId => "sale",
    /// A webhook endpoint's id.
    WebhookId => "webhook",
    /// A notification's id.
    NotificationId => "notification",
    /// A user's (account's) id.
    AccountPathId => "user",
    /// An API key's id.
    ApiKeyId => "api key",
    /// A promotion hold's id.
    HoldId => "hold",
    /// A return's id.
    ReturnId => "return",
);

/// A positive id of a body or query, parsed by `parse`, its refusal naming the request's
/// field (domain ids name their own, `id`).
pub(crate) fn field_id<T>(
    raw: i64,
    field: &'static str,
    parse: fn(i64) -> Result<T, DomainError>,
) -> Result<T, DomainError> {
    parse(raw).map_err(|_| DomainError::invalid(field, "must be a positive integer"))
}

/// A domain error renamed to the request's field.
pub(crate) fn named(field: &'static str) -> impl Fn(DomainError) -> DomainError {
    move |e| match e {
        DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
    }
}

/// 422 `invalid_argument` naming `field`: `"{field}: {message}"`.
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    DomainError::invalid(field, message).into()
}

/// A typed query string: a parameter that does not parse is 422 `invalid_argument` naming it,
/// as a body's field is (axum's `Query` answers a plain-text 400 that names nothing).
/// Parameters the type does not name are ignored.
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(pairs)
            .map(ApiQuery)
            .map_err(|e| field_refusal(e.path(), &e.inner().to_string(), "query"))
    }
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

/// `#[serde(deserialize_with = "whole_required")]` for a required integer field: [`whole`]
/// without the option.
pub(crate) fn whole_required<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    whole(deserializer)?.ok_or_else(|| {
        serde::de::Error::custom("invalid type: null, expected an integer".to_owned())
    })
}

/// `#[serde(default, deserialize_with = "present")]` for a field of a change where absent and
/// `null` differ: absent is `None` (leave it), present is `Some` of the value (`null`
/// included, when `T` takes it).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Body {
        name: String,
        lines: Vec<Line>,
        #[serde(default, deserialize_with = "whole")]
        limit: Option<u32>,
    }

    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "whole_required")]
        quantity: i64,
    }

    fn field_of(json: &str) -> Option<(String, String)> {
        match parse_body::<Body>(json.as_bytes()) {
            Err(Refusal::Field(f)) => Some((f.field, f.message)),
            _ => None,
        }
    }

    #[test]
    fn a_field_that_does_not_fit_is_named_by_its_path_without_indices() {
        let named = |json: &str| field_of(json).map(|(f, _)| f);
        assert_eq!(named(r#"{"lines": []}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "lines": [{"quantity": 1}, {}]}"#),
            Some((
                "lines.quantity".into(),
                "lines.quantity: is required".into()
            ))
        );
        assert_eq!(
            named(r#"{"name": "a", "lines": [{"quantity": 1.5}]}"#).as_deref(),
            Some("lines.quantity")
        );
        assert_eq!(
            named(r#"{"name": 1, "lines": []}"#).as_deref(),
            Some("name")
        );
        assert_eq!(named("[1, 2]").as_deref(), Some("body"));
        for body in ["[]", " [1]", "\"a\"", "1", "true", "null"] {
            assert!(
                matches!(
                    an_object(body.as_bytes()),
                    Err(Refusal::Service(ServiceError::InvalidArgument {
                        field: "body",
                        ..
                    }))
                ),
                "{body} is not an object"
            );
        }
        assert!(an_object(b" {}").is_ok() && an_object(b"{not json").is_ok());
        assert_eq!(
            named(r#"{"name": "a", "lines": [], "limit": -1}"#).as_deref(),
            Some("limit")
        );
        let body =
            parse_body::<Body>(br#"{"name": "a", "lines": [{"quantity": 2.0}], "limit": 3}"#)
                .ok()
                .expect("whole numbers with a fraction part are integers");
        assert_eq!(
            (body.name.as_str(), body.lines[0].quantity, body.limit),
            ("a", 2, Some(3))
        );
        assert!(matches!(
            parse_body::<Body>(b"{not json"),
            Err(Refusal::Service(ServiceError::BadRequest { .. }))
        ));
        assert!(matches!(
            parse_body::<Body>(br#"{"name": "a", "lines": []} x"#),
            Err(Refusal::Service(ServiceError::BadRequest { .. }))
        ));
    }

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

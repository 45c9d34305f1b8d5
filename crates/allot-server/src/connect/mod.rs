//! The Connect protocol, unary calls (connectrpc.com/docs/protocol): `POST /pkg.Service/Method`
//! with `application/json` (protobuf JSON mapping) or `application/proto` (binary protobuf),
//! over HTTP/1.1 or HTTP/2. gRPC requests to the same paths (`application/grpc*`) pass through
//! to tonic, so one path serves both protocols.

mod couponpb_json;

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use serde::Serialize;

use crate::ServiceError;
use crate::error::ErrorKind;
use crate::grpc::is_grpc;
use crate::rpc::couponpb as rpc;
use crate::service::Services;

/// Largest Connect request body accepted.
const REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;
const COUPON_SERVICE: &str = "/couponpb.CouponService/";

/// A protobuf message that also has its protobuf-JSON form.
pub(crate) trait ConnectMessage: prost::Message + Default + Sized {
    fn from_json(bytes: &[u8]) -> Result<Self, String>;
    fn to_json(&self) -> Vec<u8>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
}

impl Codec {
    fn from_headers(headers: &HeaderMap) -> Option<Codec> {
        let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = ct.split(';').next()?.trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(Codec::Json)
        } else if media.eq_ignore_ascii_case("application/proto") {
            Some(Codec::Proto)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }
}

/// Middleware: serves Connect calls to Allot's Connect services, passes everything else on.
pub(crate) async fn dispatch(
    State(services): State<Services>,
    req: Request,
    next: Next,
) -> Response {
    let Some(method) = req.uri().path().strip_prefix(COUPON_SERVICE) else {
        return next.run(req).await;
    };
    if is_grpc(req.headers()) {
        return next.run(req).await;
    }
    let method = method.to_owned();
    if req.method() != Method::POST {
        return ConnectError::new("unimplemented", "Connect unary calls use POST")
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
            .into_response();
    }
    let Some(codec) = Codec::from_headers(req.headers()) else {
        return ConnectError::new(
            "unknown",
            "content-type must be application/json or application/proto",
        )
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .into_response();
    };
    if let Some(v) = req.headers().get("connect-protocol-version")
        && v.as_bytes() != b"1"
    {
        return ConnectError::new("invalid_argument", "connect-protocol-version must be 1")
            .into_response();
    }
    if let Some(enc) = req.headers().get(header::CONTENT_ENCODING)
        && enc.as_bytes() != b"identity"
    {
        return ConnectError::new("unimplemented", "request compression is not supported")
            .into_response();
    }
    let caller = crate::caller::Caller::from_extensions(req.extensions());
    let timeout = req
        .headers()
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let body = match axum::body::to_bytes(req.into_body(), REQUEST_BYTES_MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ConnectError::new("invalid_argument", format!("reading the body: {e}"))
                .into_response();
        }
    };
    let call = async {
        match method.as_str() {
            "CreateCampaign" => unary(codec, &body, |m| rpc::create_campaign(&services, m)).await,
            "GetCampaign" => unary(codec, &body, |m| rpc::get_campaign(&services, caller, m)).await,
            "IssueCoupon" => unary(codec, &body, |m| rpc::issue_coupon(&services, caller, m)).await,
            _ => Err(ConnectError::new(
                "unimplemented",
                format!("couponpb.CouponService has no method {method}"),
            )
            .with_status(StatusCode::NOT_FOUND)),
        }
    };
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, call).await.unwrap_or_else(|_| {
            Err(ConnectError::new(
                "deadline_exceeded",
                "the call's deadline passed",
            ))
        }),
        None => call.await,
    };
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Whether `path` is one of the Connect services' (gRPC requests share it).
pub(crate) fn is_connect_path(path: &str) -> bool {
    path.starts_with(COUPON_SERVICE)
}

async fn unary<Req, Resp, F, Fut>(
    codec: Codec,
    body: &Bytes,
    f: F,
) -> Result<Response, ConnectError>
where
    Req: ConnectMessage,
    Resp: ConnectMessage,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, ServiceError>>,
{
    let request = match codec {
        Codec::Json if body.is_empty() => Req::default(),
        Codec::Json => Req::from_json(body)
            .map_err(|e| ConnectError::new("invalid_argument", format!("invalid JSON: {e}")))?,
        Codec::Proto => Req::decode(body.as_ref())
            .map_err(|e| ConnectError::new("invalid_argument", format!("invalid protobuf: {e}")))?,
    };
    let response = f(request).await.map_err(ConnectError::from)?;
    let bytes = match codec {
        Codec::Json => response.to_json(),
        Codec::Proto => response.encode_to_vec(),
    };
    Ok((
        [(header::CONTENT_TYPE, codec.content_type())],
        Body::from(bytes),
    )
        .into_response())
}

/// A Connect error: `{"code": "...", "message": "..."}` with the code's HTTP status.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectError {
    code: &'static str,
    message: String,
    #[serde(skip)]
    status: Option<StatusCode>,
}

impl ConnectError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        ConnectError {
            code,
            message: message.into(),
            status: None,
        }
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }
}

/// The one mapping from service errors to Connect codes.
impl From<ServiceError> for ConnectError {
    fn from(e: ServiceError) -> Self {
        let code = match e.kind() {
            ErrorKind::InvalidArgument | ErrorKind::BadRequest => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::ResourceExhausted | ErrorKind::RateLimited => "resource_exhausted",
            ErrorKind::Gone => "failed_precondition",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::PayloadTooLarge => "resource_exhausted",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Internal => "internal",
        };
        match &e {
            ServiceError::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "storage unavailable")
            }
            _ => {}
        }
        ConnectError::new(code, e.to_string())
    }
}

/// HTTP status of each Connect code, as the protocol specifies.
fn http_status(code: &str) -> StatusCode {
    match code {
        "canceled" => StatusCode::from_u16(499).expect("valid status"),
        "invalid_argument" | "failed_precondition" | "out_of_range" => StatusCode::BAD_REQUEST,
        "deadline_exceeded" => StatusCode::GATEWAY_TIMEOUT,
        "not_found" => StatusCode::NOT_FOUND,
        "already_exists" | "aborted" => StatusCode::CONFLICT,
        "permission_denied" => StatusCode::FORBIDDEN,
        "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
        "unimplemented" => StatusCode::NOT_IMPLEMENTED,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| http_status(self.code));
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

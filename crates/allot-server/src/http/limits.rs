//! Limits that depend on the route (issue 13): how large a REST request's body may be, and
//! how long any request may take until its response starts. The limits at the socket
//! (connections, header read timeout) are in `crate::serve`.
//!
//! - **Body size.** Every REST request's body is held to a limit before anything reads it
//!   (the idempotency layer, which buffers a keyed request's body to hash it, included): 2
//!   MiB ([`BODY_BYTES_MAX`]), or [`UPLOAD_BODY_BYTES_MAX`] for the bulk uploads. A request
//!   whose length says more is refused at once, 413 `payload_too_large`; a body of unknown
//!   length (chunked) fails when it reaches the limit. gRPC (tonic, 4 MiB a message) and
//!   Connect (4 MiB) keep their own limits.
//! - **Request timeout.** A request not answered within the configured time (default 30 s)
//!   is answered in its protocol: REST 503 `request_timeout`, gRPC `DEADLINE_EXCEEDED`,
//!   Connect `deadline_exceeded`. The time runs until the response starts: reading the body
//!   counts (a client trickling a body is cut off), but a streamed response's body (the
//!   event stream) does not, so long-lived responses live on. A gRPC deadline shorter than
//!   the server's is kept by tonic, and a Connect timeout by its dispatcher.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

use super::auth::Protocol;
use crate::ServiceError;

/// The largest body of a REST request, but for the bulk uploads (axum's default, kept).
pub(crate) const BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// The bulk uploads: 50,000 coupons of a few hundred bytes each, with room to spare.
pub(crate) const UPLOAD_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Routes (method, template) that take [`UPLOAD_BODY_BYTES_MAX`].
const UPLOAD_ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/api/v1/coupons"),
    (Method::POST, "/api/v1/coupons/csv"),
    (Method::POST, "/upload"),
];

/// The body limit of a REST call.
pub(crate) fn body_bytes_max(method: &Method, route: &str) -> usize {
    if UPLOAD_ROUTES
        .iter()
        .any(|(m, r)| m == method && *r == route)
    {
        UPLOAD_BODY_BYTES_MAX
    } else {
        BODY_BYTES_MAX
    }
}

/// A REST request's body within its route's limit (called by the request context, before
/// the idempotency layer or a handler reads it): refused at once when its declared length is
/// larger; capped when its length is unknown (chunked). A body of known length within the
/// limit is left as it is (hyper holds it to that length), so most requests pay nothing.
pub(crate) fn limit_body(req: Request) -> Result<Request, ServiceError> {
    let limit = body_bytes_max(req.method(), super::call_path(&req));
    match axum::body::HttpBody::size_hint(req.body()).exact() {
        Some(n) if n <= limit as u64 => Ok(req),
        Some(_) => Err(ServiceError::PayloadTooLarge { limit_bytes: limit }),
        None => Ok(req.map(|body| Body::new(http_body_util::Limited::new(body, limit)))),
    }
}

/// The error of a body that could not be read: 413 when it passed its limit (`limit`), else
/// 400.
pub(crate) fn body_error(e: &(dyn std::error::Error + 'static), limit: usize) -> ServiceError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ServiceError::PayloadTooLarge { limit_bytes: limit };
        }
        cause = c.source();
    }
    ServiceError::bad_request(None, format!("request body: {e}"))
}

/// Runs `req` through `next` within the request timeout; past it, answers in the request's
/// protocol.
pub(crate) async fn within(timeout: Duration, req: Request, next: Next) -> Response {
    let protocol = Protocol::of(&req);
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => protocol.refuse(ServiceError::RequestTimeout {
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_take_more_than_other_routes() {
        assert_eq!(
            body_bytes_max(&Method::POST, "/api/v1/coupons"),
            UPLOAD_BODY_BYTES_MAX
        );
        assert_eq!(
            body_bytes_max(&Method::POST, "/api/v1/coupons/csv"),
            UPLOAD_BODY_BYTES_MAX
        );
        assert_eq!(
            body_bytes_max(&Method::POST, "/api/v1/orders"),
            BODY_BYTES_MAX
        );
        assert_eq!(
            body_bytes_max(&Method::GET, "/api/v1/coupons"),
            BODY_BYTES_MAX
        );
    }

    #[test]
    fn rpc_paths_are_told_from_rest_routes_by_the_path_alone() {
        assert!(super::super::is_rpc_path("/discount.Discount/UseCode"));
        assert!(super::super::is_rpc_path(
            "/couponpb.CouponService/IssueCoupon"
        ));
        assert!(!super::super::is_rpc_path("/api/v1/openapi.json"));
        assert!(!super::super::is_rpc_path("/purchase"));
        assert!(!super::super::is_rpc_path("/"));
    }
}

//! The request context: who is calling and from where, set once per request for every
//! transport (REST, gRPC, Connect), the code-use rate limit that counts by it, and the body
//! limit of REST requests (`http::limits`), before anything reads a body.
//!
//! [`layer`] runs inside the authorization middleware, so the caller it proved
//! ([`AuthUser`]) is in the request's extensions: the actor is `user:<id>` or `api_key:<id>`,
//! or `anonymous` when the call carried no credential (an open route). The source is the peer's
//! IP address, or, when `trust_forwarded_for` says a proxy stands in front, the last address of
//! `X-Forwarded-For` (the one the proxy appended; earlier ones are the client's own claims).
//! The request is then served [`caller::within`] its origin, so every event its
//! writes append records this actor and source without any handler passing them on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use allot_domain::event::Origin;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method};

use super::is_grpc;
use crate::ServiceError;
use crate::caller::{self, AuthUser, Caller};
use crate::rate_limit::{CallerId, RateLimits};

/// What [`layer`] needs.
#[derive(Clone)]
pub(crate) struct ContextState {
    pub trust_forwarded_for: bool,
    pub rate_limits: Arc<RateLimits>,
}

/// The calls limited per client as code uses, by method and route template (REST) or method
/// path (gRPC and Connect), whatever their content type: a code use is known by what it
/// calls, not by how it says it. Orders that carry a code are counted by their handler, the
/// only place that reads the body.
const CODE_USE_CALLS: &[(Method, &str)] = &[
    (Method::POST, "/api/v1/discount-codes/{code}/use"),
    (Method::POST, "/api/v1/coupons/{code}/validate"),
    (Method::POST, "/api/v1/coupons/{code}/redeem"),
    (Method::POST, "/purchase"),
    (Method::POST, "/redeem"),
    (Method::GET, "/validate"),
    (Method::POST, "/api/v1/sales/{id}/purchase"),
    (Method::POST, "/discount.Discount/UseCode"),
];

/// Campaign issues, counted like code uses when anonymous (an open public contract): without
/// a credential nothing else limits how many codes one address takes.
const ISSUE_CALLS: &[(Method, &str)] = &[
    (Method::POST, "/couponpb.CouponService/IssueCoupon"),
    (Method::POST, "/api/v1/campaigns/{id}/coupons"),
];

pub(crate) async fn layer(State(state): State<ContextState>, req: Request, next: Next) -> Response {
    let user = req.extensions().get::<AuthUser>().copied();
    let origin = Origin {
        actor: Caller(user).actor(),
        source: source(&req, state.trust_forwarded_for),
    };
    let caller = CallerId {
        principal: user.map(|u| (u.id, u.role)),
        source: origin.source,
    };
    if counts_as_code_use(&req, user.is_none())
        && let Err(refusal) = state.rate_limits.code_use(&caller)
    {
        return refuse(&req, refusal);
    }
    // REST bodies are held to their route's limit here, before the idempotency layer or a
    // handler reads them; gRPC and Connect keep their own (`http::limits`). Which is which
    // goes by the path, as the code-use limit does, not by what the content type claims.
    let req = if super::is_rpc_path(req.uri().path()) {
        req
    } else {
        match super::limits::limit_body(req) {
            Ok(req) => req,
            Err(refusal) => return refusal.into_response(),
        }
    };
    caller::within(origin, next.run(req)).await
}

/// The caller of the request being served, for limits counted by handlers (orders with a
/// code): the proven principal, if any, and the address of the request's origin.
pub(crate) fn caller_id(user: Option<&AuthUser>) -> CallerId {
    CallerId {
        principal: user.map(|u| (u.id, u.role)),
        source: caller::source(),
    }
}

fn counts_as_code_use(req: &Request, anonymous: bool) -> bool {
    let call = super::call_path(req);
    let is = |calls: &[(Method, &str)]| calls.iter().any(|(m, p)| m == req.method() && *p == call);
    is(CODE_USE_CALLS) || (anonymous && is(ISSUE_CALLS))
}

pub(crate) fn source(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if trust_forwarded_for && let Some(forwarded) = last_forwarded_for(req.headers()) {
        return Some(forwarded);
    }
    peer.map(canonical)
}

/// The last valid address of the last `X-Forwarded-For` header.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|a| a.trim().parse::<IpAddr>().ok())
        .map(canonical)
}

/// An IPv4 client reaching a dual-stack listener appears as `::ffff:a.b.c.d`: record it as
/// the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A refused call: REST gets the API's error (429, `rate_limited`, `Retry-After`); Connect its
/// `resource_exhausted` (HTTP 429); gRPC a trailers-only `RESOURCE_EXHAUSTED` with a
/// `retry-after` metadata entry (seconds).
fn refuse(req: &Request, refusal: ServiceError) -> Response {
    if !is_grpc(req.headers()) {
        if crate::connect::is_connect_path(req.uri().path()) {
            return crate::connect::ConnectError::from(refusal).into_response();
        }
        return refusal.into_response();
    }
    let retry_after = match &refusal {
        ServiceError::RateLimited { retry_after_secs } => *retry_after_secs,
        _ => 1,
    };
    let mut response = Response::new(axum::body::Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", http::HeaderValue::from(8)); // RESOURCE_EXHAUSTED
    if let Ok(message) = http::HeaderValue::from_str(&refusal.to_string()) {
        headers.insert("grpc-message", message);
    }
    headers.insert("retry-after", http::HeaderValue::from(retry_after));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_s_address_is_the_last_forwarded_one() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.7".parse().unwrap());
        assert_eq!(
            last_forwarded_for(&headers),
            Some("203.0.113.7".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "nonsense".parse().unwrap());
        assert_eq!(last_forwarded_for(&headers), None);
        assert_eq!(
            canonical("::ffff:127.0.0.1".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}

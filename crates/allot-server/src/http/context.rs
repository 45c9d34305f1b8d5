//! The request context: who is calling and from where, set once per request for every
//! transport (REST, gRPC, Connect), and the code-use rate limit that counts by it.
//!
//! [`layer`] runs inside the authorization middleware, so the caller it proved
//! ([`AuthUser`]) is in the request's extensions: the actor is `user:<id>` or `api_key:<id>`,
//! or `anonymous` when the call carried no credential (an open route). The source is the peer's
//! IP address, or, when `trust_forwarded_for` says a proxy stands in front, the last address of
//! `X-Forwarded-For` (the one the proxy appended; earlier ones are the client's own claims).
//! The request is then served inside `allot_storage::origin::scope`, so every event its
//! writes append records this actor and source without any handler passing them on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use allot_domain::event::{Actor, Origin};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method};

use super::auth::AuthUser;
use super::is_grpc;
use crate::ServiceError;
use crate::rate_limit::{Client, RateLimits};
use crate::service::auth::PrincipalId;

/// What [`layer`] needs.
#[derive(Clone)]
pub(crate) struct ContextState {
    pub trust_forwarded_for: bool,
    pub rate_limits: Arc<RateLimits>,
}

/// The code-use calls, limited per client: REST by method and route template, gRPC by path.
const CODE_USE_ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/api/v1/discount-codes/{code}/use"),
    (Method::POST, "/api/v1/coupons/{code}/validate"),
    (Method::POST, "/api/v1/coupons/{code}/redeem"),
    (Method::POST, "/purchase"),
];
const CODE_USE_RPCS: &[&str] = &["/discount.Discount/UseCode"];

pub(crate) async fn layer(State(state): State<ContextState>, req: Request, next: Next) -> Response {
    let origin = Origin {
        actor: actor(req.extensions().get::<AuthUser>()),
        source: source(&req, state.trust_forwarded_for),
    };
    if is_code_use(&req)
        && let Err(refusal) = state.rate_limits.code_use(&Client::of(&origin))
    {
        return refuse(&req, refusal);
    }
    allot_storage::origin::scope(origin, next.run(req)).await
}

fn actor(user: Option<&AuthUser>) -> Actor {
    match user.map(|u| u.id) {
        Some(PrincipalId::User(id)) => Actor::User(id.get()),
        Some(PrincipalId::ApiKey(id)) => Actor::ApiKey(id),
        None => Actor::Anonymous,
    }
}

fn source(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
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

fn is_code_use(req: &Request) -> bool {
    if is_grpc(req.headers()) {
        return CODE_USE_RPCS.contains(&req.uri().path());
    }
    let Some(route) = req.extensions().get::<MatchedPath>() else {
        return false;
    };
    CODE_USE_ROUTES
        .iter()
        .any(|(m, r)| m == req.method() && *r == route.as_str())
}

/// A refused call: REST gets the API's error (429, `rate_limited`, `Retry-After`); gRPC a
/// trailers-only `RESOURCE_EXHAUSTED` with a `retry-after` metadata entry (seconds).
fn refuse(req: &Request, refusal: ServiceError) -> Response {
    if !is_grpc(req.headers()) {
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

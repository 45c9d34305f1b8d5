//! The REST transport (JSON over HTTP/1.1 and HTTP/2) and the router that carries every
//! transport on one port.

mod accounts;
pub(crate) mod audit;
pub(crate) mod auth;
mod campaign;
mod catalog;
pub(crate) mod context;
pub(crate) mod coupon;
mod discount;
pub(crate) mod error;
pub(crate) mod event;
mod extract;
mod health;
pub(crate) mod idempotency;
mod inventory;
pub(crate) mod limits;
mod notification;
mod openapi;
mod order;
mod original_coupons;
mod payment;
mod promotion;
mod sale;
pub(crate) mod sale_original;
mod shipment;
pub(crate) mod stripe;
mod users;
mod webhook;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub(crate) use crate::grpc::is_grpc;
pub(crate) use crate::state::AppState;

/// The REST API, health probes, metrics and API docs.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(discount::routes())
        .merge(campaign::routes())
        .merge(coupon::routes())
        .merge(original_coupons::routes())
        .merge(sale::routes())
        .merge(sale_original::routes())
        .merge(catalog::routes())
        .merge(inventory::routes())
        .merge(order::routes())
        .merge(payment::routes())
        .merge(shipment::routes())
        .merge(stripe::routes())
        .merge(promotion::routes())
        .merge(notification::routes())
        .merge(event::routes())
        .merge(webhook::routes())
        .merge(audit::routes())
        .merge(auth::routes())
        .merge(accounts::routes())
        .merge(users::routes())
        .route("/metrics", get(render_metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .merge(crate::console::routes())
        .with_state(state)
        .merge(openapi::routes())
}

/// Wraps the whole router (REST, gRPC and Connect alike): the request timeout
/// ([`limits::within`]), then one log line and one latency sample per request (the timeout's
/// answer included). One middleware for both, since each costs an allocation per request.
pub(crate) fn observe(router: Router, request_timeout: std::time::Duration) -> Router {
    router.layer(middleware::from_fn_with_state(request_timeout, log_request))
}

/// Answers requests no route took: gRPC ones as gRPC `UNIMPLEMENTED`, the rest with the API's
/// JSON 404.
pub(crate) async fn fallback(req: Request) -> Response {
    if is_grpc(req.headers()) {
        return (
            [
                (http::header::CONTENT_TYPE, "application/grpc"),
                (http::HeaderName::from_static("grpc-status"), "12"),
                (
                    http::HeaderName::from_static("grpc-message"),
                    "unknown service or method",
                ),
            ],
            (),
        )
            .into_response();
    }
    if crate::console::is_console_route(req.uri().path()) {
        return crate::console::not_found();
    }
    crate::ServiceError::NotFound { what: "route" }.into_response()
}

/// The path a call is known by, whatever its protocol: the route template of REST
/// (`/api/v1/orders/{order_id}`), the method path of gRPC and Connect (`/pkg.Service/Method`;
/// their services are mounted as `/pkg.Service/{*rest}`), the path itself when no route took
/// it.
pub(crate) fn call_path(req: &Request) -> &str {
    match req.extensions().get::<MatchedPath>() {
        Some(m) if !m.as_str().contains("{*") => m.as_str(),
        _ => req.uri().path(),
    }
}

/// Whether a path names an RPC method (`/pkg.Service/Method`, gRPC or Connect) rather than a
/// REST route: its first segment is a dotted service name.
pub(crate) fn is_rpc_path(path: &str) -> bool {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .is_some_and(|service| service.contains('.'))
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.rate_limits.record_gauges();
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn log_request(
    State(request_timeout): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The route template, not the path: metric labels must stay a small, fixed set, and a
    // path may hold a coupon or discount code (`/api/v1/coupons/{code}/redeem`), a bearer
    // credential that must not reach the logs. An unmatched path is logged as sent only at
    // debug. A gRPC path names a method, never a code: logged (not a metric label, though:
    // anyone can send any path).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    // The path is copied only where it is logged: an unmatched gRPC call's route, or the
    // debug line (built only when debug is on), not on every request.
    let grpc_path =
        (route == "unmatched" && is_grpc(req.headers())).then(|| req.uri().path().to_owned());
    tracing::debug!(target: "allot::request", method = %method, path = %req.uri().path(), "request path");
    let response = limits::within(request_timeout, req, next).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    // gRPC errors travel as a trailers-only response, so their status is in the headers.
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tracing::info!(
        target: "allot::request",
        method = %method,
        route = %grpc_path.as_deref().unwrap_or(&route),
        status,
        grpc_status = grpc_status.as_deref().unwrap_or(""),
        latency_us = latency.as_micros() as u64,
        "request"
    );
    metrics::histogram!(
        "allot_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route,
        "status" => status.to_string(),
    )
    .record(latency.as_secs_f64());
    response
}

pub(crate) use crate::time::rfc3339;

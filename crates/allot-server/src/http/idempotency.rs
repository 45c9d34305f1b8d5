//! `Idempotency-Key` for every state-changing REST request (POST, PUT, PATCH, DELETE under
//! `/api/v1/`): the first request with a key is served and its answer stored; a retry with the
//! same key gets that answer back (header `Idempotent-Replayed: true`) and changes nothing.
//!
//! - A key belongs to its caller (the principal, `user:<id>` or `api_key:<id>`; an anonymous
//!   caller by its address, `anonymous@<ip>`) and is scoped to its method and path: another
//!   caller reusing a key runs its own request and never sees the first caller's answer. The
//!   request's hash (method, path, query, body) tells a true retry from a different request of
//!   the same caller reusing the key (422 `idempotency_key_reused`).
//! - While the first request is served, a retry answers 409 `idempotency_key_in_use` with
//!   `Retry-After: 1`; the key is claimed in the database, so this holds across instances.
//! - Only final answers of requests the handler served are stored ([`keeps_answer`]): a
//!   success, or a refusal of the state the request met (404, 409, 410). A request refused as
//!   sent (400, 401, 403, 413, 415, 422: malformed, not allowed, too large) or worth retrying
//!   (5xx, 429, 408) leaves nothing: the claim is given up, so a retry, corrected or not, is
//!   served again instead of being answered the refusal or `idempotency_key_reused`.
//! - A server that dies mid-request leaves its claim unanswered; after [`STALE_AFTER`] a retry
//!   takes it over and runs the request again. For requests whose effect must be exactly once
//!   even across that window, the operation itself records the key in its own transaction:
//!   order creation, campaign issues, promotion holds, discount-code batches and coupon
//!   redemptions do, and are left to themselves here. On SQLite no claim outlives its server: a server opening the
//!   data directory (locked to one process) gives up every claim left unanswered at once.
//! - Keys are kept for [`crate::service::IDEMPOTENCY_KEYS_KEEP_FOR`], then purged.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use sha2::{Digest, Sha256};

use allot_storage::{Claim, IdempotencyScope, StoredResponse};

use super::AppState;
use crate::ServiceError;

pub(crate) const HEADER: &str = "idempotency-key";
pub(crate) const REPLAYED: &str = "idempotent-replayed";

/// The request's `Idempotency-Key`, parsed, for the routes that keep their key with what they
/// write (orders, promotion holds) rather than through [`layer`].
pub(crate) fn key_of(
    headers: &http::HeaderMap,
) -> Result<Option<allot_domain::user::IdempotencyKey>, allot_domain::DomainError> {
    headers
        .get(HEADER)
        .map(|v| {
            v.to_str()
                .map_err(|_| {
                    allot_domain::DomainError::invalid("idempotency_key", "must be visible ASCII")
                })
                .and_then(allot_domain::user::IdempotencyKey::parse)
        })
        .transpose()
}
/// A claim unanswered for this long is taken to belong to a server that died.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(60);
pub(crate) const KEY_MAX_CHARS: usize = 255;

/// Routes (by their template) whose operation records its idempotency key in its own
/// transaction, for POST.
const OWN_KEYS: [&str; 5] = [
    "/api/v1/orders",
    "/api/v1/campaigns/{id}/coupons",
    "/api/v1/promotions/holds",
    "/api/v1/discount-codes/batches",
    "/api/v1/coupons/{code}/redeem",
];

/// Routes (by prefix) that the layer never keys: sign-in carries credentials, and a stored
/// answer of a refresh would hand the rotated token pair to whoever replays the old refresh
/// token with the same key, past the reuse detection. Their key header is ignored.
const NEVER_KEYED: &str = "/api/v1/auth/";

/// Routes (by template) never keyed either, for the secrets they carry: a new API key in the
/// answer (stored only as a hash, shown once), a password in the body (the request's SHA-256,
/// which a stored key keeps, would be a fast hash of it).
const NEVER_KEYED_ROUTES: [&str; 4] = [
    "/api/v1/setup",
    "/api/v1/users",
    "/api/v1/users/{id}/password",
    "/api/v1/api-keys",
];

/// Whether the matched route keeps its keys itself, or must never have its answers kept.
fn handles_keys_itself(method: &Method, route: Option<&str>) -> bool {
    route.is_some_and(|r| {
        r.starts_with(NEVER_KEYED)
            || NEVER_KEYED_ROUTES.contains(&r)
            || (method == Method::POST && OWN_KEYS.contains(&r))
    })
}

pub(crate) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let changes_state = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let path = req.uri().path().to_owned();
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    // A layer of the router, so it runs after routing: the matched route is known.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if !changes_state || !path.starts_with("/api/v1/") || handles_keys_itself(&method, route) {
        return next.run(req).await;
    }
    // A method the route does not serve is the router's to answer (405 with `Allow`), whatever
    // key it carries.
    if !route.is_some_and(|r| super::openapi::declares(&method, r)) {
        return next.run(req).await;
    }
    let key = match parse_key(&key) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let limit = super::limits::body_bytes_max(&method, route.unwrap_or(path.as_str()));
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => return super::limits::body_error(&e, limit).into_response(),
    };
    let mut hasher = Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        path.as_bytes(),
        parts.uri.query().unwrap_or("").as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.update(&body);
    let hash = hex(&hasher.finalize());

    let scope = IdempotencyScope {
        owner: crate::service::idempotency_owner(),
        key,
        method: method.to_string(),
        path,
    };
    let store = &state.services.store;
    let now = state.services.clock.now();
    let stale_before = now.plus_millis(-(STALE_AFTER.as_millis() as i64));
    match store
        .claim_idempotency_key(scope.clone(), hash, now, stale_before)
        .await
    {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Completed(stored)) => return replay(stored),
        Ok(Claim::InProgress) => return ServiceError::IdempotencyKeyInUse.into_response(),
        Ok(Claim::Mismatch) => return ServiceError::IdempotencyKeyReused.into_response(),
        Err(e) => return ServiceError::from(e).into_response(),
    }

    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    if response
        .extensions()
        .get::<super::error::OutcomeUnknown>()
        .is_some()
    {
        // The write may have been made: giving the key up would let a retry make it again.
        return response;
    }
    if !keeps_answer(status) {
        if let Err(e) = store.abandon_idempotency_key(scope).await {
            tracing::warn!(error = %e, "could not give up an idempotency key; it goes stale");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "response body unreadable for the idempotency record");
            let _ = store.abandon_idempotency_key(scope).await;
            return ServiceError::Internal(allot_storage::StorageError::Commit(e.to_string()))
                .into_response();
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    };
    if let Err(e) = store.complete_idempotency_key(scope, stored).await {
        // The effect happened; only the record of the answer is missing. A retry after
        // STALE_AFTER would run the request again: say so in the logs.
        tracing::warn!(error = %e, "could not store the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Whether an answer is final for its request, and so replayed to a retry: a success, or a
/// refusal of the state the request met. Everything else says the request as sent was not
/// served (malformed, unauthorized, too large) or should be tried again (5xx, 429, 408).
fn keeps_answer(status: StatusCode) -> bool {
    status.is_success()
        || matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::GONE
        )
}

pub(crate) fn parse_key(raw: &HeaderValue) -> Result<String, ServiceError> {
    let invalid = || ServiceError::InvalidArgument {
        field: "Idempotency-Key",
        message: format!("Idempotency-Key: must be 1 to {KEY_MAX_CHARS} visible ASCII characters"),
    };
    let key = raw.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > KEY_MAX_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(key.to_owned())
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if let Some(ct) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(parse_key(&HeaderValue::from_static("order-42_a")).is_ok());
        assert!(parse_key(&HeaderValue::from_static("")).is_err());
        assert!(parse_key(&HeaderValue::from_static("a b")).is_err());
        assert!(parse_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_err());
    }

    #[test]
    fn only_final_answers_are_kept() {
        for kept in [200, 201, 204, 404, 409, 410] {
            assert!(keeps_answer(StatusCode::from_u16(kept).unwrap()), "{kept}");
        }
        for not_kept in [400, 401, 403, 408, 413, 415, 422, 429, 500, 503] {
            assert!(
                !keeps_answer(StatusCode::from_u16(not_kept).unwrap()),
                "{not_kept}"
            );
        }
    }

    #[test]
    fn orders_and_campaign_issues_keep_their_own_keys() {
        assert!(handles_keys_itself(&Method::POST, Some("/api/v1/orders")));
        let batches = Some("/api/v1/discount-codes/batches");
        assert!(handles_keys_itself(&Method::POST, batches));
        let issue = Some("/api/v1/campaigns/{id}/coupons");
        assert!(handles_keys_itself(&Method::POST, issue));
        assert!(!handles_keys_itself(
            &Method::POST,
            Some("/api/v1/products")
        ));
        assert!(!handles_keys_itself(&Method::PUT, Some("/api/v1/orders")));
        assert!(!handles_keys_itself(&Method::POST, None));
    }

    #[test]
    fn routes_carrying_secrets_are_never_keyed() {
        for route in ["/api/v1/auth/signup", "/api/v1/api-keys", "/api/v1/users"] {
            assert!(handles_keys_itself(&Method::POST, Some(route)), "{route}");
        }
        let role = Some("/api/v1/users/{id}/role");
        assert!(!handles_keys_itself(&Method::PUT, role));
    }
}

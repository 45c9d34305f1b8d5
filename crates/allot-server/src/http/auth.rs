//! Who is calling and may it: [`authorize`], the one middleware that applies the policy table
//! ([`crate::policy`]) to every call of every transport and proves the caller ([`AuthUser`]:
//! a Bearer access token, a Bearer `ak_` API key, or `X-Api-Key`) for all of them; the
//! extractors of [`AuthUser`] and [`Caller`] (both in [`crate::caller`]) for REST handlers; and
//! REST for sign-in (issue 8): `/api/v1/auth/*`. A missing, invalid or
//! expired credential answers 401 `unauthenticated` with `WWW-Authenticate: Bearer`; a role the
//! call does not allow, 403 `forbidden`.

use std::sync::Arc;

use allot_domain::auth::{Email, Role};
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ErrorBody;
use super::extract::ApiJson;
use crate::ServiceError;
use crate::caller::{AuthUser, Caller, PrincipalId};
use crate::policy::{self, Access};
use crate::service::Auth;
use crate::service::auth::Tokens;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/password", post(change_password))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        authenticate(&parts.headers, &state.services.auth).await
    }
}

/// Proves who sent `headers`: `Authorization: Bearer <access token or ak_ key>`, else
/// `X-Api-Key`. No credential, or one that is invalid, expired or revoked: `Unauthenticated`.
pub(crate) async fn authenticate(
    headers: &HeaderMap,
    auth: &Auth,
) -> Result<AuthUser, ServiceError> {
    let header = |name: http::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| ServiceError::Unauthenticated))
            .transpose()
    };
    let principal = if let Some(value) = header(http::header::AUTHORIZATION)? {
        let (scheme, credential) = value.split_once(' ').ok_or(ServiceError::Unauthenticated)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ServiceError::Unauthenticated);
        }
        auth.authenticate(credential.trim()).await?
    } else if let Some(key) = header(http::HeaderName::from_static(API_KEY_HEADER))? {
        auth.authenticate_api_key(key.trim()).await?
    } else {
        return Err(ServiceError::Unauthenticated);
    };
    Ok(AuthUser {
        id: principal.id,
        role: principal.role,
    })
}

const API_KEY_HEADER: &str = "x-api-key";

fn has_credential(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION) || headers.contains_key(API_KEY_HEADER)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller::from_extensions(&parts.extensions))
    }
}

/// What [`authorize`] needs: the auth service and whether the open contracts are open.
#[derive(Clone)]
pub(crate) struct Gate {
    pub auth: Arc<Auth>,
    pub open_public_contracts: bool,
    pub open_admin_contracts_from: Arc<[ipnet::IpNet]>,
    /// The client address is read as the request context reads it (`context::source`).
    pub trust_forwarded_for: bool,
}

/// The one authorization layer, over the whole router (REST, gRPC and Connect): finds the
/// call's rule in [`policy::RULES`] (admin only if none), proves the caller once, puts
/// [`AuthUser`] into the request's extensions, and refuses with 401 `unauthenticated` or 403
/// `forbidden` in the caller's protocol.
pub(crate) async fn authorize(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let protocol = Protocol::of(&req);
    let route = super::call_path(&req).to_owned();
    let console = crate::console::is_console_route(&route);
    // A HEAD is answered by the GET route, under the GET rule.
    let method = match req.method().as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let rule = policy::rule_for(method, &route);
    let access = rule.map_or(policy::DEFAULT_ACCESS, |r| r.access).resolved();
    let refuse = |e: ServiceError, req: &Request| {
        if console {
            crate::console::refuse(e, req.uri().path_and_query().map_or("/", |p| p.as_str()))
        } else {
            protocol.refuse(e)
        }
    };
    if access == Access::Public {
        return next.run(req).await;
    }
    // An original's admin call from a trusted network, without a credential: staff for this
    // call, as the original served it on its internal network. Checked before the open
    // contracts: `GetCampaign` is both, and a trusted caller sees every code. A credential,
    // when one is sent, is proved as usual (a wrong one is still refused).
    if rule.is_some_and(|r| r.admin_contract)
        && !has_credential(req.headers())
        && !gate.open_admin_contracts_from.is_empty()
        && super::context::source(&req, gate.trust_forwarded_for).is_some_and(|ip| {
            gate.open_admin_contracts_from
                .iter()
                .any(|n| n.contains(&ip))
        })
    {
        req.extensions_mut().insert(AuthUser {
            id: PrincipalId::TrustedNetwork,
            role: Role::Marketing,
        });
        return next.run(req).await;
    }
    if gate.open_public_contracts
        && rule.is_some_and(|r| r.open_contract)
        && !has_credential(req.headers())
    {
        return next.run(req).await;
    }
    let user = if has_credential(req.headers()) {
        authenticate(req.headers(), &gate.auth).await
    } else {
        // No credential header: a console session's cookie, if any.
        match session_of(req.headers(), &gate.auth, method, console).await {
            Ok(session) => {
                let user = AuthUser {
                    id: PrincipalId::User(session.user),
                    role: session.role,
                };
                req.extensions_mut().insert(session);
                Ok(user)
            }
            Err(e) => Err(e),
        }
    };
    let user = match user {
        Ok(user) => user,
        Err(e) => return refuse(e, &req),
    };
    if !access.allows(user.role) {
        let e = ServiceError::Forbidden {
            field: None,
            message: format!(
                "this call needs the role {}; the caller is {}",
                access.describe().replace(", ", " or "),
                user.role.as_str()
            ),
        };
        // A signed-in person at the console gets the page in its frame (navigation, sign-out).
        if console && let Some(session) = req.extensions().get::<crate::service::auth::Session>() {
            return crate::console::not_allowed(session, req.uri().path());
        }
        return refuse(e, &req);
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// The console session whose cookie the request carries. A call of the API that changes
/// something must also carry the session's CSRF token (`X-CSRF-Token`), which only a page of
/// the console has: the cookie alone proves nothing a browser would not send on its own.
async fn session_of(
    headers: &HeaderMap,
    auth: &Auth,
    method: &str,
    console: bool,
) -> Result<crate::service::auth::Session, ServiceError> {
    let token = crate::console::cookie(headers, crate::console::COOKIE)
        .ok_or(ServiceError::Unauthenticated)?;
    let session = auth.session(token).await?;
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS");
    if !console && !safe {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !auth.csrf_valid(token, presented) {
            return Err(ServiceError::Forbidden {
                field: Some("X-CSRF-Token"),
                message: "a call authenticated by the console's cookie needs the session's \
                          CSRF token in X-CSRF-Token"
                    .to_owned(),
            });
        }
    }
    Ok(session)
}

const CSRF_HEADER: &str = "x-csrf-token";

/// The protocol of a request, to refuse it in a form its client reads.
#[derive(Clone, Copy)]
pub(crate) enum Protocol {
    Rest,
    Grpc,
    Connect,
}

impl Protocol {
    pub(crate) fn of(req: &Request) -> Protocol {
        if super::is_grpc(req.headers()) {
            Protocol::Grpc
        } else if crate::connect::is_connect_path(req.uri().path()) {
            Protocol::Connect
        } else {
            Protocol::Rest
        }
    }

    pub(crate) fn refuse(self, e: ServiceError) -> Response {
        match self {
            Protocol::Rest => e.into_response(),
            Protocol::Grpc => tonic::Status::from(e).into_http::<axum::body::Body>(),
            Protocol::Connect => crate::connect::ConnectError::from(e).into_response(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    #[schema(required = true, min_length = 1)]
    pub email: Option<String>,
    #[schema(required = true, min_length = 1)]
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    #[schema(required = true, min_length = 1)]
    pub refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct PasswordBody {
    #[schema(required = true, min_length = 1)]
    pub current_password: Option<String>,
    /// 12 to 256 characters.
    #[schema(required = true, min_length = 12, max_length = 256)]
    pub new_password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    pub id: i64,
    pub email: String,
    pub role: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TokenPair {
    /// A JWT (HS256), sent as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Used once, at `/api/v1/auth/refresh`, for a new pair.
    pub refresh_token: String,
    pub user: UserView,
}

/// The caller: a user, or a service authenticated by an API key.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    /// `user` or `api_key`.
    pub kind: &'static str,
    /// The user's id, or the API key's.
    pub id: i64,
    /// Users only.
    pub email: Option<String>,
    /// API keys only.
    pub name: Option<String>,
    pub role: &'static str,
}

fn pair(tokens: Tokens) -> TokenPair {
    TokenPair {
        access_token: tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token,
        user: UserView {
            id: tokens.user.id.get(),
            email: tokens.user.email.as_str().to_owned(),
            role: tokens.user.role.as_str(),
        },
    }
}

fn required(field: &'static str, value: Option<String>) -> Result<String, ServiceError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ServiceError::InvalidArgument {
            field,
            message: format!("{field}: is required"),
        }),
    }
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password (one answer for both)", body = ErrorBody),
        (status = 422, description = "email or password missing or malformed", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this address, for this email from this address, or for this email (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokenPair>, ServiceError> {
    let source = crate::caller::source();
    // Per address first, so that malformed attempts count too; the email becomes a key of the
    // other limits only once parsed (bounded, lower-cased).
    state.rate_limits.login_attempt(source)?;
    let email = Email::parse(&required("email", body.email)?)?;
    let password = required("password", body.password)?;
    state.rate_limits.login(source, &email)?;
    let tokens = state.services.auth.login(&email, &password).await?;
    Ok(Json(pair(tokens)))
}

/// Trade a refresh token for a new pair; the old refresh token is revoked. Presenting a
/// revoked refresh token again revokes every refresh token of its user. A sign-in can be
/// refreshed for at most `refresh_family_ttl_secs` (90 days by default) from the sign-in on.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new pair", body = TokenPair),
        (status = 401, description = "`invalid_token`: unknown, expired (the token, or its sign-in's absolute lifetime) or revoked", body = ErrorBody),
        (status = 422, description = "refresh_token missing", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokenPair>, ServiceError> {
    let token = required("refresh_token", body.refresh_token)?;
    Ok(Json(pair(state.services.auth.refresh(&token).await?)))
}

/// Sign out: revoke a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`invalid_token`: unknown or already revoked", body = ErrorBody),
        (status = 422, description = "refresh_token missing", body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<StatusCode, ServiceError> {
    let token = required("refresh_token", body.refresh_token)?;
    state.services.auth.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, as its access token or API key proves it.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "`unauthenticated`: no, an invalid or an expired credential", body = ErrorBody)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Me>, ServiceError> {
    Ok(Json(match caller.id {
        PrincipalId::User(id) => {
            let user = state.services.auth.user(id).await?;
            Me {
                kind: "user",
                id: user.id.get(),
                email: Some(user.email.as_str().to_owned()),
                name: None,
                role: user.role.as_str(),
            }
        }
        PrincipalId::ApiKey(id) => {
            let key = state.services.auth.api_key_by_id(id).await?;
            Me {
                kind: "api_key",
                id,
                email: None,
                name: Some(key.name),
                role: caller.role.as_str(),
            }
        }
        // Only an original's admin call is served to a trusted network without a credential.
        PrincipalId::TrustedNetwork => return Err(ServiceError::Unauthenticated),
    }))
}

/// Change the caller's password; every refresh token and every access token of the user is
/// revoked (this one too: sign in again with the new password).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "Changed; refresh and access tokens revoked"),
        (status = 401, description = "`unauthenticated` (no valid access token) or `invalid_credentials` (wrong current password)", body = ErrorBody),
        (status = 403, description = "`forbidden`: an API key has no password", body = ErrorBody),
        (status = 422, description = "a field missing, or new_password outside 12 to 256 characters", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many password changes by this user (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ServiceError> {
    let PrincipalId::User(id) = caller.id else {
        return Err(ServiceError::Forbidden {
            field: None,
            message: "an API key has no password; sign in as a user to change one".to_owned(),
        });
    };
    // Each change costs two Argon2 hashes: a signed-in user may not make the server spend
    // them without bound.
    state.rate_limits.password_change(id.get())?;
    let current = required("current_password", body.current_password)?;
    let new = required("new_password", body.new_password)?;
    state
        .services
        .auth
        .change_password(id, &current, &new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! REST for sign-in (issue 8): `/api/v1/auth/*`, and [`AuthUser`], the one extractor that
//! proves who is calling (a Bearer access token, a Bearer `ak_` API key, or `X-Api-Key`).
//! Endpoints take `AuthUser` as an argument to require a caller; a missing, invalid or expired
//! credential answers 401 `unauthenticated` with `WWW-Authenticate: Bearer`.

use allot_domain::auth::Role;
use axum::extract::{FromRequestParts, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use super::error::ErrorBody;
use super::json::ApiJson;
use crate::ServiceError;
use crate::service::auth::{PrincipalId, Tokens};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/password", post(change_password))
}

/// The proven caller of a request: a user (by access token) or a service (by API key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthUser {
    pub id: PrincipalId,
    pub role: Role,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = &state.services.auth;
        let header = |name: http::HeaderName| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| ServiceError::Unauthenticated))
                .transpose()
        };
        let principal = if let Some(value) = header(http::header::AUTHORIZATION)? {
            let (scheme, credential) =
                value.split_once(' ').ok_or(ServiceError::Unauthenticated)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(ServiceError::Unauthenticated);
            }
            auth.authenticate(credential.trim()).await?
        } else if let Some(key) = header(http::HeaderName::from_static("x-api-key"))? {
            auth.authenticate_api_key(key.trim()).await?
        } else {
            return Err(ServiceError::Unauthenticated);
        };
        Ok(AuthUser {
            id: principal.id,
            role: principal.role,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    pub email: Option<String>,
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    pub refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct PasswordBody {
    pub current_password: Option<String>,
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
        (status = 422, description = "email or password missing or malformed", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokenPair>, ServiceError> {
    let email = required("email", body.email)?;
    let password = required("password", body.password)?;
    let source = allot_storage::origin::current().and_then(|o| o.source);
    state.rate_limits.login(source, &email)?;
    let tokens = state.services.auth.login(&email, &password).await?;
    Ok(Json(pair(tokens)))
}

/// Trade a refresh token for a new pair; the old refresh token is revoked. Presenting a
/// revoked refresh token again revokes every refresh token of its user.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new pair", body = TokenPair),
        (status = 401, description = "`invalid_token`: unknown, expired or revoked", body = ErrorBody),
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
        PrincipalId::ApiKey(id) => Me {
            kind: "api_key",
            id,
            email: None,
            name: None,
            role: caller.role.as_str(),
        },
    }))
}

/// Change the caller's password; every refresh token of the user is revoked.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "Changed; refresh tokens revoked"),
        (status = 401, description = "`unauthenticated` (no valid access token) or `invalid_credentials` (wrong current password)", body = ErrorBody),
        (status = 422, description = "a field missing, or new_password outside 12 to 256 characters", body = ErrorBody)))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ServiceError> {
    let PrincipalId::User(id) = caller.id else {
        return Err(ServiceError::Unauthenticated);
    };
    let current = required("current_password", body.current_password)?;
    let new = required("new_password", body.new_password)?;
    state
        .services
        .auth
        .change_password(id, &current, &new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

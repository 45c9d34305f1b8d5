//! Users and API keys over REST (issue 15), admins only (the policy table): list and find,
//! create with a role, change the role, deactivate and reactivate, set a password; API keys
//! listed (never their secrets), created (the key shown once) and revoked.
//!
//! A deactivation, role change or password reset takes effect at once on this instance (the
//! user's refresh tokens revoked, its access tokens refused) and on the others within the token
//! cache's 5 s.

use allot_domain::auth::{AccountId, Email, Password, Role};
use allot_storage::{API_KEYS_PAGE_MAX, ApiKey, USERS_PAGE_MAX, User, UserQuery};
use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{AccountPathId, ApiJson, ApiKeyId, ApiQuery, PathId, invalid, named};
use super::{AppState, rfc3339};
use crate::ServiceError;

const PAGE_DEFAULT: u32 = 100;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{id}", get(read))
        .route("/api/v1/users/{id}/role", put(set_role))
        .route("/api/v1/users/{id}/active", put(set_active))
        .route("/api/v1/users/{id}/password", post(set_password))
        .route("/api/v1/api-keys", get(list_keys).post(create_key))
        .route("/api/v1/api-keys/{id}", axum::routing::delete(revoke_key))
}

/// A user as admins see it (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    pub id: i64,
    pub email: String,
    /// `admin`, `marketing`, `warehouse`, `support` or `customer`.
    pub role: &'static str,
    /// False: deactivated (cannot sign in; its tokens are refused).
    pub active: bool,
    /// False: signed up and not yet verified (cannot sign in until it is).
    pub email_verified: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<User> for AccountView {
    fn from(u: User) -> Self {
        AccountView {
            id: u.id.get(),
            email: u.email.as_str().to_owned(),
            role: u.role.as_str(),
            active: u.active,
            email_verified: u.email_verified,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountPage {
    /// In id order.
    pub users: Vec<AccountView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only users of this role.
    #[param(pattern = "^(admin|marketing|warehouse|support|customer)$")]
    pub role: Option<String>,
    /// Only active (true) or deactivated (false) users.
    pub active: Option<bool>,
    /// Only the user with exactly this email (case does not matter). Emails are sealed at
    /// rest and found through a keyed hash of the whole address, so there is no search by
    /// part of one.
    #[param(
        max_length = 254,
        pattern = r"^\s*[^\s@\x00-\x1F\x7F-\x9F]+@[^\s@\x00-\x1F\x7F-\x9F]+\s*$"
    )]
    pub email: Option<String>,
    /// Users with ids above this (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1 to 500 [default: 100].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewUserBody {
    /// One `@` with something on each side; no white space (but around) or control characters.
    #[schema(
        max_length = 254,
        pattern = r"^\s*[^\s@\x00-\x1F\x7F-\x9F]+@[^\s@\x00-\x1F\x7F-\x9F]+\s*$"
    )]
    pub email: String,
    /// 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    #[schema(pattern = "^(admin|marketing|warehouse|support|customer)$")]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RoleBody {
    #[schema(pattern = "^(admin|marketing|warehouse|support|customer)$")]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ActiveBody {
    /// false: deactivate (sessions and tokens stop at once); true: reactivate.
    pub active: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewPasswordBody {
    /// 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

fn role(raw: &str) -> Result<Role, ServiceError> {
    Ok(Role::parse(raw)?)
}

fn limit(raw: Option<u32>, max: u32) -> Result<u32, ServiceError> {
    match raw {
        None => Ok(PAGE_DEFAULT.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(invalid("limit", format!("must be 1 to {max}"))),
    }
}

fn after(raw: Option<i64>) -> Result<i64, ServiceError> {
    match raw {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(invalid("after", "must be 0 or more")),
    }
}

/// Users, in id order, filtered and paged by id.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(ListParams),
    responses(
        (status = 200, description = "A page of users", body = AccountPage),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<AccountPage>, ServiceError> {
    let limit = limit(q.limit, USERS_PAGE_MAX)?;
    let query = UserQuery {
        role: q.role.as_deref().map(role).transpose()?,
        active: q.active,
        email: q.email.as_deref().map(Email::parse).transpose()?,
        after: after(q.after)?,
        limit,
    };
    let users = state.services.auth.users(query).await?;
    let next_after = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.id.get()))
        .flatten();
    Ok(Json(AccountPage {
        users: users.into_iter().map(AccountView::from).collect(),
        next_after,
    }))
}

/// Create a user with a role: active and verified at once (the admin vouches for the email).
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created", body = AccountView),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, Json<AccountView>), ServiceError> {
    let email = Email::parse(&body.email)?;
    let password = Password::parse_field(&body.password, "password")?;
    let role = role(&body.role)?;
    let user = state
        .services
        .auth
        .create_user(email, password, role)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user, in any state.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The user")),
    responses((status = 200, description = "The user", body = AccountView)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    PathId(AccountPathId(id)): PathId<AccountPathId>,
) -> Result<Json<AccountView>, ServiceError> {
    let user = state.services.auth.find_user(AccountId::new(id)).await?;
    Ok(Json(user.into()))
}

/// Change a user's role. Its sessions and tokens, which carry the old role, stop at once; its
/// next sign-in carries the new one.
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The user")),
    request_body = RoleBody,
    responses(
        (status = 200, description = "The user as it is now", body = AccountView),
        (status = 409, description = "`last_admin`: it is the last active admin", body = ErrorBody)))]
pub(crate) async fn set_role(
    State(state): State<AppState>,
    PathId(AccountPathId(id)): PathId<AccountPathId>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<AccountView>, ServiceError> {
    let role = role(&body.role)?;
    let user = state
        .services
        .auth
        .set_role(AccountId::new(id), role)
        .await?;
    Ok(Json(user.into()))
}

/// Deactivate a user (its sessions and tokens stop at once) or reactivate it.
#[utoipa::path(put, path = "/api/v1/users/{id}/active", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The user")),
    request_body = ActiveBody,
    responses(
        (status = 200, description = "The user as it is now", body = AccountView),
        (status = 409, description = "`last_admin`: it is the last active admin", body = ErrorBody)))]
pub(crate) async fn set_active(
    State(state): State<AppState>,
    PathId(AccountPathId(id)): PathId<AccountPathId>,
    ApiJson(body): ApiJson<ActiveBody>,
) -> Result<Json<AccountView>, ServiceError> {
    let user = state
        .services
        .auth
        .set_active(AccountId::new(id), body.active)
        .await?;
    Ok(Json(user.into()))
}

/// Set a user's password (an admin's reset): every session and token of the user stops.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The user")),
    request_body = NewPasswordBody,
    responses(
        (status = 204, description = "Set; the user's sessions and tokens revoked"),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn set_password(
    State(state): State<AppState>,
    PathId(AccountPathId(id)): PathId<AccountPathId>,
    ApiJson(body): ApiJson<NewPasswordBody>,
) -> Result<StatusCode, ServiceError> {
    let password = Password::parse_field(&body.new_password, "new_password")?;
    state
        .services
        .auth
        .reset_password(AccountId::new(id), password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An API key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    pub id: i64,
    pub name: String,
    pub role: &'static str,
    pub created_at: String,
    /// Null while the key works.
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name,
            role: k.role.as_str(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyPage {
    /// In id order, revoked ones too.
    pub api_keys: Vec<ApiKeyView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NewApiKeyView {
    /// The key: send it as `Authorization: Bearer <key>` or `X-Api-Key`. Shown this once; it
    /// is stored only as a hash.
    pub key: String,
    pub api_key: ApiKeyView,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct KeyListParams {
    /// Keys with ids above this (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1 to 500 [default: 100].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewApiKeyBody {
    /// What the key is for: 1 to 128 characters.
    #[schema(max_length = 128, pattern = r"\S")]
    pub name: String,
    #[schema(pattern = "^(admin|marketing|warehouse|support|customer)$")]
    pub role: String,
}

/// API keys, without their secrets.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "users",
    params(KeyListParams),
    responses(
        (status = 200, description = "A page of keys", body = ApiKeyPage),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<KeyListParams>,
) -> Result<Json<ApiKeyPage>, ServiceError> {
    let limit = limit(q.limit, API_KEYS_PAGE_MAX)?;
    let keys = state.services.auth.api_keys(after(q.after)?, limit).await?;
    let next_after = (keys.len() == limit as usize)
        .then(|| keys.last().map(|k| k.id))
        .flatten();
    Ok(Json(ApiKeyPage {
        api_keys: keys.into_iter().map(ApiKeyView::from).collect(),
        next_after,
    }))
}

/// Create an API key with a role; the key is in this answer only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "users",
    request_body = NewApiKeyBody,
    responses((status = 201, description = "Created", body = NewApiKeyView)))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewApiKeyBody>,
) -> Result<(StatusCode, Json<NewApiKeyView>), ServiceError> {
    let role = Role::parse(&body.role).map_err(named("role"))?;
    let (key, secret) = state.services.auth.create_api_key(&body.name, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKeyView {
            key: secret,
            api_key: key.into(),
        }),
    ))
}

/// Revoke an API key: it stops at once here, within 5 s on other instances.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The key")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key, or revoked already", body = ErrorBody)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    PathId(ApiKeyId(id)): PathId<ApiKeyId>,
) -> Result<StatusCode, ServiceError> {
    state.services.auth.revoke_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

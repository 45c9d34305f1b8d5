//! The public account flows over REST (issue 15): first-run setup (`POST /api/v1/setup`, for
//! automation; the console has its page), self sign-up with email verification, and forgot
//! password. Every one is public (the policy table): the token or the email is the credential.
//! Sign-up and forgot-password answer 202 whether or not the email has an account.

use allot_domain::DomainError;
use allot_domain::auth::{Email, Password};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ErrorBody;
use super::extract::ApiJson;
use super::users::AccountView;
use crate::ServiceError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/setup", post(setup))
        .route("/api/v1/auth/signup", post(sign_up))
        .route("/api/v1/auth/verify-email", post(verify_email))
        .route("/api/v1/auth/forgot-password", post(forgot_password))
        .route("/api/v1/auth/reset-password", post(reset_password))
}

/// The longest setup token accepted (the server prints 67 characters).
const SETUP_TOKEN_MAX_CHARS: usize = 128;

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SetupBody {
    /// The token of the setup link the server printed at start.
    #[schema(max_length = 128)]
    pub token: String,
    /// One `@` with something on each side; no white space (but around) or control characters.
    #[schema(
        max_length = 254,
        pattern = r"^\s*[^\s@\x00-\x1F\x7F-\x9F]+@[^\s@\x00-\x1F\x7F-\x9F]+\s*$"
    )]
    pub email: String,
    /// 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SignUpBody {
    /// One `@` with something on each side; no white space (but around) or control characters.
    #[schema(
        max_length = 254,
        pattern = r"^\s*[^\s@\x00-\x1F\x7F-\x9F]+@[^\s@\x00-\x1F\x7F-\x9F]+\s*$"
    )]
    pub email: String,
    /// 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TokenBody {
    /// The token of the link emailed to the user.
    #[schema(max_length = 128)]
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ForgotBody {
    /// One `@` with something on each side; no white space (but around) or control characters.
    #[schema(
        max_length = 254,
        pattern = r"^\s*[^\s@\x00-\x1F\x7F-\x9F]+@[^\s@\x00-\x1F\x7F-\x9F]+\s*$"
    )]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ResetBody {
    /// The token of the link emailed to the user.
    #[schema(max_length = 128)]
    pub token: String,
    /// 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

/// Create the first admin with the setup token the server printed at start (valid for an
/// hour, once, while no admin exists). Of two completions at once exactly one succeeds.
#[utoipa::path(post, path = "/api/v1/setup", tag = "auth",
    request_body = SetupBody,
    responses(
        (status = 201, description = "The first admin; sign in with it", body = AccountView),
        (status = 403, description = "`forbidden` naming `token`: not this server's setup token, or past its hour (restart the server for a new link)", body = ErrorBody),
        (status = 409, description = "`email_taken`: a (non-admin) user has this email", body = ErrorBody),
        (status = 410, description = "`setup_done`: an admin exists", body = ErrorBody),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn setup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<(StatusCode, Json<AccountView>), ServiceError> {
    // A token no server prints is the client's mistake, said as such (422) before whether
    // setup is still open (410): the document's limit holds whatever the server's state.
    if body.token.chars().count() > SETUP_TOKEN_MAX_CHARS {
        return Err(DomainError::invalid(
            "token",
            format!("at most {SETUP_TOKEN_MAX_CHARS} characters"),
        )
        .into());
    }
    let email = Email::parse(&body.email)?;
    let password = Password::parse_field(&body.password, "password")?;
    let user = state
        .services
        .accounts
        .complete_setup(&body.token, email, password)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Sign up as a customer (when the server allows it: `allow_signup`). A link to verify the
/// address is emailed; the account cannot sign in until it is followed (24 hours). The answer
/// is the same whether or not the email has an account (which gets no email).
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth",
    request_body = SignUpBody,
    responses(
        (status = 202, description = "Accepted: if the address is new, a verification link is on its way"),
        (status = 403, description = "`signup_closed`: sign-up is off on this server", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many sign-ups or reset requests for this email or from this address (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn sign_up(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignUpBody>,
) -> Result<StatusCode, ServiceError> {
    if !state.services.accounts.signup_allowed() {
        return Err(ServiceError::SignupClosed);
    }
    let email = Email::parse(&body.email)?;
    let password = Password::parse_field(&body.password, "password")?;
    state
        .rate_limits
        .account_email(crate::caller::source(), &email)?;
    state.services.accounts.sign_up(email, password).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Verify an address with the token of the emailed link; the account may sign in from now on.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth",
    request_body = TokenBody,
    responses(
        (status = 200, description = "Verified", body = AccountView),
        (status = 422, description = "`invalid_argument` naming `token`: unknown, used or expired", body = ErrorBody)))]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<AccountView>, ServiceError> {
    let user = state.services.accounts.verify_email(&body.token).await?;
    Ok(Json(user.into()))
}

/// Ask for a password reset link by email (valid for an hour, once). The answer is the same
/// whether or not the email has an account.
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "auth",
    request_body = ForgotBody,
    responses(
        (status = 202, description = "Accepted: if the email has an active account, a link is on its way"),
        (status = 429, description = "`rate_limited`: too many sign-ups or reset requests for this email or from this address (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ForgotBody>,
) -> Result<StatusCode, ServiceError> {
    let email = Email::parse(&body.email)?;
    state
        .rate_limits
        .account_email(crate::caller::source(), &email)?;
    state.services.accounts.forgot_password(&email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token of the emailed link: every session and token of the user
/// stops; sign in with the new password.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth",
    request_body = ResetBody,
    responses(
        (status = 204, description = "Set; the user's sessions and tokens revoked"),
        (status = 422, description = "`invalid_argument` naming `token` (unknown, used or expired) or `new_password`", body = ErrorBody),
        (status = 503, description = "`busy`: too many passwords being hashed; retry (`Retry-After`)", body = ErrorBody)))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<StatusCode, ServiceError> {
    let password = Password::parse_field(&body.new_password, "new_password")?;
    state
        .services
        .accounts
        .reset_password(&body.token, password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

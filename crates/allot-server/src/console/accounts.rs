//! The pages of visitors who are not signed in: the first admin's setup (from the link the
//! server prints at start), self sign-up, email verification, and a forgotten password.
//!
//! Setup is a form posted here, not to the API, because it ends signed in: the admin is
//! created by the same service call as `POST /api/v1/setup`, then a session starts as at
//! sign-in. The others are forms app.js sends to the public API calls.

use allot_domain::auth::{Email, Password};
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::solo;
use super::see_other;
use super::sign_in::{same_origin, session_cookie};
use crate::ServiceError;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/setup", get(setup_page).post(setup))
        .route("/signup", get(signup))
        .route("/verify-email", get(verify_email))
        .route("/forgot-password", get(forgot_password))
        .route("/reset-password", get(reset_password))
}

#[derive(Deserialize, Default)]
pub(super) struct Token {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub(super) struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
}

fn back_to_sign_in() -> Markup {
    html! { p { a href="/" { "Back to sign-in" } } }
}

/// A password and its confirmation; `data-match` makes password.js refuse a mismatch before
/// anything is sent (the confirmation's name starts with `_`, so it is never sent).
fn new_password(name: &str) -> Markup {
    html! {
        label { "Password" span.hint { "12 characters or more" }
            input type="password" name=(name) autocomplete="new-password" required; }
        label { "Password again"
            input type="password" name={ "_" (name) "_again" } data-match=(name) autocomplete="new-password" required; }
    }
}

fn setup_form(token: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        p { "Create the first admin of this server. You will be signed in as it." }
        form #setup .stack method="post" action="/setup" {
            p #setup-error .alert role="alert" { @if let Some(e) = error { (e) } }
            input type="hidden" name="token" value=(token);
            label { "Email"
                input type="email" name="email" autocomplete="username" required value=(email) autofocus; }
            label { "Password" span.hint { "12 characters or more" }
                input type="password" name="password" autocomplete="new-password" required; }
            label { "Password again"
                input type="password" name="password_again" autocomplete="new-password" required; }
            div.actions { button type="submit" { "Create the admin" } }
        }
    }
}

fn setup_done() -> (StatusCode, Markup) {
    (
        StatusCode::OK,
        solo(
            "Setup is done",
            html! {
                p #setup-done { "This server has an admin already: sign in, or ask an admin for an account." }
                p { a.button href="/" { "Sign in" } }
            },
        ),
    )
}

/// `GET /setup?token=`: the form while no admin exists and the token is this server's live
/// one; otherwise what to do instead.
async fn setup_page(State(state): State<AppState>, Query(q): Query<Token>) -> Response {
    let accounts = &state.services.accounts;
    match accounts.admin_exists().await {
        Ok(true) => return setup_done().into_response(),
        Ok(false) => {}
        Err(e) => return super::layout::error_page(e),
    }
    if !accounts.setup_token_live(&q.token) {
        let body = html! {
            p #setup-error .alert role="alert" {
                @if q.token.is_empty() { "This page needs the setup link the server printed when it started." }
                @else { "This setup link is used or expired (a link is valid for an hour, once)." }
            }
            p { "Restart the server: while no admin exists it prints a new link (" code { "/setup?token=..." } ") in its log." }
        };
        return (StatusCode::FORBIDDEN, solo("Set up Allot", body)).into_response();
    }
    solo("Set up Allot", setup_form(&q.token, "", None)).into_response()
}

/// `POST /setup`: creates the first admin, then signs it in and opens the console.
async fn setup(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&headers) {
        return super::layout::error_page(ServiceError::Forbidden {
            field: None,
            message: "a setup form from another site".to_owned(),
        });
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SetupForm>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            solo(
                "Set up Allot",
                setup_form("", "", Some("The form was not understood.")),
            ),
        )
            .into_response();
    };
    let email_raw = form.email.trim();
    let result = async {
        let email = Email::parse(email_raw)?;
        if form.password != form.password_again {
            return Err(ServiceError::InvalidArgument {
                field: "password_again",
                message: "The two passwords differ.".to_owned(),
            });
        }
        let password = Password::parse_field(&form.password, "password")?;
        state
            .services
            .accounts
            .complete_setup(&form.token, email.clone(), password)
            .await?;
        state
            .services
            .auth
            .start_session(&email, &form.password)
            .await
    }
    .await;
    match result {
        Ok((token, _)) => {
            let mut res = see_other("/console");
            if let Ok(value) = HeaderValue::from_str(&session_cookie(&token, &headers)) {
                res.headers_mut().insert(header::SET_COOKIE, value);
            }
            res
        }
        Err(ServiceError::SetupDone) => setup_done().into_response(),
        Err(e) => {
            let status = crate::error::status_of(e.kind());
            let message = e.to_string();
            (
                status,
                solo(
                    "Set up Allot",
                    setup_form(&form.token, email_raw, Some(&message)),
                ),
            )
                .into_response()
        }
    }
}

async fn signup(State(state): State<AppState>) -> Response {
    if !state.services.accounts.signup_allowed() {
        let body = html! {
            p #signup-closed { "Sign-up is off on this server: ask an admin for an account." }
            (back_to_sign_in())
        };
        return (StatusCode::NOT_FOUND, solo("Create an account", body)).into_response();
    }
    let body = html! {
        form #signup .stack data-api="/api/v1/auth/signup"
            data-done="Check your inbox: follow the link we sent to verify the address, then sign in." {
            label { "Email" input type="email" name="email" autocomplete="username" required autofocus; }
            (new_password("password"))
            p #signup-error .alert role="alert" {}
            p.status role="status" {}
            div.actions { button type="submit" { "Create the account" } }
        }
        p.sub { "We email you a link to verify the address; the account signs in once it is followed." }
        (back_to_sign_in())
    };
    solo_with_script("Create an account", body)
}

async fn verify_email(Query(q): Query<Token>) -> Response {
    let body = html! {
        p { "Verifying the address of your new account…" }
        form #verify-email .stack data-api="/api/v1/auth/verify-email" data-auto-submit
            data-done="Your email is verified: you can sign in now." {
            input type="hidden" name="token" value=(q.token);
            p #verify-email-error .alert role="alert" {}
            p.status role="status" {}
            div.actions { button type="submit" { "Verify again" } }
        }
        (back_to_sign_in())
    };
    solo_with_script("Verify your email", body)
}

async fn forgot_password() -> Response {
    let body = html! {
        p { "Enter your account's email: we send it a link to set a new password (valid for an hour)." }
        form #forgot-password .stack data-api="/api/v1/auth/forgot-password"
            data-done="If that email has an active account, a link is on its way." {
            label { "Email" input type="email" name="email" autocomplete="username" required autofocus; }
            p #forgot-password-error .alert role="alert" {}
            p.status role="status" {}
            div.actions { button type="submit" { "Send the link" } }
        }
        (back_to_sign_in())
    };
    solo_with_script("Forgot your password?", body)
}

async fn reset_password(Query(q): Query<Token>) -> Response {
    let body = html! {
        form #reset-password .stack data-api="/api/v1/auth/reset-password"
            data-done="Your password is set, and every session of yours has ended: sign in with it." {
            input type="hidden" name="token" value=(q.token);
            (new_password("new_password"))
            p #reset-password-error .alert role="alert" {}
            p.status role="status" {}
            div.actions { button type="submit" { "Set the password" } }
        }
        (back_to_sign_in())
    };
    solo_with_script("Set a new password", body)
}

/// A signed-out page with password.js (the confirmation check) besides app.js.
fn solo_with_script(title: &str, body: Markup) -> Response {
    solo(
        title,
        html! {
            (body)
            script src="/console/assets/password.js" defer {}
        },
    )
    .into_response()
}

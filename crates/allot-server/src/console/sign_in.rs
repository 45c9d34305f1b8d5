//! Signing in and out, and `GET /`: the sign-in page, or the console for a signed-in visitor.

use allot_domain::auth::Email;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{landing, solo};
use super::{COOKIE, see_other};
use crate::ServiceError;
use crate::service::auth::CONSOLE_SESSION_TTL;
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub(super) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignOutForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// `GET /`: a signed-in visitor goes to its first page; anyone else gets the sign-in form.
pub(super) async fn home(
    State(state): State<AppState>,
    Query(next): Query<Next>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = cookie(&headers, COOKIE)
        && let Ok(session) = state.services.auth.session(token).await
    {
        return match safe_next(next.next.as_deref()).or(landing(session.role).map(str::to_owned)) {
            Some(to) => see_other(&to),
            None => super::layout::error_page(ServiceError::Forbidden {
                field: None,
                message: String::new(),
            }),
        };
    }
    let links = Links::of(&state).await;
    sign_in_page(StatusCode::OK, "", next.next.as_deref(), None, links).into_response()
}

/// What the sign-in page offers besides the form.
#[derive(Clone, Copy)]
struct Links {
    /// Self sign-up is on.
    signup: bool,
    /// No admin exists yet: the first is created from the setup link.
    setup_pending: bool,
}

impl Links {
    async fn of(state: &AppState) -> Links {
        let accounts = &state.services.accounts;
        Links {
            signup: accounts.signup_allowed(),
            // Unknown (the store failed): say nothing of setup rather than something wrong.
            setup_pending: matches!(accounts.admin_exists().await, Ok(false)),
        }
    }
}

fn sign_in_page(
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<&str>,
    links: Links,
) -> (StatusCode, Markup) {
    let body = html! {
        form #sign-in .stack method="post" action="/console/sign-in" {
            p #sign-in-error .alert role="alert" { @if let Some(e) = error { (e) } }
            label { "Email"
                input type="email" name="email" autocomplete="username" required value=(email)
                    autofocus[email.is_empty()];
            }
            label { "Password"
                input type="password" name="password" autocomplete="current-password" required
                    autofocus[!email.is_empty()];
            }
            @if let Some(next) = safe_next(next) {
                input type="hidden" name="next" value=(next);
            }
            div.actions { button type="submit" { "Sign in" } }
        }
        p { a href="/forgot-password" { "Forgot your password?" } }
        @if links.signup { p { a href="/signup" { "Create an account" } } }
        @if links.setup_pending {
            p #setup-pending .panel {
                "No admin exists yet. Open the setup link the server printed in its log when it "
                "started (" code { "/setup?token=..." } "), valid for an hour; restart the server "
                "for a new one."
            }
        }
    };
    (status, solo("Sign in", body))
}

/// Only a page of this console: never another site (an open redirect), never `//host`.
fn safe_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        (*n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
            && !n.contains("//")
            && !n.contains('\\')
    })
    .map(str::to_owned)
}

/// A form post from another site is refused: the browser says where it comes from
/// (`Sec-Fetch-Site`, else `Origin`), and only this origin may sign in or out here.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or_default();
            let host = host.to_str().unwrap_or_default();
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host)
        }
        // Not a browser's cross-site form (those always say where they come from).
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// `POST /console/sign-in`: the API's sign-in (its checks and limits), then a session cookie.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&headers) {
        return super::layout::error_page(ServiceError::Forbidden {
            field: None,
            message: "a sign-in from another site".to_owned(),
        });
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return sign_in_page(
            StatusCode::BAD_REQUEST,
            "",
            None,
            Some("The form was not understood."),
            Links::of(&state).await,
        )
        .into_response();
    };
    let next = form.next.as_deref();
    let source = crate::caller::source();
    let result = async {
        state.rate_limits.login_attempt(source)?;
        let email = Email::parse(form.email.trim())?;
        state.rate_limits.login(source, &email)?;
        state
            .services
            .auth
            .start_session(&email, &form.password)
            .await
    }
    .await;
    match result {
        Ok((token, session)) => {
            let to = safe_next(next)
                .or(landing(session.role).map(str::to_owned))
                .unwrap_or_else(|| "/console".to_owned());
            let mut res = see_other(&to);
            if let Ok(value) = HeaderValue::from_str(&session_cookie(&token, &headers)) {
                res.headers_mut().insert(header::SET_COOKIE, value);
            }
            res
        }
        Err(e) => {
            let status = crate::error::status_of(e.kind());
            let message = match &e {
                ServiceError::InvalidCredentials => {
                    "That email and password do not match an active account.".to_owned()
                }
                ServiceError::InvalidArgument { .. } => "Enter an email and a password.".to_owned(),
                other => other.to_string(),
            };
            let links = Links::of(&state).await;
            let mut res = sign_in_page(status, form.email.trim(), next, Some(&message), links)
                .into_response();
            if let ServiceError::RateLimited { retry_after_secs } = e
                && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
            {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
    }
}

/// `POST /console/sign-out`: ends the session (its token revoked) and clears the cookie.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = serde_urlencoded::from_bytes::<SignOutForm>(&body).ok();
    if let Some(token) = cookie(&headers, COOKIE) {
        let valid = form
            .as_ref()
            .is_some_and(|f| state.services.auth.csrf_valid(token, &f.csrf));
        if !valid || !same_origin(&headers) {
            return super::layout::error_page(ServiceError::Forbidden {
                field: Some("_csrf"),
                message: "the sign-out form did not come from this console".to_owned(),
            });
        }
        // Already ended (expired, revoked): signed out all the same.
        let _ = state.services.auth.logout(token).await;
    }
    let mut res = see_other("/");
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attr(&headers)
    )) {
        res.headers_mut().insert(header::SET_COOKIE, value);
    }
    res
}

pub(super) fn session_cookie(token: &str, headers: &HeaderMap) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        CONSOLE_SESSION_TTL.as_secs(),
        secure_attr(headers)
    )
}

/// `Secure` whenever the browser will keep it: over HTTPS (a TLS-terminating proxy says so)
/// and on this machine (browsers treat http://localhost and 127.0.0.1 as secure). Over
/// plain HTTP to another host a Secure cookie would be dropped and nobody could sign in; the
/// deployment guide says to serve the console over HTTPS there.
fn secure_attr(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let hostname = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let local = matches!(hostname, "localhost" | "127.0.0.1" | "[::1]");
    if https || local { "; Secure" } else { "" }
}

/// The value of cookie `name` in the request, if sent once.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

//! The console: the shop's web interface, served on the API's port by this binary, every
//! asset compiled in (no CDN, no Node toolchain).
//!
//! Server-rendered HTML (maud: templates the compiler checks and escapes) with one small
//! script (`console/assets/app.js`): pages read through the services, as the REST handlers do;
//! every change a page makes is a call of the REST API itself, sent by the script with the
//! session cookie and the session's CSRF token, so it goes through the same policy table,
//! validation, idempotency, audit and events as any client's, and its errors name the field
//! the same way. Why not a single-page app: the pages are lists, forms and a few live figures;
//! a server-rendered page is fast on a large table (paged by the storage, never in the
//! browser), needs no build step, and keeps one source of truth for what a user may see (the
//! policy table, applied by the authorization middleware to every page: each page's rule is
//! "as the API call it shows", [`crate::policy::Access::As`]).
//!
//! Signing in makes a session: a refresh token in an HttpOnly, SameSite=Strict cookie, looked
//! up on every request (`service::auth::Session`); the pages carry its CSRF token in a meta
//! tag, which the API requires (`X-CSRF-Token`) from any call authenticated by the cookie
//! that changes something. Every console answer carries a strict Content-Security-Policy: no
//! inline script or style, nothing from another origin.

mod accounts;
mod assets;
mod audit;
mod campaigns;
mod catalog;
mod coupons;
mod discount_codes;
mod events;
mod inventory;
mod layout;
mod notifications;
mod orders;
mod overview;
mod promotion_words;
mod promotions;
mod sales;
mod sign_in;
pub(crate) mod ui;
mod users;
mod warehouses;
mod webhooks;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};

pub(crate) use layout::{Ctx, not_allowed};
pub(crate) use sign_in::cookie;

use crate::ServiceError;
use crate::state::AppState;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "allot_session";

/// The console's routes; each page module adds its own.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(sign_in::home))
        .route("/console/sign-in", post(sign_in::sign_in))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/assets/{name}", get(assets::serve))
        .merge(overview::routes())
        .merge(campaigns::routes())
        .merge(discount_codes::routes())
        .merge(sales::routes())
        .merge(coupons::routes())
        .merge(promotions::routes())
        .merge(catalog::routes())
        .merge(warehouses::routes())
        .merge(inventory::routes())
        .merge(orders::routes())
        .merge(webhooks::routes())
        .merge(events::routes())
        .merge(audit::routes())
        .merge(notifications::routes())
        .merge(users::routes())
        .merge(accounts::routes())
        .layer(middleware::from_fn(headers))
}

/// Whether a route (template) belongs to the console rather than the API: its refusals are
/// pages (a redirect to the sign-in, "Not allowed"), never JSON.
pub(crate) fn is_console_route(route: &str) -> bool {
    route == "/"
        || route == "/console"
        || route.starts_with("/console/")
        || matches!(
            route,
            "/setup" | "/signup" | "/verify-email" | "/forgot-password" | "/reset-password"
        )
}

/// The console's answer to a refused request: signed out (or the session ended), the sign-in
/// page, coming back here afterwards; a role the page is not for, "Not allowed".
pub(crate) fn refuse(e: ServiceError, path_and_query: &str) -> Response {
    match e {
        ServiceError::Unauthenticated | ServiceError::InvalidToken => {
            let next = if path_and_query.starts_with("/console") {
                format!(
                    "/?next={}",
                    form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>()
                )
            } else {
                "/".to_owned()
            };
            see_other(&next)
        }
        other => layout::error_page(other),
    }
}

/// A console path no page answers: a page saying so, under the console's headers.
pub(crate) fn not_found() -> Response {
    let mut res = layout::error_page(ServiceError::NotFound { what: "page" });
    security_headers(res.headers_mut());
    res
}

/// 303 See Other: after a form, the browser GETs `to`.
pub(crate) fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
    }
}

/// What every console answer carries: the Content-Security-Policy (this origin's scripts,
/// styles and images only; nothing inline; no framing; forms post only here), and no caching
/// of pages, which hold personal data.
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    security_headers(res.headers_mut());
    res
}

fn security_headers(h: &mut http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Setup, verification and reset links carry a token in the query: never sent on.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

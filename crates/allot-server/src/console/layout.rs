//! The frame every page shares, the navigation (the pages the signed-in role may see, by the
//! policy table), and the pages for signed-out visitors and errors.

use allot_domain::auth::Role;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use maud::{DOCTYPE, Markup, html};

use crate::ServiceError;
use crate::policy;
use crate::service::auth::Session;
use crate::state::AppState;

/// The console's sections, in the navigation's order: (label, path). Each is listed for a
/// user only when the policy table lets its role see that path.
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    ("Overview", "/console"),
    ("Campaigns", "/console/campaigns"),
    ("Discount codes", "/console/discount-codes"),
    ("Coupons", "/console/coupons"),
    ("Promotions", "/console/promotions"),
    ("Flash sales", "/console/sales"),
    ("Catalog", "/console/catalog"),
    ("Warehouses", "/console/warehouses"),
    ("Inventory", "/console/inventory"),
    ("Orders", "/console/orders"),
    ("Users", "/console/users"),
    ("API keys", "/console/api-keys"),
    ("Webhooks", "/console/webhooks"),
    ("Events", "/console/events"),
    ("Audit log", "/console/audit"),
    ("Notifications", "/console/notifications"),
];

/// Whether `role` may see the console page at `path` (a route template).
pub(crate) fn may_see(role: Role, path: &str) -> bool {
    policy::rule_for("GET", path)
        .map_or(policy::DEFAULT_ACCESS, |r| r.access)
        .allows(role)
}

/// The first page `role` may see: where a sign-in lands.
pub(crate) fn landing(role: Role) -> Option<&'static str> {
    SECTIONS
        .iter()
        .map(|(_, path)| *path)
        .find(|path| may_see(role, path))
}

/// A signed-in page request: the session (set by the authorization middleware, which has
/// already applied the page's rule) and the path, for the navigation.
#[allow(dead_code)] // Until the pages that use them land (issue 15, in progress).
pub(crate) struct Ctx {
    pub session: Session,
    pub path: String,
    pub state: AppState,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match parts.extensions.get::<Session>() {
            Some(session) => Ok(Ctx {
                session: session.clone(),
                path: parts.uri.path().to_owned(),
                state: state.clone(),
            }),
            None => Err(super::refuse(
                ServiceError::Unauthenticated,
                parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            )),
        }
    }
}

#[allow(dead_code)] // Until the pages that use them land (issue 15, in progress).
impl Ctx {
    pub fn role(&self) -> Role {
        self.session.role
    }

    /// Whether this user may see another console page (to show a link to it or not).
    pub fn may_see(&self, path: &str) -> bool {
        may_see(self.session.role, path)
    }

    /// Whether this user may make an API call (to offer a form for it or not; the API
    /// decides anyway).
    pub fn may_call(&self, method: &str, route: &str) -> bool {
        policy::rule_for(method, route)
            .map_or(policy::DEFAULT_ACCESS, |r| r.access)
            .allows(self.session.role)
    }

    /// A whole page: `title` is its h1 and the document's title; `scripts` are more asset
    /// files to load after app.js (a page's own script).
    pub fn page(&self, title: &str, scripts: &[&str], body: Markup) -> Response {
        frame(&self.session, &self.path, title, scripts, body)
    }
}

/// The page a signed-in user gets for a page its role may not see: the frame (its navigation,
/// its sign-out) around the "Not allowed" message, 403.
pub(crate) fn not_allowed(session: &Session, path: &str) -> Response {
    let body = html! {
        p role="alert" { "Your role may not see this page. Ask an admin if you need it." }
    };
    let mut res = frame(session, path, "Not allowed", &[], body);
    *res.status_mut() = http::StatusCode::FORBIDDEN;
    res
}

/// A whole page for `session` at `path`: the header, the navigation the role may see, `body`
/// under the h1 `title`.
fn frame(session: &Session, here: &str, title: &str, scripts: &[&str], body: Markup) -> Response {
    let current = SECTIONS.iter().map(|(_, path)| *path).find(|path| {
        here == *path || (*path != "/console" && here.starts_with(&format!("{path}/")))
    });
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                meta name="csrf-token" content=(session.csrf);
                script src="/console/assets/app.js" defer {}
                @for script in scripts {
                    script src={ "/console/assets/" (script) } defer {}
                }
            }
            body {
                a.skip-link href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "Allot" }
                    div.who {
                        span { (session.email.as_str()) }
                        span.role { (session.role.as_str()) }
                        form #sign-out method="post" action="/console/sign-out" {
                            input type="hidden" name="_csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                div.frame {
                    nav.side aria-label="Main" {
                        ul {
                            @for (label, path) in SECTIONS {
                                @if may_see(session.role, path) {
                                    li {
                                        @if current == Some(*path) {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    main #main tabindex="-1" {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    };
    markup.into_response()
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · Allot" }
        link rel="stylesheet" href="/console/assets/app.css";
        link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
    }
}

/// A page for a visitor who is not signed in (sign-in, setup, password reset): one card.
pub(crate) fn solo(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                script src="/console/assets/app.js" defer {}
            }
            body {
                main #main .solo {
                    div.brand { "Allot" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error as a page: its status, and its message (the API's, which names the field).
pub(crate) fn error_page(e: ServiceError) -> Response {
    let status = crate::error::status_of(e.kind());
    let title = match e {
        ServiceError::Forbidden { .. } => "Not allowed",
        ServiceError::NotFound { .. } => "Not found",
        _ if status.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "console page failed");
    }
    let message = match &e {
        ServiceError::Forbidden { .. } => {
            "Your role may not see this page. Ask an admin if you need it.".to_owned()
        }
        other => other.to_string(),
    };
    let body = html! {
        p role="alert" { (message) }
        p { a href="/console" { "Back to the console" } }
    };
    (status, solo(title, body)).into_response()
}

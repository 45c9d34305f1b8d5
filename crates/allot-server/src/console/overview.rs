//! The overview: the live state of the shop.

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use maud::html;

use super::Ctx;
use crate::http::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console", get(page))
}

async fn page(ctx: Ctx) -> Response {
    ctx.page(
        "Overview",
        &[],
        html! {
            p.sub { "The live state of campaigns, sales, MEGADEAL admission, orders, stock and deliveries." }
        },
    )
}

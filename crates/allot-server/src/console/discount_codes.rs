//! Discount codes: generate a batch of any size (the page's script splits it into API calls of
//! at most [`GENERATE_COUNT_MAX`] and shows the progress), download the codes generated as CSV
//! (built in the browser from the API's answers: the server keeps no copy to serve), look a
//! code up and use one. Every action is a call of the REST API.

use allot_domain::discount::GENERATE_COUNT_MAX;
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use maud::html;

use super::Ctx;
use crate::state::AppState;

/// The most codes one generation from the page asks for: a thousand calls, and some 10 MB of
/// codes held by the browser for the download.
const PAGE_GENERATE_MAX: u32 = 2_000_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console/discount-codes", get(page))
}

async fn page(ctx: Ctx) -> Response {
    let may_use = ctx.may_call("POST", "/api/v1/discount-codes/{code}/use");
    let body = html! {
        div.row {
            section.panel aria-labelledby="generate-title" {
                h2 #generate-title { "Generate codes" }
                form #discount-generate .stack data-batch-max=(GENERATE_COUNT_MAX)
                    data-api-batch="/api/v1/discount-codes/batches" novalidate {
                    label { "How many"
                        span.hint { "1 to " (super::ui::int(PAGE_GENERATE_MAX)) "; sent " (super::ui::int(GENERATE_COUNT_MAX)) " at a time" }
                        input type="number" name="count" min="1" max=(PAGE_GENERATE_MAX) required value="100";
                    }
                    label { "Length"
                        span.hint { "symbols per code" }
                        select name="length" {
                            option value="8" selected { "8" }
                            option value="7" { "7" }
                        }
                    }
                    progress #discount-progress max="1" value="0" aria-label="Codes generated" {}
                    p #discount-generate-error .alert role="alert" {}
                    p.status role="status" aria-live="polite" {}
                    div.actions {
                        button type="submit" { "Generate" }
                        button #discount-download .secondary type="button" disabled { "Download CSV" }
                    }
                }
            }
            section.panel aria-labelledby="lookup-title" {
                h2 #lookup-title { "Look a code up" }
                form #discount-lookup .inline data-api="/api/v1/discount-codes/{code}" data-method="GET"
                    data-body="none" novalidate {
                    label { "Code" input type="text" name="code" data-path required autocomplete="off"; }
                    div.actions { button type="submit" { "Look up" } }
                    p #discount-lookup-error .alert role="alert" {}
                    p.status role="status" {}
                }
                p #discount-lookup-result aria-live="polite" {}
                @if may_use {
                    h2 { "Use a code" }
                    form #discount-use .inline data-api="/api/v1/discount-codes/{code}/use" data-method="POST"
                        data-body="none" data-done="Used now." data-confirm="Use this code? A code is used once." novalidate {
                        label { "Code" input type="text" name="code" data-path required autocomplete="off"; }
                        div.actions { button type="submit" { "Use" } }
                        p #discount-use-error .alert role="alert" {}
                        p.status role="status" {}
                    }
                }
            }
        }
    };
    ctx.page("Discount codes", &["discount-codes.js"], body)
}

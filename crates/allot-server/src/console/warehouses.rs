//! Warehouses: the list, a new one, and one's page to edit it (code, name, active).

use allot_domain::catalog::WarehouseId;
use allot_storage::Warehouse;
use axum::Router;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::Ctx;
use super::layout::error_page;
use super::ui;
use crate::ServiceError;
use crate::http::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/warehouses", get(list))
        .route("/console/warehouses/{id}", get(edit))
}

/// The API's warehouse fields, filled from `w` when editing (PUT replaces all three).
fn fields(w: Option<&Warehouse>) -> Markup {
    html! {
        label { "Code" span.hint { "1 to 32 of A-Z 0-9 - _; unique" }
            input type="text" name="code" required maxlength="32" value=[w.map(|w| w.code.as_str())];
        }
        label { "Name" input type="text" name="name" required value=[w.map(|w| w.name.as_str())]; }
        label {
            input type="checkbox" name="active" data-type="bool" checked[w.is_none_or(|w| w.active)];
            " Active (stock here may be reserved)"
        }
    }
}

async fn list(ctx: Ctx) -> Response {
    // Every warehouse: a shop has a handful, and the API lists them whole too.
    let warehouses = match ctx.state.services.catalog.warehouses().await {
        Ok(w) => w,
        Err(e) => return error_page(e),
    };
    let may_create = ctx.may_call("POST", "/api/v1/warehouses");
    let body = html! {
        table #warehouses aria-label="Warehouses" {
            thead { tr {
                th scope="col" class="num" { "Id" }
                th scope="col" { "Code" }
                th scope="col" { "Name" }
                th scope="col" { "Active" }
                th scope="col" { "Changed" }
            } }
            tbody {
                @for w in &warehouses {
                    tr {
                        td.num { (w.id.get()) }
                        td.mono { a href={ "/console/warehouses/" (w.id.get()) } { (w.code) } }
                        td { (w.name) }
                        td { @if w.active { span.badge.ok { "active" } } @else { span.badge { "inactive" } } }
                        td { (ui::time(w.updated_at.as_millis())) }
                    }
                }
                @if warehouses.is_empty() {
                    tr { td colspan="5" { "No warehouses yet." } }
                }
            }
        }
        @if may_create {
            div.panel {
                h2 { "New warehouse" }
                (ui::api_form("warehouse-create", "POST", "/api/v1/warehouses", "reload", "stack",
                    fields(None), "Create warehouse"))
            }
        }
    };
    ctx.page("Warehouses", &[], body)
}

async fn edit(ctx: Ctx, Path(raw): Path<String>) -> Response {
    let Some(id) = raw
        .parse::<i64>()
        .ok()
        .and_then(|n| WarehouseId::parse(n).ok())
    else {
        return error_page(ServiceError::NotFound { what: "warehouse" });
    };
    let w = match ctx.state.services.catalog.warehouse(id).await {
        Ok(w) => w,
        Err(e) => return error_page(e),
    };
    let body = html! {
        p { a href="/console/warehouses" { "All warehouses" } " · "
            a href={ "/console/inventory?warehouse_id=" (id.get()) } { "Stock in this warehouse" } }
        div.panel {
            h2 { "Edit" }
            (ui::api_form("warehouse-edit", "PUT", "/api/v1/warehouses/{id}", "reload", "stack",
                html! {
                    input type="hidden" name="id" data-path value=(id.get());
                    (fields(Some(&w)))
                }, "Save"))
        }
        div.panel {
            h2 { "Delete" }
            p.sub { "Only a warehouse that holds no stock; one that does may be set inactive instead." }
            form #warehouse-delete data-api="/api/v1/warehouses/{id}" data-method="DELETE"
                data-then="/console/warehouses" data-body="none"
                data-confirm="Delete this warehouse?" novalidate {
                input type="hidden" name="id" data-path value=(id.get());
                p #warehouse-delete-error .alert role="alert" {}
                p.status role="status" {}
                div.actions { button.danger type="submit" { "Delete warehouse" } }
            }
        }
    };
    ctx.page(&format!("Warehouse {}", w.code), &[], body)
}

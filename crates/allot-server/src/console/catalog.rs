//! Catalog: products (keyset-paged, searched in full text, created and edited with the API's
//! fields) and categories (the tree; created).

use allot_domain::catalog::{
    AttributeValue, CategoryId, Cursor, ProductId, ProductSort, SearchText,
};
use allot_storage::{Category, Product, ProductQuery};
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Ctx;
use super::layout::error_page;
use super::ui;
use crate::ServiceError;
use crate::service::catalog::CategoryNode;
use crate::state::AppState;

/// Products a page shows.
const PAGE_ROWS: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/catalog", get(list))
        .route("/console/catalog/products/{id}", get(edit))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    /// A full-text search (the API's `q`).
    q: Option<String>,
    after: Option<String>,
}

async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    let services = &ctx.state.services;
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
    let search = match text.as_deref().map(SearchText::parse).transpose() {
        Ok(s) => s.flatten(),
        Err(e) => return error_page(e.into()),
    };
    let sort = ProductSort::default();
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => match Cursor::decode(raw, sort) {
            Ok(c) => Some(c),
            Err(e) => return error_page(e.into()),
        },
    };
    // Keyset-paged in creation order through products_by_created, 50 a page; a search filters
    // the same walk.
    let page = match services
        .catalog
        .products(ProductQuery {
            search,
            sort,
            after,
            limit: PAGE_ROWS,
            ..ProductQuery::default()
        })
        .await
    {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let tree = match services.catalog.category_tree().await {
        Ok(t) => t,
        Err(e) => return error_page(e),
    };
    let categories = match services.catalog.categories().await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let base = match &text {
        Some(t) => format!(
            "/console/catalog?q={}",
            form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
        ),
        None => "/console/catalog".to_owned(),
    };
    let body = html! {
        h2 { "Products" }
        form #product-search .inline method="get" action="/console/catalog" role="search" {
            label { "Search" input type="search" name="q" value=[text.as_deref()]; }
            div.actions { button type="submit" { "Search" } }
        }
        table #products aria-label="Products" {
            thead { tr {
                th scope="col" { "Name" }
                th scope="col" { "SKU" }
                th scope="col" class="num" { "Price" }
                th scope="col" { "Category" }
                th scope="col" { "Active" }
                th scope="col" { "Stock" }
            } }
            tbody {
                @for p in &page.products {
                    tr {
                        td { a href={ "/console/catalog/products/" (p.id.get()) } { (p.name) } }
                        td.mono { (p.sku) }
                        td.num { (ui::money(p.price.amount_minor(), p.price.currency().as_str())) }
                        td { (category_name(&categories, p.category_id)) }
                        td { @if p.active { span.badge.ok { "active" } } @else { span.badge { "inactive" } } }
                        td { a href={ "/console/inventory/" (p.id.get()) } { "Stock of " (p.sku) } }
                    }
                }
                @if page.products.is_empty() {
                    tr { td colspan="6" { "No products." } }
                }
            }
        }
        (ui::pager(&base, page.next_cursor))
        div.row {
            div.panel {
                h2 { "New product" }
                (ui::api_form("product-create", "POST", "/api/v1/products",
                    "/console/catalog/products/{id}", "stack",
                    product_fields(None, &categories), "Create product"))
            }
            div.panel {
                h2 { "Categories" }
                @if tree.is_empty() { p { "No categories yet." } }
                @else { nav #category-tree aria-label="Category tree" { (category_tree(&tree)) } }
                h2 { "New category" }
                (ui::api_form("category-create", "POST", "/api/v1/categories", "reload", "stack",
                    html! {
                        (ui::field("Name", "name", "text", "", true, ""))
                        (category_select("Parent", "parent_id", &categories, None))
                    }, "Create category"))
            }
        }
    };
    ctx.page("Catalog", &[], body)
}

fn category_name(categories: &[Category], id: Option<CategoryId>) -> String {
    match id {
        None => String::new(),
        Some(id) => categories
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.get().to_string(), |c| c.name.clone()),
    }
}

fn category_tree(nodes: &[CategoryNode]) -> Markup {
    html! {
        ul {
            @for n in nodes {
                li {
                    (n.category.name) " " span.sub { "#" (n.category.id.get()) }
                    @if !n.children.is_empty() { (category_tree(&n.children)) }
                }
            }
        }
    }
}

/// A select of every category (none first), sent as an int, left out when none is chosen.
fn category_select(
    label: &str,
    name: &str,
    categories: &[Category],
    selected: Option<CategoryId>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) data-type="int" {
                option value="" selected[selected.is_none()] { "None" }
                @for c in categories {
                    option value=(c.id.get()) selected[selected == Some(c.id)] { (c.name) }
                }
            }
        }
    }
}

fn attributes_json(p: &Product) -> String {
    let map: Map<String, Value> = p
        .attributes
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AttributeValue::Text(t) => Value::String(t.clone()),
                AttributeValue::Number(n) => {
                    serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }
                AttributeValue::Boolean(b) => Value::Bool(*b),
            };
            (k.as_str().to_owned(), value)
        })
        .collect();
    Value::Object(map).to_string()
}

/// The API's product fields, filled from `p` when editing. PUT replaces every field, so the
/// edit form carries all of them, attributes included.
fn product_fields(p: Option<&Product>, categories: &[Category]) -> Markup {
    html! {
        label { "SKU" input type="text" name="sku" required value=[p.map(|p| p.sku.as_str())]; }
        label { "Name" input type="text" name="name" required value=[p.map(|p| p.name.as_str())]; }
        label { "Description"
            textarea name="description" { @if let Some(p) = p { (p.description) } }
        }
        div.row {
            label { "Price" span.hint { "whole minor units (cents, won)" }
                input type="number" name="price.amount_minor" data-type="int" min="0" required
                    value=[p.map(|p| p.price.amount_minor())];
            }
            label { "Currency" span.hint { "ISO 4217, e.g. EUR" }
                input type="text" name="price.currency" required maxlength="3"
                    value=(p.map_or_else(|| "EUR".to_owned(), |p| p.price.currency().as_str().to_owned()));
            }
        }
        (category_select("Category", "category_id", categories, p.and_then(|p| p.category_id)))
        label { "Attributes" span.hint { "a JSON object of strings, numbers and booleans" }
            textarea name="attributes" data-type="json" {
                @if let Some(p) = p { (attributes_json(p)) } @else { "{}" }
            }
        }
        label {
            input type="checkbox" name="active" data-type="bool" checked[p.is_none_or(|p| p.active)];
            " Active"
        }
    }
}

async fn edit(ctx: Ctx, Path(raw): Path<String>) -> Response {
    let Some(id) = raw
        .parse::<i64>()
        .ok()
        .and_then(|n| ProductId::parse(n).ok())
    else {
        return error_page(ServiceError::NotFound { what: "product" });
    };
    let services = &ctx.state.services;
    let product = match services.catalog.product(id).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let categories = match services.catalog.categories().await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let body = html! {
        p { a href="/console/catalog" { "All products" } " · "
            a href={ "/console/inventory/" (id.get()) } { "Stock of this product" } }
        p.sub { "Created " (ui::time(product.created_at.as_millis())) ", changed " (ui::time(product.updated_at.as_millis())) }
        div.panel {
            h2 { "Edit" }
            (ui::api_form("product-edit", "PUT", "/api/v1/products/{id}", "reload", "stack",
                html! {
                    input type="hidden" name="id" data-path value=(id.get());
                    (product_fields(Some(&product), &categories))
                }, "Save"))
        }
        div.panel {
            h2 { "Delete" }
            p.sub { "Hidden from reads and listings, its SKU free again; orders that refer to it keep it." }
            form #product-delete data-api="/api/v1/products/{id}" data-method="DELETE"
                data-then="/console/catalog" data-body="none"
                data-confirm="Delete this product?" novalidate {
                input type="hidden" name="id" data-path value=(id.get());
                p #product-delete-error .alert role="alert" {}
                p.status role="status" {}
                div.actions { button.danger type="submit" { "Delete product" } }
            }
        }
    };
    ctx.page(&product.name, &[], body)
}

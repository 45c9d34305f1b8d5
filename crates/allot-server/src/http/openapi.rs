//! The OpenAPI 3.1 document, generated from the handlers' annotations, and a browsable page.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::webhook;

use super::notification;
use super::{
    audit, auth, campaign, catalog, coupon, discount, error, event, health, inventory, order, sale,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Allot",
        description = "Hands out scarce things exactly: discount codes, coupons, campaign \
                       coupons, flash-sale items and stock."
    ),
    paths(
        health::health,
        health::ready,
        discount::generate,
        discount::use_code,
        discount::get_code,
        campaign::create,
        campaign::read,
        campaign::list_coupons,
        campaign::issue,
        coupon::upload,
        coupon::upload_csv,
        coupon::request,
        coupon::ticket,
        coupon::validate,
        coupon::redeem,
        coupon::read,
        coupon::redemptions,
        coupon::stats,
        coupon::purge,
        coupon::megadeal,
        sale::checkout,
        sale::purchase,
        sale::current,
        sale::read,
        sale::items,
        sale::purchases,
        catalog::create_product,
        catalog::list_products,
        catalog::read_product,
        catalog::update_product,
        catalog::delete_product,
        catalog::create_category,
        catalog::list_categories,
        catalog::category_tree,
        catalog::read_category,
        catalog::update_category,
        catalog::delete_category,
        catalog::create_warehouse,
        catalog::list_warehouses,
        catalog::read_warehouse,
        catalog::update_warehouse,
        catalog::delete_warehouse,
        inventory::list,
        inventory::product,
        inventory::reserve,
        inventory::release,
        inventory::confirm,
        inventory::read_reservation,
        inventory::adjust,
        inventory::reorder,
        inventory::alerts,
        webhook::create,
        webhook::list,
        webhook::read,
        webhook::update,
        webhook::delete,
        webhook::deliveries,
        order::place,
        order::list,
        order::read,
        order::change_status,
        event::list,
        event::stream,
        audit::list,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::change_password,
        notification::create_template,
        notification::list_templates,
        notification::read_template,
        notification::update_template,
        notification::delete_template,
        notification::list_rules,
        notification::update_rule,
        notification::read_preferences,
        notification::set_preferences,
        notification::inbox,
        notification::mark_read,
        notification::send,
        notification::status,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, crate::error::EntryError)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "discount-codes", description = "One-time discount codes"),
        (name = "campaigns", description = "Campaign coupons: first come, first served, exactly N"),
        (name = "coupons", description = "Uploaded coupons: allocation, redemption, MEGADEAL admission, purge"),
        (name = "flash-sales", description = "An hourly sale of generated items: checkout, then purchase"),
        (name = "catalog", description = "Products, the category tree and warehouses"),
        (name = "inventory", description = "Stock per product and warehouse: reservations that expire, adjustments, the ledger, low-stock alerts"),
        (name = "auth", description = "Users, passwords, access and refresh tokens, API keys. Every endpoint but the probes, the API documents and sign-in needs `Authorization: Bearer <access token or ak_ key>` or `X-Api-Key`; which roles each allows is in the README (401 `unauthenticated`, 403 `forbidden`)"),
        (name = "audit", description = "The audit log: who did what, when and from where (admins)"),
        (name = "notifications", description = "Templates, rules that turn events into notifications, preferences, the inbox, direct sends and delivery status"),
        (name = "events", description = "The event log: every state change, in commit order, as pages or a live stream"),
        (name = "webhooks", description = "Webhook endpoints: every event POSTed in order, signed, retried until acknowledged; the delivery log"),
        (name = "orders", description = "Orders: stock reserved and codes used in one atomic step, server-side prices, the status workflow, idempotent placing"),
    )
)]
pub(crate) struct ApiDoc;

pub(crate) const OPENAPI_PATH: &str = "/api/v1/openapi.json";
pub(crate) const DOCS_PATH: &str = "/api/v1/docs";

pub(crate) fn routes() -> Router {
    SwaggerUi::new(DOCS_PATH)
        .url(OPENAPI_PATH, ApiDoc::openapi())
        .into()
}

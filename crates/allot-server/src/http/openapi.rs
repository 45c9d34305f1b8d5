//! The OpenAPI 3.1 document, generated from the handlers' annotations, and a browsable page.

use axum::Router;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Header, ObjectBuilder, Ref, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::policy::{self, Access};

use super::{payment, shipment, stripe, webhook};

use super::notification;
use super::{
    accounts, audit, auth, campaign, catalog, coupon, discount, error, event, health, inventory,
    order, original_coupons, promotion, sale, sale_original, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Allot",
        description = "Hands out scarce things exactly: discount codes, coupons, campaign \
                       coupons, flash-sale items and stock. No string may hold NUL (U+0000): a \
                       body with one is 422 `invalid_argument` naming `body`."
    ),
    paths(
        health::health,
        health::ready,
        discount::generate,
        discount::use_code,
        discount::get_code,
        campaign::create,
        campaign::list,
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
        original_coupons::upload,
        original_coupons::request_new,
        original_coupons::request_status,
        original_coupons::redeem,
        original_coupons::validate,
        sale::checkout,
        sale::purchase,
        sale::list,
        sale::current,
        sale::read,
        sale::items,
        sale::purchases,
        sale_original::checkout,
        sale_original::purchase,
        sale_original::active,
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
        inventory::movements,
        inventory::product_reservations,
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
        webhook::retry,
        webhook::deliveries,
        order::place,
        order::list,
        order::read,
        order::edit,
        order::change_status,
        payment::record,
        payment::list,
        payment::refund,
        shipment::ship,
        shipment::list_shipments,
        shipment::open_return,
        shipment::list_returns,
        shipment::approve,
        shipment::reject,
        shipment::receive,
        stripe::receive,
        promotion::create,
        promotion::list,
        promotion::read,
        promotion::update,
        promotion::bind,
        promotion::holds,
        promotion::evaluate,
        promotion::hold,
        promotion::redeem_cart,
        promotion::read_hold,
        promotion::release,
        promotion::redeem,
        promotion::roll_back,
        event::list,
        event::stream,
        audit::list,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::change_password,
        accounts::setup,
        accounts::sign_up,
        accounts::verify_email,
        accounts::forgot_password,
        accounts::reset_password,
        users::list,
        users::create,
        users::read,
        users::set_role,
        users::set_active,
        users::set_password,
        users::list_keys,
        users::create_key,
        users::revoke_key,
        notification::create_template,
        notification::preview_template,
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
        notification::outbox,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, crate::error::EntryError)),
    modifiers(&CommonResponses),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "discount-codes", description = "One-time discount codes"),
        (name = "campaigns", description = "Campaign coupons: first come, first served, exactly N"),
        (name = "coupons", description = "Uploaded coupons: allocation, redemption, MEGADEAL admission, purge"),
        (name = "original-coupons", description = "The original coupon management system's routes at the root path, its bodies and error shapes kept, on Allot's coupons (README: Replacing the original systems)"),
        (name = "flash-sales", description = "An hourly sale of generated items: checkout, then purchase"),
        (name = "flash-sale-original", description = "The flash sale's design checkout at the root path, for its clients: one open checkout code per user collects items, its purchase buys every one still unsold; errors are `{\"message\", \"code\"}`"),
        (name = "catalog", description = "Products, the category tree and warehouses"),
        (name = "inventory", description = "Stock per product and warehouse: reservations that expire, adjustments, the ledger, low-stock alerts"),
        (name = "auth", description = "Users, passwords, access and refresh tokens, API keys. Every endpoint but the probes, the API documents and sign-in needs `Authorization: Bearer <access token or ak_ key>` or `X-Api-Key`; which roles each allows is in the README (401 `unauthenticated`, 403 `forbidden`)"),
        (name = "users", description = "Users and API keys, managed by admins: roles, deactivation, password resets, keys shown once"),
        (name = "audit", description = "The audit log: who did what, when and from where (admins)"),
        (name = "notifications", description = "Templates, rules that turn events into notifications, preferences, the inbox, direct sends and delivery status"),
        (name = "events", description = "The event log: every state change, in commit order, as pages or a live stream"),
        (name = "webhooks", description = "Webhook endpoints: every event POSTed in order, signed, retried until acknowledged; the delivery log"),
        (name = "orders", description = "Orders: stock reserved and codes used in one atomic step, server-side prices, the status workflow, idempotent placing"),
        (name = "promotions", description = "Promotion rules (conditions, actions, stacking, budgets and limits), the preview of a cart, and holds that a checkout redeems, releases or rolls back: budgets and limits never exceeded"),
    )
)]
pub(crate) struct ApiDoc;

/// What every operation may answer besides its own outcomes, added to the document in one
/// place so that no annotation can forget it: the credential and role checks of the policy
/// middleware (`policy::RULES`, the same table it enforces), the per-client rate limits, a
/// body over its size limit, and storage or a dependency being unavailable. An operation's own
/// annotation wins when it already describes one of these statuses.
struct CommonResponses;

/// The security schemes' names in `components.securitySchemes`.
const BEARER: &str = "bearer";
const API_KEY: &str = "api_key";

/// Operations limited per client (429 `rate_limited`, with `Retry-After`): the code uses of
/// `http::context`, sign-in and password change, orders (which may carry a code) and campaign
/// issues.
const RATE_LIMITED: &[(&str, &str)] = &[
    ("POST", "/api/v1/discount-codes/{code}/use"),
    ("POST", "/api/v1/coupons/{code}/validate"),
    ("POST", "/api/v1/coupons/{code}/redeem"),
    ("POST", "/purchase"),
    ("POST", "/redeem"),
    ("GET", "/validate"),
    ("POST", "/api/v1/sales/{id}/purchase"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/forgot-password"),
    ("POST", "/api/v1/orders"),
    ("POST", "/api/v1/campaigns/{id}/coupons"),
];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /api/v1/auth/login, or an API key (`ak_...`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An API key (`ak_...`, `allot admin create-api-key`); also accepted as \
                 `Authorization: Bearer ak_...`",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("PATCH", &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    add_common(method, path, operation);
                    not_null_parameters(operation);
                }
            }
        }
        name_values(openapi);
        if let Some(components) = openapi.components.as_mut() {
            webhook_bodies(components);
            closed_actions(components);
        }
    }
}

/// Parameters whose values are one of a list the domain owns (event types, order statuses):
/// the list is taken from the domain, so the document cannot fall behind it.
fn name_values(openapi: &mut utoipa::openapi::OpenApi) {
    use allot_domain::event::EventType;
    use allot_domain::order::OrderStatus;
    let event_types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    let lists: [(&str, &str, &[&str]); 4] = [
        ("/api/v1/events", "type", &event_types),
        ("/api/v1/events/stream", "type", &event_types),
        ("/api/v1/audit", "type", &event_types),
        ("/api/v1/orders", "status", &statuses),
    ];
    for (path, name, values) in lists {
        let Some(get) = openapi
            .paths
            .paths
            .get_mut(path)
            .and_then(|i| i.get.as_mut())
        else {
            continue;
        };
        for parameter in get.parameters.iter_mut().flatten() {
            if parameter.name == name
                && let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
            {
                object.enum_values = Some(values.iter().map(|v| (*v).into()).collect());
            }
        }
    }
}

/// The webhook bodies: the event types a filter may name, from the domain's list, and the URL
/// form the service checks (`URL_PATTERN`, one constant for both).
fn webhook_bodies(components: &mut utoipa::openapi::Components) {
    use allot_domain::event::EventType;
    for body in ["WebhookBody", "WebhookPatch"] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(body)
            && let Some(RefOr::T(Schema::Object(url))) = object.properties.get_mut("url")
        {
            url.pattern = Some(crate::service::webhook::URL_PATTERN.to_owned());
        }
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(body)
            && let Some(RefOr::T(Schema::Array(array))) = object.properties.get_mut("event_types")
            && let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut array.items
            && let RefOr::T(Schema::Object(item)) = items.as_mut()
        {
            item.enum_values = Some(EventType::ALL.iter().map(|t| t.as_str().into()).collect());
        }
    }
}

/// A promotion's actions refuse fields they do not know (`deny_unknown_fields` on an internally
/// tagged enum, answered 400), which utoipa does not say of each variant: said here.
fn closed_actions(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::AdditionalProperties;
    if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut("ActionSpec") {
        for item in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = item {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// A query or header parameter is text or absent; `Option<T>` fields make utoipa also allow
/// JSON `null`, which no query string can carry.
fn not_null_parameters(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
            && let SchemaType::Array(types) = &object.schema_type
        {
            let types: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            object.schema_type = match types.as_slice() {
                [one] => SchemaType::Type(one.clone()),
                _ => SchemaType::Array(types),
            };
        }
    }
}

fn add_common(method: &str, path: &str, operation: &mut Operation) {
    let access = policy::rule_for(method, path)
        .map_or(policy::DEFAULT_ACCESS, |r| r.access)
        .resolved();
    if access == Access::Public {
        operation.security = Some(Vec::new());
    } else {
        operation.security = Some(vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(API_KEY, Vec::<String>::new()),
        ]);
        add(
            operation,
            "401",
            error(
                "`unauthenticated`: no credential, or one that is unknown, expired or revoked \
                 (`invalid_token`)",
            ),
        );
        if matches!(access, Access::Roles(_)) {
            add(
                operation,
                "403",
                error("`forbidden`: the caller's role may not make this call"),
            );
        }
    }
    // Path parameters that do not parse are answered 404 (no such resource), the rest 422.
    let has_input = operation.request_body.is_some()
        || operation
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in != ParameterIn::Path);
    if operation.request_body.is_some() {
        add(
            operation,
            "400",
            error("`bad_request`: the body is not JSON of this shape"),
        );
        add(
            operation,
            "413",
            error("`payload_too_large`: the body is over this operation's size limit"),
        );
    }
    if has_input {
        add(
            operation,
            "422",
            error("`invalid_argument` naming the field or parameter at fault"),
        );
    }
    if path.contains('{') {
        add(
            operation,
            "404",
            error("`not_found`: no such resource (or an id that cannot be one)"),
        );
    }
    if RATE_LIMITED.contains(&(method, path)) {
        add(
            operation,
            "429",
            retry_after(error(
                "`rate_limited`: too many calls from this client; retry after `Retry-After` \
                 seconds",
            )),
        );
    }
    add(
        operation,
        "503",
        retry_after(error(
            "`storage_unavailable` or `unavailable`: storage or a dependency cannot answer now \
             (nothing was written); retry after `Retry-After` seconds. \
             `storage_outcome_unknown`: the connection to the database was lost while the write \
             committed, so it may have been made; retry with the same idempotency key",
        )),
    );
}

/// Adds a response unless the operation's own annotation already describes that status.
fn add(operation: &mut Operation, status: &str, response: ResponseBuilder) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(response.build()));
}

fn error(description: &str) -> ResponseBuilder {
    Response::builder().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    )
}

fn retry_after(response: ResponseBuilder) -> ResponseBuilder {
    response.header(
        "Retry-After",
        Header::builder()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some("Seconds to wait before retrying"))
            .build(),
    )
}

/// Whether the document declares `method` on the route template `route`: the API's own
/// operations, as opposed to a method the route does not serve (answered 405 by the router).
pub(crate) fn declares(method: &http::Method, route: &str) -> bool {
    static OPERATIONS: std::sync::LazyLock<std::collections::HashSet<(String, String)>> =
        std::sync::LazyLock::new(|| {
            let doc = ApiDoc::openapi();
            let mut operations = std::collections::HashSet::new();
            for (path, item) in &doc.paths.paths {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                for (m, declared) in methods {
                    if declared {
                        operations.insert((m.to_owned(), path.clone()));
                    }
                }
            }
            operations
        });
    OPERATIONS.contains(&(method.as_str().to_owned(), route.to_owned()))
}

pub(crate) const OPENAPI_PATH: &str = "/api/v1/openapi.json";
pub(crate) const DOCS_PATH: &str = "/api/v1/docs";

pub(crate) fn routes() -> Router {
    SwaggerUi::new(DOCS_PATH)
        .url(OPENAPI_PATH, ApiDoc::openapi())
        .into()
}

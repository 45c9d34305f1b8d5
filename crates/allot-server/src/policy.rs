//! Who may call what: one table for every route of every transport (REST by method and route
//! template, gRPC and Connect by method path), enforced by one middleware over the whole router
//! (`http::auth::authorize`). A route missing from the table is admin only (fail closed).
//!
//! Finer rules that depend on the request live beside the handlers and are named in `note`:
//! a customer acts only for itself (its user id is its account id in decimal), sees only its own
//! orders, and moves only its own orders to the statuses [`may_set_order_status`] allows.

use allot_domain::auth::Role;
use allot_domain::order::OrderStatus;

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential.
    Public,
    /// Any valid credential, whatever its role.
    SignedIn,
    /// A credential with one of these roles.
    Roles(&'static [Role]),
    /// Whoever may make this REST call (method, route template): a console page is shown to
    /// exactly the callers of the API it shows, by this table's rule for that call.
    As(&'static str, &'static str),
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self.resolved() {
            Access::Public | Access::SignedIn => true,
            Access::Roles(roles) => roles.contains(&role),
            Access::As(..) => false,
        }
    }

    /// This access with [`Access::As`] replaced by the rule it names (admins only when the
    /// table has none; one step: a rule that names another `As` allows nobody but admins).
    pub fn resolved(self) -> Access {
        match self {
            Access::As(method, route) => match rule_for(method, route).map(|r| r.access) {
                Some(Access::As(..)) | None => DEFAULT_ACCESS,
                Some(access) => access,
            },
            other => other,
        }
    }

    /// For the README and error messages: `public`, `signed in` or the roles, comma separated.
    pub fn describe(self) -> String {
        match self {
            Access::Public => "public".to_owned(),
            Access::SignedIn => "signed in (any role)".to_owned(),
            Access::Roles(roles) => roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            Access::As(method, route) => {
                format!("as {method} `{route}`: {}", self.resolved().describe())
            }
        }
    }
}

/// Which protocol a rule's path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// REST: a route template as the router declares it (`/api/v1/orders/{order_id}`).
    Rest,
    /// gRPC (and Connect for `couponpb.CouponService`): `/package.Service/Method`.
    Rpc,
}

/// One line of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// `GET`, `POST`, `PUT`, `DELETE`, or `*` for any method.
    pub method: &'static str,
    /// A route template or RPC method path; ending in `*`, a prefix (a family of routes, some
    /// of them built elsewhere: `/api/v1/notifications*`).
    pub path: &'static str,
    pub transport: Transport,
    pub access: Access,
    /// One of the original public contracts' customer-facing calls: served without a
    /// credential too when `open_public_contracts` is set.
    pub open_contract: bool,
    /// One of the originals' admin calls (discount-code `Generate`, campaign `CreateCampaign`
    /// and `GetCampaign`, the coupon system's `/upload`): served without a credential to
    /// callers from the networks of `open_admin_contracts_from`, as staff (role marketing),
    /// the way the originals were deployed on an internal network.
    pub admin_contract: bool,
    /// What the handler checks beyond the role, for the README.
    pub note: &'static str,
}

impl Rule {
    fn matches(&self, method: &str, route: &str) -> bool {
        (self.method == "*" || self.method == method)
            && match self.path.strip_suffix('*') {
                Some(prefix) => route.starts_with(prefix),
                None => self.path == route,
            }
    }

    pub fn is_prefix(&self) -> bool {
        self.path.ends_with('*')
    }
}

use Role::{Admin, Customer, Marketing, Support, Warehouse};

const ADMIN: &[Role] = &[Admin];
const MARKETING: &[Role] = &[Admin, Marketing];
const MARKETING_AND_CUSTOMERS: &[Role] = &[Admin, Marketing, Customer];
const MARKETING_AND_SUPPORT: &[Role] = &[Admin, Marketing, Support];
const PROMOTION_PREVIEWERS: &[Role] = &[Admin, Marketing, Support, Customer];
const WAREHOUSE: &[Role] = &[Admin, Warehouse];
const ORDER_PLACERS: &[Role] = &[Admin, Customer];
const ORDER_READERS: &[Role] = &[Admin, Support, Warehouse, Customer];
const NOTIFICATION_SENDERS: &[Role] = &[Admin, Support];
const PAYMENT_STAFF: &[Role] = &[Admin, Support];
/// Who may fulfil an order (as `may_set_order_status` allows `fulfilled`).
const SHIPPERS: &[Role] = &[Admin, Support, Warehouse];
const RETURN_OPENERS: &[Role] = &[Admin, Support, Customer];
const RETURN_DECIDERS: &[Role] = &[Admin, Support];
/// Who may take a return's items in (as `may_set_order_status` allows `returned`).
const RETURN_RECEIVERS: &[Role] = &[Admin, Support, Warehouse];
const STAFF: &[Role] = &[Admin, Marketing, Warehouse, Support];

const fn rest(method: &'static str, path: &'static str, access: Access) -> Rule {
    Rule {
        method,
        path,
        transport: Transport::Rest,
        access,
        open_contract: false,
        admin_contract: false,
        note: "",
    }
}

const fn rpc(path: &'static str, access: Access) -> Rule {
    Rule {
        method: "POST",
        path,
        transport: Transport::Rpc,
        access,
        open_contract: false,
        admin_contract: false,
        note: "",
    }
}

const fn open(rule: Rule) -> Rule {
    Rule {
        open_contract: true,
        ..rule
    }
}

const fn trusted(rule: Rule) -> Rule {
    Rule {
        admin_contract: true,
        ..rule
    }
}

const fn note(rule: Rule, note: &'static str) -> Rule {
    Rule { note, ..rule }
}

/// A console page (HTML, and the JSON its page polls), shown to whoever may make `api`'s call.
const fn page(path: &'static str, api_method: &'static str, api_route: &'static str) -> Rule {
    rest("GET", path, Access::As(api_method, api_route))
}

const OWN_ID: &str = "a customer only for its own user id";

/// The table. The first rule that matches wins, so a specific path comes before a prefix that
/// also covers it.
pub const RULES: &[Rule] = &[
    // Probes, metrics, API documents and signing in.
    rest("GET", "/health", Access::Public),
    rest("GET", "/ready", Access::Public),
    note(
        rest("GET", "/metrics", Access::Public),
        "keep the port off the internet or filter /metrics at the proxy",
    ),
    rest("GET", "/api/v1/openapi.json", Access::Public),
    rest("GET", "/api/v1/docs", Access::Public),
    rest("GET", "/api/v1/docs/*", Access::Public),
    rpc("/grpc.health.v1.Health/*", Access::Public),
    rpc("/grpc.reflection.v1.ServerReflection/*", Access::Public),
    rpc(
        "/grpc.reflection.v1alpha.ServerReflection/*",
        Access::Public,
    ),
    rest("POST", "/api/v1/auth/login", Access::Public),
    rest("POST", "/api/v1/auth/refresh", Access::Public),
    note(
        rest("POST", "/api/v1/auth/logout", Access::Public),
        "the refresh token in the body is the credential",
    ),
    note(
        rest("POST", "/api/v1/setup", Access::Public),
        "the setup token printed at start is the credential; only while no admin exists",
    ),
    note(
        rest("POST", "/api/v1/auth/signup", Access::Public),
        "only with allow_signup",
    ),
    note(
        rest("POST", "/api/v1/auth/verify-email", Access::Public),
        "the emailed token is the credential",
    ),
    rest("POST", "/api/v1/auth/forgot-password", Access::Public),
    note(
        rest("POST", "/api/v1/auth/reset-password", Access::Public),
        "the emailed token is the credential",
    ),
    rest("GET", "/api/v1/auth/me", Access::SignedIn),
    note(
        rest("POST", "/api/v1/auth/password", Access::SignedIn),
        "users only, not API keys",
    ),
    // The console (HTML, signed in by a session cookie): its sign-in, setup and assets are
    // open; each page is shown to whoever may call the API it shows.
    rest("GET", "/", Access::Public),
    rest("*", "/setup", Access::Public),
    rest("GET", "/signup", Access::Public),
    rest("GET", "/verify-email", Access::Public),
    rest("GET", "/forgot-password", Access::Public),
    rest("GET", "/reset-password", Access::Public),
    rest("POST", "/console/sign-in", Access::Public),
    note(
        rest("POST", "/console/sign-out", Access::Public),
        "the session cookie and the form's CSRF token are the credential",
    ),
    rest("GET", "/console/assets/{name}", Access::Public),
    rest("GET", "/console", Access::Roles(STAFF)),
    rest("GET", "/console/overview.json", Access::Roles(STAFF)),
    page("/console/campaigns*", "POST", "/api/v1/campaigns"),
    page(
        "/console/discount-codes*",
        "POST",
        "/api/v1/discount-codes/batches",
    ),
    page("/console/coupons*", "GET", "/api/v1/coupons/stats"),
    page("/console/promotions*", "GET", "/api/v1/promotions"),
    page("/console/sales*", "GET", "/api/v1/sales/{id}/purchases"),
    page("/console/catalog*", "POST", "/api/v1/products"),
    page("/console/warehouses*", "GET", "/api/v1/warehouses"),
    page("/console/inventory*", "GET", "/api/v1/inventory"),
    page("/console/orders*", "GET", "/api/v1/orders"),
    page("/console/users*", "GET", "/api/v1/users"),
    page("/console/api-keys*", "GET", "/api/v1/api-keys"),
    page("/console/webhooks*", "GET", "/api/v1/webhooks"),
    page("/console/events*", "GET", "/api/v1/events"),
    page("/console/audit*", "GET", "/api/v1/audit"),
    page(
        "/console/notifications*",
        "GET",
        "/api/v1/notifications/templates",
    ),
    // Discount codes.
    rest(
        "POST",
        "/api/v1/discount-codes/batches",
        Access::Roles(MARKETING),
    ),
    rest(
        "GET",
        "/api/v1/discount-codes/{code}",
        Access::Roles(MARKETING),
    ),
    rest(
        "POST",
        "/api/v1/discount-codes/{code}/use",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    ),
    trusted(rpc("/discount.Discount/Generate", Access::Roles(MARKETING))),
    open(rpc(
        "/discount.Discount/UseCode",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    // Campaigns (REST, and gRPC and Connect on the same paths).
    rest("POST", "/api/v1/campaigns", Access::Roles(MARKETING)),
    rest("GET", "/api/v1/campaigns", Access::Roles(MARKETING)),
    rest(
        "GET",
        "/api/v1/campaigns/{id}",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    ),
    note(
        rest(
            "GET",
            "/api/v1/campaigns/{id}/coupons",
            Access::Roles(MARKETING),
        ),
        "every issued code and its holder",
    ),
    note(
        rest(
            "POST",
            "/api/v1/campaigns/{id}/coupons",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        "user_id: a customer only its own (its own when left out)",
    ),
    trusted(rpc(
        "/couponpb.CouponService/CreateCampaign",
        Access::Roles(MARKETING),
    )),
    trusted(open(note(
        rpc(
            "/couponpb.CouponService/GetCampaign",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        "codes: staff the first 10,000, a customer its own, anonymous none",
    ))),
    open(note(
        rpc(
            "/couponpb.CouponService/IssueCoupon",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        "user_id: a customer only its own (its own when left out)",
    )),
    // Uploaded coupons.
    rest("POST", "/api/v1/coupons", Access::Roles(MARKETING)),
    rest("POST", "/api/v1/coupons/csv", Access::Roles(MARKETING)),
    note(
        rest(
            "POST",
            "/api/v1/coupons/requests",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    ),
    note(
        rest(
            "GET",
            "/api/v1/coupons/requests/{ticket}",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    ),
    rest("GET", "/api/v1/coupons/stats", Access::Roles(MARKETING)),
    rest("POST", "/api/v1/coupons/purge", Access::Roles(MARKETING)),
    rest("GET", "/api/v1/coupons/megadeal", Access::Roles(MARKETING)),
    rest(
        "GET",
        "/api/v1/coupons/{code}",
        Access::Roles(MARKETING_AND_SUPPORT),
    ),
    note(
        rest(
            "POST",
            "/api/v1/coupons/{code}/validate",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    ),
    note(
        rest(
            "POST",
            "/api/v1/coupons/{code}/redeem",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    ),
    rest("GET", "/api/v1/redemptions", Access::Roles(MARKETING)),
    // The original coupon system's routes (seed 001), at the root path.
    trusted(rest("POST", "/upload", Access::Roles(MARKETING))),
    open(note(
        rest(
            "GET",
            "/request-new",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    )),
    open(note(
        rest(
            "GET",
            "/request-status",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    )),
    open(note(
        rest("POST", "/redeem", Access::Roles(MARKETING_AND_CUSTOMERS)),
        OWN_ID,
    )),
    open(note(
        rest("GET", "/validate", Access::Roles(MARKETING_AND_CUSTOMERS)),
        OWN_ID,
    )),
    // Flash sales: the design document's checkout at the root path (seed 002), Allot's own
    // one-code-per-item checkout under the sale, and reads.
    open(note(
        rest("POST", "/checkout", Access::Roles(MARKETING_AND_CUSTOMERS)),
        OWN_ID,
    )),
    open(rest(
        "POST",
        "/purchase",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    open(rest(
        "GET",
        "/sales/active",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    open(note(
        rest(
            "POST",
            "/api/v1/sales/{id}/checkout",
            Access::Roles(MARKETING_AND_CUSTOMERS),
        ),
        OWN_ID,
    )),
    open(rest(
        "POST",
        "/api/v1/sales/{id}/purchase",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    rest("GET", "/api/v1/sales", Access::Roles(MARKETING)),
    open(rest(
        "GET",
        "/api/v1/sales/current",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    open(rest(
        "GET",
        "/api/v1/sales/{id}",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    open(rest(
        "GET",
        "/api/v1/sales/{id}/items",
        Access::Roles(MARKETING_AND_CUSTOMERS),
    )),
    rest(
        "GET",
        "/api/v1/sales/{id}/purchases",
        Access::Roles(MARKETING),
    ),
    // Catalog: reads for anyone signed in; products and categories written by admins;
    // warehouses by warehouse staff.
    rest("GET", "/api/v1/products", Access::SignedIn),
    rest("POST", "/api/v1/products", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/products/{id}", Access::SignedIn),
    rest("PUT", "/api/v1/products/{id}", Access::Roles(ADMIN)),
    rest("DELETE", "/api/v1/products/{id}", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/categories", Access::SignedIn),
    rest("POST", "/api/v1/categories", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/categories/tree", Access::SignedIn),
    rest("GET", "/api/v1/categories/{id}", Access::SignedIn),
    rest("PUT", "/api/v1/categories/{id}", Access::Roles(ADMIN)),
    rest("DELETE", "/api/v1/categories/{id}", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/warehouses", Access::Roles(WAREHOUSE)),
    rest("POST", "/api/v1/warehouses", Access::Roles(WAREHOUSE)),
    rest("GET", "/api/v1/warehouses/{id}", Access::Roles(WAREHOUSE)),
    rest("PUT", "/api/v1/warehouses/{id}", Access::Roles(WAREHOUSE)),
    rest(
        "DELETE",
        "/api/v1/warehouses/{id}",
        Access::Roles(WAREHOUSE),
    ),
    // Inventory.
    rest("GET", "/api/v1/inventory", Access::Roles(WAREHOUSE)),
    rest("GET", "/api/v1/inventory/alerts", Access::Roles(WAREHOUSE)),
    rest(
        "POST",
        "/api/v1/inventory/reserve",
        Access::Roles(WAREHOUSE),
    ),
    rest(
        "POST",
        "/api/v1/inventory/release",
        Access::Roles(WAREHOUSE),
    ),
    rest(
        "POST",
        "/api/v1/inventory/confirm",
        Access::Roles(WAREHOUSE),
    ),
    rest("POST", "/api/v1/inventory/adjust", Access::Roles(WAREHOUSE)),
    rest(
        "GET",
        "/api/v1/inventory/reservations/{reservation_id}",
        Access::Roles(WAREHOUSE),
    ),
    rest(
        "GET",
        "/api/v1/inventory/{product_id}",
        Access::Roles(WAREHOUSE),
    ),
    rest(
        "GET",
        "/api/v1/inventory/{product_id}/movements",
        Access::Roles(WAREHOUSE),
    ),
    rest(
        "GET",
        "/api/v1/inventory/{product_id}/reservations",
        Access::Roles(WAREHOUSE),
    ),
    rest(
        "PUT",
        "/api/v1/inventory/{product_id}/reorder",
        Access::Roles(WAREHOUSE),
    ),
    // Orders.
    note(
        rest("POST", "/api/v1/orders", Access::Roles(ORDER_PLACERS)),
        "customer: a customer only itself (itself when left out)",
    ),
    note(
        rest("GET", "/api/v1/orders", Access::Roles(ORDER_READERS)),
        "a customer lists only its own",
    ),
    note(
        rest(
            "GET",
            "/api/v1/orders/{order_id}",
            Access::Roles(ORDER_READERS),
        ),
        "a customer reads only its own (404 for another's)",
    ),
    note(
        rest(
            "PUT",
            "/api/v1/orders/{order_id}",
            Access::Roles(ORDER_PLACERS),
        ),
        "while pending; a customer edits only its own (404 for another's)",
    ),
    note(
        rest(
            "PUT",
            "/api/v1/orders/{order_id}/status",
            Access::Roles(ORDER_READERS),
        ),
        "warehouse: fulfilled, delivered, returned; customer: its own, to cancelled or \
         return_requested; admin and support: any",
    ),
    // Payments and refunds: recorded by the staff who take and give back money.
    rest(
        "POST",
        "/api/v1/orders/{order_id}/payments",
        Access::Roles(PAYMENT_STAFF),
    ),
    rest(
        "GET",
        "/api/v1/orders/{order_id}/payments",
        Access::Roles(PAYMENT_STAFF),
    ),
    rest(
        "POST",
        "/api/v1/orders/{order_id}/refunds",
        Access::Roles(PAYMENT_STAFF),
    ),
    // Shipments and returns of lines: shipped by whoever fulfils orders; a return opened by
    // the order's customer or support, decided by support, received by the warehouse.
    rest(
        "POST",
        "/api/v1/orders/{order_id}/shipments",
        Access::Roles(SHIPPERS),
    ),
    note(
        rest(
            "GET",
            "/api/v1/orders/{order_id}/shipments",
            Access::Roles(ORDER_READERS),
        ),
        "a customer reads only its own orders' (404 for another's)",
    ),
    note(
        rest(
            "POST",
            "/api/v1/orders/{order_id}/returns",
            Access::Roles(RETURN_OPENERS),
        ),
        "a customer only for its own orders (404 for another's)",
    ),
    note(
        rest(
            "GET",
            "/api/v1/orders/{order_id}/returns",
            Access::Roles(ORDER_READERS),
        ),
        "a customer reads only its own orders' (404 for another's)",
    ),
    rest(
        "POST",
        "/api/v1/returns/{return_id}/approve",
        Access::Roles(RETURN_DECIDERS),
    ),
    rest(
        "POST",
        "/api/v1/returns/{return_id}/reject",
        Access::Roles(RETURN_DECIDERS),
    ),
    rest(
        "POST",
        "/api/v1/returns/{return_id}/receive",
        Access::Roles(RETURN_RECEIVERS),
    ),
    note(
        rest("POST", "/api/v1/payments/stripe", Access::Public),
        "the Stripe-Signature header is the credential; only with stripe_webhook_secret",
    ),
    // Promotions: managed by marketing; previewed by staff who answer customers and by
    // customers; held, redeemed and rolled back by a shop's backend (an API key of marketing).
    rest("POST", "/api/v1/promotions", Access::Roles(MARKETING)),
    rest("GET", "/api/v1/promotions", Access::Roles(MARKETING)),
    note(
        rest(
            "POST",
            "/api/v1/promotions/evaluate",
            Access::Roles(PROMOTION_PREVIEWERS),
        ),
        "a customer only as itself (its role, tags and orders from its account)",
    ),
    rest("POST", "/api/v1/promotions/holds", Access::Roles(MARKETING)),
    note(
        rest(
            "POST",
            "/api/v1/promotions/redemptions",
            Access::Roles(MARKETING),
        ),
        "a hold made redeemed in one call; rolled back like any redeemed hold",
    ),
    rest(
        "GET",
        "/api/v1/promotions/holds/{id}",
        Access::Roles(MARKETING),
    ),
    rest(
        "POST",
        "/api/v1/promotions/holds/{id}/release",
        Access::Roles(MARKETING),
    ),
    rest(
        "POST",
        "/api/v1/promotions/holds/{id}/redeem",
        Access::Roles(MARKETING),
    ),
    note(
        rest(
            "POST",
            "/api/v1/promotions/holds/{id}/rollback",
            Access::Roles(MARKETING),
        ),
        "gives back once; again answers the hold as it is",
    ),
    rest("GET", "/api/v1/promotions/{id}", Access::Roles(MARKETING)),
    rest("PUT", "/api/v1/promotions/{id}", Access::Roles(MARKETING)),
    rest(
        "POST",
        "/api/v1/promotions/{id}/codes",
        Access::Roles(MARKETING),
    ),
    rest(
        "GET",
        "/api/v1/promotions/{id}/holds",
        Access::Roles(MARKETING),
    ),
    // Accounts: who may do what is decided by them, so only admins manage them.
    rest("GET", "/api/v1/users", Access::Roles(ADMIN)),
    rest("POST", "/api/v1/users", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/users/{id}", Access::Roles(ADMIN)),
    note(
        rest("PUT", "/api/v1/users/{id}/role", Access::Roles(ADMIN)),
        "never the last active admin's",
    ),
    note(
        rest("PUT", "/api/v1/users/{id}/active", Access::Roles(ADMIN)),
        "never the last active admin's",
    ),
    rest("POST", "/api/v1/users/{id}/password", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/api-keys", Access::Roles(ADMIN)),
    rest("POST", "/api/v1/api-keys", Access::Roles(ADMIN)),
    rest("DELETE", "/api/v1/api-keys/{id}", Access::Roles(ADMIN)),
    // The event log and what is built on it: admins only (payloads carry every capability's
    // data, personal data included).
    rest("GET", "/api/v1/events", Access::Roles(ADMIN)),
    rest("GET", "/api/v1/events/stream", Access::Roles(ADMIN)),
    rest("*", "/api/v1/audit*", Access::Roles(ADMIN)),
    rest("*", "/api/v1/webhooks*", Access::Roles(ADMIN)),
    // Notifications: templates by marketing, direct sends and delivery states by support, each
    // user's own inbox and preferences by everyone signed in.
    rest(
        "*",
        "/api/v1/notifications/templates*",
        Access::Roles(MARKETING),
    ),
    rest(
        "*",
        "/api/v1/notifications/rules*",
        Access::Roles(MARKETING),
    ),
    rest(
        "POST",
        "/api/v1/notifications/template-preview",
        Access::Roles(MARKETING),
    ),
    rest(
        "GET",
        "/api/v1/notifications/status/*",
        Access::Roles(NOTIFICATION_SENDERS),
    ),
    rest(
        "GET",
        "/api/v1/notifications/outbox",
        Access::Roles(NOTIFICATION_SENDERS),
    ),
    rest(
        "POST",
        "/api/v1/notifications",
        Access::Roles(NOTIFICATION_SENDERS),
    ),
    note(
        rest("*", "/api/v1/notifications*", Access::SignedIn),
        "the caller's own inbox and preferences",
    ),
];

/// What a route not in the table gets: admins only.
pub const DEFAULT_ACCESS: Access = Access::Roles(ADMIN);

/// The rule for a call, if the table has one: `route` is the REST route template, or the path
/// of an RPC.
pub fn rule_for(method: &str, route: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.matches(method, route))
}

/// Whether `role` may move an order to `to` (beyond that, a customer only its own orders).
pub fn may_set_order_status(role: Role, to: OrderStatus) -> bool {
    match role {
        Admin | Support => true,
        Warehouse => matches!(
            to,
            OrderStatus::Fulfilled | OrderStatus::Delivered | OrderStatus::Returned
        ),
        Customer => matches!(to, OrderStatus::Cancelled | OrderStatus::ReturnRequested),
        Marketing => false,
    }
}

/// The table as the README shows it, one Markdown row per rule; a test keeps the README equal
/// to it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Method | Route or RPC | Who | Open with `open_public_contracts` | Open to `open_admin_contracts_from` | Also |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in RULES {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} |\n",
            r.method,
            r.path,
            r.access.describe(),
            if r.open_contract { "yes" } else { "" },
            if r.admin_contract { "yes" } else { "" },
            r.note
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_wins_and_prefixes_cover_families() {
        assert_eq!(
            rule_for("POST", "/api/v1/notifications").unwrap().access,
            Access::Roles(NOTIFICATION_SENDERS)
        );
        assert_eq!(
            rule_for("GET", "/api/v1/notifications").unwrap().access,
            Access::SignedIn
        );
        assert_eq!(
            rule_for("PUT", "/api/v1/notifications/templates/3")
                .unwrap()
                .access,
            Access::Roles(MARKETING)
        );
        assert!(rule_for("GET", "/api/v1/nothing-here").is_none());
        assert!(rule_for("DELETE", "/api/v1/orders").is_none());
    }

    #[test]
    fn admins_may_do_everything_in_the_table() {
        for r in RULES {
            assert!(r.access.allows(Admin), "{} {}", r.method, r.path);
        }
    }
}

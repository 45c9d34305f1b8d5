//! The console's catalog, warehouse and inventory pages, signed in as a person would (a form
//! post to `/console/sign-in`, then the session cookie): each page shows what was just stored,
//! to the roles the policy table lets see it, and is "Not allowed" (403) to the others.

use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, anonymous, browser, http};

const PASSWORD: &str = "correct horse battery staple";

/// A server with one signed-in console session per role asked for.
pub(crate) struct Console {
    /// Keeps the server running as long as the console.
    _app: TestApp,
    pub base: String,
    /// (role, session token, user id).
    sessions: Vec<(Role, String, i64)>,
}

impl Console {
    pub(crate) async fn open(roles: &[Role]) -> Console {
        let app = TestApp::spawn().await;
        let base = app.url();
        let mut sessions = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            let email = format!("{}{i}@example.com", role.as_str());
            let user = app
                .services
                .auth
                .create_user(
                    Email::parse(&email).unwrap(),
                    Password::parse(PASSWORD).unwrap(),
                    *role,
                )
                .await
                .unwrap();
            let r = browser()
                .post(format!("{base}/console/sign-in"))
                .form(&[("email", email.as_str()), ("password", PASSWORD)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "signing in as {}", role.as_str());
            let cookie = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.strip_prefix("allot_session="))
                .and_then(|v| v.split(';').next())
                .expect("a session cookie")
                .to_owned();
            sessions.push((*role, cookie, user.id.get()));
        }
        Console {
            _app: app,
            base,
            sessions,
        }
    }

    /// The user id of the (first) user of `role`, as orders and coupons name it.
    pub(crate) fn user_id(&self, role: Role) -> String {
        self.sessions
            .iter()
            .find(|s| s.0 == role)
            .unwrap()
            .2
            .to_string()
    }

    fn cookie(&self, role: Role) -> String {
        let token = &self.sessions.iter().find(|s| s.0 == role).unwrap().1;
        format!("allot_session={token}")
    }

    /// A console page as `role` sees it: its status and HTML.
    pub(crate) async fn page(&self, role: Role, path: &str) -> (u16, String) {
        let r = browser()
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie(role))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// An API call as a console page makes it: the session cookie and the page's CSRF token.
    pub(crate) async fn api(
        &self,
        role: Role,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| ("application/json", b.to_string()));
        self.api_raw(role, method, path, body).await
    }

    /// [`Console::api`] with a body of another type (a CSV file).
    pub(crate) async fn api_raw(
        &self,
        role: Role,
        method: &str,
        path: &str,
        body: Option<(&str, String)>,
    ) -> (u16, Value) {
        // Every page carries the token; a customer sees no overview, but its orders.
        let mut csrf = String::new();
        for page in ["/console", "/console/orders"] {
            let (_, html) = self.page(role, page).await;
            if let Some(token) = html
                .split("name=\"csrf-token\" content=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
            {
                csrf = token.to_owned();
                break;
            }
        }
        let mut req = anonymous()
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", self.cookie(role))
            .header("x-csrf-token", csrf);
        if let Some((content_type, b)) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// An API call as the harness admin (to set up what a page shows).
    pub(crate) async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = http().request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// A product, a warehouse and `n` units of it there: (product id, warehouse id).
    pub(crate) async fn stocked(&self, sku: &str, warehouse: &str, n: i64) -> (i64, i64) {
        let p = self
            .admin(
                "POST",
                "/api/v1/products",
                Some(json!({"sku": sku, "name": format!("Product {sku}"),
                            "price": {"amount_minor": 1250, "currency": "EUR"}})),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        let w = self
            .admin(
                "POST",
                "/api/v1/warehouses",
                Some(json!({"code": warehouse, "name": format!("Warehouse {warehouse}")})),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        self.admin(
            "POST",
            "/api/v1/inventory/adjust",
            Some(json!({"product_id": p, "warehouse_id": w, "mode": "set",
                        "quantity": n, "reason": "first count"})),
        )
        .await;
        (p, w)
    }
}

/// The page is the layout's "Not allowed" page.
pub(crate) fn refused(status: u16, html: &str) {
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Not allowed"), "{html}");
}

#[tokio::test]
async fn the_catalog_page_lists_searches_and_edits_products_for_admins_only() {
    let c = Console::open(&[Role::Admin, Role::Warehouse, Role::Marketing]).await;
    let shoes = c
        .admin("POST", "/api/v1/categories", Some(json!({"name": "Shoes"})))
        .await["id"]
        .as_i64()
        .unwrap();
    c.admin(
        "POST",
        "/api/v1/categories",
        Some(json!({"name": "Trail shoes", "parent_id": shoes})),
    )
    .await;
    let (kettle, _) = c.stocked("KETTLE-1", "MAIN", 5).await;
    c.admin(
        "POST",
        "/api/v1/products",
        Some(
            json!({"sku": "MUG-1", "name": "Blue mug", "category_id": shoes,
                    "price": {"amount_minor": 900, "currency": "EUR"}}),
        ),
    )
    .await;

    let (s, html) = c.page(Role::Admin, "/console/catalog").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("Product KETTLE-1") && html.contains("Blue mug"));
    assert!(html.contains("Trail shoes"), "the category tree");
    assert!(html.contains("id=\"product-create\""));

    let (_, found) = c.page(Role::Admin, "/console/catalog?q=mug").await;
    assert!(found.contains("Blue mug") && !found.contains("Product KETTLE-1"));

    let (s, edit) = c
        .page(Role::Admin, &format!("/console/catalog/products/{kettle}"))
        .await;
    assert_eq!(s, 200, "{edit}");
    assert!(edit.contains("value=\"KETTLE-1\"") && edit.contains("value=\"1250\""));
    assert!(edit.contains("data-api=\"/api/v1/products/{id}\""));
    assert!(edit.contains("id=\"product-delete\""));

    // The edit form's call, as the page sends it.
    let (s, b) = c
        .api(
            Role::Admin,
            "PUT",
            &format!("/api/v1/products/{kettle}"),
            Some(json!({"sku": "KETTLE-1", "name": "Steel kettle",
                        "price": {"amount_minor": 1500, "currency": "EUR"},
                        "attributes": {}, "active": true})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, html) = c.page(Role::Admin, "/console/catalog").await;
    assert!(html.contains("Steel kettle"));

    let (s, html) = c.page(Role::Warehouse, "/console/catalog").await;
    refused(s, &html);
    let (s, html) = c.page(Role::Marketing, "/console/catalog").await;
    refused(s, &html);
    let (s, html) = c
        .page(
            Role::Marketing,
            &format!("/console/catalog/products/{kettle}"),
        )
        .await;
    refused(s, &html);
}

#[tokio::test]
async fn the_warehouse_pages_list_create_and_edit_for_warehouse_staff() {
    let c = Console::open(&[Role::Warehouse, Role::Support]).await;
    let (_, w) = c.stocked("BOX-1", "SEOUL-1", 3).await;

    let (s, html) = c.page(Role::Warehouse, "/console/warehouses").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("SEOUL-1") && html.contains("Warehouse SEOUL-1"));
    assert!(html.contains("id=\"warehouse-create\""));

    let (s, b) = c
        .api(
            Role::Warehouse,
            "POST",
            "/api/v1/warehouses",
            Some(json!({"code": "busan-2", "name": "Busan", "active": true})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (_, html) = c.page(Role::Warehouse, "/console/warehouses").await;
    assert!(html.contains("BUSAN-2"));

    let (s, edit) = c
        .page(Role::Warehouse, &format!("/console/warehouses/{w}"))
        .await;
    assert_eq!(s, 200, "{edit}");
    assert!(edit.contains("id=\"warehouse-edit\"") && edit.contains("value=\"SEOUL-1\""));
    let (s, _) = c.page(Role::Warehouse, "/console/warehouses/999999").await;
    assert_eq!(s, 404);

    let (s, html) = c.page(Role::Support, "/console/warehouses").await;
    refused(s, &html);
}

#[tokio::test]
async fn the_inventory_pages_show_levels_alerts_and_a_products_ledger() {
    let c = Console::open(&[Role::Warehouse, Role::Marketing]).await;
    let (p, w) = c.stocked("LAMP-7", "MAIN", 40).await;
    // A reorder point above the stock: the alert opens at once.
    c.admin(
        "PUT",
        &format!("/api/v1/inventory/{p}/reorder"),
        Some(json!({"warehouse_id": w, "reorder_threshold": 50, "reorder_quantity": 100})),
    )
    .await;

    let (s, html) = c.page(Role::Warehouse, "/console/inventory").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("LAMP-7"), "{html}");
    assert!(html.contains("low: alert open"), "the level's state");
    assert!(html.contains(&format!("Product #{p}")), "the open alert");
    let (_, low) = c.page(Role::Warehouse, "/console/inventory?low=true").await;
    assert!(low.contains("LAMP-7"));
    let (_, other) = c
        .page(Role::Warehouse, "/console/inventory?sku=NOPE-1")
        .await;
    assert!(!other.contains("LAMP-7"));
    let (s, _) = c
        .page(Role::Warehouse, "/console/inventory?warehouse_id=abc")
        .await;
    assert_eq!(s, 422);

    // The adjust form's call, as the page sends it; the product's page shows it.
    let (s, b) = c
        .api(
            Role::Warehouse,
            "POST",
            "/api/v1/inventory/adjust",
            Some(json!({"product_id": p, "warehouse_id": w, "mode": "add",
                        "quantity": 25, "reason": "found behind the shelf"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, html) = c
        .page(Role::Warehouse, &format!("/console/inventory/{p}"))
        .await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("id=\"product-on-hand\">65<"), "{html}");
    assert!(html.contains("found behind the shelf") && html.contains("+25"));
    assert!(html.contains("id=\"stock-adjust\"") && html.contains("id=\"stock-reorder\""));

    let (s, html) = c.page(Role::Marketing, "/console/inventory").await;
    refused(s, &html);
    let (s, html) = c
        .page(Role::Marketing, &format!("/console/inventory/{p}"))
        .await;
    refused(s, &html);
}

#[tokio::test]
async fn a_products_ledger_and_reservations_are_paged_newest_first_for_warehouse_staff() {
    let c = Console::open(&[Role::Warehouse, Role::Marketing]).await;
    let (p, _) = c.stocked("PEN-1", "MAIN", 100).await;
    let (other, _) = c.stocked("PEN-2", "SIDE", 100).await;
    let mut made = Vec::new();
    for (i, n) in [3, 4, 5].into_iter().enumerate() {
        let r = c
            .admin(
                "POST",
                "/api/v1/inventory/reserve",
                Some(json!({"product_id": p, "quantity": n, "holder": format!("cart-{i}")})),
            )
            .await;
        made.push(r["id"].as_i64().unwrap());
    }
    c.admin(
        "POST",
        "/api/v1/inventory/reserve",
        Some(json!({"product_id": other, "quantity": 1, "holder": "elsewhere"})),
    )
    .await;
    c.admin(
        "POST",
        "/api/v1/inventory/release",
        Some(json!({"reservation_id": made[0]})),
    )
    .await;

    // Reservations: newest first, two a page, the released one with its status.
    let path = format!("/api/v1/inventory/{p}/reservations?limit=2");
    let (s, first) = c.api(Role::Warehouse, "GET", &path, None).await;
    assert_eq!(s, 200, "{first}");
    let ids: Vec<i64> = first["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [made[2], made[1]]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (s, second) = c
        .api(
            Role::Warehouse,
            "GET",
            &format!("{path}&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{second}");
    let rest = second["reservations"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{second}");
    assert_eq!(rest[0]["id"], made[0]);
    assert_eq!(rest[0]["status"], "released");
    assert_eq!(rest[0]["holder"], "cart-0");
    assert!(second["next_cursor"].is_null());

    // The ledger: the count, three reservations and a release, newest first, paged.
    let mut kinds = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/inventory/{p}/movements?limit=2"),
            Some(c) => format!("/api/v1/inventory/{p}/movements?limit=2&cursor={c}"),
        };
        let (s, page) = c.api(Role::Warehouse, "GET", &path, None).await;
        assert_eq!(s, 200, "{page}");
        for m in page["movements"].as_array().unwrap() {
            kinds.push(m["kind"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        kinds,
        [
            "release",
            "reservation",
            "reservation",
            "reservation",
            "adjustment"
        ]
    );

    let (s, _) = c
        .api(
            Role::Warehouse,
            "GET",
            "/api/v1/inventory/999999/movements",
            None,
        )
        .await;
    assert_eq!(s, 404);
    for query in ["limit=0", "cursor=0", "cursor=x"] {
        let (s, _) = c
            .api(
                Role::Warehouse,
                "GET",
                &format!("/api/v1/inventory/{p}/reservations?{query}"),
                None,
            )
            .await;
        assert_eq!(s, 422, "{query}");
    }
    for route in ["movements", "reservations"] {
        let (s, b) = c
            .api(
                Role::Marketing,
                "GET",
                &format!("/api/v1/inventory/{p}/{route}"),
                None,
            )
            .await;
        assert_eq!(s, 403, "{route}: {b}");
    }

    // The product's page shows both.
    let (s, html) = c
        .page(Role::Warehouse, &format!("/console/inventory/{p}"))
        .await;
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("cart-2") && html.contains("released"),
        "{html}"
    );
    assert!(!html.contains("elsewhere"));
}

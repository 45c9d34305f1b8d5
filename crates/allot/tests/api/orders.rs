//! Orders over REST, on the suite's backend: one atomic step per order under storms of
//! concurrent orders, codes held and given back, the status workflow and its stock movements,
//! idempotent retries, exact prices; after each test the ledger's sums are checked against the
//! balances in the database.

use serde_json::{Value, json};

use crate::helpers::{AppDb, TestApp, http};

async fn send(req: reqwest::RequestBuilder) -> (u16, Value, bool) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, replayed)
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let (s, b, _) = send(c.post(url).json(&body)).await;
    (s, b)
}

struct Shop {
    app: TestApp,
    c: reqwest::Client,
    base: String,
}

impl Shop {
    async fn open() -> Shop {
        let app = TestApp::spawn().await;
        let base = app.url();
        Shop {
            app,
            c: http(),
            base,
        }
    }

    async fn open_configured(configure: impl FnOnce(&mut allot_server::config::Config)) -> Shop {
        let app = TestApp::spawn_configured(None, configure).await;
        let base = app.url();
        Shop {
            app,
            c: http(),
            base,
        }
    }

    async fn edit(&self, id: i64, body: &Value) -> (u16, Value) {
        let (s, b, _) = send(
            self.c
                .put(format!("{}/api/v1/orders/{id}", self.base))
                .json(body),
        )
        .await;
        (s, b)
    }

    async fn get(&self, id: i64) -> Value {
        let (s, b, _) = send(self.c.get(format!("{}/api/v1/orders/{id}", self.base))).await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn events(&self, kind: &str) -> Vec<Value> {
        let (s, b, _) = send(self.c.get(format!(
            "{}/api/v1/events?type={kind}&limit=1000",
            self.base
        )))
        .await;
        assert_eq!(s, 200, "{b}");
        b["events"].as_array().cloned().unwrap_or_default()
    }

    async fn event_count(&self) -> usize {
        let (s, b, _) = send(
            self.c
                .get(format!("{}/api/v1/events?limit=1000", self.base)),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b["events"].as_array().map_or(0, Vec::len)
    }

    async fn product(&self, sku: &str, price: i64, currency: &str) -> i64 {
        let (s, b) = post(
            &self.c,
            format!("{}/api/v1/products", self.base),
            json!({"sku": sku, "name": sku, "price": {"amount_minor": price, "currency": currency}}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_i64().expect("product id")
    }

    async fn warehouse(&self, code: &str) -> i64 {
        let (s, b) = post(
            &self.c,
            format!("{}/api/v1/warehouses", self.base),
            json!({"code": code, "name": code}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_i64().expect("warehouse id")
    }

    async fn stock(&self, product: i64, warehouse: i64, n: i64) {
        let (s, b) = post(
            &self.c,
            format!("{}/api/v1/inventory/adjust", self.base),
            json!({"product_id": product, "warehouse_id": warehouse, "mode": "set",
                   "quantity": n, "reason": "count"}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }

    /// The product's stock: (on hand, reserved) over all warehouses, and per warehouse.
    async fn level(&self, product: i64) -> Value {
        let (s, b, _) = send(
            self.c
                .get(format!("{}/api/v1/inventory/{product}", self.base)),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn totals(&self, product: i64) -> (i64, i64) {
        let l = self.level(product).await;
        (
            l["on_hand"].as_i64().expect("on_hand"),
            l["reserved"].as_i64().expect("reserved"),
        )
    }

    async fn on_hand_in(&self, product: i64, warehouse: i64) -> i64 {
        let l = self.level(product).await;
        l["warehouses"]
            .as_array()
            .expect("warehouses")
            .iter()
            .find(|w| w["warehouse_id"] == warehouse)
            .map_or(0, |w| w["on_hand"].as_i64().expect("on_hand"))
    }

    async fn coupon(&self, code: &str, kind: &str, amount: i64, max_uses: i64) {
        let (s, b) = post(
            &self.c,
            format!("{}/api/v1/coupons", self.base),
            json!({"coupons": [{"code": code, "type": null, "discount_kind": kind,
                   "discount_amount": amount, "expires_at": "2099-01-01T00:00:00Z",
                   "max_uses": max_uses}]}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }

    async fn coupon_uses(&self, code: &str) -> i64 {
        let (s, b, _) = send(self.c.get(format!("{}/api/v1/coupons/{code}", self.base))).await;
        assert_eq!(s, 200, "{b}");
        b["uses"].as_i64().unwrap_or_else(|| panic!("uses in {b}"))
    }

    async fn discount_code(&self) -> String {
        let (s, b) = post(
            &self.c,
            format!("{}/api/v1/discount-codes/batches", self.base),
            json!({"count": 1, "length": 8}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        b["codes"][0].as_str().expect("code").to_owned()
    }

    async fn code_used(&self, code: &str) -> bool {
        let (s, b, _) = send(
            self.c
                .get(format!("{}/api/v1/discount-codes/{code}", self.base)),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b["used"].as_bool().expect("used")
    }

    fn order_body(lines: &[(i64, i64)], coupon: Option<&str>, code: Option<&str>) -> Value {
        json!({
            "customer": "ada",
            "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                 "postal_code": "75001", "country": "FR"},
            "lines": lines.iter().map(|(p, q)| json!({"product_id": p, "quantity": q}))
                .collect::<Vec<_>>(),
            "coupon": coupon,
            "discount_code": code,
        })
    }

    async fn place(&self, body: &Value, key: Option<&str>) -> (u16, Value, bool) {
        let mut req = self
            .c
            .post(format!("{}/api/v1/orders", self.base))
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        send(req).await
    }

    async fn order(&self, lines: &[(i64, i64)], coupon: Option<&str>, code: Option<&str>) -> Value {
        let (s, b, _) = self
            .place(&Self::order_body(lines, coupon, code), None)
            .await;
        assert_eq!(s, 201, "{b}");
        b
    }

    async fn set_status(&self, id: i64, body: Value) -> (u16, Value) {
        let (s, b, _) = send(
            self.c
                .put(format!("{}/api/v1/orders/{id}/status", self.base))
                .json(&body),
        )
        .await;
        (s, b)
    }

    async fn to(&self, id: i64, status: &str) -> Value {
        let (s, b) = self.set_status(id, json!({"status": status})).await;
        assert_eq!(s, 200, "{status}: {b}");
        assert_eq!(b["status"], status);
        b
    }

    async fn db(&self) -> AppDb {
        self.app.db().await
    }
}

/// The inventory's ledger checks, and every pending order's lines held by pending
/// reservations.
async fn assert_ledger_matches(db: &AppDb) {
    crate::inventory::assert_ledger_matches(db).await;
    crate::invariants::assert_invariants(db).await;
    // Every pending order's lines are held by pending reservations, and no others are.
    let loose = db
        .count(
            "SELECT COUNT(*) FROM order_lines l JOIN orders o ON o.id = l.order_id
             JOIN reservations r ON r.id = l.reservation_id
             WHERE (o.status = 'pending') <> (r.status = 'pending')",
        )
        .await;
    assert_eq!(
        loose, 0,
        "order lines whose reservation disagrees with the order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_500_concurrent_orders_of_100_in_stock_create_exactly_100() {
    let shop = Shop::open().await;
    let p = shop.product("ORD-STORM", 1_000, "EUR").await;
    let a = shop.warehouse("ORD-A").await;
    let b = shop.warehouse("ORD-B").await;
    shop.stock(p, a, 60).await;
    shop.stock(p, b, 40).await;
    let body = Shop::order_body(&[(p, 1)], None, None);
    let shop = std::sync::Arc::new(shop);
    // A reader watches the stock all through the storm: never negative, never more reserved
    // than on hand, in any warehouse, at any moment it looks.
    let storming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (shop, storming) = (shop.clone(), storming.clone());
        tokio::spawn(async move {
            let mut looks = 0;
            while storming.load(std::sync::atomic::Ordering::Relaxed) {
                let level = shop.level(p).await;
                for w in level["warehouses"].as_array().expect("warehouses") {
                    let (on_hand, reserved) = (w["on_hand"].as_i64(), w["reserved"].as_i64());
                    let (on_hand, reserved) =
                        (on_hand.expect("on_hand"), reserved.expect("reserved"));
                    assert!(
                        (0..=on_hand).contains(&reserved) && on_hand >= 0,
                        "stock seen out of bounds: {w}"
                    );
                }
                looks += 1;
            }
            looks
        })
    };
    let storm: Vec<_> = (0..500)
        .map(|_| {
            let (shop, body) = (shop.clone(), body.clone());
            tokio::spawn(async move { shop.place(&body, None).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for t in storm {
        let (s, b, _) = t.await.expect("task");
        match s {
            201 => {
                assert_eq!(b["status"], "pending", "{b}");
                assert_eq!(b["total_minor"], 1_000, "{b}");
                created += 1;
            }
            409 => {
                assert_eq!(b["error"]["code"], "out_of_stock", "{b}");
                assert_eq!(b["error"]["product_id"], p, "{b}");
                assert_eq!(b["error"]["available_total"], 0, "{b}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    storming.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        watcher.await.expect("watcher") > 0,
        "the stock was never looked at"
    );
    assert_eq!((created, refused), (100, 400));
    assert_eq!(shop.totals(p).await, (100, 100));
    let db = shop.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 100);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM reservations WHERE status = 'pending'")
            .await,
        100
    );
    assert_ledger_matches(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_a_coupon_with_one_use_left_placed_50_times_at_once_serves_one() {
    let shop = Shop::open().await;
    let p = shop.product("ORD-COUPON", 2_000, "EUR").await;
    let w = shop.warehouse("ORD-C").await;
    shop.stock(p, w, 1_000).await;
    shop.coupon("LASTUSE", "FLAT", 100, 2).await;
    shop.order(&[(p, 1)], Some("LASTUSE"), None).await;
    assert_eq!(shop.coupon_uses("LASTUSE").await, 1);
    let body = Shop::order_body(&[(p, 1)], Some("LASTUSE"), None);
    let shop = std::sync::Arc::new(shop);
    let storm: Vec<_> = (0..50)
        .map(|i| {
            let (shop, body) = (shop.clone(), body.clone());
            let key = (i % 2 == 0).then(|| format!("coupon-try-{i}"));
            tokio::spawn(async move { shop.place(&body, key.as_deref()).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for t in storm {
        let (s, b, _) = t.await.expect("task");
        match s {
            201 => {
                assert_eq!(b["coupon"]["amount_minor"], 100, "{b}");
                assert_eq!(b["total_minor"], 1_900, "{b}");
                created += 1;
            }
            409 => {
                assert_eq!(b["error"]["code"], "coupon_unusable", "{b}");
                assert_eq!(b["error"]["reason"], "exhausted", "{b}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert_eq!((created, refused), (1, 49));
    assert_eq!(shop.coupon_uses("LASTUSE").await, 2);
    // Only the two orders hold stock: the refused ones reserved nothing.
    assert_eq!(shop.totals(p).await, (1_000, 2));
    let db = shop.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 2);
    assert_eq!(db.count("SELECT COUNT(*) FROM reservations").await, 2);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM coupon_redemptions WHERE order_id IS NOT NULL")
            .await,
        2
    );
    assert_ledger_matches(&db).await;
}

#[tokio::test]
async fn orders_a_second_line_out_of_stock_reserves_nothing_and_uses_no_code() {
    let shop = Shop::open().await;
    let p1 = shop.product("ORD-L1", 500, "EUR").await;
    let p2 = shop.product("ORD-L2", 700, "EUR").await;
    let w = shop.warehouse("ORD-L").await;
    shop.stock(p1, w, 10).await;
    shop.stock(p2, w, 1).await;
    shop.coupon("ATOMIC", "PERCENTAGE", 10, 5).await;
    let code = shop.discount_code().await;
    let (s, b, _) = shop
        .place(
            &Shop::order_body(&[(p1, 2), (p2, 5)], Some("ATOMIC"), Some(&code)),
            Some("atomic-1"),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "out_of_stock", "{b}");
    assert_eq!(b["error"]["product_id"], p2, "{b}");
    assert_eq!(b["error"]["available_total"], 1, "{b}");
    assert_eq!(shop.totals(p1).await, (10, 0));
    assert_eq!(shop.totals(p2).await, (1, 0));
    assert_eq!(shop.coupon_uses("ATOMIC").await, 0);
    assert!(!shop.code_used(&code).await);
    let db = shop.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM reservations").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM coupon_redemptions").await, 0);
    // The same request, with stock now there, goes through under the same key.
    shop.stock(p2, w, 5).await;
    let (s, b, replayed) = shop
        .place(
            &Shop::order_body(&[(p1, 2), (p2, 5)], Some("ATOMIC"), Some(&code)),
            Some("atomic-1"),
        )
        .await;
    assert_eq!((s, replayed), (201, false), "{b}");
    assert!(shop.code_used(&code).await);
    assert_ledger_matches(&db).await;
}

#[tokio::test]
async fn orders_bad_requests_are_refused_with_the_field_named() {
    let shop = Shop::open().await;
    let p = shop.product("ORD-BAD", 500, "EUR").await;
    let usd = shop.product("ORD-USD", 500, "USD").await;
    let w = shop.warehouse("ORD-BADW").await;
    shop.stock(p, w, 10).await;
    shop.stock(usd, w, 10).await;
    let code = shop.discount_code().await;
    shop.order(&[(p, 1)], None, Some(&code)).await;
    let cases = [
        (
            Shop::order_body(&[(p, 1), (usd, 1)], None, None),
            422,
            "invalid_argument",
            Some("lines"),
        ),
        (
            Shop::order_body(&[(p, 1), (p, 2)], None, None),
            422,
            "invalid_argument",
            Some("lines"),
        ),
        (
            Shop::order_body(&[(999_999, 1)], None, None),
            422,
            "invalid_argument",
            Some("lines"),
        ),
        (
            Shop::order_body(&[], None, None),
            422,
            "invalid_argument",
            Some("lines"),
        ),
        (
            Shop::order_body(&[(p, 0)], None, None),
            422,
            "invalid_argument",
            Some("lines.quantity"),
        ),
        (
            Shop::order_body(&[(p, 1)], Some("NOSUCH"), None),
            422,
            "unknown_code",
            Some("coupon"),
        ),
        (
            Shop::order_body(&[(p, 1)], None, Some("ZZZZZZZZ")),
            422,
            "unknown_code",
            Some("discount_code"),
        ),
        (
            Shop::order_body(&[(p, 1)], None, Some(&code)),
            409,
            "code_already_used",
            None,
        ),
        (
            json!({"customer": "ada", "lines": [{"product_id": p, "quantity": 1}]}),
            422,
            "invalid_argument",
            Some("shipping_address"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, b, _) = shop.place(&body, None).await;
        assert_eq!(s, status, "{body}: {b}");
        assert_eq!(b["error"]["code"], code, "{b}");
        assert_eq!(b["error"]["field"].as_str(), field, "{b}");
    }
    let (s, b, _) = send(
        shop.c
            .post(format!("{}/api/v1/orders", shop.base))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{b}"
    );
    // An inactive product is refused.
    let (s, b, _) = send(
        shop.c
            .put(format!("{}/api/v1/products/{p}", shop.base))
            .json(
                &json!({"sku": "ORD-BAD", "name": "ORD-BAD", "active": false,
                          "price": {"amount_minor": 500, "currency": "EUR"}}),
            ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b, _) = shop
        .place(&Shop::order_body(&[(p, 1)], None, None), None)
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("lines")),
        "{b}"
    );
    let db = shop.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_ledger_matches(&db).await;
}

#[tokio::test]
async fn orders_cancel_gives_stock_and_codes_back_confirm_takes_stock_out_return_puts_it_back() {
    let shop = Shop::open().await;
    let p = shop.product("ORD-FLOW", 1_000, "EUR").await;
    let a = shop.warehouse("ORD-FA").await;
    let b = shop.warehouse("ORD-FB").await;
    shop.stock(p, a, 10).await;
    shop.coupon("GIVEBACK", "FLAT", 100, 1).await;
    let code = shop.discount_code().await;

    // Pending, cancelled: reservations released, coupon and code given back.
    let o = shop.order(&[(p, 3)], Some("GIVEBACK"), Some(&code)).await;
    let id = o["id"].as_i64().expect("id");
    assert_eq!(shop.totals(p).await, (10, 3));
    assert_eq!(shop.coupon_uses("GIVEBACK").await, 1);
    assert!(shop.code_used(&code).await);
    let c = shop.to(id, "cancelled").await;
    assert_eq!(c["history"].as_array().map(Vec::len), Some(2), "{c}");
    assert_eq!(shop.totals(p).await, (10, 0));
    assert_eq!(shop.coupon_uses("GIVEBACK").await, 0);
    assert!(!shop.code_used(&code).await);
    let db = shop.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM coupon_redemptions WHERE reversed_at_ms IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT CAST(SUM(redeemed) AS BIGINT) FROM coupon_counters")
            .await,
        0,
        "the redeemed counter is given back"
    );

    // The coupon and the code serve again; confirmed: the reservation becomes stock out.
    let o = shop.order(&[(p, 4)], Some("GIVEBACK"), Some(&code)).await;
    let id = o["id"].as_i64().expect("id");
    shop.to(id, "confirmed").await;
    assert_eq!(shop.totals(p).await, (6, 0));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM stock_movements WHERE kind = 'stock_out'")
            .await,
        1
    );
    // Shipped, delivered, returned to the chosen warehouse.
    shop.to(id, "fulfilled").await;
    shop.to(id, "delivered").await;
    shop.to(id, "return_requested").await;
    let (s, r) = shop
        .set_status(
            id,
            json!({"status": "returned", "warehouse_id": b, "reason": "damaged box"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["history"][5]["warehouse_id"], b, "{r}");
    assert_eq!(r["history"][5]["reason"], "damaged box", "{r}");
    assert_eq!(
        (shop.on_hand_in(p, a).await, shop.on_hand_in(p, b).await),
        (6, 4)
    );
    // A return keeps the codes used.
    assert_eq!(shop.coupon_uses("GIVEBACK").await, 1);
    assert!(shop.code_used(&code).await);

    // Confirmed, then cancelled: the stock goes back where it came from (stock_in).
    let o = shop.order(&[(p, 2)], None, None).await;
    let id = o["id"].as_i64().expect("id");
    let from = o["lines"][0]["warehouse_id"].as_i64().expect("warehouse");
    let before = shop.on_hand_in(p, from).await;
    shop.to(id, "confirmed").await;
    assert_eq!(shop.on_hand_in(p, from).await, before - 2);
    shop.to(id, "cancelled").await;
    assert_eq!(shop.on_hand_in(p, from).await, before);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM stock_movements WHERE kind = 'stock_in'")
            .await,
        2
    );
    // The order reads back with its lines, prices, codes and history; the listing filters.
    let (s, got, _) = send(shop.c.get(format!("{}/api/v1/orders/{id}", shop.base))).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["status"], "cancelled");
    let (s, page, _) = send(shop.c.get(format!(
        "{}/api/v1/orders?status=cancelled&customer=ada&limit=1",
        shop.base
    )))
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(1), "{page}");
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, next, _) = send(shop.c.get(format!(
        "{}/api/v1/orders?status=cancelled&limit=1&cursor={cursor}",
        shop.base
    )))
    .await;
    assert_eq!(next["orders"][0]["id"], id, "{next}");
    let (_, none, _) = send(shop.c.get(format!(
        "{}/api/v1/orders?from=2099-01-01T00:00:00Z",
        shop.base
    )))
    .await;
    assert_eq!(none["orders"].as_array().map(Vec::len), Some(0), "{none}");
    assert_ledger_matches(&db).await;
}

#[tokio::test]
async fn orders_every_illegal_transition_is_refused_naming_both_states() {
    let shop = Shop::open().await;
    let p = shop.product("ORD-ILL", 100, "EUR").await;
    let w = shop.warehouse("ORD-ILLW").await;
    shop.stock(p, w, 100).await;
    let all = [
        "pending",
        "confirmed",
        "fulfilled",
        "delivered",
        "cancelled",
        "return_requested",
        "returned",
    ];
    let allowed = [
        ("pending", "confirmed"),
        ("pending", "cancelled"),
        ("confirmed", "fulfilled"),
        ("confirmed", "cancelled"),
        ("fulfilled", "delivered"),
        ("delivered", "return_requested"),
        ("return_requested", "returned"),
    ];
    // The path that reaches each state.
    let path = |state: &str| -> Vec<&'static str> {
        match state {
            "pending" => vec![],
            "confirmed" => vec!["confirmed"],
            "fulfilled" => vec!["confirmed", "fulfilled"],
            "delivered" => vec!["confirmed", "fulfilled", "delivered"],
            "cancelled" => vec!["cancelled"],
            "return_requested" => vec!["confirmed", "fulfilled", "delivered", "return_requested"],
            _ => vec![
                "confirmed",
                "fulfilled",
                "delivered",
                "return_requested",
                "returned",
            ],
        }
    };
    let db = shop.db().await;
    let mut refused = 0;
    for from in all {
        let o = shop.order(&[(p, 1)], None, None).await;
        let id = o["id"].as_i64().expect("id");
        for step in path(from) {
            shop.to(id, step).await;
        }
        for to in all {
            if allowed.contains(&(from, to)) {
                continue;
            }
            let movements = db.count("SELECT COUNT(*) FROM stock_movements").await;
            let (s, b) = shop.set_status(id, json!({"status": to})).await;
            assert_eq!(s, 409, "{from} -> {to}: {b}");
            assert_eq!(b["error"]["code"], "illegal_transition", "{b}");
            assert_eq!(
                (b["error"]["from"].as_str(), b["error"]["to"].as_str()),
                (Some(from), Some(to))
            );
            let message = b["error"]["message"].as_str().expect("message");
            assert!(message.contains(from) && message.contains(to), "{message}");
            assert_eq!(
                db.count("SELECT COUNT(*) FROM stock_movements").await,
                movements
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 49 - 7);
    let (s, b) = shop.set_status(1, json!({"status": "shipped"})).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("status")),
        "{b}"
    );
    let (s, _) = shop
        .set_status(999_999, json!({"status": "confirmed"}))
        .await;
    assert_eq!(s, 404);
    assert_ledger_matches(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_idempotent_retries_give_one_order_and_the_same_body() {
    let shop = Shop::open().await;
    let p = shop.product("ORD-IDEM", 250, "EUR").await;
    let w = shop.warehouse("ORD-IDEMW").await;
    shop.stock(p, w, 100).await;
    let body = Shop::order_body(&[(p, 2)], None, None);
    let (s1, first, r1) = shop.place(&body, Some("retry-me")).await;
    let (s2, second, r2) = shop.place(&body, Some("retry-me")).await;
    assert_eq!((s1, r1), (201, false), "{first}");
    assert_eq!((s2, r2), (200, true), "{second}");
    assert_eq!(first, second);
    assert_eq!(shop.totals(p).await, (100, 2));

    let shop = std::sync::Arc::new(shop);
    let retries: Vec<_> = (0..10)
        .map(|_| {
            let (shop, body) = (shop.clone(), body.clone());
            tokio::spawn(async move { shop.place(&body, Some("ten-at-once")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in retries {
        answers.push(t.await.expect("task"));
    }
    assert_eq!(answers.iter().filter(|(s, _, _)| *s == 201).count(), 1);
    assert!(
        answers
            .iter()
            .all(|(s, _, replayed)| (*s == 201 && !replayed) || (*s == 200 && *replayed))
    );
    assert!(answers.iter().all(|(_, b, _)| *b == answers[0].1));
    assert_eq!(shop.totals(p).await, (100, 4));
    let db = shop.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 2);
    assert_ledger_matches(&db).await;
}

#[tokio::test]
async fn orders_prices_are_exact_percentage_then_flat_never_below_zero() {
    let shop = Shop::open().await;
    let p1 = shop.product("ORD-P1", 1_999, "EUR").await;
    let p2 = shop.product("ORD-P2", 500, "EUR").await;
    let w = shop.warehouse("ORD-PW").await;
    shop.stock(p1, w, 100).await;
    shop.stock(p2, w, 100).await;
    shop.coupon("TENPCT", "PERCENTAGE", 10, 10).await;
    shop.coupon("HUGE", "FLAT", 1_000_000, 10).await;
    let code = shop.discount_code().await;
    // 3 x 19.99 + 5.00 = 64.97; coupon 10% = 6.49 (rounded down) -> 58.48; code 10% = 5.84.
    let o = shop
        .order(&[(p1, 3), (p2, 1)], Some("TENPCT"), Some(&code))
        .await;
    assert_eq!(o["lines"][0]["line_total_minor"], 5_997, "{o}");
    assert_eq!(o["lines"][1]["line_total_minor"], 500, "{o}");
    assert_eq!(o["subtotal_minor"], 6_497, "{o}");
    assert_eq!(o["coupon"]["amount_minor"], 649, "{o}");
    assert_eq!(o["discount_code"]["amount_minor"], 584, "{o}");
    assert_eq!(o["total_minor"], 5_264, "{o}");
    assert_eq!(o["currency"], "EUR");
    // A flat coupon above the total takes what is there and no more.
    let code = shop.discount_code().await;
    let o = shop.order(&[(p2, 2)], Some("HUGE"), Some(&code)).await;
    assert_eq!(o["coupon"]["amount_minor"], 1_000, "{o}");
    assert_eq!(o["discount_code"]["amount_minor"], 0, "{o}");
    assert_eq!(o["total_minor"], 0, "{o}");
    let db = shop.db().await;
    assert_ledger_matches(&db).await;
}

/// Every order endpoint is in the OpenAPI document, with its method (and the event and sign-in
/// endpoints that came with issue 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_every_endpoint_is_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let (s, spec, _) = send(http().get(format!("{}/api/v1/openapi.json", app.url()))).await;
    assert_eq!(s, 200);
    for (method, path) in [
        ("post", "/api/v1/orders"),
        ("get", "/api/v1/orders"),
        ("get", "/api/v1/orders/{order_id}"),
        ("put", "/api/v1/orders/{order_id}/status"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/stream"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("post", "/api/v1/auth/password"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    app.stop().await;
}

impl Shop {
    async fn pay(&self, order: i64, body: Value) -> (u16, Value, bool) {
        send(
            self.c
                .post(format!("{}/api/v1/orders/{order}/payments", self.base))
                .json(&body),
        )
        .await
    }

    async fn refund(&self, order: i64, amount: i64) -> (u16, Value) {
        post(
            &self.c,
            format!("{}/api/v1/orders/{order}/refunds", self.base),
            json!({"amount_minor": amount, "reason": "damaged"}),
        )
        .await
    }

    async fn to_status_of(&self, id: i64) -> String {
        let (s, b, _) = send(self.c.get(format!("{}/api/v1/orders/{id}", self.base))).await;
        assert_eq!(s, 200, "{b}");
        b["status"].as_str().unwrap().to_owned()
    }

    /// An order of two units at 2,500 EUR each (total 5,000), pending.
    async fn order_of_5000(&self) -> i64 {
        let p = self.product("PAID", 2500, "EUR").await;
        let w = self.warehouse("PAY").await;
        self.stock(p, w, 10).await;
        let o = self.order(&[(p, 2)], None, None).await;
        assert_eq!(o["total_minor"], 5000, "{o}");
        o["id"].as_i64().unwrap()
    }
}

/// Payments as a provider reports them: a capture short of the total leaves the order pending,
/// the one that completes it confirms the order in the same step, a report sent twice is
/// recorded once, and what cannot be right (another currency, more than is owed, a reference
/// naming another payment, a capture going back) is refused naming the field, writing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_confirm_an_order_once_its_total_is_captured_and_replays_change_nothing() {
    let shop = Shop::open().await;
    let id = shop.order_of_5000().await;
    let transfer = json!({"provider": "bank_transfer", "reference": "BT-1", "amount_minor": 2000, "currency": "EUR"});
    let (s, b, replayed) = shop.pay(id, transfer.clone()).await;
    assert_eq!((s, replayed), (201, false), "{b}");
    assert_eq!(
        (&b["payment"]["status"], &b["order_paid"]),
        (&json!("captured"), &json!(false))
    );
    let (s, again, replayed) = shop.pay(id, transfer).await;
    assert_eq!((s, replayed), (200, true), "{again}");
    assert_eq!(again["payment"]["id"], b["payment"]["id"]);
    assert_eq!(shop.to_status_of(id).await, "pending");

    for (body, status, code, field) in [
        (
            json!({"provider": "bank_transfer", "reference": "BT-2", "amount_minor": 10, "currency": "USD"}),
            422,
            "currency_mismatch",
            json!("currency"),
        ),
        (
            json!({"provider": "bank_transfer", "reference": "BT-2", "amount_minor": 3001, "currency": "EUR"}),
            409,
            "payment_exceeds_total",
            json!("amount_minor"),
        ),
        (
            json!({"provider": "bank_transfer", "reference": "BT-1", "amount_minor": 100, "currency": "EUR"}),
            409,
            "reference_conflict",
            json!("reference"),
        ),
        (
            json!({"provider": "bank transfer", "reference": "BT-3", "amount_minor": 100, "currency": "EUR"}),
            422,
            "invalid_argument",
            json!("provider"),
        ),
        (
            json!({"provider": "x", "reference": "BT-3", "amount_minor": 0, "currency": "EUR"}),
            422,
            "invalid_argument",
            json!("amount_minor"),
        ),
    ] {
        let (s, b, _) = shop.pay(id, body.clone()).await;
        assert_eq!(
            (s, b["error"]["code"].as_str(), &b["error"]["field"]),
            (status, Some(code), &field),
            "{body}: {b}"
        );
    }
    let (_, b, _) = shop
        .pay(
            id,
            json!({"provider": "bank_transfer", "reference": "BT-2", "amount_minor": 3001, "currency": "EUR"}),
        )
        .await;
    assert_eq!(b["error"]["available_total"], 3000, "{b}");

    // An authorization holds; its capture completes the total and confirms the order.
    let intent = |status: &str| json!({"provider": "stripe", "reference": "pi_1", "status": status, "amount_minor": 3000, "currency": "eur"});
    let (s, b, _) = shop.pay(id, intent("authorized")).await;
    assert_eq!((s, &b["order_paid"]), (201, &json!(false)), "{b}");
    assert_eq!(shop.to_status_of(id).await, "pending");
    let (s, b, _) = shop.pay(id, intent("captured")).await;
    assert_eq!((s, &b["order_paid"]), (201, &json!(true)), "{b}");
    assert_eq!(shop.to_status_of(id).await, "confirmed");
    let (s, b, _) = shop.pay(id, intent("failed")).await;
    assert_eq!(
        (
            s,
            b["error"]["code"].as_str(),
            b["error"]["status"].as_str()
        ),
        (409, Some("payment_status_conflict"), Some("captured")),
        "{b}"
    );

    let (s, listed, _) = send(
        shop.c
            .get(format!("{}/api/v1/orders/{id}/payments", shop.base)),
    )
    .await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(
        (
            &listed["captured_minor"],
            &listed["total_minor"],
            listed["payments"].as_array().map(Vec::len)
        ),
        (&json!(5000), &json!(5000), Some(2))
    );
    let db = shop.app.db().await;
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'OrderPaymentReceived'")
            .await,
        3,
        "one event per change, none for the replay or the refusals"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM order_status_history WHERE order_id = {id} AND to_status = 'confirmed'"
        ))
        .await,
        1
    );
    assert_ledger_matches(&db).await;
    shop.app.stop().await;
}

/// Refunds racing for one order: together they never pass what was captured; the one that
/// would is refused whole, naming what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_refund_exactly_the_capture_and_never_more() {
    let shop = Shop::open().await;
    let id = shop.order_of_5000().await;
    for (reference, amount) in [("pi_a", 3000), ("pi_b", 2000)] {
        let (s, b, _) = shop
            .pay(
                id,
                json!({"provider": "stripe", "reference": reference, "amount_minor": amount, "currency": "EUR"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let results = futures::future::join_all((0..20).map(|_| shop.refund(id, 700))).await;
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(ok, 7, "{results:?}");
    for (s, b) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(
            (*s, b["error"]["code"].as_str()),
            (409, Some("refund_exceeds_capture")),
            "{b}"
        );
    }
    let (s, b) = shop.refund(id, 100).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = shop.refund(id, 1).await;
    assert_eq!(
        (s, &b["error"]["code"], &b["error"]["available_total"]),
        (409, &json!("refund_exceeds_capture"), &json!(0)),
        "{b}"
    );

    let db = shop.app.db().await;
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(coalesce(sum(amount_minor), 0) AS BIGINT) FROM order_refunds WHERE order_id = {id}"
        ))
        .await,
        5000
    );
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(coalesce(sum(refunded_minor), 0) AS BIGINT) FROM order_payments WHERE order_id = {id}"
        ))
        .await,
        5000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM order_payments WHERE refunded_minor > amount_minor")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'OrderRefunded'")
            .await,
        8
    );
    shop.app.stop().await;
}

/// A Stripe event as Stripe signs it: `t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
fn stripe_signed(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// Stripe's webhook: a verified `payment_intent.succeeded` pays the order once, however often
/// it is delivered; a bad signature and a stale timestamp (a replay of an old delivery) are
/// refused and record nothing; `charge.refunded` refunds up to the charge's cumulative
/// `amount_refunded`, once, in any order of delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_pay_and_refund_once_and_bad_or_stale_signatures_record_nothing() {
    const SECRET: &str = "whsec_test_secret";
    let app = TestApp::spawn_configured(None, |c| {
        c.stripe = Some(allot_server::config::StripeSettings {
            secret: allot_server::config::Secret::new(SECRET),
            tolerance_secs: 300,
        })
    })
    .await;
    let base = app.url();
    let shop = Shop {
        app,
        c: http(),
        base,
    };
    let id = shop.order_of_5000().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Stripe's calls carry no credential of Allot's: the signature is the credential.
    let stripe = reqwest::Client::new();
    let deliver = |body: String, signature: Option<String>| {
        let stripe = stripe.clone();
        let url = format!("{}/api/v1/payments/stripe", shop.base);
        async move {
            let mut req = stripe
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(s) = signature {
                req = req.header("Stripe-Signature", s);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let succeeded = json!({"id": "evt_1", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_9", "amount": 5000, "amount_received": 5000,
                            "currency": "eur", "metadata": {"order_id": id.to_string()}}}})
    .to_string();

    for (signature, why) in [
        (None, "missing"),
        (
            Some(stripe_signed("whsec_other", now, &succeeded)),
            "another secret",
        ),
        (Some(stripe_signed(SECRET, now, "{}")), "another body"),
        (
            Some(stripe_signed(SECRET, now - 301, &succeeded)),
            "stale: a replay",
        ),
    ] {
        let (s, b) = deliver(succeeded.clone(), signature).await;
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (400, Some("Stripe-Signature")),
            "{why}: {b}"
        );
    }
    assert_eq!(shop.to_status_of(id).await, "pending", "nothing recorded");

    let signed = stripe_signed(SECRET, now, &succeeded);
    let (s, b) = deliver(succeeded.clone(), Some(signed.clone())).await;
    assert_eq!((s, b["outcome"].as_str()), (200, Some("recorded")), "{b}");
    assert_eq!(shop.to_status_of(id).await, "confirmed");
    // Delivered again (Stripe retries): acknowledged, nothing more recorded.
    let (s, b) = deliver(succeeded, Some(signed)).await;
    assert_eq!((s, b["outcome"].as_str()), (200, Some("unchanged")), "{b}");

    let refunded = |cumulative: i64, evt: &str| {
        json!({"id": evt, "type": "charge.refunded",
            "data": {"object": {"id": "ch_1", "payment_intent": "pi_9", "amount_refunded": cumulative,
                                "currency": "eur", "metadata": {"order_id": id.to_string()}}}})
        .to_string()
    };
    for (cumulative, evt, outcome) in [
        (1000, "evt_2", "recorded"),
        (5000, "evt_3", "recorded"),
        (1000, "evt_2", "unchanged"), // the first, delivered late
        (5000, "evt_3", "unchanged"),
    ] {
        let body = refunded(cumulative, evt);
        let (s, b) = deliver(body.clone(), Some(stripe_signed(SECRET, now, &body))).await;
        assert_eq!(
            (s, b["outcome"].as_str()),
            (200, Some(outcome)),
            "{evt}: {b}"
        );
    }
    // A type Allot does not read is acknowledged.
    let other =
        json!({"id": "evt_4", "type": "customer.created", "data": {"object": {}}}).to_string();
    let (s, b) = deliver(other.clone(), Some(stripe_signed(SECRET, now, &other))).await;
    assert_eq!((s, b["outcome"].as_str()), (200, Some("ignored")), "{b}");

    let db = shop.app.db().await;
    assert_eq!(
        db.count("SELECT count(*) FROM order_payments WHERE provider = 'stripe'")
            .await,
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(coalesce(sum(amount_minor), 0) AS BIGINT) FROM order_refunds WHERE order_id = {id}"
        ))
        .await,
        5000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'OrderPaymentReceived'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'OrderRefunded'")
            .await,
        2
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_edits_hold_stock_and_codes_again_atomically_and_a_refused_edit_changes_nothing() {
    let shop = Shop::open().await;
    let p = shop.product("EDIT-P", 1_000, "EUR").await;
    let q = shop.product("EDIT-Q", 500, "EUR").await;
    let w = shop.warehouse("EDIT-W").await;
    shop.stock(p, w, 10).await;
    shop.stock(q, w, 3).await;
    shop.coupon("EDITONCE", "FLAT", 100, 1).await;
    let code = shop.discount_code().await;
    let o = shop.order(&[(p, 2)], Some("EDITONCE"), Some(&code)).await;
    let id = o["id"].as_i64().expect("id");
    assert_eq!(shop.totals(p).await, (10, 2));

    // More of one line, a new line, a new address: the coupon and the code stay the order's
    // own (given back and used again in the same step), the totals are recomputed.
    let mut body = Shop::order_body(&[(p, 5), (q, 2)], Some("EDITONCE"), Some(&code));
    body.as_object_mut().expect("object").remove("customer");
    body["shipping_address"]["city"] = json!("Lyon");
    let (s, e) = shop.edit(id, &body).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["status"], "pending");
    assert_eq!(e["subtotal_minor"], 6_000, "{e}");
    assert_eq!(e["shipping_address"]["city"], "Lyon");
    assert_eq!(e["lines"].as_array().map(Vec::len), Some(2));
    assert_eq!(e["history"].as_array().map(Vec::len), Some(1), "{e}");
    assert_eq!(shop.totals(p).await, (10, 5));
    assert_eq!(shop.totals(q).await, (3, 2));
    assert_eq!(shop.coupon_uses("EDITONCE").await, 1);
    assert!(shop.code_used(&code).await);
    // The same cart priced as a new order costs the same.
    let fresh = shop.order(&[(p, 1)], None, None).await;
    assert_eq!(fresh["subtotal_minor"], 1_000);
    shop.to(fresh["id"].as_i64().expect("id"), "cancelled")
        .await;

    // An edit that cannot hold its stock (3 of q exist) changes nothing: not the order, not
    // the stock, not the codes, not the log.
    let before = shop.get(id).await;
    let events = shop.event_count().await;
    let too_many = Shop::order_body(&[(p, 5), (q, 4)], Some("EDITONCE"), Some(&code));
    let (s, e) = shop.edit(id, &too_many).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("out_of_stock")),
        "{e}"
    );
    assert_eq!(e["error"]["product_id"], q, "{e}");
    // A code another order used is refused the same way.
    let other_code = shop.discount_code().await;
    shop.order(&[(q, 1)], None, Some(&other_code)).await;
    let taken = Shop::order_body(&[(p, 1)], None, Some(&other_code));
    let (s, e) = shop.edit(id, &taken).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("code_already_used")),
        "{e}"
    );
    let events_after = shop.event_count().await;
    assert_eq!(
        shop.get(id).await,
        before,
        "a refused edit changed the order"
    );
    assert_eq!(shop.totals(p).await, (10, 5));
    assert_eq!(shop.totals(q).await, (3, 3), "the other order holds one q");
    assert_eq!(shop.coupon_uses("EDITONCE").await, 1);
    assert!(shop.code_used(&code).await);
    // Only the other order's own events were added.
    let other = shop.events("OrderCreated").await.len();
    assert_eq!(other, 3, "three orders placed");
    assert!(events_after > events);

    // Codes dropped: the coupon's use and the code come back; p's stock too.
    let (s, e) = shop
        .edit(id, &Shop::order_body(&[(p, 1)], None, None))
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["subtotal_minor"], 1_000);
    assert!(e["coupon"].is_null() && e["discount_code"].is_null(), "{e}");
    assert_eq!(shop.totals(p).await, (10, 1));
    assert_eq!(shop.totals(q).await, (3, 1));
    assert_eq!(shop.coupon_uses("EDITONCE").await, 0);
    assert!(!shop.code_used(&code).await);

    // Each accepted edit wrote one OrderUpdated with both sides; refused ones none.
    let updated = shop.events("OrderUpdated").await;
    assert_eq!(updated.len(), 2, "{updated:#?}");
    let last = &updated[1]["payload"];
    assert_eq!(last["order_id"], id);
    assert_eq!(last["before"]["subtotal_minor"], 6_000);
    assert_eq!(last["after"]["subtotal_minor"], 1_000);
    assert_eq!(last["before"]["coupon_code"], "EDITONCE");
    assert!(last["after"]["coupon_code"].is_null());
    assert!(
        last["total_delta_minor"].as_i64().expect("delta") < 0,
        "{last}"
    );

    // Bad input names the field; a confirmed order is no longer editable.
    let (s, e) = shop
        .edit(id, &Shop::order_body(&[(p, 0)], None, None))
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("lines.quantity")),
        "{e}"
    );
    let (s, e) = shop
        .edit(999_999, &Shop::order_body(&[(p, 1)], None, None))
        .await;
    assert_eq!(s, 404, "{e}");
    shop.to(id, "confirmed").await;
    let (s, e) = shop
        .edit(id, &Shop::order_body(&[(p, 2)], None, None))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("order_not_editable")),
        "{e}"
    );
    assert_ledger_matches(&shop.db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_never_hold_more_than_the_stock() {
    let shop = Shop::open().await;
    let p = shop.product("EDIT-RACE", 100, "EUR").await;
    let w = shop.warehouse("EDIT-RW").await;
    shop.stock(p, w, 10).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            shop.order(&[(p, 1)], None, None).await["id"]
                .as_i64()
                .expect("id"),
        );
    }
    // Each edit gives 1 back and asks for 3: 5 + 2 + 2 = 9 fits, a third would need 11.
    let tasks = ids.iter().map(|&id| {
        let c = shop.c.clone();
        let url = format!("{}/api/v1/orders/{id}", shop.base);
        tokio::spawn(async move {
            let (s, b, _) = send(c.put(url).json(&Shop::order_body(&[(p, 3)], None, None))).await;
            (s, b)
        })
    });
    let mut ok = 0;
    for t in futures::future::join_all(tasks).await {
        let (s, b) = t.expect("task");
        match s {
            200 => ok += 1,
            409 => assert_eq!(b["error"]["code"], "out_of_stock", "{b}"),
            _ => panic!("{s}: {b}"),
        }
    }
    assert_eq!(ok, 2, "exactly the edits that fit");
    assert_eq!(shop.totals(p).await, (10, 9));
    let mut held = 0;
    for id in ids {
        held += shop.get(id).await["lines"][0]["quantity"]
            .as_i64()
            .expect("quantity");
    }
    assert_eq!(held, 9);
    assert_eq!(shop.events("OrderUpdated").await.len(), 2);
    assert_ledger_matches(&shop.db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_that_keeps_used_coupons_gets_stock_and_the_code_back_on_cancel_but_not_the_coupon()
{
    let shop = Shop::open_configured(|c| c.cancelled_orders_return_coupons = false).await;
    let p = shop.product("KEEP-P", 1_000, "EUR").await;
    let w = shop.warehouse("KEEP-W").await;
    shop.stock(p, w, 5).await;
    shop.coupon("KEEPUSED", "FLAT", 100, 1).await;
    let code = shop.discount_code().await;
    let o = shop.order(&[(p, 2)], Some("KEEPUSED"), Some(&code)).await;
    let id = o["id"].as_i64().expect("id");
    shop.to(id, "confirmed").await;
    shop.to(id, "cancelled").await;
    assert_eq!(shop.totals(p).await, (5, 0), "the stock came back");
    assert!(!shop.code_used(&code).await, "the discount code came back");
    assert_eq!(
        shop.coupon_uses("KEEPUSED").await,
        1,
        "the coupon stays used"
    );
    let cancelled = shop.events("OrderCancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["payload"]["coupon_returned"], false);
    assert_eq!(cancelled[0]["payload"]["discount_code"], code.as_str());
    assert_ledger_matches(&shop.db().await).await;
}

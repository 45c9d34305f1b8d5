//! Promotions over REST, on the suite's backend: managed with errors that name the field (and
//! write nothing), each condition met and refused with its reason, each action's exact figures,
//! stacking, codes bound from coupons, discount codes and campaigns, and holds (idempotent,
//! released, redeemed, rolled back once, expired by the job) with the budget shown in the
//! promotion's usage. The server's clock stands still at a Monday, 10:00 UTC.

use std::time::Duration;

use allot_domain::UnixMillis;
use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

/// 2030-01-07T10:00:00Z, a Monday (11:00 in Paris).
const NOW_MS: i64 = 1_894_010_400_000;
const PASSWORD: &str = "correct horse battery staple";

struct Shop {
    app: TestApp,
    c: reqwest::Client,
    base: String,
}

impl Shop {
    async fn open() -> Shop {
        // The hold expiry job is off unless a test turns it on: a test moves the clock past a
        // hold's time to see `hold_expired`, which the job would otherwise race.
        Shop::open_with(|c| c.promotion_hold_expiry_interval = None).await
    }

    async fn open_with(configure: impl FnOnce(&mut allot_server::Config)) -> Shop {
        let app = TestApp::spawn_configured(Some(UnixMillis::from_millis(NOW_MS)), configure).await;
        let base = app.url();
        Shop {
            app,
            c: http(),
            base,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.c.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.c.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.c.get(format!("{}{path}", self.base))).await
    }

    async fn promotion(&self, spec: Value) -> i64 {
        let (s, b) = self.post("/api/v1/promotions", spec).await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_i64().expect("id")
    }

    async fn coupons(&self, codes: &[&str]) {
        let coupons: Vec<Value> = codes
            .iter()
            .map(|code| {
                json!({"code": code, "type": null, "discount_kind": "FLAT", "discount_amount": 0,
                       "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1000})
            })
            .collect();
        let (s, b) = self
            .post("/api/v1/coupons", json!({ "coupons": coupons }))
            .await;
        assert_eq!(s, 201, "{b}");
    }

    /// A code promotion reached by the coupon `code`.
    async fn coded(&self, code: &str, spec: Value) -> i64 {
        let id = self.promotion(spec).await;
        self.coupons(&[code]).await;
        let (s, b) = self
            .post(
                &format!("/api/v1/promotions/{id}/codes"),
                json!({"coupons": [code]}),
            )
            .await;
        assert_eq!((s, b["bound"].as_i64()), (200, Some(1)), "{b}");
        id
    }

    async fn product(&self, sku: &str, price: i64, extra: Value) -> i64 {
        let mut body =
            json!({"sku": sku, "name": sku, "price": {"amount_minor": price, "currency": "EUR"}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (s, b) = self.post("/api/v1/products", body).await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_i64().expect("product id")
    }

    async fn evaluate(&self, cart: Value) -> Value {
        let (s, b) = self.post("/api/v1/promotions/evaluate", cart).await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn usage(&self, id: i64) -> Value {
        let (s, b) = self.get(&format!("/api/v1/promotions/{id}")).await;
        assert_eq!(s, 200, "{b}");
        b["usage"].clone()
    }

    async fn hold(&self, cart: Value) -> Value {
        let (s, b) = self.post("/api/v1/promotions/holds", cart).await;
        assert_eq!(s, 201, "{b}");
        b
    }
}

/// A code promotion (percent off the order) with these conditions.
fn with_conditions(name: &str, conditions: Value) -> Value {
    json!({"name": name, "trigger": "code", "conditions": conditions,
           "actions": [{"type": "percent_off", "percent": 10}]})
}

/// What became of `code` in an evaluation: `applied`, or the reason it was refused.
fn outcome(eval: &Value, code: &str) -> String {
    let applied = eval["applied"].as_array().expect("applied");
    if applied.iter().any(|a| a["code"] == code) {
        return "applied".to_owned();
    }
    eval["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .find(|r| r["code"] == code)
        .map_or_else(
            || format!("absent from {eval}"),
            |r| r["reason"].as_str().expect("reason").to_owned(),
        )
}

fn applied_ids(eval: &Value) -> Vec<i64> {
    eval["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|a| a["promotion_id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_are_created_read_updated_and_listed_and_bad_specs_name_their_field() {
    let shop = Shop::open().await;
    let bad = [
        (
            json!({"trigger": "code", "actions": [{"type": "percent_off", "percent": 10}]}),
            422,
            "name",
        ),
        (
            json!({"name": "x", "trigger": "code", "actions": []}),
            422,
            "actions",
        ),
        (
            json!({"name": "x", "trigger": "sometimes", "actions": [{"type": "percent_off", "percent": 10}]}),
            422,
            "trigger",
        ),
        (
            json!({"name": "x", "trigger": "code", "actions": [{"type": "percent_off", "percent": 0}]}),
            422,
            "actions.percent",
        ),
        (
            with_conditions("x", json!({"min_subtotal_minor": -1})),
            422,
            "conditions.min_subtotal_minor",
        ),
        (
            json!({"name": "x", "trigger": "code", "actions": [{"type": "amount_off", "amount_minor": 100}],
                   "limits": {"budget_minor": 1000}}),
            422,
            "conditions.currency",
        ),
        (
            json!({"name": "x", "trigger": "code", "actions": [{"type": "percent_off", "percent": 10}],
                   "condition": {}}),
            400,
            "",
        ),
    ];
    for (body, status, field) in bad {
        let (s, b) = shop.post("/api/v1/promotions", body.clone()).await;
        assert_eq!(s, status, "{body} -> {b}");
        if status == 422 {
            assert_eq!(b["error"]["field"], field, "{body} -> {b}");
        }
    }
    let (s, b) = shop.get("/api/v1/promotions").await;
    assert_eq!(
        (s, b["promotions"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    let (s, created) = shop
        .post(
            "/api/v1/promotions",
            json!({"name": " Spring ", "description": "ten off", "trigger": "automatic",
                   "conditions": {"min_subtotal_minor": 5000, "currency": "EUR"},
                   "actions": [{"type": "percent_off", "percent": 10, "cap_minor": 2000}],
                   "stacking": {"class": "seasonal", "priority": 3},
                   "limits": {"budget_minor": 100000, "redemptions_max": 50}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Spring");
    assert_eq!(created["active"], true);
    assert_eq!(created["trigger"], "automatic");
    assert_eq!(created["stacking"]["class"], "seasonal");
    assert_eq!(created["limits"]["budget_minor"], 100000);
    assert_eq!(created["actions"][0]["type"], "percent_off");
    assert_eq!(created["created_at"], "2030-01-07T10:00:00.000Z");
    assert_eq!(
        created["usage"],
        json!({"redeemed_minor": 0, "redemptions": 0, "held_minor": 0, "held": 0})
    );
    let (s, read) = shop.get(&format!("/api/v1/promotions/{id}")).await;
    assert_eq!((s, &read), (200, &created));

    let (s, updated) = shop
        .put(
            &format!("/api/v1/promotions/{id}"),
            json!({"name": "Spring II", "trigger": "automatic", "active": false,
                   "actions": [{"type": "amount_off", "amount_minor": 500}]}),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["name"], "Spring II");
    assert_eq!(updated["active"], false);
    assert!(updated["version"].as_i64() > created["version"].as_i64());
    assert_eq!(updated["created_at"], created["created_at"]);
    // A bad replacement changes nothing.
    let (s, b) = shop
        .put(
            &format!("/api/v1/promotions/{id}"),
            json!({"name": "", "trigger": "automatic", "actions": [{"type": "amount_off", "amount_minor": 1}]}),
        )
        .await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("name")), "{b}");
    assert_eq!(
        shop.get(&format!("/api/v1/promotions/{id}")).await.1,
        updated
    );

    let second = shop.promotion(with_conditions("Coded", json!({}))).await;
    let page = |q: &'static str| {
        let shop = &shop;
        async move { shop.get(&format!("/api/v1/promotions{q}")).await.1 }
    };
    let ids = |b: &Value| -> Vec<i64> {
        b["promotions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&page("?active=false").await), [id]);
    assert_eq!(ids(&page("?active=true").await), [second]);
    assert_eq!(ids(&page("?trigger=code").await), [second]);
    let first = page("?limit=1").await;
    assert_eq!((ids(&first), &first["next_after"]), (vec![id], &json!(id)));
    let rest = shop
        .get(&format!("/api/v1/promotions?limit=1&after={id}"))
        .await
        .1;
    assert_eq!(ids(&rest), [second]);
    let (s, b) = shop.get("/api/v1/promotions?limit=0").await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("limit")));

    for path in ["/api/v1/promotions/999999", "/api/v1/promotions/abc"] {
        let (s, b) = shop.get(path).await;
        assert_eq!(
            (s, &b["error"]["code"]),
            (404, &json!("promotion_not_found"))
        );
    }
    let (s, b) = shop.get("/api/v1/events?type=PromotionCreated").await;
    assert_eq!(
        (s, b["events"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{b}"
    );
    let (s, b) = shop.get("/api/v1/events?type=PromotionUpdated").await;
    assert_eq!(
        (s, b["events"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{b}"
    );
    // Audited as the caller (the harness's admin API key), from where it called.
    let (s, b) = shop.get("/api/v1/audit?type=PromotionUpdated").await;
    assert_eq!(s, 200, "{b}");
    let entry = &b["entries"][0];
    assert!(
        entry["actor"].as_str().unwrap().starts_with("api_key:"),
        "{b}"
    );
    assert_eq!(entry["source"], "127.0.0.1", "{b}");
    assert!(
        entry["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("promotion_id={id}")),
        "{b}"
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_condition_is_met_or_refused_with_its_reason() {
    let shop = Shop::open().await;
    let (s, shoes) = shop
        .post("/api/v1/categories", json!({"name": "Shoes"}))
        .await;
    assert_eq!(s, 201, "{shoes}");
    let (s, running) = shop
        .post(
            "/api/v1/categories",
            json!({"name": "Running", "parent_id": shoes["id"]}),
        )
        .await;
    assert_eq!(s, 201, "{running}");
    let shoe = shop
        .product(
            "SHOE",
            5000,
            json!({"category_id": running["id"], "attributes": {"color": "red", "size": 42}}),
        )
        .await;
    let sock = shop.product("SOCK", 1000, json!({})).await;

    let conditions = [
        ("MINSUB", json!({"min_subtotal_minor": 6000})),
        ("MINQTY", json!({"min_quantity": 3})),
        (
            "MINQTYM",
            json!({"min_quantity": 2, "minimums_of": "matching", "products": [shoe]}),
        ),
        ("PRODUCT", json!({"products": [sock]})),
        ("CATEGORY", json!({"categories": [shoes["id"]]})),
        (
            "ATTR",
            json!({"attributes": {"color": "red", "size": "42"}}),
        ),
        ("ROLE", json!({"customer_roles": ["vip"]})),
        ("TAG", json!({"customer_tags": ["gold"]})),
        ("IDS", json!({"customer_ids": ["c1"]})),
        ("FIRST", json!({"first_order": true})),
        ("LATER", json!({"starts_at": "2031-01-01T00:00:00Z"})),
        ("OVER", json!({"ends_at": "2029-01-01T00:00:00Z"})),
        (
            "WINDOW",
            json!({"starts_at": "2029-01-01T00:00:00Z", "ends_at": "2031-01-01T00:00:00Z"}),
        ),
        (
            "MONDAY",
            json!({"schedule": {"time_zone": "Europe/Paris", "weekdays": ["mon"], "from": "11:00", "until": "12:00"}}),
        ),
        (
            "MORNING",
            json!({"schedule": {"time_zone": "Europe/Paris", "from": "08:00", "until": "11:00"}}),
        ),
        ("USD", json!({"currency": "USD"})),
        ("EUR", json!({"currency": "EUR"})),
    ];
    for (code, c) in &conditions {
        shop.coded(code, with_conditions(code, c.clone())).await;
    }
    let per_customer = shop
        .coded(
            "ONCE",
            json!({"name": "once each", "trigger": "code",
                   "actions": [{"type": "amount_off", "amount_minor": 100}],
                   "limits": {"per_customer_redemptions_max": 1}}),
        )
        .await;

    let line = |product: i64, quantity: i64| json!({"product_id": product, "quantity": quantity});
    let check = |code: &'static str, lines: Value, customer: Value, expected: &'static str| {
        let shop = &shop;
        async move {
            let eval = shop
                .evaluate(json!({"lines": lines, "codes": [code], "customer": customer, "currency": "EUR"}))
                .await;
            assert_eq!(outcome(&eval, code), expected, "{code}: {eval}");
            eval
        }
    };
    let guest = Value::Null;
    check(
        "MINSUB",
        json!([line(shoe, 1)]),
        guest.clone(),
        "min_subtotal_not_met",
    )
    .await;
    let eval = check("MINSUB", json!([line(shoe, 2)]), guest.clone(), "applied").await;
    // The price came from the catalog.
    assert_eq!(
        (
            &eval["currency"],
            &eval["subtotal_minor"],
            &eval["discount_minor"]
        ),
        (&json!("EUR"), &json!(10000), &json!(1000))
    );
    check(
        "MINQTY",
        json!([line(shoe, 2)]),
        guest.clone(),
        "min_quantity_not_met",
    )
    .await;
    check(
        "MINQTY",
        json!([line(shoe, 2), line(sock, 1)]),
        guest.clone(),
        "applied",
    )
    .await;
    check(
        "MINQTYM",
        json!([line(shoe, 1), line(sock, 5)]),
        guest.clone(),
        "min_quantity_not_met",
    )
    .await;
    check("MINQTYM", json!([line(shoe, 2)]), guest.clone(), "applied").await;
    check(
        "PRODUCT",
        json!([line(shoe, 1)]),
        guest.clone(),
        "not_in_scope",
    )
    .await;
    check(
        "PRODUCT",
        json!([line(shoe, 1), line(sock, 1)]),
        guest.clone(),
        "applied",
    )
    .await;
    // The shoe is in a subcategory of Shoes: its categories come from the catalog, ancestors
    // included.
    check("CATEGORY", json!([line(shoe, 1)]), guest.clone(), "applied").await;
    check(
        "CATEGORY",
        json!([line(sock, 1)]),
        guest.clone(),
        "not_in_scope",
    )
    .await;
    check("ATTR", json!([line(shoe, 1)]), guest.clone(), "applied").await;
    check(
        "ATTR",
        json!([line(sock, 1)]),
        guest.clone(),
        "not_in_scope",
    )
    .await;
    // A line may say its own categories and attributes (a product not in the catalog).
    check(
        "ATTR",
        json!([{"product_id": 777, "quantity": 1, "unit_price_minor": 100, "attributes": {"color": "red", "size": "42"}}]),
        guest.clone(),
        "applied",
    )
    .await;
    check(
        "ROLE",
        json!([line(sock, 1)]),
        json!({"id": "c1", "role": "vip"}),
        "applied",
    )
    .await;
    check(
        "ROLE",
        json!([line(sock, 1)]),
        json!({"id": "c1", "role": "customer"}),
        "customer_not_eligible",
    )
    .await;
    check(
        "TAG",
        json!([line(sock, 1)]),
        json!({"tags": ["x", "gold"]}),
        "applied",
    )
    .await;
    check(
        "TAG",
        json!([line(sock, 1)]),
        json!({"tags": ["x"]}),
        "customer_not_eligible",
    )
    .await;
    check(
        "IDS",
        json!([line(sock, 1)]),
        json!({"id": "c1"}),
        "applied",
    )
    .await;
    check(
        "IDS",
        json!([line(sock, 1)]),
        json!({"id": "c2"}),
        "customer_not_eligible",
    )
    .await;
    check(
        "FIRST",
        json!([line(sock, 1)]),
        json!({"id": "c1", "orders_before": 0}),
        "applied",
    )
    .await;
    check(
        "FIRST",
        json!([line(sock, 1)]),
        json!({"id": "c1", "orders_before": 1}),
        "not_first_order",
    )
    .await;
    check(
        "LATER",
        json!([line(sock, 1)]),
        guest.clone(),
        "not_started",
    )
    .await;
    check("OVER", json!([line(sock, 1)]), guest.clone(), "ended").await;
    check("WINDOW", json!([line(sock, 1)]), guest.clone(), "applied").await;
    check("MONDAY", json!([line(sock, 1)]), guest.clone(), "applied").await;
    check(
        "MORNING",
        json!([line(sock, 1)]),
        guest.clone(),
        "outside_schedule",
    )
    .await;
    check(
        "USD",
        json!([line(sock, 1)]),
        guest.clone(),
        "wrong_currency",
    )
    .await;
    check("EUR", json!([line(sock, 1)]), guest.clone(), "applied").await;

    // Per customer, by account id: a guest cannot use it; a customer once.
    check(
        "ONCE",
        json!([line(sock, 1)]),
        guest.clone(),
        "customer_required",
    )
    .await;
    check(
        "ONCE",
        json!([line(sock, 1)]),
        json!({"id": "c9"}),
        "applied",
    )
    .await;
    let hold = shop
        .hold(json!({"lines": [line(sock, 1)], "codes": ["ONCE"], "customer": {"id": "c9"}}))
        .await;
    let (s, b) = shop
        .post(
            &format!("/api/v1/promotions/holds/{}/redeem", hold["id"]),
            json!({"reference": "ext-1"}),
        )
        .await;
    assert_eq!((s, &b["status"]), (200, &json!("redeemed")), "{b}");
    check(
        "ONCE",
        json!([line(sock, 1)]),
        json!({"id": "c9"}),
        "customer_limit_reached",
    )
    .await;
    check(
        "ONCE",
        json!([line(sock, 1)]),
        json!({"id": "c10"}),
        "applied",
    )
    .await;
    assert_eq!(shop.usage(per_customer).await["redemptions"], 1);

    // What a cart leaves out must be knowable.
    let (s, b) = shop
        .post(
            "/api/v1/promotions/evaluate",
            json!({"lines": [{"product_id": 777, "quantity": 1}]}),
        )
        .await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (422, &json!("lines.unit_price_minor")),
        "{b}"
    );
    let (s, b) = shop
        .post(
            "/api/v1/promotions/evaluate",
            json!({"lines": [{"product_id": 777, "quantity": 1, "unit_price_minor": 5}]}),
        )
        .await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("currency")), "{b}");
    let (s, b) = shop
        .post(
            "/api/v1/promotions/evaluate",
            json!({"lines": [line(sock, 0)], "currency": "EUR"}),
        )
        .await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (422, &json!("lines.quantity")),
        "{b}"
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_gives_exact_figures_line_by_line() {
    let shop = Shop::open().await;
    let a = shop.product("A", 1000, json!({})).await;
    let b = shop.product("B", 2000, json!({})).await;
    let c = shop.product("C", 3000, json!({})).await;
    let action =
        |name: &str, action: Value| json!({"name": name, "trigger": "code", "actions": [action]});
    let promotions = [
        ("PCT", json!({"type": "percent_off", "percent": 10})),
        (
            "PCTCAP",
            json!({"type": "percent_off", "percent": 50, "target": "matching_lines", "cap_minor": 700}),
        ),
        ("AMT", json!({"type": "amount_off", "amount_minor": 1000})),
        (
            "FIXED",
            json!({"type": "fixed_price", "unit_price_minor": 500, "max_items": 1}),
        ),
        ("BXGY", json!({"type": "buy_x_get_y", "buy": 2, "get": 1})),
        (
            "TIER",
            json!({"type": "tiered", "tiers": [{"min_subtotal_minor": 2000, "percent": 5},
                                                {"min_subtotal_minor": 5000, "amount_minor": 600}]}),
        ),
        ("SHIP", json!({"type": "free_shipping", "cap_minor": 300})),
    ];
    for (code, act) in &promotions {
        let mut spec = action(code, act.clone());
        match *code {
            "PCTCAP" => spec["conditions"] = json!({"products": [b]}),
            "FIXED" => spec["conditions"] = json!({"products": [c]}),
            _ => {}
        }
        shop.coded(code, spec).await;
    }
    let line = |product: i64, quantity: i64| json!({"product_id": product, "quantity": quantity});
    let eval = |code: &'static str, lines: Value, shipping: i64| {
        let shop = &shop;
        async move {
            let e = shop
                .evaluate(json!({"lines": lines, "codes": [code], "shipping_minor": shipping}))
                .await;
            assert_eq!(outcome(&e, code), "applied", "{code}: {e}");
            e
        }
    };
    let line_discounts = |e: &Value| -> Vec<i64> {
        e["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["discount_minor"].as_i64().unwrap())
            .collect()
    };

    let e = eval("PCT", json!([line(a, 1), line(b, 1)]), 0).await;
    assert_eq!(e["applied"][0]["amount_minor"], 300);
    assert_eq!(line_discounts(&e), [100, 200]);
    assert_eq!(e["total_minor"], 2700);
    assert_eq!(
        e["lines"][1]["discounts"],
        json!([{"promotion_id": e["applied"][0]["promotion_id"], "amount_minor": 200}])
    );

    let e = eval("PCTCAP", json!([line(a, 1), line(b, 1)]), 0).await;
    assert_eq!(line_discounts(&e), [0, 700]);
    assert_eq!(
        e["applied"][0]["lines"],
        json!([{"index": 1, "amount_minor": 700}])
    );

    // 1,000 over 1,000 + 2,000 + 3,000 in proportion: 166.67, 333.33, 500; the unit left
    // goes to the largest fraction.
    let e = eval("AMT", json!([line(a, 1), line(b, 1), line(c, 1)]), 0).await;
    assert_eq!(line_discounts(&e), [167, 333, 500]);
    assert_eq!(e["discount_minor"], 1000);

    let e = eval("FIXED", json!([line(c, 2)]), 0).await;
    assert_eq!(line_discounts(&e), [2500]);

    // Buy two, get the cheapest of three free.
    let e = eval("BXGY", json!([line(c, 1), line(a, 1), line(b, 1)]), 0).await;
    assert_eq!(line_discounts(&e), [0, 1000, 0]);

    let e = eval("TIER", json!([line(a, 1), line(b, 1)]), 0).await;
    assert_eq!(e["discount_minor"], 150);
    let e = eval("TIER", json!([line(b, 1), line(c, 1)]), 0).await;
    assert_eq!(e["discount_minor"], 600);

    let e = eval("SHIP", json!([line(a, 1)]), 500).await;
    assert_eq!(
        (
            &e["shipping_minor"],
            &e["shipping_discount_minor"],
            &e["discount_minor"],
            &e["total_minor"]
        ),
        (&json!(500), &json!(300), &json!(0), &json!(1200))
    );
    assert_eq!(e["applied"][0]["shipping_minor"], 300);
    // Without shipping it gives nothing.
    let e = shop
        .evaluate(json!({"lines": [line(a, 1)], "codes": ["SHIP"]}))
        .await;
    assert_eq!(outcome(&e, "SHIP"), "no_discount");
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacking_follows_classes_exclusivity_priority_and_the_best_for_the_customer() {
    let shop = Shop::open().await;
    let item = shop.product("ITEM", 10000, json!({})).await;
    let auto = |name: &str, action: Value, stacking: Value| json!({"name": name, "trigger": "automatic", "actions": [action], "stacking": stacking});
    let ten = shop
        .promotion(auto(
            "ten percent",
            json!({"type": "percent_off", "percent": 10}),
            json!({}),
        ))
        .await;
    let five_hundred = shop
        .promotion(auto(
            "five hundred",
            json!({"type": "amount_off", "amount_minor": 500}),
            json!({}),
        ))
        .await;
    let cart =
        |codes: Value| json!({"lines": [{"product_id": item, "quantity": 1}], "codes": codes});

    // Same class: both, the larger first.
    let e = shop.evaluate(cart(json!([]))).await;
    assert_eq!(applied_ids(&e), [ten, five_hundred], "{e}");
    assert_eq!(e["discount_minor"], 1500);
    assert_eq!(e["applied"][0]["name"], "ten percent");

    // Another class, with the best discount: it wins, the others do not combine with it.
    let twenty = shop
        .promotion(auto(
            "twenty percent",
            json!({"type": "percent_off", "percent": 20}),
            json!({"class": "other"}),
        ))
        .await;
    let e = shop.evaluate(cart(json!([]))).await;
    assert_eq!(applied_ids(&e), [twenty], "{e}");
    let refused: Vec<(i64, &str)> = e["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["promotion_id"].as_i64().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [(ten, "not_combinable"), (five_hundred, "not_combinable")]
    );

    // Priority before size: an exclusive code of higher priority takes the cart alone.
    let exclusive = shop
        .coded(
            "VIP",
            json!({"name": "vip", "trigger": "code", "actions": [{"type": "amount_off", "amount_minor": 100}],
                   "stacking": {"exclusive": true, "priority": 10}}),
        )
        .await;
    let e = shop.evaluate(cart(json!(["VIP"]))).await;
    assert_eq!(applied_ids(&e), [exclusive], "{e}");
    assert_eq!(e["discount_minor"], 100);

    // Several codes of one class stack; the exclusive one then refuses to combine.
    let c1 = shop
        .coded(
            "STACK1",
            json!({"name": "s1", "trigger": "code", "actions": [{"type": "amount_off", "amount_minor": 300}],
                   "stacking": {"class": "stack", "priority": 20}}),
        )
        .await;
    let c2 = shop
        .coded(
            "STACK2",
            json!({"name": "s2", "trigger": "code", "actions": [{"type": "amount_off", "amount_minor": 200}],
                   "stacking": {"class": "stack", "priority": 20}}),
        )
        .await;
    let e = shop
        .evaluate(cart(json!(["STACK2", "VIP", "STACK1"])))
        .await;
    assert_eq!(applied_ids(&e), [c1, c2], "{e}");
    assert_eq!(e["discount_minor"], 500);
    assert_eq!(outcome(&e, "VIP"), "not_combinable");
    // The same cart, the codes in another order: the same answer.
    let again = shop
        .evaluate(cart(json!(["STACK1", "STACK2", "VIP"])))
        .await;
    assert_eq!(applied_ids(&again), [c1, c2]);
    assert_eq!(again["lines"], e["lines"]);

    // A promotion switched off is refused as such.
    let (s, _) = shop
        .put(
            &format!("/api/v1/promotions/{exclusive}"),
            json!({"name": "vip", "trigger": "code", "active": false,
                   "actions": [{"type": "amount_off", "amount_minor": 100}]}),
        )
        .await;
    assert_eq!(s, 200);
    let e = shop.evaluate(cart(json!(["VIP"]))).await;
    assert_eq!(outcome(&e, "VIP"), "inactive");
    assert_eq!(applied_ids(&e), [twenty]);
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_bind_from_coupons_discount_codes_and_campaigns() {
    let shop = Shop::open().await;
    let item = shop.product("ITEM", 4000, json!({})).await;
    let spec = |name: &str| json!({"name": name, "trigger": "code", "actions": [{"type": "amount_off", "amount_minor": 400}]});
    let promo = shop.promotion(spec("bound")).await;
    let other = shop.promotion(spec("other")).await;
    let bind = |id: i64, body: Value| {
        let shop = &shop;
        async move {
            shop.post(&format!("/api/v1/promotions/{id}/codes"), body)
                .await
        }
    };
    shop.coupons(&["CPN1", "CPN2"]).await;
    let (s, b) = bind(promo, json!({"coupons": ["cpn1", "CPN2"]})).await;
    assert_eq!((s, &b), (200, &json!({"bound": 2})));

    let (s, batch) = shop
        .post(
            "/api/v1/discount-codes/batches",
            json!({"count": 1, "length": 8}),
        )
        .await;
    assert_eq!(s, 201, "{batch}");
    let discount_code = batch["codes"][0].as_str().unwrap().to_owned();
    let (s, b) = bind(promo, json!({"discount_codes": [discount_code]})).await;
    assert_eq!((s, &b), (200, &json!({"bound": 1})));

    let (s, campaign) = shop
        .post(
            "/api/v1/campaigns",
            json!({"name": "launch", "start_time": "2030-01-01T00:00:00Z", "total_coupons": 10}),
        )
        .await;
    assert_eq!(s, 201, "{campaign}");
    let campaign_id = campaign["id"].as_i64().unwrap();
    let (s, b) = bind(promo, json!({"campaign_id": campaign_id})).await;
    assert_eq!((s, &b), (200, &json!({"bound": 1})));
    let (s, issued) = shop
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/coupons"),
            json!({"user_id": "u1"}),
        )
        .await;
    assert_eq!(s, 201, "{issued}");
    let campaign_code = issued["code"].as_str().unwrap().to_owned();

    let cart = |code: &str, customer: &str| {
        json!({"lines": [{"product_id": item, "quantity": 1}], "codes": [code],
               "customer": {"id": customer}})
    };
    for code in ["cpn1", "CPN2", &discount_code, &campaign_code] {
        let e = shop.evaluate(cart(code, "u1")).await;
        assert_eq!(outcome(&e, code), "applied", "{code}: {e}");
        assert_eq!(applied_ids(&e), [promo]);
        assert_eq!(e["applied"][0]["code"], code);
    }
    // A campaign code is its holder's.
    let e = shop.evaluate(cart(&campaign_code, "u2")).await;
    assert_eq!(outcome(&e, &campaign_code), "code_unusable", "{e}");
    let e = shop.evaluate(cart("NOPE", "u1")).await;
    assert_eq!(outcome(&e, "NOPE"), "unknown_code");
    assert_eq!(e["refused"][0]["promotion_id"], Value::Null);
    assert!(!e["refused"][0]["message"].as_str().unwrap().is_empty());

    let (s, b) = bind(other, json!({"coupons": ["CPN1", "ZZZ9"]})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        (
            &b["error"]["code"],
            &b["error"]["field"],
            &b["error"]["codes"]
        ),
        (&json!("unknown_codes"), &json!("coupons"), &json!(["ZZZ9"]))
    );
    let (s, b) = bind(other, json!({"coupons": ["CPN1"]})).await;
    assert_eq!(
        (s, &b["error"]["code"], &b["error"]["codes"]),
        (409, &json!("already_bound"), &json!(["CPN1"])),
        "{b}"
    );
    let (s, b) = bind(other, json!({"campaign_id": 999999})).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (422, &json!("unknown_campaign")),
        "{b}"
    );
    let (s, b) = bind(999999, json!({"coupons": ["CPN1"]})).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (404, &json!("promotion_not_found")),
        "{b}"
    );
    let (s, b) = bind(other, json!({})).await;
    assert_eq!(s, 422, "{b}");
    // Nothing of the refused bindings stuck: CPN1 still reaches the first promotion.
    let e = shop.evaluate(cart("CPN1", "u1")).await;
    assert_eq!(applied_ids(&e), [promo]);
    shop.app.stop().await;
}

/// A coupon bound to a promotion is spent through the promotion only: the coupon API refuses
/// it, the binding takes just the uses it has left, and racing redemptions through the
/// promotion take exactly those. Before, the coupon API could still redeem a bound coupon, a
/// use counted in `coupons` that the promotion's own count never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_coupon_is_used_through_its_promotion_only_and_never_counted_twice() {
    let shop = Shop::open().await;
    let item = shop.product("ITEM", 4000, json!({})).await;
    let spec = |name: &str| json!({"name": name, "trigger": "code", "actions": [{"type": "amount_off", "amount_minor": 400}]});
    let promo = shop.promotion(spec("bound")).await;
    let other = shop.promotion(spec("other")).await;
    let upload = |code: &str, max_uses: i64| {
        json!({"coupons": [{"code": code, "type": null, "discount_kind": "FLAT", "discount_amount": 100,
                            "expires_at": "2099-01-01T00:00:00Z", "max_uses": max_uses}]})
    };
    for (code, max) in [("THRICE", 3), ("ONCE", 1)] {
        let (s, b) = shop.post("/api/v1/coupons", upload(code, max)).await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = shop
            .post(
                &format!("/api/v1/coupons/{code}/redeem"),
                json!({"user_id": "early"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    // A coupon with no use left has nothing to bind: refused, naming it, nothing bound.
    let (s, b) = shop
        .post(
            &format!("/api/v1/promotions/{other}/codes"),
            json!({"coupons": ["THRICE", "ONCE"]}),
        )
        .await;
    assert_eq!(
        (s, &b["error"]["code"], &b["error"]["codes"]),
        (409, &json!("codes_used_up"), &json!(["ONCE"])),
        "{b}"
    );
    let (s, b) = shop
        .post(
            &format!("/api/v1/promotions/{promo}/codes"),
            json!({"coupons": ["THRICE"]}),
        )
        .await;
    assert_eq!((s, &b), (200, &json!({"bound": 1})));

    // The coupon API refuses it now, whatever the call.
    for call in ["redeem", "validate"] {
        let (s, b) = shop
            .post(
                &format!("/api/v1/coupons/THRICE/{call}"),
                json!({"user_id": "late"}),
            )
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("coupon_bound")),
            "{call}: {b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("promotion {promo}")),
            "{b}"
        );
    }

    // Nor is it handed out by a coupon request (the only free untyped coupon is bound).
    let (s, b) = shop
        .post("/api/v1/coupons/requests", json!({"user_id": "late"}))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("no_coupon_available")),
        "{b}"
    );

    // Through the promotion, exactly the two uses left, however many race for them.
    let redeemed = futures::future::join_all((0..8).map(|i| {
        let shop = &shop;
        async move {
            shop.post(
                "/api/v1/promotions/redemptions",
                json!({"lines": [{"product_id": item, "quantity": 1}], "codes": ["THRICE"],
                       "customer": {"id": format!("c{i}")}, "reference": format!("r{i}")}),
            )
            .await
        }
    }))
    .await;
    let applied = redeemed
        .iter()
        .filter(|(s, b)| {
            *s == 201
                && b["evaluation"]["applied"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        })
        .count();
    assert_eq!(applied, 2, "{redeemed:?}");

    let db = shop.app.db().await;
    assert_eq!(
        db.count("SELECT uses FROM coupons WHERE code = 'THRICE'")
            .await,
        1,
        "the coupon API's one use, before the binding"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM coupon_redemptions WHERE code = 'THRICE'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT max_uses FROM promotion_codes WHERE code = 'THRICE'")
            .await,
        2
    );
    assert_eq!(
        db.count("SELECT uses FROM promotion_codes WHERE code = 'THRICE'")
            .await,
        2
    );
    assert_eq!(
        db.count("SELECT count(*) FROM promotion_codes WHERE code = 'ONCE'")
            .await,
        0
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_are_idempotent_and_released_redeemed_and_rolled_back_once_within_the_budget() {
    let shop = Shop::open().await;
    let item = shop.product("ITEM", 5000, json!({})).await;
    let promo = shop
        .coded(
            "BUDGET",
            json!({"name": "budgeted", "trigger": "code", "conditions": {"currency": "EUR"},
                   "actions": [{"type": "amount_off", "amount_minor": 1000}],
                   "limits": {"budget_minor": 2500}}),
        )
        .await;
    let cart = json!({"lines": [{"product_id": item, "quantity": 1}], "codes": ["BUDGET"], "customer": {"id": "c1"}});
    let usage = |redeemed: i64, redemptions: i64, held_minor: i64, held: i64| json!({"redeemed_minor": redeemed, "redemptions": redemptions, "held_minor": held_minor, "held": held});
    let hold_path = |id: &Value, action: &str| format!("/api/v1/promotions/holds/{id}{action}");

    // Idempotent by key: the same hold, held once.
    let keyed = |key: &'static str| {
        let shop = &shop;
        let cart = cart.clone();
        async move {
            shop.send(
                shop.c
                    .post(format!("{}/api/v1/promotions/holds", shop.base))
                    .header("Idempotency-Key", key)
                    .json(&cart),
            )
            .await
        }
    };
    let (s, first) = keyed("checkout-1").await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["status"], "held");
    assert_eq!(first["customer"], "c1");
    assert_eq!(first["currency"], "EUR");
    assert_eq!(first["expires_at"], "2030-01-07T10:15:00.000Z");
    assert_eq!(first["evaluation"]["applied"][0]["amount_minor"], 1000);
    assert_eq!(first["evaluation"]["total_minor"], 4000);
    let (s, again) = keyed("checkout-1").await;
    assert_eq!((s, &again["id"]), (201, &first["id"]));
    assert_eq!(shop.usage(promo).await, usage(0, 0, 1000, 1));
    let (s, read) = shop.get(&hold_path(&first["id"], "")).await;
    assert_eq!((s, &read["id"]), (200, &first["id"]));

    // Released: given back; once.
    let (s, b) = shop
        .post(&hold_path(&first["id"], "/release"), json!({}))
        .await;
    assert_eq!((s, &b["status"]), (200, &json!("released")), "{b}");
    assert_eq!(shop.usage(promo).await, usage(0, 0, 0, 0));
    let (s, b) = shop
        .post(&hold_path(&first["id"], "/release"), json!({}))
        .await;
    assert_eq!(
        (s, &b["error"]["code"], &b["error"]["status"]),
        (409, &json!("hold_not_held"), &json!("released")),
        "{b}"
    );

    // Redeemed, then rolled back exactly once however often asked.
    let second = shop.hold(cart.clone()).await;
    let (s, b) = shop
        .post(
            &hold_path(&second["id"], "/redeem"),
            json!({"reference": "ext-123"}),
        )
        .await;
    assert_eq!(
        (s, &b["status"], &b["reference"]),
        (200, &json!("redeemed"), &json!("ext-123")),
        "{b}"
    );
    assert_eq!(shop.usage(promo).await, usage(1000, 1, 0, 0));
    let (s, b) = shop
        .post(
            &hold_path(&second["id"], "/redeem"),
            json!({"reference": "ext-123"}),
        )
        .await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (409, &json!("hold_not_held")),
        "{b}"
    );
    for _ in 0..3 {
        let (s, b) = shop
            .post(&hold_path(&second["id"], "/rollback"), json!({}))
            .await;
        assert_eq!((s, &b["status"]), (200, &json!("rolled_back")), "{b}");
        assert_eq!(shop.usage(promo).await, usage(0, 0, 0, 0));
    }

    // The budget: two holds of 1,000, a third cut to what is left, a fourth gets nothing.
    let h3 = shop.hold(cart.clone()).await;
    let h4 = shop.hold(cart.clone()).await;
    let h5 = shop.hold(cart.clone()).await;
    assert_eq!(h5["evaluation"]["applied"][0]["amount_minor"], 500, "{h5}");
    assert_eq!(h5["evaluation"]["applied"][0]["capped_by_budget"], true);
    let h6 = shop.hold(cart.clone()).await;
    assert_eq!(h6["evaluation"]["applied"], json!([]), "{h6}");
    assert_eq!(outcome(&h6["evaluation"], "BUDGET"), "budget_exhausted");
    assert_eq!(shop.usage(promo).await, usage(0, 0, 2500, 3));
    let (s, b) = shop
        .get(&format!("/api/v1/promotions/{promo}/holds?limit=2"))
        .await;
    assert_eq!(s, 200, "{b}");
    let listed: Vec<&Value> = b["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    // The last hold spends nothing of it, so it is not among its holds.
    assert_eq!(listed, [&h5["id"], &h4["id"]]);
    assert_eq!(b["next_before"], h4["id"]);

    // A limit below what is held is refused, naming it.
    let (s, b) = shop
        .put(
            &format!("/api/v1/promotions/{promo}"),
            json!({"name": "budgeted", "trigger": "code", "conditions": {"currency": "EUR"},
                   "actions": [{"type": "amount_off", "amount_minor": 1000}],
                   "limits": {"budget_minor": 2000}}),
        )
        .await;
    assert_eq!(
        (s, &b["error"]["code"], &b["error"]["field"]),
        (
            409,
            &json!("limit_below_usage"),
            &json!("limits.budget_minor")
        ),
        "{b}"
    );

    // Past its time a hold cannot be redeemed.
    shop.app.clock.as_ref().unwrap().advance_ms(901_000);
    let (s, b) = shop
        .post(
            &hold_path(&h3["id"], "/redeem"),
            json!({"reference": "late"}),
        )
        .await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (409, &json!("hold_expired")),
        "{b}"
    );

    let (s, b) = shop.get("/api/v1/promotions/holds/999999").await;
    assert_eq!((s, &b["error"]["code"]), (404, &json!("hold_not_found")));
    for ttl in [0, 86_401] {
        let mut body = cart.clone();
        body["ttl_seconds"] = json!(ttl);
        let (s, b) = shop.post("/api/v1/promotions/holds", body).await;
        assert_eq!(
            (s, &b["error"]["field"]),
            (422, &json!("ttl_seconds")),
            "{b}"
        );
    }
    let (s, b) = shop.get("/api/v1/events?type=PromotionRolledBack").await;
    assert_eq!(
        (s, b["events"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{b}"
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_past_their_time_are_expired_by_the_job_and_give_their_share_back() {
    let shop = Shop::open_with(|c| {
        c.promotion_hold_expiry_interval = Some(Duration::from_millis(50));
    })
    .await;
    let item = shop.product("ITEM", 5000, json!({})).await;
    let promo = shop
        .coded(
            "LAST",
            json!({"name": "last one", "trigger": "code",
                   "actions": [{"type": "amount_off", "amount_minor": 1000}],
                   "limits": {"redemptions_max": 1}}),
        )
        .await;
    let mut cart = json!({"lines": [{"product_id": item, "quantity": 1}], "codes": ["LAST"]});
    cart["ttl_seconds"] = json!(1);
    let hold = shop.hold(cart.clone()).await;
    assert_eq!(hold["evaluation"]["discount_minor"], 1000);
    // The one redemption is held: another checkout gets nothing.
    let other = shop.hold(cart.clone()).await;
    assert_eq!(
        outcome(&other["evaluation"], "LAST"),
        "redemption_limit_reached"
    );

    shop.app.clock.as_ref().unwrap().advance_ms(1_001);
    let path = format!("/api/v1/promotions/holds/{}", hold["id"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, b) = shop.get(&path).await;
        assert_eq!(s, 200, "{b}");
        if b["status"] == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not expired: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shop.usage(promo).await["held"], 0);
    let next = shop.hold(cart).await;
    assert_eq!(outcome(&next["evaluation"], "LAST"), "applied");
    let (s, b) = shop.get("/api/v1/events?type=PromotionHoldsExpired").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["events"][0]["actor"], "system:promotion-hold-expiry",
        "{b}"
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_evaluates_only_as_itself_with_its_account_s_role_and_orders() {
    let shop = Shop::open().await;
    let email = Email::parse("shopper@example.com").unwrap();
    let user = shop
        .app
        .services
        .auth
        .create_user(
            email.clone(),
            Password::parse(PASSWORD).unwrap(),
            Role::Customer,
        )
        .await
        .unwrap();
    let token = shop
        .app
        .services
        .auth
        .login(&email, PASSWORD)
        .await
        .unwrap()
        .access_token;
    let own = user.id.get().to_string();
    let item = shop.product("ITEM", 2000, json!({})).await;
    let welcome = shop
        .promotion(json!({"name": "welcome", "trigger": "automatic",
                           "conditions": {"customer_roles": ["customer"], "first_order": true},
                           "actions": [{"type": "percent_off", "percent": 25}]}))
        .await;
    let as_customer = |body: Value| {
        let shop = &shop;
        let token = token.clone();
        async move {
            shop.send(
                shop.c
                    .post(format!("{}/api/v1/promotions/evaluate", shop.base))
                    .bearer_auth(token)
                    .json(&body),
            )
            .await
        }
    };
    let lines = json!([{"product_id": item, "quantity": 1}]);
    // Its role and orders come from its account.
    let (s, e) = as_customer(json!({"lines": lines})).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(applied_ids(&e), [welcome], "{e}");
    assert_eq!(e["discount_minor"], 500);
    let (s, _) = as_customer(json!({"lines": lines, "customer": {"id": own}})).await;
    assert_eq!(s, 200);
    for (customer, field) in [
        (json!({"id": "someone-else"}), "customer.id"),
        (json!({"role": "admin"}), "customer.role"),
        (json!({"tags": ["vip"]}), "customer.tags"),
        (json!({"orders_before": 0}), "customer.orders_before"),
    ] {
        let (s, b) = as_customer(json!({"lines": lines, "customer": customer})).await;
        assert_eq!((s, &b["error"]["field"]), (403, &json!(field)), "{b}");
    }
    // Staff may evaluate for any customer: an Allot user's role is read from its account.
    let e = shop
        .evaluate(json!({"lines": lines, "customer": {"id": own}}))
        .await;
    assert_eq!(applied_ids(&e), [welcome]);
    let e = shop
        .evaluate(json!({"lines": lines, "customer": {"id": "someone-else"}}))
        .await;
    assert_eq!(applied_ids(&e), Vec::<i64>::new());
    // A customer manages no promotion and holds nothing.
    let (s, _) = shop
        .send(
            shop.c
                .post(format!("{}/api/v1/promotions/holds", shop.base))
                .bearer_auth(&token)
                .json(&json!({"lines": lines})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = shop
        .send(
            shop.c
                .get(format!("{}/api/v1/promotions", shop.base))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(s, 403);
    shop.app.stop().await;
}

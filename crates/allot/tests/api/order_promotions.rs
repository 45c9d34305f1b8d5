//! Allot's own orders through the promotion engine, on the suite's backend: codes and
//! automatic promotions priced exactly with the coupon, the discount code and the shipping;
//! a hold serves only the order it was made for; a refused code or order holds nothing; an
//! order no promotion applies to writes no hold.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_promotion_invariants};
use crate::promotion_race::{Shop, held_amount};

fn address() -> Value {
    json!({"name": "Ada", "line1": "1 Road", "city": "Paris", "postal_code": "75001",
           "country": "FR"})
}

fn order_body(customer: &str, product: i64, quantity: i64) -> Value {
    json!({"customer": customer, "shipping_address": address(),
           "lines": [{"product_id": product, "quantity": quantity}]})
}

#[tokio::test]
async fn order_promotions_a_code_and_free_shipping_come_first_then_the_discount_code() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let spring = shop
        .promotion(json!({"name": "10% with SPRING", "trigger": "code",
                          "actions": [{"type": "percent_off", "percent": 10}]}))
        .await;
    shop.bound_coupon(spring, "SPRING", 10).await;
    let shipping = shop
        .promotion(
            json!({"name": "free shipping from 20.00", "trigger": "automatic",
                          "conditions": {"min_subtotal_minor": 2_000},
                          "actions": [{"type": "free_shipping"}]}),
        )
        .await;
    let (s, b) = shop
        .post(
            "/api/v1/discount-codes/batches",
            json!({"count": 1, "length": 8}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let code = b["codes"][0].as_str().expect("a discount code").to_owned();

    let mut body = order_body("ann", shop.product, 2);
    body["codes"] = json!(["spring"]);
    body["shipping_minor"] = json!(500);
    body["discount_code"] = json!(code);
    let (s, o) = shop.post("/api/v1/orders", body).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["subtotal_minor"], 2_000, "{o}");
    // 10% off the lines by the promotion, then the discount code's 10% of the 1,800 left;
    // the shipping free.
    assert_eq!(o["promotion_discount_minor"], 200, "{o}");
    assert_eq!(o["discount_code"]["amount_minor"], 180, "{o}");
    assert_eq!(o["shipping_minor"], 500, "{o}");
    assert_eq!(o["shipping_discount_minor"], 500, "{o}");
    assert_eq!(o["total_minor"], 1_620, "{o}");
    let mut got: Vec<(i64, Value, i64)> = o["promotions"]
        .as_array()
        .expect("promotions")
        .iter()
        .map(|p| {
            (
                p["promotion_id"].as_i64().expect("id"),
                p["code"].clone(),
                p["amount_minor"].as_i64().expect("amount"),
            )
        })
        .collect();
    got.sort_by_key(|p| p.0);
    assert_eq!(
        got,
        vec![(spring, json!("SPRING"), 200), (shipping, Value::Null, 500)]
    );
    // Read back the same; the hold is the order's.
    let id = o["id"].as_i64().expect("order id");
    let (s, back) = shop.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!((s, &back), (200, &o));
    let hold = o["promotion_hold_id"].as_i64().expect("a hold");
    let (s, h) = shop.get(&format!("/api/v1/promotions/holds/{hold}")).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["status"], "redeemed", "{h}");
    assert_eq!(h["reference"], format!("order-{id}"), "{h}");
    assert_eq!(shop.usage(spring).await, (200, 1, 0, 0));
    assert_eq!(shop.usage(shipping).await, (500, 1, 0, 0));

    // Below the minimum the shipping is paid; the code still applies.
    let mut body = order_body("bob", shop.product, 1);
    body["codes"] = json!(["SPRING"]);
    body["shipping_minor"] = json!(500);
    let (s, o) = shop.post("/api/v1/orders", body).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["total_minor"], 900 + 500, "{o}");

    assert_promotion_invariants(&app.db().await).await;
    app.stop().await;
}

#[tokio::test]
async fn order_promotions_a_hold_serves_only_its_customer_and_its_lines_once() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let id = shop
        .promotion(json!({"name": "100 off", "trigger": "automatic",
                          "conditions": {"currency": "EUR"},
                          "actions": [{"type": "amount_off", "amount_minor": 100}],
                          "limits": {"budget_minor": 10_000}}))
        .await;
    let (s, h) = shop.hold("ann", &[], 600).await;
    assert_eq!((s, held_amount(&h)), (201, 100), "{h}");
    let hold = h["id"].as_i64().expect("hold id");
    let with_hold = |customer: &str, quantity: i64| {
        let mut body = order_body(customer, shop.product, quantity);
        body["promotion_hold_id"] = json!(hold);
        body
    };
    let unusable = |o: &Value, reason: &str| {
        assert_eq!(o["error"]["code"], "promotion_hold_unusable", "{o}");
        assert_eq!(o["error"]["field"], "promotion_hold_id", "{o}");
        assert_eq!(o["error"]["reason"], reason, "{o}");
    };
    let (s, o) = shop.post("/api/v1/orders", with_hold("bob", 1)).await;
    assert_eq!(s, 409);
    unusable(&o, "another_customer");
    let (s, o) = shop.post("/api/v1/orders", with_hold("ann", 2)).await;
    assert_eq!(s, 409);
    unusable(&o, "another_cart");
    let mut both = with_hold("ann", 1);
    both["codes"] = json!(["X"]);
    let (s, o) = shop.post("/api/v1/orders", both).await;
    assert_eq!((s, &o["error"]["field"]), (422, &json!("codes")), "{o}");
    let mut missing = with_hold("ann", 1);
    missing["promotion_hold_id"] = json!(hold + 1_000);
    let (s, o) = shop.post("/api/v1/orders", missing).await;
    assert_eq!(s, 409);
    unusable(&o, "not_found");
    // Nothing of those refusals reserved stock or spent the hold.
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 0);
    assert_eq!(shop.usage(id).await, (0, 0, 100, 1));

    let (s, o) = shop.post("/api/v1/orders", with_hold("ann", 1)).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["promotion_hold_id"], hold, "{o}");
    assert_eq!(o["total_minor"], 900, "{o}");
    let (s, o) = shop.post("/api/v1/orders", with_hold("ann", 1)).await;
    assert_eq!(s, 409);
    unusable(&o, "not_held");
    assert_eq!(shop.usage(id).await, (100, 1, 0, 0));

    assert_promotion_invariants(&db).await;
    app.stop().await;
}

#[tokio::test]
async fn order_promotions_a_refused_code_or_order_holds_nothing_and_no_promotion_writes_no_hold() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 3).await;
    let big = shop
        .promotion(json!({"name": "from 50.00", "trigger": "code",
                          "conditions": {"min_subtotal_minor": 5_000},
                          "actions": [{"type": "percent_off", "percent": 10}]}))
        .await;
    shop.bound_coupon(big, "BIG", 10).await;
    let usd = shop
        .promotion(json!({"name": "USD only", "trigger": "automatic",
                          "conditions": {"currency": "USD"},
                          "actions": [{"type": "percent_off", "percent": 10}]}))
        .await;

    // A code whose conditions do not hold refuses the order, saying why; an unknown code too.
    let (s, o) = shop.order("ann", &["BIG"], None).await;
    assert_eq!(s, 409, "{o}");
    assert_eq!(o["error"]["code"], "promotion_code_refused", "{o}");
    assert_eq!(o["error"]["reason"], "min_subtotal_not_met", "{o}");
    assert_eq!(o["error"]["field"], "codes", "{o}");
    let (s, o) = shop.order("ann", &["NOPE"], None).await;
    assert_eq!(
        (s, &o["error"]["code"]),
        (422, &json!("unknown_code")),
        "{o}"
    );
    // A code on lines the catalog cannot price is refused, not ignored.
    let mut unknown = order_body("ann", shop.product + 1_000, 1);
    unknown["codes"] = json!(["BIG"]);
    let (s, o) = shop.post("/api/v1/orders", unknown).await;
    assert_eq!(s, 422, "{o}");
    assert_eq!(o["error"]["code"], "invalid_argument", "{o}");
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM promotion_holds").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 0);

    // An order the automatic promotion does not apply to writes no hold.
    let (s, o) = shop.order("ann", &[], None).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["promotions"], json!([]), "{o}");
    assert_eq!(o["promotion_hold_id"], Value::Null, "{o}");
    assert_eq!(o["total_minor"], 1_000, "{o}");
    assert_eq!(db.count("SELECT count(*) FROM promotion_holds").await, 0);

    // A code that applies, on an order refused for stock: the hold made for it is released.
    let mut body = order_body("ann", shop.product, 5);
    body["codes"] = json!(["BIG"]);
    let (s, o) = shop.post("/api/v1/orders", body).await;
    assert_eq!(s, 409, "{o}");
    assert_eq!(o["error"]["code"], "out_of_stock", "{o}");
    assert_eq!(
        db.strings("SELECT status FROM promotion_holds").await,
        vec!["released".to_owned()]
    );
    assert_eq!(shop.usage(big).await, (0, 0, 0, 0));
    assert_eq!(shop.usage(usd).await, (0, 0, 0, 0));

    assert_promotion_invariants(&db).await;
    app.stop().await;
}

#[tokio::test]
async fn order_promotions_a_retry_with_its_key_answers_the_first_order_though_its_code_is_used_up()
{
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let once = shop
        .promotion(json!({"name": "once", "trigger": "code",
                          "actions": [{"type": "amount_off", "amount_minor": 100}]}))
        .await;
    shop.bound_coupon(once, "ONCE", 1).await;
    let mut body = order_body("ann", shop.product, 1);
    body["codes"] = json!(["ONCE"]);
    let place = || {
        shop.c
            .post(format!("{}/api/v1/orders", shop.base))
            .header("Idempotency-Key", "checkout-1")
            .json(&body)
    };
    let (s, first) = crate::promotion_race::send(place()).await;
    assert_eq!((s, &first["total_minor"]), (201, &json!(900)), "{first}");
    let (s, again) = crate::promotion_race::send(place()).await;
    assert_eq!((s, &again), (200, &first));
    // Without the key it is another order, and the code is used up.
    let (s, other) = shop.post("/api/v1/orders", body.clone()).await;
    assert_eq!(s, 409, "{other}");
    assert_eq!(other["error"]["code"], "promotion_code_refused", "{other}");
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM promotion_holds").await, 1);
    assert_promotion_invariants(&db).await;
    app.stop().await;
}

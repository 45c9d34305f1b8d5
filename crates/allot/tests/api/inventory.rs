//! Inventory over REST, on the suite's backend: reservations under a storm, never split,
//! expiry, release and confirm once, low-stock alerts, bad input; after each test the ledger's
//! sums are checked against the balances in the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{AppDb, TestApp, http};

async fn send(client: &reqwest::Client, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = client;
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    send(client, client.post(url).json(&body)).await
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    send(client, client.get(url)).await
}

async fn new_product(client: &reqwest::Client, base: &str, sku: &str) -> i64 {
    let (status, body) = post(
        client,
        format!("{base}/api/v1/products"),
        json!({"sku": sku, "name": sku, "price": {"amount_minor": 100, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("product id")
}

async fn new_warehouse(client: &reqwest::Client, base: &str, code: &str) -> i64 {
    let (status, body) = post(
        client,
        format!("{base}/api/v1/warehouses"),
        json!({"code": code, "name": code}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("warehouse id")
}

async fn set_stock(client: &reqwest::Client, base: &str, product: i64, warehouse: i64, n: i64) {
    let (status, body) = post(
        client,
        format!("{base}/api/v1/inventory/adjust"),
        json!({"product_id": product, "warehouse_id": warehouse, "mode": "set",
               "quantity": n, "reason": "count"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["on_hand"], n, "{body}");
}

async fn reserve(client: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
    post(client, format!("{base}/api/v1/inventory/reserve"), body).await
}

async fn stock(client: &reqwest::Client, base: &str, product: i64) -> Value {
    let (status, body) = get(client, format!("{base}/api/v1/inventory/{product}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Available stock of the product in one warehouse, by the API.
fn available_in(stock: &Value, warehouse: i64) -> i64 {
    stock["warehouses"]
        .as_array()
        .expect("warehouses")
        .iter()
        .find(|l| l["warehouse_id"] == warehouse)
        .map_or(0, |l| l["available"].as_i64().expect("available"))
}

/// Every balance equals its ledger's sums, reserved equals the pending reservations, and no
/// level is negative or above on hand.
pub(crate) async fn assert_ledger_matches(db: &AppDb) {
    let mismatched = db
        .count(
            "SELECT COUNT(*) FROM stock_levels s LEFT JOIN (
                 SELECT product_id, warehouse_id, SUM(on_hand_delta) AS oh,
                        SUM(reserved_delta) AS rs
                 FROM stock_movements GROUP BY product_id, warehouse_id) m
               ON m.product_id = s.product_id AND m.warehouse_id = s.warehouse_id
             WHERE COALESCE(m.oh, 0) <> s.on_hand OR COALESCE(m.rs, 0) <> s.reserved",
        )
        .await;
    assert_eq!(mismatched, 0, "levels whose ledger sums differ");
    let unheld = db
        .count(
            "SELECT COUNT(*) FROM stock_levels s LEFT JOIN (
                 SELECT product_id, warehouse_id, SUM(quantity) AS q FROM reservations
                 WHERE status = 'pending' GROUP BY product_id, warehouse_id) r
               ON r.product_id = s.product_id AND r.warehouse_id = s.warehouse_id
             WHERE COALESCE(r.q, 0) <> s.reserved",
        )
        .await;
    assert_eq!(
        unheld, 0,
        "levels whose reserved differs from pending reservations"
    );
    let negative = db
        .count("SELECT COUNT(*) FROM stock_levels WHERE reserved < 0 OR reserved > on_hand")
        .await;
    assert_eq!(negative, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_500_concurrent_reservations_of_100_in_stock_give_exactly_100() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let product = new_product(&client, &base, "STORM-1").await;
    let a = new_warehouse(&client, &base, "STORM-A").await;
    let b = new_warehouse(&client, &base, "STORM-B").await;
    set_stock(&client, &base, product, a, 60).await;
    set_stock(&client, &base, product, b, 40).await;

    // A poller reads the product's stock during the storm: it never sees it negative.
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (client, base, done) = (client.clone(), base.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                let s = stock(&client, &base, product).await;
                for l in s["warehouses"].as_array().expect("warehouses") {
                    let (on_hand, reserved) = (l["on_hand"].as_i64(), l["reserved"].as_i64());
                    let (Some(on_hand), Some(reserved)) = (on_hand, reserved) else {
                        panic!("{l}");
                    };
                    assert!(reserved >= 0 && reserved <= on_hand, "{l}");
                    assert!(l["available"].as_i64().is_some_and(|v| v >= 0), "{l}");
                }
                assert!(s["available"].as_i64().is_some_and(|v| v >= 0), "{s}");
                reads += 1;
            }
            reads
        })
    };

    let storm: Vec<_> = (0..500)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                reserve(
                    &client,
                    &base,
                    json!({"product_id": product, "quantity": 1, "holder": format!("order-{i}"),
                           "ttl_seconds": 600}),
                )
                .await
            })
        })
        .collect();
    let (mut reserved, mut refused) = (0, 0);
    for t in storm {
        let (status, body) = t.await.expect("task");
        match status {
            201 => {
                assert_eq!(body["status"], "pending", "{body}");
                reserved += 1;
            }
            409 => {
                assert_eq!(body["error"]["code"], "out_of_stock", "{body}");
                assert_eq!(body["error"]["available_total"], 0, "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    let reads = poller.await.expect("poller");
    assert!(reads > 0);
    assert_eq!((reserved, refused), (100, 400));

    let s = stock(&client, &base, product).await;
    assert_eq!(
        (s["on_hand"].as_i64(), s["reserved"].as_i64()),
        (Some(100), Some(100))
    );
    assert_eq!(s["available"], 0);
    assert_eq!((available_in(&s, a), available_in(&s, b)), (0, 0));
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM reservations WHERE status = 'pending'")
            .await,
        100
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM stock_movements WHERE kind = 'reservation'")
            .await,
        100
    );
    assert_ledger_matches(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_a_reservation_is_never_split_and_the_preferred_warehouse_serves_first() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let a = new_warehouse(&client, &base, "SPLIT-A").await;
    let b = new_warehouse(&client, &base, "SPLIT-B").await;

    // 2 + 2 available, 3 asked: refused, not split.
    let thin = new_product(&client, &base, "THIN").await;
    set_stock(&client, &base, thin, a, 2).await;
    set_stock(&client, &base, thin, b, 2).await;
    let (status, body) = reserve(
        &client,
        &base,
        json!({"product_id": thin, "quantity": 3, "holder": "o-1"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "out_of_stock");
    assert_eq!(body["error"]["available_total"], 4);
    let s = stock(&client, &base, thin).await;
    assert_eq!(s["reserved"], 0, "{s}");

    // A has 5, B has 10.
    let p = new_product(&client, &base, "PREF").await;
    set_stock(&client, &base, p, a, 5).await;
    set_stock(&client, &base, p, b, 10).await;
    let r = |q: i64, w: Option<i64>| {
        json!({"product_id": p, "quantity": q, "holder": "o",
                                           "warehouse_id": w})
    };
    // Preferred A can serve 2: A.
    let (status, body) = reserve(&client, &base, r(2, Some(a))).await;
    assert_eq!(
        (status, body["warehouse_id"].as_i64()),
        (201, Some(a)),
        "{body}"
    );
    // No preference: the most available (B, 10 against 3).
    let (status, body) = reserve(&client, &base, r(2, None)).await;
    assert_eq!(
        (status, body["warehouse_id"].as_i64()),
        (201, Some(b)),
        "{body}"
    );
    // Preferred A has 3 available, 4 asked: B serves it whole (8 available).
    let (status, body) = reserve(&client, &base, r(4, Some(a))).await;
    assert_eq!(
        (status, body["warehouse_id"].as_i64()),
        (201, Some(b)),
        "{body}"
    );
    // Preferred B can serve 3: B, though A has as much.
    let (status, body) = reserve(&client, &base, r(3, Some(b))).await;
    assert_eq!(
        (status, body["warehouse_id"].as_i64()),
        (201, Some(b)),
        "{body}"
    );
    let s = stock(&client, &base, p).await;
    assert_eq!((available_in(&s, a), available_in(&s, b)), (3, 1), "{s}");
    // An unknown preferred warehouse is not found.
    let (status, body) = reserve(&client, &base, r(1, Some(999_999))).await;
    assert_eq!(status, 404, "{body}");
    // An unknown product too.
    let (status, body) = reserve(
        &client,
        &base,
        json!({"product_id": 999_999, "quantity": 1, "holder": "o"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    assert_ledger_matches(&app.db().await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_expired_reservations_return_to_available_with_expiry_in_the_ledger() {
    let app = TestApp::spawn_configured(None, |c| {
        c.reservation_expiry_interval = Some(Duration::from_millis(200));
    })
    .await;
    let client = http();
    let base = app.url();
    let p = new_product(&client, &base, "EXP").await;
    let w = new_warehouse(&client, &base, "EXP-W").await;
    set_stock(&client, &base, p, w, 5).await;
    let mut ids = Vec::new();
    for q in [2, 1] {
        let (status, body) = reserve(
            &client,
            &base,
            json!({"product_id": p, "quantity": q, "holder": "cart", "ttl_seconds": 1}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_i64().expect("id"));
    }
    // One that lives on.
    let (status, body) = reserve(
        &client,
        &base,
        json!({"product_id": p, "quantity": 1, "holder": "cart", "ttl_seconds": 600}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stock(&client, &base, p).await["available"], 1);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = stock(&client, &base, p).await;
        if s["available"] == 4 {
            assert_eq!(
                (s["on_hand"].as_i64(), s["reserved"].as_i64()),
                (Some(5), Some(1))
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never expired: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db = app.db().await;
    for id in &ids {
        let (status, body) = get(
            &client,
            format!("{base}/api/v1/inventory/reservations/{id}"),
        )
        .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("expired")),
            "{body}"
        );
        let expiries = db
            .count(&format!(
                "SELECT COUNT(*) FROM stock_movements
                 WHERE kind = 'expiry' AND reservation_id = {id}"
            ))
            .await;
        assert_eq!(expiries, 1);
        // An expired reservation cannot be released or confirmed.
        for action in ["release", "confirm"] {
            let (status, body) = post(
                &client,
                format!("{base}/api/v1/inventory/{action}"),
                json!({"reservation_id": id}),
            )
            .await;
            assert_eq!(status, 409, "{body}");
            assert_eq!(body["error"]["code"], "reservation_not_pending");
            assert_eq!(body["error"]["status"], "expired");
        }
    }
    // The ledger of the product, newest first, shows the expiries.
    let s = stock(&client, &base, p).await;
    let kinds: Vec<&str> = s["movements"]
        .as_array()
        .expect("movements")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "expiry").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"adjustment"));
    assert_ledger_matches(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_release_and_confirm_happen_once() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let p = new_product(&client, &base, "ONCE").await;
    let w = new_warehouse(&client, &base, "ONCE-W").await;
    set_stock(&client, &base, p, w, 10).await;
    let (_, r) = reserve(
        &client,
        &base,
        json!({"product_id": p, "quantity": 4, "holder": "o-7"}),
    )
    .await;
    let id = r["id"].as_i64().expect("id");
    let release = |id: i64| {
        post(
            &client,
            format!("{base}/api/v1/inventory/release"),
            json!({"reservation_id": id}),
        )
    };
    let (status, body) = release(id).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("released")),
        "{body}"
    );
    let (status, body) = release(id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reservation_not_pending");
    assert_eq!(body["error"]["status"], "released");
    let (status, body) = release(987_654).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let s = stock(&client, &base, p).await;
    assert_eq!(
        (s["on_hand"].as_i64(), s["reserved"].as_i64()),
        (Some(10), Some(0))
    );

    // Confirmed: the units leave stock, once.
    let (_, r) = reserve(
        &client,
        &base,
        json!({"product_id": p, "quantity": 3, "holder": "o-8"}),
    )
    .await;
    let id = r["id"].as_i64().expect("id");
    let confirm = || {
        post(
            &client,
            format!("{base}/api/v1/inventory/confirm"),
            json!({"reservation_id": id}),
        )
    };
    let (status, body) = confirm().await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("confirmed")),
        "{body}"
    );
    let (status, body) = confirm().await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("confirmed"))
    );
    let (status, body) = release(id).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("confirmed"))
    );
    let s = stock(&client, &base, p).await;
    assert_eq!(
        (s["on_hand"].as_i64(), s["reserved"].as_i64()),
        (Some(7), Some(0))
    );
    assert_eq!(s["movements"][0]["kind"], "stock_out", "{s}");
    assert_eq!(s["movements"][0]["on_hand_delta"], -3);

    // Concurrent releases of one reservation: exactly one succeeds.
    let (_, r) = reserve(
        &client,
        &base,
        json!({"product_id": p, "quantity": 2, "holder": "o-9"}),
    )
    .await;
    let id = r["id"].as_i64().expect("id");
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                post(
                    &client,
                    format!("{base}/api/v1/inventory/release"),
                    json!({"reservation_id": id}),
                )
                .await
                .0
            })
        })
        .collect();
    let mut ok = 0;
    for r in racers {
        match r.await.expect("task") {
            200 => ok += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    let s = stock(&client, &base, p).await;
    assert_eq!(
        (s["on_hand"].as_i64(), s["reserved"].as_i64()),
        (Some(7), Some(0))
    );
    // Taking on hand below what is reserved is refused.
    reserve(
        &client,
        &base,
        json!({"product_id": p, "quantity": 5, "holder": "o-10"}),
    )
    .await;
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/inventory/adjust"),
        json!({"product_id": p, "warehouse_id": w, "mode": "add", "quantity": -3,
               "reason": "damaged"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "below_reserved");
    assert_ledger_matches(&app.db().await).await;
    app.stop().await;
}

async fn open_alerts(client: &reqwest::Client, base: &str, product: i64) -> Vec<Value> {
    let (status, body) = get(client, format!("{base}/api/v1/inventory/alerts?open=true")).await;
    assert_eq!(status, 200, "{body}");
    body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["product_id"] == product)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_a_low_stock_alert_is_raised_once_and_cleared_above_the_threshold() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let p = new_product(&client, &base, "LOW").await;
    let w = new_warehouse(&client, &base, "LOW-W").await;
    set_stock(&client, &base, p, w, 10).await;
    let (status, body) = send(
        &client,
        client
            .put(format!("{base}/api/v1/inventory/{p}/reorder"))
            .json(&json!({"warehouse_id": w, "reorder_threshold": 5, "reorder_quantity": 20})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["reorder_threshold"].as_i64(),
            body["low_stock"].as_bool()
        ),
        (Some(5), Some(false))
    );
    assert!(open_alerts(&client, &base, p).await.is_empty());

    let take = |q: i64| {
        reserve(
            &client,
            &base,
            json!({"product_id": p, "quantity": q, "holder": "o"}),
        )
    };
    assert_eq!(take(4).await.0, 201); // 6 available: above
    assert!(open_alerts(&client, &base, p).await.is_empty());
    assert_eq!(take(1).await.0, 201); // 5: at the threshold, low
    let alerts = open_alerts(&client, &base, p).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (
            alerts[0]["available"].as_i64(),
            alerts[0]["threshold"].as_i64()
        ),
        (Some(5), Some(5))
    );
    for _ in 0..3 {
        assert_eq!(take(1).await.0, 201); // 4, 3, 2: still low, no new alert
    }
    assert_eq!(open_alerts(&client, &base, p).await.len(), 1);
    let (status, low) = get(&client, format!("{base}/api/v1/inventory?low_stock=true")).await;
    assert_eq!(status, 200);
    assert_eq!(low["levels"].as_array().map(Vec::len), Some(1), "{low}");
    assert_eq!(low["levels"][0]["alert_open"], true);

    // Back above: cleared.
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/inventory/adjust"),
        json!({"product_id": p, "warehouse_id": w, "mode": "add", "quantity": 10,
               "reason": "delivery"}),
    )
    .await;
    assert_eq!(
        (status, body["available"].as_i64()),
        (200, Some(12)),
        "{body}"
    );
    assert!(open_alerts(&client, &base, p).await.is_empty());
    let (_, all) = get(&client, format!("{base}/api/v1/inventory/alerts")).await;
    let all = all["alerts"].as_array().expect("alerts").clone();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["open"], false);
    assert!(all[0]["cleared_at"].is_string());

    // Down again: a second alert.
    assert_eq!(take(8).await.0, 201);
    assert_eq!(open_alerts(&client, &base, p).await.len(), 1);
    let db = app.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM stock_alerts").await, 2);
    assert_ledger_matches(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let p = new_product(&client, &base, "BAD").await;
    let w = new_warehouse(&client, &base, "BAD-W").await;
    set_stock(&client, &base, p, w, 10).await;
    let db = app.db().await;
    let movements = "SELECT COUNT(*) FROM stock_movements";
    let before = (
        db.count(movements).await,
        db.count("SELECT COUNT(*) FROM reservations").await,
    );

    let reserve_cases = [
        (json!({"quantity": 1, "holder": "o"}), "product_id"),
        (
            json!({"product_id": 0, "quantity": 1, "holder": "o"}),
            "product_id",
        ),
        (json!({"product_id": p, "holder": "o"}), "quantity"),
        (
            json!({"product_id": p, "quantity": 0, "holder": "o"}),
            "quantity",
        ),
        (
            json!({"product_id": p, "quantity": "two", "holder": "o"}),
            "quantity",
        ),
        (
            json!({"product_id": p, "quantity": 1, "holder": " "}),
            "holder",
        ),
        (json!({"product_id": p, "quantity": 1}), "holder"),
        (
            json!({"product_id": p, "quantity": 1, "holder": "o", "warehouse_id": -2}),
            "warehouse_id",
        ),
        (
            json!({"product_id": p, "quantity": 1, "holder": "o", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
    ];
    for (body, field) in reserve_cases {
        let (status, answer) = reserve(&client, &base, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], "invalid_argument");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
    }
    let adjust_cases = [
        (
            json!({"product_id": p, "warehouse_id": w, "mode": "mul", "quantity": 1, "reason": "r"}),
            "mode",
        ),
        (
            json!({"product_id": p, "warehouse_id": w, "mode": "set", "quantity": -1, "reason": "r"}),
            "quantity",
        ),
        (
            json!({"product_id": p, "warehouse_id": w, "mode": "add", "quantity": 0, "reason": "r"}),
            "quantity",
        ),
        (
            json!({"product_id": p, "warehouse_id": w, "mode": "add", "quantity": 1}),
            "reason",
        ),
        (
            json!({"product_id": p, "mode": "add", "quantity": 1, "reason": "r"}),
            "warehouse_id",
        ),
    ];
    for (body, field) in adjust_cases {
        let (status, answer) = post(
            &client,
            format!("{base}/api/v1/inventory/adjust"),
            body.clone(),
        )
        .await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
    }
    for action in ["release", "confirm"] {
        let (status, answer) = post(
            &client,
            format!("{base}/api/v1/inventory/{action}"),
            json!({"reservation_id": 0}),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some("reservation_id"))
        );
    }
    let (status, answer) = send(
        &client,
        client
            .put(format!("{base}/api/v1/inventory/{p}/reorder"))
            .json(&json!({"warehouse_id": w, "reorder_threshold": -1, "reorder_quantity": 5})),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("reorder_threshold"))
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("warehouse_id=abc", "warehouse_id"),
        ("cursor=zz", "cursor"),
        ("low_stock=maybe", "low_stock"),
    ] {
        let (status, answer) = get(&client, format!("{base}/api/v1/inventory?{query}")).await;
        assert_eq!(status, 422, "{query} -> {answer}");
        assert_eq!(answer["error"]["field"], field, "{query} -> {answer}");
    }
    // Not JSON at all.
    let (status, answer) = send(
        &client,
        client
            .post(format!("{base}/api/v1/inventory/reserve"))
            .header("content-type", "application/json")
            .body("{nope"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    // An unknown product's inventory is not found.
    assert_eq!(
        get(&client, format!("{base}/api/v1/inventory/999999"))
            .await
            .0,
        404
    );

    let after = (
        db.count(movements).await,
        db.count("SELECT COUNT(*) FROM reservations").await,
    );
    assert_eq!(before, after, "a refused request changed something");
    let s = stock(&client, &base, p).await;
    assert_eq!(
        (s["on_hand"].as_i64(), s["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    assert_ledger_matches(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_listing_filters_pages_and_is_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let a = new_warehouse(&client, &base, "LIST-A").await;
    let b = new_warehouse(&client, &base, "LIST-B").await;
    let mut products = Vec::new();
    for i in 0..3 {
        let p = new_product(&client, &base, &format!("List-{i}")).await;
        set_stock(&client, &base, p, a, 5 + i).await;
        set_stock(&client, &base, p, b, 1).await;
        products.push(p);
    }
    // Pages of 4 over 6 levels, by product then warehouse.
    let (status, page) = get(&client, format!("{base}/api/v1/inventory?limit=4")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["levels"].as_array().map(Vec::len), Some(4));
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, rest) = get(
        &client,
        format!("{base}/api/v1/inventory?limit=4&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["levels"].as_array().map(Vec::len), Some(2), "{rest}");
    assert!(rest["next_cursor"].is_null());
    assert_eq!(rest["levels"][1]["product_id"], products[2]);
    assert_eq!(rest["levels"][1]["warehouse_id"], b);
    // By warehouse, by SKU (case-insensitive).
    let (_, in_b) = get(&client, format!("{base}/api/v1/inventory?warehouse_id={b}")).await;
    assert_eq!(in_b["levels"].as_array().map(Vec::len), Some(3));
    let (_, one) = get(&client, format!("{base}/api/v1/inventory?sku=LIST-1")).await;
    assert_eq!(one["levels"].as_array().map(Vec::len), Some(2), "{one}");
    assert_eq!(one["levels"][0]["on_hand"], 6);

    let (status, doc) = get(&client, format!("{base}/api/v1/openapi.json")).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/inventory",
        "/api/v1/inventory/{product_id}",
        "/api/v1/inventory/reserve",
        "/api/v1/inventory/release",
        "/api/v1/inventory/confirm",
        "/api/v1/inventory/adjust",
        "/api/v1/inventory/alerts",
        "/api/v1/inventory/{product_id}/reorder",
        "/api/v1/inventory/reservations/{reservation_id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    app.stop().await;
}

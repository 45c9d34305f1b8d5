//! Shipments and returns of an order's lines (issue 19), on the suite's backend: partial
//! shipments to fulfilment with the customer told the tracking number (inbox and a real SMTP
//! server), shipments racing for the last units, returns approved and received into a chosen
//! warehouse through the ledger, rejected, written off, and refused past what shipped or on
//! another customer's order. Events are counted in the database afterwards.

use std::time::Duration;

use allot_domain::auth::Role;
use allot_server::service::notification::SmtpTls;
use allot_testkit::SmtpServer;
use serde_json::{Value, json};

use crate::helpers::{AppDb, TestApp, account, call, eventually};

/// A server with sign-in, and email to `smtp_url` (plain SMTP on loopback) if given.
async fn app(smtp_url: Option<String>) -> TestApp {
    TestApp::spawn_configured(None, move |c| {
        c.auth.jwt_secret = Some(allot_server::config::Secret::new("s".repeat(32)));
        if let Some(url) = smtp_url {
            c.notifications.smtp_url = Some(url);
            c.notifications.smtp_tls = Some(SmtpTls::Plain);
            c.notifications.smtp_from = "shop@allot.test".to_owned();
            c.notifications.poll_interval = Duration::from_millis(100);
            c.notifications.retry_base = Duration::from_millis(200);
            c.notifications.retry_max = Duration::from_millis(500);
        }
    })
    .await
}

async fn created(app: &TestApp, path: &str, body: Value) -> i64 {
    let (s, b) = call(app, "POST", path, None, Some(body)).await;
    assert_eq!(s, 201, "{path}: {b}");
    b["id"].as_i64().expect("id")
}

async fn product(app: &TestApp, sku: &str) -> i64 {
    created(
        app,
        "/api/v1/products",
        json!({"sku": sku, "name": sku, "price": {"amount_minor": 1000, "currency": "EUR"}}),
    )
    .await
}

async fn warehouse(app: &TestApp, code: &str) -> i64 {
    created(
        app,
        "/api/v1/warehouses",
        json!({"code": code, "name": code}),
    )
    .await
}

async fn stock(app: &TestApp, product: i64, warehouse: i64, n: i64) {
    let (s, b) = call(
        app,
        "POST",
        "/api/v1/inventory/adjust",
        None,
        Some(
            json!({"product_id": product, "warehouse_id": warehouse, "mode": "set",
                    "quantity": n, "reason": "count"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

async fn on_hand_in(app: &TestApp, product: i64, warehouse: i64) -> i64 {
    let (s, l) = call(
        app,
        "GET",
        &format!("/api/v1/inventory/{product}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{l}");
    l["warehouses"]
        .as_array()
        .expect("warehouses")
        .iter()
        .find(|w| w["warehouse_id"] == warehouse)
        .map_or(0, |w| w["on_hand"].as_i64().expect("on_hand"))
}

/// A confirmed order of `lines` for `customer` (an account id), placed by the harness admin.
async fn confirmed_order(app: &TestApp, customer: i64, lines: &[(i64, i64)]) -> i64 {
    let id = created(
        app,
        "/api/v1/orders",
        json!({
            "customer": customer.to_string(),
            "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                 "postal_code": "75001", "country": "FR"},
            "lines": lines.iter().map(|(p, q)| json!({"product_id": p, "quantity": q}))
                .collect::<Vec<_>>(),
        }),
    )
    .await;
    set_status(app, id, "confirmed").await;
    id
}

async fn set_status(app: &TestApp, order: i64, status: &str) -> (u16, Value) {
    call(
        app,
        "PUT",
        &format!("/api/v1/orders/{order}/status"),
        None,
        Some(json!({"status": status})),
    )
    .await
}

async fn ship(app: &TestApp, order: i64, lines: Value, tracking: &str) -> (u16, Value) {
    call(
        app,
        "POST",
        &format!("/api/v1/orders/{order}/shipments"),
        None,
        Some(json!({"lines": lines, "carrier": "UPS", "tracking_number": tracking})),
    )
    .await
}

async fn open_return(
    app: &TestApp,
    order: i64,
    bearer: Option<&str>,
    lines: Value,
) -> (u16, Value) {
    call(
        app,
        "POST",
        &format!("/api/v1/orders/{order}/returns"),
        bearer,
        Some(json!({"lines": lines, "reason": "too small"})),
    )
    .await
}

async fn order(app: &TestApp, id: i64) -> Value {
    let (s, o) = call(app, "GET", &format!("/api/v1/orders/{id}"), None, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

fn shipped(o: &Value) -> Vec<i64> {
    o["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["shipped_quantity"].as_i64().expect("shipped_quantity"))
        .collect()
}

async fn events(db: &AppDb, kind: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) FROM events WHERE type = '{kind}'"
    ))
    .await
}

async fn payloads(db: &AppDb, kind: &str) -> Vec<Value> {
    db.strings(&format!(
        "SELECT CAST(payload AS TEXT) FROM events WHERE type = '{kind}'"
    ))
    .await
    .iter()
    .map(|p| serde_json::from_str(p).expect("a JSON payload"))
    .collect()
}

fn code(b: &Value) -> Option<&str> {
    b["error"]["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_two_partial_shipments_fulfil_the_order_once_and_tell_the_tracking_number() {
    let smtp = SmtpServer::start();
    let app = app(Some(smtp.url())).await;
    let ada = account(&app, "ada@example.com", Role::Customer).await;
    let w = warehouse(&app, "SHIP-W").await;
    let (a, b) = (product(&app, "SHIP-A").await, product(&app, "SHIP-B").await);
    stock(&app, a, w, 10).await;
    stock(&app, b, w, 10).await;
    let id = confirmed_order(&app, ada.id, &[(a, 3), (b, 2)]).await;

    // A part of line 0 by its id.
    let (s, first) = ship(&app, id, json!([{"line_id": 0, "quantity": 2}]), "1Z-FIRST").await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["order_fulfilled"], false, "{first}");
    assert_eq!(first["shipment"]["tracking_number"], "1Z-FIRST");
    let o = order(&app, id).await;
    assert_eq!(
        (o["status"].as_str(), shipped(&o)),
        (Some("confirmed"), vec![2, 0])
    );

    // Over-shipping is refused whole, naming what is left; so is an unknown line.
    let (s, over) = ship(
        &app,
        id,
        json!([{"product_id": b, "quantity": 1}, {"product_id": a, "quantity": 2}]),
        "1Z-OVER",
    )
    .await;
    assert_eq!(
        (s, code(&over)),
        (409, Some("shipment_exceeds_remaining")),
        "{over}"
    );
    assert_eq!(
        (
            &over["error"]["available_total"],
            &over["error"]["product_id"]
        ),
        (&json!(1), &json!(a)),
        "{over}"
    );
    let (s, unknown) = ship(&app, id, json!([{"line_id": 7, "quantity": 1}]), "1Z-X").await;
    assert_eq!(
        (s, code(&unknown)),
        (422, Some("invalid_argument")),
        "{unknown}"
    );
    assert_eq!(
        shipped(&order(&app, id).await),
        vec![2, 0],
        "nothing written"
    );
    // A partly shipped order is not cancelled (its lines come back by returns).
    let (s, c) = set_status(&app, id, "cancelled").await;
    assert_eq!((s, code(&c)), (409, Some("order_partly_shipped")), "{c}");

    // The rest, by product and by line: the order is fulfilled with it.
    let (s, second) = ship(
        &app,
        id,
        json!([{"product_id": a, "quantity": 1}, {"line_id": 1, "quantity": 2}]),
        "1Z-SECOND",
    )
    .await;
    assert_eq!(s, 201, "{second}");
    assert_eq!(second["order_fulfilled"], true, "{second}");
    let o = order(&app, id).await;
    assert_eq!(
        (o["status"].as_str(), shipped(&o)),
        (Some("fulfilled"), vec![3, 2])
    );
    let (s, again) = ship(&app, id, json!([{"line_id": 0, "quantity": 1}]), "1Z-3").await;
    assert_eq!(
        (s, code(&again)),
        (409, Some("order_not_shippable")),
        "{again}"
    );
    assert_eq!(again["error"]["status"], "fulfilled");

    let (s, list) = call(
        &app,
        "GET",
        &format!("/api/v1/orders/{id}/shipments"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let tracking: Vec<&str> = list["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tracking_number"].as_str().unwrap())
        .collect();
    assert_eq!(tracking, vec!["1Z-FIRST", "1Z-SECOND"]);
    // The customer reads its own order's shipments.
    let (s, own) = call(
        &app,
        "GET",
        &format!("/api/v1/orders/{id}/shipments"),
        Some(&ada.bearer),
        None,
    )
    .await;
    assert_eq!(
        (s, own["shipments"].as_array().map(Vec::len)),
        (200, Some(2))
    );

    // Each event once, the fulfilment's three in this order in one transaction.
    let db = app.db().await;
    assert_eq!(events(&db, "OrderShipped").await, 2);
    assert_eq!(events(&db, "OrderFulfilled").await, 1);
    let to_fulfilled = payloads(&db, "OrderStatusChanged")
        .await
        .iter()
        .filter(|p| p["to"] == "fulfilled")
        .count();
    assert_eq!(to_fulfilled, 1);
    // PostgreSQL numbers events (seq) after their commit; their ids are in insertion order.
    let key = if crate::helpers::backend() == "postgres" {
        "id"
    } else {
        "seq"
    };
    let order_of_events = db
        .strings(&format!(
            "SELECT type FROM events WHERE type IN ('OrderShipped', 'OrderStatusChanged', \
             'OrderFulfilled') ORDER BY {key} DESC LIMIT 3"
        ))
        .await;
    assert_eq!(
        order_of_events,
        vec!["OrderFulfilled", "OrderStatusChanged", "OrderShipped"]
    );

    // The customer is told each tracking number, in the inbox and by email.
    let told = eventually("two shipment notifications in the inbox", || async {
        let (_, inbox) = call(
            &app,
            "GET",
            "/api/v1/notifications",
            Some(&ada.bearer),
            None,
        )
        .await;
        let told: Vec<Value> = inbox["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n["rule"] == "order_shipped")
            .collect();
        (told.len() == 2).then_some(told)
    })
    .await;
    let bodies: Vec<&str> = told.iter().map(|n| n["body"].as_str().unwrap()).collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("UPS") && b.contains("1Z-SECOND"))
            && bodies.iter().any(|b| b.contains("1Z-FIRST")),
        "{bodies:?}"
    );
    assert_eq!(told[0]["title"], format!("Order {id} shipped"));
    let subject = format!("Your order {id} has shipped");
    let mails = eventually("two shipment emails", || async {
        let mails: Vec<_> = smtp
            .messages()
            .into_iter()
            .filter(|m| m.subject() == Some(subject.as_str()))
            .collect();
        (mails.len() >= 2).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().all(|m| m.rcpt_to == vec![ada.email.clone()]));
    assert!(
        mails
            .iter()
            .any(|m| m.body.contains("Tracking number: 1Z-SECOND")),
        "{mails:?}"
    );
    crate::inventory::assert_ledger_matches(&db).await;
    app.stop().await;
}

/// Shipments racing for the last units of one order: exactly what was ordered ships, the rest
/// are refused with a clear code, and the order is fulfilled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shipments_racing_for_the_last_units_ship_exactly_the_order() {
    let app = app(None).await;
    let w = warehouse(&app, "RACE-W").await;
    let p = product(&app, "RACE-P").await;
    stock(&app, p, w, 50).await;
    let id = confirmed_order(&app, 1, &[(p, 5)]).await;
    let results = futures::future::join_all((0..12).map(|i| {
        let app = &app;
        async move {
            ship(
                app,
                id,
                json!([{"line_id": 0, "quantity": 1}]),
                &format!("T{i}"),
            )
            .await
        }
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(ok, 5, "{results:?}");
    for (s, b) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*s, 409, "{b}");
        assert!(
            matches!(
                code(b),
                Some("shipment_exceeds_remaining" | "order_not_shippable")
            ),
            "{b}"
        );
    }
    let db = app.db().await;
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(coalesce(sum(l.quantity), 0) AS BIGINT) FROM order_shipment_lines l \
             JOIN order_shipments s ON s.id = l.shipment_id WHERE s.order_id = {id}"
        ))
        .await,
        5
    );
    assert_eq!(shipped(&order(&app, id).await), vec![5]);
    assert_eq!(order(&app, id).await["status"], "fulfilled");
    assert_eq!(events(&db, "OrderShipped").await, 5);
    assert_eq!(events(&db, "OrderFulfilled").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_approved_and_received_restock_the_chosen_warehouse_through_the_ledger() {
    let app = app(None).await;
    let ada = account(&app, "ada@example.com", Role::Customer).await;
    let (from, to) = (
        warehouse(&app, "RET-FROM").await,
        warehouse(&app, "RET-TO").await,
    );
    let p = product(&app, "RET-P").await;
    stock(&app, p, from, 10).await;
    // Placed, then paid in full by a recorded payment (which confirms it).
    let id = created(
        &app,
        "/api/v1/orders",
        json!({"customer": ada.id.to_string(),
               "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                    "postal_code": "75001", "country": "FR"},
               "lines": [{"product_id": p, "quantity": 3}]}),
    )
    .await;
    let (s, paid) = call(
        &app,
        "POST",
        &format!("/api/v1/orders/{id}/payments"),
        None,
        Some(
            json!({"provider": "bank_transfer", "reference": "BT-RET", "amount_minor": 3000,
                    "currency": "EUR"}),
        ),
    )
    .await;
    assert_eq!((s, &paid["order_paid"]), (201, &json!(true)), "{paid}");
    // Nothing shipped, nothing returned.
    let (s, none) = open_return(&app, id, None, json!([{"line_id": 0, "quantity": 1}])).await;
    assert_eq!(
        (s, code(&none)),
        (409, Some("return_exceeds_shipped")),
        "{none}"
    );
    // The whole-order move ships the rest in one shipment without carrier.
    let (s, f) = set_status(&app, id, "fulfilled").await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(shipped(&f), vec![3]);
    let (_, list) = call(
        &app,
        "GET",
        &format!("/api/v1/orders/{id}/shipments"),
        None,
        None,
    )
    .await;
    assert_eq!(list["shipments"][0]["carrier"], Value::Null, "{list}");
    assert_eq!(list["shipments"][0]["lines"][0]["quantity"], 3, "{list}");

    // More than shipped is refused; the customer opens a return of 2.
    let (s, over) = open_return(
        &app,
        id,
        Some(&ada.bearer),
        json!([{"product_id": p, "quantity": 4}]),
    )
    .await;
    assert_eq!(
        (s, code(&over)),
        (409, Some("return_exceeds_shipped")),
        "{over}"
    );
    assert_eq!(over["error"]["available_total"], 3, "{over}");
    let (s, r) = open_return(
        &app,
        id,
        Some(&ada.bearer),
        json!([{"product_id": p, "quantity": 2}]),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["status"], "requested");
    let rid = r["id"].as_i64().unwrap();
    // What is under an open return does not come back twice.
    let (s, twice) = open_return(&app, id, None, json!([{"line_id": 0, "quantity": 2}])).await;
    assert_eq!(
        (s, &twice["error"]["available_total"]),
        (409, &json!(1)),
        "{twice}"
    );
    // A customer neither approves nor receives.
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/approve"),
        Some(&ada.bearer),
        None,
    )
    .await;
    assert_eq!(s, 403);
    // Received before approval: refused.
    let receive = json!({"warehouse_id": to, "disposition": "restock"});
    let (s, early) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/receive"),
        None,
        Some(receive.clone()),
    )
    .await;
    assert_eq!(
        (s, code(&early)),
        (409, Some("return_status_conflict")),
        "{early}"
    );
    assert_eq!(
        (&early["error"]["from"], &early["error"]["to"]),
        (&json!("requested"), &json!("received"))
    );
    let (s, a) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/approve"),
        None,
        None,
    )
    .await;
    assert_eq!((s, &a["status"]), (200, &json!("approved")), "{a}");
    let (s, bad) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/receive"),
        None,
        Some(json!({"warehouse_id": 999_999, "disposition": "restock"})),
    )
    .await;
    assert_eq!(
        (s, &bad["error"]["field"]),
        (422, &json!("warehouse_id")),
        "{bad}"
    );

    let before = (
        on_hand_in(&app, p, from).await,
        on_hand_in(&app, p, to).await,
    );
    assert_eq!(before, (7, 0));
    // A refund past the capture refuses the receipt with it: nothing restocked or refunded.
    let mut refunded = receive.clone();
    refunded["refund_minor"] = json!(3001);
    let receive_path = format!("/api/v1/returns/{rid}/receive");
    let (s, over) = call(&app, "POST", &receive_path, None, Some(refunded.clone())).await;
    assert_eq!(
        (s, code(&over), &over["error"]["available_total"]),
        (409, Some("refund_exceeds_capture"), &json!(3000)),
        "{over}"
    );
    let now = (
        on_hand_in(&app, p, from).await,
        on_hand_in(&app, p, to).await,
    );
    assert_eq!(now, before);
    refunded["refund_minor"] = json!(2000);
    let (s, got) = call(&app, "POST", &receive_path, None, Some(refunded)).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(
        (&got["status"], &got["warehouse_id"], &got["disposition"]),
        (&json!("received"), &json!(to), &json!("restock"))
    );
    assert_eq!(got["refunded_minor"], 2000, "{got}");
    let (_, pays) = call(
        &app,
        "GET",
        &format!("/api/v1/orders/{id}/payments"),
        None,
        None,
    )
    .await;
    assert_eq!(pays["refunded_minor"], 2000, "{pays}");
    assert_eq!(
        (
            on_hand_in(&app, p, from).await,
            on_hand_in(&app, p, to).await
        ),
        (7, 2)
    );
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/receive"),
        None,
        Some(receive),
    )
    .await;
    assert_eq!(s, 409, "received once");

    let (s, rs) = call(
        &app,
        "GET",
        &format!("/api/v1/orders/{id}/returns"),
        Some(&ada.bearer),
        None,
    )
    .await;
    assert_eq!(
        (s, rs["returns"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{rs}"
    );
    // Returned by line: the whole-order return moves are refused.
    let (s, _) = set_status(&app, id, "delivered").await;
    assert_eq!(s, 200);
    let (s, whole) = set_status(&app, id, "return_requested").await;
    assert_eq!(
        (s, code(&whole)),
        (409, Some("order_has_returns")),
        "{whole}"
    );

    let db = app.db().await;
    for (kind, n) in [
        ("ReturnRequested", 1),
        ("ReturnApproved", 1),
        ("ReturnReceived", 1),
        ("ReturnRejected", 0),
        ("OrderRefunded", 1),
    ] {
        assert_eq!(events(&db, kind).await, n, "{kind}");
    }
    let payload = payloads(&db, "ReturnReceived").await.remove(0);
    assert_eq!(
        (
            &payload["return_id"],
            &payload["order_id"],
            &payload["warehouse_id"],
            &payload["disposition"]
        ),
        (&json!(rid), &json!(id), &json!(to), &json!("restock"))
    );
    assert_eq!(payload["refunded_minor"], 2000);
    assert_eq!(
        payload["lines"],
        json!([{"line_id": 0, "product_id": p, "quantity": 2}])
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM stock_movements WHERE kind = 'stock_in' AND product_id = {p} \
             AND warehouse_id = {to}"
        ))
        .await,
        1
    );
    crate::inventory::assert_ledger_matches(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_rejected_give_the_units_back_and_a_write_off_keeps_stock_as_it_is() {
    let app = app(None).await;
    let w = warehouse(&app, "WO-W").await;
    let p = product(&app, "WO-P").await;
    stock(&app, p, w, 10).await;
    let id = confirmed_order(&app, 1, &[(p, 2)]).await;
    let (s, b) = ship(&app, id, json!([{"line_id": 0, "quantity": 2}]), "1Z-WO").await;
    assert_eq!(s, 201, "{b}");

    let (s, r) = open_return(&app, id, None, json!([{"line_id": 0, "quantity": 2}])).await;
    assert_eq!(s, 201, "{r}");
    let rid = r["id"].as_i64().unwrap();
    let (s, rej) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/reject"),
        None,
        None,
    )
    .await;
    assert_eq!((s, &rej["status"]), (200, &json!("rejected")), "{rej}");
    let (s, again) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/approve"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, code(&again)),
        (409, Some("return_status_conflict")),
        "{again}"
    );

    // The rejected return's units may be asked back again; written off, stock stays.
    let (s, r) = open_return(&app, id, None, json!([{"line_id": 0, "quantity": 2}])).await;
    assert_eq!(s, 201, "{r}");
    let rid = r["id"].as_i64().unwrap();
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/approve"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let before = on_hand_in(&app, p, w).await;
    let (s, got) = call(
        &app,
        "POST",
        &format!("/api/v1/returns/{rid}/receive"),
        None,
        Some(json!({"warehouse_id": w, "disposition": "write_off"})),
    )
    .await;
    assert_eq!(
        (s, &got["disposition"]),
        (200, &json!("write_off")),
        "{got}"
    );
    assert_eq!(on_hand_in(&app, p, w).await, before);
    let (s, none) = open_return(&app, id, None, json!([{"line_id": 0, "quantity": 1}])).await;
    assert_eq!(
        (s, &none["error"]["available_total"]),
        (409, &json!(0)),
        "{none}"
    );

    let db = app.db().await;
    assert_eq!(events(&db, "ReturnRejected").await, 1);
    assert_eq!(events(&db, "ReturnReceived").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM stock_movements WHERE kind = 'stock_in'")
            .await,
        0
    );
    crate::inventory::assert_ledger_matches(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_another_customer_cannot_open_or_read_them_on_someone_elses_order() {
    let app = app(None).await;
    let ada = account(&app, "ada@example.com", Role::Customer).await;
    let bob = account(&app, "bob@example.com", Role::Customer).await;
    let w = warehouse(&app, "OWN-W").await;
    let p = product(&app, "OWN-P").await;
    stock(&app, p, w, 10).await;
    let id = confirmed_order(&app, ada.id, &[(p, 1)]).await;
    let (s, _) = ship(&app, id, json!([{"line_id": 0, "quantity": 1}]), "1Z-OWN").await;
    assert_eq!(s, 201);
    let lines = json!([{"line_id": 0, "quantity": 1}]);
    let (s, b) = open_return(&app, id, Some(&bob.bearer), lines.clone()).await;
    assert_eq!((s, code(&b)), (404, Some("not_found")), "{b}");
    for path in ["returns", "shipments"] {
        let (s, _) = call(
            &app,
            "GET",
            &format!("/api/v1/orders/{id}/{path}"),
            Some(&bob.bearer),
            None,
        )
        .await;
        assert_eq!(s, 404, "{path}");
    }
    // A customer does not ship.
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/orders/{id}/shipments"),
        Some(&ada.bearer),
        Some(json!({"lines": lines, "carrier": "UPS", "tracking_number": "X"})),
    )
    .await;
    assert_eq!(s, 403);
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM order_returns").await, 0);
    let (s, mine) = open_return(&app, id, Some(&ada.bearer), lines).await;
    assert_eq!((s, &mine["status"]), (201, &json!("requested")), "{mine}");
    app.stop().await;
}

//! The API document tells the truth (issue 13): every operation of the served
//! `/api/v1/openapi.json` declares its credentials and the answers every operation may give,
//! and the server refuses what the document rules out, as the contract fuzzer
//! (`scripts/contract-fuzz.sh`) checks at large.

use serde_json::Value;

use crate::helpers::{TestApp, anonymous, http};

/// Operations anyone may call without a credential (`policy::RULES`, `Access::Public`).
const OPEN: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/setup"),
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/verify-email"),
    ("post", "/api/v1/auth/forgot-password"),
    ("post", "/api/v1/auth/reset-password"),
    // Stripe's signature is the credential.
    ("post", "/api/v1/payments/stripe"),
];

async fn document(app: &TestApp) -> Value {
    http()
        .get(format!("{}/api/v1/openapi.json", app.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op));
            }
        }
    }
    out
}

fn declares(op: &Value, status: &str) -> bool {
    op["responses"].get(status).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_its_credentials_and_the_common_answers() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");

    let ops = operations(&doc);
    assert!(ops.len() >= 80, "{} operations", ops.len());
    for (method, path, op) in &ops {
        let name = format!("{} {path}", method.to_uppercase());
        let security = op["security"].as_array().expect(&name);
        if OPEN.contains(&(method.as_str(), path.as_str())) {
            assert!(security.is_empty(), "{name} is open: {security:?}");
        } else {
            let named: Vec<&str> = security
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys())
                .map(String::as_str)
                .collect();
            assert_eq!(named, ["bearer", "api_key"], "{name}");
            assert!(declares(op, "401"), "{name}: 401");
        }
        assert!(declares(op, "503"), "{name}: 503");
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "422"] {
                assert!(declares(op, status), "{name}: {status}");
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            if let Some(r) = body.as_str() {
                let schema_name = r.trim_start_matches("#/components/schemas/");
                let schema = &doc["components"]["schemas"][schema_name];
                // Closed exactly where the server refuses unknown fields (webhooks, promotions: 400);
                // other bodies ignore them, and an open schema says so.
                let closed = matches!(
                    schema_name,
                    "WebhookBody" | "WebhookPatch" | "PromotionBody"
                );
                assert_eq!(
                    schema["additionalProperties"] == false,
                    closed,
                    "{name}: {schema}: closed only where unknown fields are refused"
                );
            }
        }
        if path.contains('{') {
            assert!(declares(op, "404"), "{name}: 404");
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            // Query parameters were once documented as path parameters.
            if p["in"] == "path" {
                let braces = format!("{{{}}}", p["name"].as_str().unwrap());
                assert!(path.contains(&braces), "{name}: {} in path", p["name"]);
            }
            if p["in"] != "path" {
                assert!(
                    !p["schema"]["type"].is_array(),
                    "{name}: {} may be null",
                    p["name"]
                );
            }
        }
    }

    // The document's security is what the server enforces: a call without a credential is
    // answered 401 exactly where the document asks for one.
    for (method, path, op) in &ops {
        if method != "get" || path.contains('{') || path.ends_with("/stream") {
            continue;
        }
        let r = anonymous()
            .get(format!("{}{path}", app.url()))
            .send()
            .await
            .unwrap();
        let secured = !op["security"].as_array().unwrap().is_empty();
        assert_eq!(r.status() == 401, secured, "GET {path}: {}", r.status());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_is_documented_as_server_sent_events() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ok = &doc["paths"]["/api/v1/events/stream"]["get"]["responses"]["200"]["content"];
    let schema = &ok["text/event-stream"]["schema"]["$ref"];
    assert_eq!(schema, "#/components/schemas/StreamEvent");
    let event = &doc["components"]["schemas"]["StreamEvent"]["properties"];
    for field in ["id", "event", "data"] {
        assert_eq!(event[field]["type"], "string", "{field}");
    }
    app.stop().await;
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_query_parameters_are_refused_naming_them() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let client = http();
    let id = rest_campaign(&base, "contract", 5).await;
    // `after` below 0 was taken as 0; the document says 0 or more.
    let r = client
        .get(format!("{base}/api/v1/campaigns/{id}/coupons?after=-1"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["field"], "after");
    // Typed query parameters that do not parse were a plain-text 400 naming nothing.
    for (url, field) in [
        (
            format!("/api/v1/campaigns/{id}/coupons?limit=10001"),
            "limit",
        ),
        (format!("/api/v1/campaigns/{id}/coupons?limit=x"), "limit"),
        (
            "/api/v1/redemptions?after=99999999999999999999".to_owned(),
            "after",
        ),
        ("/api/v1/redemptions?limit=1001".to_owned(), "limit"),
        ("/api/v1/sales/1/items?cursor=abc".to_owned(), "cursor"),
    ] {
        let r = client.get(format!("{base}{url}")).send().await.unwrap();
        let (status, body) = error_of(r).await;
        assert_eq!(status, 422, "{url}");
        assert_eq!(body["error"]["code"], "invalid_argument", "{url}");
        assert_eq!(body["error"]["field"], field, "{url}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_id_that_cannot_be_one_is_not_found() {
    let app = TestApp::spawn().await;
    let base = app.url();
    // These answered 422 (campaigns, notification status) or a plain-text 400 (sales).
    for path in [
        "/api/v1/campaigns/-1",
        "/api/v1/campaigns/abc/coupons",
        "/api/v1/sales/99999999999999999999",
        "/api/v1/sales/x/items",
        "/api/v1/sales/0/purchases?user_id=u1",
        "/api/v1/notifications/status/-5",
    ] {
        let r = http().get(format!("{base}{path}")).send().await.unwrap();
        let (status, body) = error_of(r).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_method_is_405_with_allow_even_with_an_idempotency_key() {
    let app = TestApp::spawn().await;
    let base = app.url();
    for key in [None, Some("a key"), Some("k-1")] {
        let mut request = http()
            .put(format!("{base}/api/v1/orders"))
            .json(&serde_json::json!({}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 405, "key {key:?}");
        let allow = r.headers()["allow"].to_str().unwrap().to_owned();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    }
    let r = http()
        .delete(format!("{base}/api/v1/coupons/stats"))
        .header("idempotency-key", "k-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_numbers_written_with_a_fraction_part_are_integers() {
    let app = TestApp::spawn().await;
    let base = app.url();
    // JSON Schema counts 2.0 as the integer 2; serde's i64 refused it (400).
    let r = http()
        .post(format!("{base}/api/v1/discount-codes/batches"))
        .json(&serde_json::json!({"count": 2.0, "length": 8.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["codes"].as_array().unwrap().len(), 2);
    let r = http()
        .post(format!("{base}/api/v1/discount-codes/batches"))
        .json(&serde_json::json!({"count": 2.5, "length": 8}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // A hand-read body too: a warehouse's stock set to 5.0 units.
    let r = http()
        .post(format!("{base}/api/v1/warehouses"))
        .json(&serde_json::json!({"code": "W1", "name": "One"}))
        .send()
        .await
        .unwrap();
    let warehouse: Value = r.json().await.unwrap();
    let r = http()
        .post(format!("{base}/api/v1/products"))
        .json(&serde_json::json!({
            "sku": "P1", "name": "One", "price": {"amount_minor": 100.0, "currency": "EUR"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let product: Value = r.json().await.unwrap();
    let r = http()
        .post(format!("{base}/api/v1/inventory/adjust"))
        .json(&serde_json::json!({
            "product_id": product["id"].as_f64(), "warehouse_id": warehouse["id"],
            "mode": "set", "quantity": 5.0, "reason": "count"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let level: Value = r.json().await.unwrap();
    assert_eq!(level["on_hand"], 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_body_may_be_json_null() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let id = rest_campaign(&base, "null body", 2).await;
    // The document says the body is optional (`null` or an object); `null` was a 400.
    let r = http()
        .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_fuzzer_found_on_postgresql_is_a_client_error_on_every_backend() {
    let app = TestApp::spawn().await;
    let base = app.url();
    // NUL in a JSON string: PostgreSQL's text cannot hold it (a product description with one
    // was a 500 there, and stored on SQLite).
    let r = http()
        .post(format!("{base}/api/v1/products"))
        .header("content-type", "application/json")
        .body(
            r#"{"sku": "N1", "name": "n", "description": "nul \u0000 here",
                "price": {"amount_minor": 1, "currency": "EUR"}}"#,
        )
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("body"))
    );
    // An escaped backslash before `u0000` is text, not NUL.
    let r = http()
        .post(format!("{base}/api/v1/warehouses"))
        .header("content-type", "application/json")
        .body(r#"{"code": "W9", "name": "back\\u0000slash"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // NUL in the product search (was a 500 on PostgreSQL).
    let r = http()
        .get(format!("{base}/api/v1/products?q=a%00b"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("q")));
    // A parent id that is the new category's own id: no such parent (was a 500 on PostgreSQL,
    // where the row passed its foreign key by naming itself).
    let r = http()
        .post(format!("{base}/api/v1/categories"))
        .json(&serde_json::json!({"name": "self", "parent_id": 1}))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("parent_id"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_url_is_taken_exactly_when_the_document_allows_it() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let doc = document(&app).await;
    let url = &doc["components"]["schemas"]["WebhookBody"]["properties"]["url"];
    assert_eq!(
        url["pattern"].as_str(),
        Some(allot_server::service::webhook::URL_PATTERN)
    );
    // The URL parser alone took these, which the document rules out.
    for bad in [
        "HTTP://shop.example/hook",
        "http://shop.example/a hook",
        "http://shop.example:0/hook",
        "http://shop.example:070/hook",
        "http://shop.example/hook\u{a0}",
        // Plain http: outside the document's https pattern, refused (insecure_url) by a
        // server that does not allow it.
        "http://shop.example/hook",
    ] {
        let r = http()
            .post(format!("{base}/api/v1/webhooks"))
            .json(&serde_json::json!({ "url": bad }))
            .send()
            .await
            .unwrap();
        let (status, body) = error_of(r).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("url")),
            "{bad:?}"
        );
    }
    // ... and these the document allows, which the parser read as an IPv4 address or refused.
    for good in [
        " https://shop.example:65535/hooks/*?a=b&c=%20 ",
        "https://10.0.0.1/hook",
        "https://a-1.b2.shop/x",
    ] {
        let r = http()
            .post(format!("{base}/api/v1/webhooks"))
            .json(&serde_json::json!({ "url": good }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{good:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schema_name_is_one_shape() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    // Campaign codes and uploaded coupons were both `CouponView`: one overwrote the other, so
    // a campaign's page was documented with an uploaded coupon's fields.
    let page = &doc["components"]["schemas"]["CouponPage"]["properties"]["coupons"]["items"];
    assert_eq!(page["$ref"], "#/components/schemas/CampaignCouponView");
    let coupon = &doc["components"]["schemas"]["CouponView"]["properties"];
    assert!(coupon.get("discount_kind").is_some());
    app.stop().await;
}

/// A campaign open since 2020 with `total` codes, made over REST; its id.
async fn rest_campaign(base: &str, name: &str, total: i64) -> i64 {
    let campaign: Value = http()
        .post(format!("{base}/api/v1/campaigns"))
        .json(&serde_json::json!({
            "name": name, "start_time": "2020-01-01T00:00:00Z", "total_coupons": total
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    campaign["id"].as_i64().unwrap()
}

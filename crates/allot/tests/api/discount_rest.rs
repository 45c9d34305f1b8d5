//! Discount codes over REST, and the API's one error shape.

use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_use_and_read_a_code_over_rest() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();

    let response = client
        .post(format!("{base}/api/v1/discount-codes/batches"))
        .json(&json!({"count": 5, "length": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let codes = body["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 5);
    let code = codes[0].as_str().unwrap().to_owned();

    let state: Value = client
        .get(format!("{base}/api/v1/discount-codes/{code}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["used"], false);
    assert!(state["used_at"].is_null());
    assert!(state["created_at"].as_str().unwrap().ends_with('Z'));

    let used = client
        .post(format!(
            "{base}/api/v1/discount-codes/{}/use",
            code.to_lowercase()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    let again = client
        .post(format!("{base}/api/v1/discount-codes/{code}/use"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let err: Value = again.json().await.unwrap();
    assert_eq!(err["error"]["code"], "already_used");

    let state: Value = client
        .get(format!("{base}/api/v1/discount-codes/{code}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["used"], true);
    assert!(state["used_at"].is_string());

    for missing in ["ZZZZZZZ", "not-a-code"] {
        let response = client
            .post(format!("{base}/api/v1/discount-codes/{missing}/use"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let err: Value = response.json().await.unwrap();
        assert_eq!(err["error"]["code"], "not_found");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rest_input_is_refused_with_the_field_named_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let client = http();
    let url = format!("{}/api/v1/discount-codes/batches", app.url());
    let cases = [
        (json!({"count": 0, "length": 8}), 422, Some("count")),
        (json!({"count": 2001, "length": 8}), 422, Some("count")),
        (json!({"count": 10, "length": 9}), 422, Some("length")),
        (json!({"length": 8}), 422, Some("count")),
        (json!({"count": 10}), 422, Some("length")),
        (json!({"count": "ten", "length": 8}), 422, Some("count")),
        (json!({"count": -1, "length": 8}), 422, Some("count")),
    ];
    for (body, status, field) in cases {
        let response = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        let err: Value = response.json().await.unwrap();
        let code = if status == 422 {
            "invalid_argument"
        } else {
            "bad_request"
        };
        assert_eq!(err["error"]["code"], code, "{body}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
        if let Some(field) = field {
            assert_eq!(err["error"]["field"], field, "{body}");
        }
    }
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["error"]["code"], "bad_request");

    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM discount_codes")
            .await,
        0
    );
    app.stop().await;
}

//! `Idempotency-Key` on state-changing REST requests: a retry gets the first answer and
//! changes nothing, on either backend.

use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

async fn send(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
    body: Value,
) -> (u16, Value, bool) {
    let mut req = client.post(url).json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.unwrap();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    (r.status().as_u16(), r.json().await.unwrap(), replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (client, base) = (http(), app.url());
    let db = app.db().await;
    let product = json!({"sku": "IDEM-1", "name": "Kettle",
                         "price": {"amount_minor": 2_500, "currency": "EUR"}});

    // Create, retried: one product, the same answer, marked as replayed.
    let url = format!("{base}/api/v1/products");
    let first = send(&client, url.clone(), Some("k-1"), product.clone()).await;
    assert_eq!((first.0, first.2), (201, false), "{}", first.1);
    let again = send(&client, url.clone(), Some("k-1"), product.clone()).await;
    assert_eq!((again.0, &again.1, again.2), (201, &first.1, true));
    assert_eq!(db.count("SELECT count(*) FROM products").await, 1);

    // The same key for another request is refused and changes nothing.
    let other = json!({"sku": "IDEM-2", "name": "Toaster",
                       "price": {"amount_minor": 3_000, "currency": "EUR"}});
    let (status, body, _) = send(&client, url.clone(), Some("k-1"), other.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(body["error"]["field"], "Idempotency-Key");
    assert_eq!(db.count("SELECT count(*) FROM products").await, 1);

    // A refusal is an answer too: replayed as it was, even after the cause is gone.
    let (status, _, _) = send(&client, url.clone(), Some("k-2"), product.clone()).await;
    assert_eq!(status, 409);
    let (status, body, replayed) = send(&client, url.clone(), Some("k-2"), product).await;
    assert_eq!((status, replayed), (409, true));
    assert_eq!(body["error"]["code"], "sku_taken");

    // A bad key is named.
    let (status, body, _) = send(&client, url, Some("with space"), other).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "Idempotency-Key");

    // A stock adjustment retried 10 times at once moves stock once: one ledger line.
    let id = first.1["id"].as_i64().unwrap();
    let (status, wh, _) = send(
        &client,
        format!("{base}/api/v1/warehouses"),
        None,
        json!({"code": "IDEM-WH", "name": "Main"}),
    )
    .await;
    assert_eq!(status, 201, "{wh}");
    let adjust = json!({"product_id": id, "warehouse_id": wh["id"], "mode": "add",
                        "quantity": 5, "reason": "delivery 7"});
    let tries = (0..10).map(|_| {
        let (client, url, adjust) = (
            client.clone(),
            format!("{base}/api/v1/inventory/adjust"),
            adjust.clone(),
        );
        tokio::spawn(async move { send(&client, url, Some("delivery-7"), adjust).await })
    });
    let mut answers = Vec::new();
    for t in futures::future::join_all(tries).await {
        let (status, body, _) = t.unwrap();
        match status {
            200 => answers.push(body),
            409 => assert_eq!(body["error"]["code"], "idempotency_key_in_use", "{body}"),
            other => panic!("unexpected {other} {body}"),
        }
    }
    assert!(!answers.is_empty());
    assert!(
        answers
            .iter()
            .all(|a| a == &answers[0] && a["on_hand"] == 5)
    );
    // Once the first is answered, every retry gets its answer.
    let (status, body, replayed) = send(
        &client,
        format!("{base}/api/v1/inventory/adjust"),
        Some("delivery-7"),
        adjust,
    )
    .await;
    assert_eq!((status, &body, replayed), (200, &answers[0], true));
    assert_eq!(
        db.count("SELECT count(*) FROM stock_movements").await,
        1,
        "the adjustment was applied more than once"
    );
    assert_eq!(
        db.count("SELECT on_hand FROM stock_levels").await,
        5,
        "stock moved more than once"
    );
    app.stop().await;
}

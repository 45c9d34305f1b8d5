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

/// A discount-code batch keeps its key with its codes in its own transaction: a retry (even
/// one asking for another count) answers the first batch's codes, marked replayed, and makes
/// none; so do retries sent all at once; another caller's same key makes its own batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_retried_with_its_key_answers_its_codes_and_makes_no_other() {
    let app = TestApp::spawn().await;
    let (client, base) = (http(), app.url());
    let db = app.db().await;
    let url = format!("{base}/api/v1/discount-codes/batches");
    let codes_of = |body: &Value| -> Vec<String> {
        let mut codes: Vec<String> = body["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        codes.sort();
        codes
    };

    let (status, first, replayed) = send(
        &client,
        url.clone(),
        Some("batch-1"),
        json!({"count": 40, "length": 8}),
    )
    .await;
    assert_eq!((status, replayed), (201, false), "{first}");
    let (status, again, replayed) = send(
        &client,
        url.clone(),
        Some("batch-1"),
        json!({"count": 7, "length": 7}),
    )
    .await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(codes_of(&again), codes_of(&first));
    assert_eq!(
        (again["count"].as_u64(), again["length"].as_u64()),
        (Some(40), Some(8))
    );
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 40);
    assert_eq!(
        db.count("SELECT count(*) FROM discount_code_batches").await,
        1
    );

    // Twelve at once with a new key: one batch, every answer its codes.
    let tries = (0..12).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            send(
                &client,
                url,
                Some("batch-2"),
                json!({"count": 25, "length": 8}),
            )
            .await
        })
    });
    let mut answers = Vec::new();
    for t in futures::future::join_all(tries).await {
        let (status, body, replayed) = t.unwrap();
        assert!(
            matches!((status, replayed), (201, false) | (200, true)),
            "{status} {body}"
        );
        answers.push((status, codes_of(&body)));
    }
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1);
    assert!(
        answers
            .iter()
            .all(|(_, c)| c == &answers[0].1 && c.len() == 25)
    );
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 65);

    // The key is the caller's own: another caller's same key is another batch.
    let other = crate::helpers::account(
        &app,
        "marketing@example.com",
        allot_domain::auth::Role::Marketing,
    )
    .await;
    let r = reqwest::Client::new()
        .post(url.clone())
        .header("authorization", &other.bearer)
        .header("Idempotency-Key", "batch-1")
        .json(&json!({"count": 3, "length": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let theirs: Value = r.json().await.unwrap();
    assert!(
        codes_of(&theirs)
            .iter()
            .all(|c| !codes_of(&first).contains(c))
    );
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 68);

    // A malformed key is refused before anything is made.
    let (status, body, _) = send(
        &client,
        url,
        Some("with space"),
        json!({"count": 3, "length": 8}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "idempotency_key");
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 68);
    app.stop().await;
}

/// A redemption keeps its key in its own transaction: a retry of a redemption of a coupon of
/// many uses answers the coupon, marked replayed, and spends no second use; twelve retries at
/// once spend one; the same key on another coupon is another redemption.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redemption_retried_with_its_key_spends_one_use() {
    let app = TestApp::spawn().await;
    let (client, base) = (http(), app.url());
    let db = app.db().await;
    let coupon = |code: &str| {
        json!({"code": code, "discount_kind": "PERCENTAGE", "discount_amount": 10,
               "expires_at": "2030-01-01T00:00:00Z", "max_uses": 50})
    };
    let (status, body, _) = send(
        &client,
        format!("{base}/api/v1/coupons"),
        None,
        json!({"coupons": [coupon("many"), coupon("other")]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let redeem = |code: &str| format!("{base}/api/v1/coupons/{code}/redeem");
    let user = json!({"user_id": "u1"});

    let (status, first, replayed) = send(&client, redeem("many"), Some("r-1"), user.clone()).await;
    assert_eq!((status, replayed), (200, false), "{first}");
    assert_eq!(first["coupon"]["uses"], 1, "{first}");
    let (status, again, replayed) = send(&client, redeem("many"), Some("r-1"), user.clone()).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again["coupon"]["uses"], 1, "a retry spent a use: {again}");

    let tries = (0..12).map(|_| {
        let (client, url, user) = (client.clone(), redeem("many"), user.clone());
        tokio::spawn(async move { send(&client, url, Some("r-2"), user).await })
    });
    let mut fresh = 0;
    for t in futures::future::join_all(tries).await {
        let (status, body, replayed) = t.unwrap();
        assert_eq!(status, 200, "{body}");
        fresh += usize::from(!replayed);
    }
    assert_eq!(
        fresh, 1,
        "one of the twelve redeems, the others are its retries"
    );

    let (status, body, replayed) = send(&client, redeem("other"), Some("r-1"), user).await;
    assert_eq!((status, replayed), (200, false), "{body}");
    assert_eq!(
        db.count("SELECT count(*) FROM coupon_redemptions WHERE code = 'MANY'")
            .await,
        2
    );
    assert_eq!(
        db.count("SELECT uses FROM coupons WHERE code = 'MANY'")
            .await,
        2
    );
    assert_eq!(db.count("SELECT count(*) FROM coupon_redemptions").await, 3);
    app.stop().await;
}

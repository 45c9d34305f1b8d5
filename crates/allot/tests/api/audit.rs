//! Who did what, from where (issue 8): every event records the real principal and the
//! client's address, whatever the transport, inside batches of several callers too, and jobs
//! as themselves; the audit log reads them back filtered and paginated, for admins only.

use std::collections::HashMap;
use std::time::Duration;

use allot_domain::UnixMillis;
use allot_domain::auth::{Email, Password, Role};
use allot_server::pb::discount::UseCodeRequest;
use allot_server::pb::discount::discount_client::DiscountClient;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, TestApp, anonymous, http, raw_channel};

const PASSWORD: &str = "correct horse battery staple";

/// The id of the API key `key`, as its events name it (`api_key:<id>`).
async fn key_actor(app: &TestApp, key: &str) -> String {
    let k = app.services.auth.api_key(key).await.unwrap().expect("key");
    format!("api_key:{}", k.id)
}

/// A new user of `role`, signed in: its actor and its access token.
async fn signed_in(app: &TestApp, email: &str, role: Role) -> (String, String) {
    let user = app
        .services
        .auth
        .create_user(
            Email::parse(email).unwrap(),
            Password::parse(PASSWORD).unwrap(),
            role,
        )
        .await
        .unwrap();
    let r = anonymous()
        .post(format!("{}/api/v1/auth/login", app.url()))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (
        format!("user:{}", user.id.get()),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// One page of the audit log, as the harness admin.
async fn audit(app: &TestApp, query: &str) -> Value {
    let r = http()
        .get(format!("{}/api/v1/audit?{query}", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "audit?{query}");
    r.json().await.unwrap()
}

fn entries(page: &Value) -> &Vec<Value> {
    page["entries"].as_array().expect("entries")
}

async fn generate(app: &TestApp, auth: (&str, &str)) -> Vec<String> {
    let r = http()
        .post(format!("{}/api/v1/discount-codes/batches", app.url()))
        .header(auth.0, auth.1)
        .json(&json!({"count": 2, "length": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_grpc_events_record_the_principal_and_the_client_address() {
    let app = TestApp::spawn().await;
    let (user, token) = signed_in(&app, "boss@example.com", Role::Admin).await;
    let admin_key = key_actor(&app, &ADMIN_KEY).await;

    // REST, signed in as a user.
    let codes = generate(&app, ("authorization", &format!("Bearer {token}"))).await;
    // gRPC, with the harness's API key.
    let mut grpc = DiscountClient::new(raw_channel(app.addr).await);
    let mut call = tonic::Request::new(UseCodeRequest {
        code: codes[0].clone(),
    });
    call.metadata_mut()
        .insert("x-api-key", ADMIN_KEY.parse().unwrap());
    assert_eq!(
        grpc.use_code(call).await.unwrap().into_inner().result,
        vec![0]
    );
    // REST, with the API key.
    let r = http()
        .post(format!(
            "{}/api/v1/discount-codes/{}/use",
            app.url(),
            codes[1]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Connect, signed in as the user.
    let r = http()
        .post(format!("{}/api/v1/campaigns", app.url()))
        .json(&json!({"name": "c", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let campaign = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = anonymous()
        .post(format!("{}/couponpb.CouponService/IssueCoupon", app.url()))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .json(&json!({"campaignId": campaign.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let issued = audit(&app, "type=CouponIssued").await;
    assert_eq!(entries(&issued)[0]["actor"], user.as_str());
    assert_eq!(entries(&issued)[0]["source"], "127.0.0.1");
    let created = audit(&app, "type=CampaignCreated").await;
    assert_eq!(entries(&created)[0]["actor"], admin_key.as_str());

    let page = audit(&app, "type=DiscountCodesGenerated").await;
    let page_used = audit(&app, "type=DiscountCodeUsed").await;
    let got: Vec<(&str, &str, &str)> = entries(&page)
        .iter()
        .chain(entries(&page_used))
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["source"].as_str().unwrap_or("none"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("DiscountCodesGenerated", user.as_str(), "127.0.0.1"),
            ("DiscountCodeUsed", admin_key.as_str(), "127.0.0.1"),
            ("DiscountCodeUsed", admin_key.as_str(), "127.0.0.1"),
        ]
    );
    // The event log carries them too.
    let r = http()
        .get(format!(
            "{}/api/v1/events?type=DiscountCodesGenerated",
            app.url()
        ))
        .send()
        .await
        .unwrap();
    let events: Value = r.json().await.unwrap();
    assert_eq!(events["events"][0]["actor"], user.as_str());
    assert_eq!(events["events"][0]["source"], "127.0.0.1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_of_a_shared_campaign_issue_batch_is_recorded() {
    let app = TestApp::spawn().await;
    let keys: [String; 2] = std::array::from_fn(|_| format!("ak_{:032x}", rand::random::<u128>()));
    let mut actors = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        app.services
            .auth
            .register_api_key(&format!("caller {i}"), key, Role::Admin)
            .await
            .unwrap();
        actors.push(key_actor(&app, key).await);
    }
    let r = http()
        .post(format!("{}/api/v1/campaigns", app.url()))
        .json(
            &json!({"name": "shared", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 1000}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let campaign: Value = r.json().await.unwrap();
    let id = campaign["id"].as_i64().unwrap();

    // Both callers issue at once, so their requests share batches (on PostgreSQL one
    // transaction serves many callers; on SQLite one group commit).
    let calls = (0..64).map(|i| {
        let key = keys[i % 2].clone();
        let url = format!("{}/api/v1/campaigns/{id}/coupons", app.url());
        tokio::spawn(async move {
            let r = anonymous()
                .post(url)
                .header("x-api-key", key)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let body: Value = r.json().await.unwrap();
            (body["code"].as_str().unwrap().to_owned(), i % 2)
        })
    });
    let issued: HashMap<String, usize> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(issued.len(), 64);

    let page = audit(&app, "type=CouponIssued&limit=1000").await;
    let events = entries(&page);
    assert_eq!(events.len(), 64);
    for e in events {
        let code = e["payload"]["code"].as_str().unwrap();
        assert_eq!(
            e["actor"],
            actors[issued[code]].as_str(),
            "the event of {code}"
        );
        assert_eq!(e["source"], "127.0.0.1");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_records_itself_and_no_address() {
    let start = UnixMillis::from_millis(1_900_000_000_000);
    let app = TestApp::spawn_configured(Some(start), |c| {
        c.coupon_purge_interval = Some(Duration::from_millis(200));
    })
    .await;
    let r = http()
        .post(format!("{}/api/v1/coupons", app.url()))
        .json(&json!({"coupons": [{
            "code": "SOON-GONE", "discount_kind": "FLAT", "discount_amount": 5,
            "expires_at": "2030-03-17T17:47:00Z", "max_uses": 1
        }]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    app.clock.as_ref().unwrap().advance_ms(3_600_000);

    let mut purged = Vec::new();
    for _ in 0..100 {
        purged = entries(&audit(&app, "type=CouponsPurged").await).clone();
        if !purged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(purged.len(), 1, "the purge job ran and recorded itself");
    assert_eq!(purged[0]["actor"], "system:coupon-purge");
    assert_eq!(purged[0]["source"], Value::Null);
    // The upload was the harness admin's, from this machine.
    let uploaded = audit(&app, "type=CouponsUploaded").await;
    assert_eq!(
        entries(&uploaded)[0]["actor"],
        key_actor(&app, &ADMIN_KEY).await.as_str()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_filters_by_actor_type_and_time_and_pages_by_seq() {
    let app = TestApp::spawn().await;
    let (ann, ann_token) = signed_in(&app, "ann@example.com", Role::Admin).await;
    let (bob, bob_token) = signed_in(&app, "bob@example.com", Role::Admin).await;
    for _ in 0..3 {
        generate(&app, ("authorization", &format!("Bearer {ann_token}"))).await;
        generate(&app, ("authorization", &format!("Bearer {bob_token}"))).await;
    }
    let codes = generate(&app, ("authorization", &format!("Bearer {bob_token}"))).await;
    let r = http()
        .post(format!(
            "{}/api/v1/discount-codes/{}/use",
            app.url(),
            codes[0]
        ))
        .header("authorization", format!("Bearer {bob_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // By actor, two at a time: Ann's three batches, in order, over two pages.
    let first = audit(&app, &format!("actor={ann}&limit=2")).await;
    assert_eq!(entries(&first).len(), 2);
    let next = first["next_after"].as_i64().unwrap();
    let second = audit(&app, &format!("actor={ann}&limit=2&after={next}")).await;
    assert_eq!(entries(&second).len(), 1);
    let ann_seqs: Vec<i64> = entries(&first)
        .iter()
        .chain(entries(&second))
        .map(|e| {
            assert_eq!(e["actor"], ann.as_str());
            assert_eq!(e["type"], "DiscountCodesGenerated");
            let summary = e["summary"].as_str().unwrap();
            assert!(
                summary.starts_with("DiscountCodesGenerated ") && summary.contains(" count=2"),
                "{e}"
            );
            e["seq"].as_i64().unwrap()
        })
        .collect();
    assert!(ann_seqs.windows(2).all(|w| w[0] < w[1]));
    let last = second["next_after"].as_i64().unwrap();
    assert!(entries(&audit(&app, &format!("actor={ann}&after={last}")).await).is_empty());

    // By actor and type.
    let used = audit(&app, &format!("actor={bob}&type=DiscountCodeUsed")).await;
    assert_eq!(entries(&used).len(), 1);
    assert_eq!(entries(&used)[0]["payload"]["code"], codes[0].as_str());
    let none = audit(&app, &format!("actor={ann}&type=DiscountCodeUsed")).await;
    assert!(entries(&none).is_empty());

    // By time: everything so far is before a minute from now, nothing after it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let later = allot_server::time::rfc3339(UnixMillis::from_millis(now + 60_000));
    let all = entries(&audit(&app, "limit=1000").await).len();
    assert!(all >= 8, "7 batches and a use at least");
    assert_eq!(
        entries(&audit(&app, &format!("until={later}&limit=1000")).await).len(),
        all
    );
    assert!(entries(&audit(&app, &format!("since={later}")).await).is_empty());

    // Bad filters name the field; only admins read it.
    for (query, field) in [
        ("actor=root", "actor"),
        ("type=Nope", "type"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
    ] {
        let r = http()
            .get(format!("{}/api/v1/audit?{query}", app.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["field"], field);
    }
    let r = anonymous()
        .get(format!("{}/api/v1/audit", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, clerk) = signed_in(&app, "clerk@example.com", Role::Support).await;
    let r = anonymous()
        .get(format!("{}/api/v1/audit", app.url()))
        .header("authorization", format!("Bearer {clerk}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_of_a_shared_order_batch_is_recorded() {
    let app = TestApp::spawn().await;
    let base = format!("{}/api/v1", app.url());
    let admin = http();
    let setup = |path: &str, body: Value| admin.post(format!("{base}/{path}")).json(&body).send();
    let r = setup(
        "products",
        json!({"sku": "AUD-1", "name": "Audited", "price": {"amount_minor": 100, "currency": "EUR"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let product = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = setup("warehouses", json!({"code": "AUD", "name": "Audit"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let warehouse = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = setup(
        "inventory/adjust",
        json!({"product_id": product, "warehouse_id": warehouse, "mode": "set",
               "quantity": 1000, "reason": "count"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    let keys: [String; 2] = std::array::from_fn(|_| format!("ak_{:032x}", rand::random::<u128>()));
    let mut actors = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        app.services
            .auth
            .register_api_key(&format!("till {i}"), key, Role::Admin)
            .await
            .unwrap();
        actors.push(key_actor(&app, key).await);
    }
    // Both callers order at once: on PostgreSQL their creates share batches.
    let orders = (0..40).map(|i| {
        let key = keys[i % 2].clone();
        let url = format!("{base}/orders");
        tokio::spawn(async move {
            let r = anonymous()
                .post(url)
                .header("x-api-key", key)
                .json(&json!({
                    "customer": "ada",
                    "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                         "postal_code": "75001", "country": "FR"},
                    "lines": [{"product_id": product, "quantity": 1}],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let order: Value = r.json().await.unwrap();
            let reservation = order["lines"][0]["reservation_id"].as_i64().unwrap();
            (order["id"].as_i64().unwrap(), reservation, i % 2)
        })
    });
    let placed: Vec<(i64, i64, usize)> = futures::future::join_all(orders)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let by_order: HashMap<i64, usize> = placed.iter().map(|(o, _, c)| (*o, *c)).collect();
    let by_reservation: HashMap<i64, usize> = placed.iter().map(|(_, r, c)| (*r, *c)).collect();

    let created = audit(&app, "type=OrderCreated&limit=1000").await;
    assert_eq!(entries(&created).len(), 40);
    for e in entries(&created) {
        let order = e["payload"]["order_id"].as_i64().unwrap();
        assert_eq!(
            e["actor"],
            actors[by_order[&order]].as_str(),
            "order {order}"
        );
        assert_eq!(e["source"], "127.0.0.1");
    }
    let reserved = audit(&app, "type=InventoryReserved&limit=1000").await;
    assert_eq!(entries(&reserved).len(), 40);
    for e in entries(&reserved) {
        let reservation = e["payload"]["reservation_id"].as_i64().unwrap();
        assert_eq!(
            e["actor"],
            actors[by_reservation[&reservation]].as_str(),
            "reservation {reservation}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_the_source_only_behind_a_trusted_proxy() {
    for trusted in [false, true] {
        let app = TestApp::spawn_configured(None, |c| c.trust_forwarded_for = trusted).await;
        let r = http()
            .post(format!("{}/api/v1/discount-codes/batches", app.url()))
            .header("x-forwarded-for", "198.51.100.9, 203.0.113.5")
            .json(&json!({"count": 1, "length": 8}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let page = audit(&app, "type=DiscountCodesGenerated").await;
        // Behind the proxy: the address it appended (the last), not what the client claimed.
        let want = if trusted { "203.0.113.5" } else { "127.0.0.1" };
        assert_eq!(entries(&page)[0]["source"], want, "trusted: {trusted}");
        app.stop().await;
    }
}

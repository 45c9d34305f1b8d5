//! Coupon management over REST: upload, allocation, redemption, counters, purge, MEGADEAL.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use allot_domain::UnixMillis;
use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

/// 2026-11-22T10:00:00Z
const NOW_MS: i64 = 1_795_341_600_000;
const FUTURE: &str = "2030-01-01T00:00:00Z";

fn coupon(code: &str, t: Option<&str>, max_uses: i64, expires_at: &str) -> Value {
    json!({"code": code, "type": t, "discount_kind": "PERCENTAGE", "discount_amount": 10,
           "expires_at": expires_at, "max_uses": max_uses})
}

async fn upload(client: &reqwest::Client, base: &str, coupons: Vec<Value>) -> (u16, Value) {
    let r = client
        .post(format!("{base}/api/v1/coupons"))
        .json(&json!({ "coupons": coupons }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `n` MEGADEAL requests at once (users `{prefix}0`...), spread over `bases`: each must be
/// answered within 10.5 s, with a coupon or a 429 `megadeal_busy` carrying Retry-After.
/// Answers how many were served and how many were busy.
pub(crate) async fn megadeal_storm(
    client: &reqwest::Client,
    bases: &[String],
    n: usize,
    prefix: &str,
) -> (usize, usize) {
    let tasks = (0..n).map(|i| {
        let client = client.clone();
        let url = format!("{}/api/v1/coupons/requests", bases[i % bases.len()]);
        let user = format!("{prefix}{i}");
        tokio::spawn(async move {
            let sent = Instant::now();
            let r = client
                .post(url)
                .json(&json!({"user_id": user, "type": "MEGADEAL"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").is_some();
            let body: Value = r.json().await.unwrap();
            (status, body, retry_after, sent.elapsed())
        })
    });
    let (mut served, mut busy) = (0, 0);
    for r in futures::future::join_all(tasks).await {
        let (status, body, retry_after, waited) = r.unwrap();
        assert!(
            waited <= Duration::from_millis(10_500),
            "a request waited {waited:?}"
        );
        match status {
            200 => served += 1,
            429 => {
                assert_eq!(body["error"]["code"], "megadeal_busy");
                assert!(retry_after, "429 without Retry-After");
                busy += 1;
            }
            other => panic!("unexpected {other} {body}"),
        }
    }
    (served, busy)
}

/// Checks in the database that no one-second window holds more than 10 allocations (all are
/// MEGADEAL in the tests using it); answers how many coupons are allocated.
pub(crate) async fn at_most_ten_allocations_a_second(db: &crate::helpers::AppDb) -> usize {
    let mut at: Vec<i64> = db
        .strings("SELECT CAST(allocated_at_ms AS TEXT) FROM coupons WHERE allocated_to IS NOT NULL")
        .await
        .into_iter()
        .map(|s| s.parse().unwrap())
        .collect();
    at.sort_unstable();
    for (i, t) in at.iter().enumerate() {
        let window = at[i..].iter().take_while(|u| **u < t + 1_000).count();
        assert!(
            window <= 10,
            "{window} MEGADEAL coupons allocated within one second"
        );
    }
    at.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_thousand_upload_at_once_and_bad_batches_store_nothing() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let batch: Vec<Value> = (0..50_000)
        .map(|i| coupon(&format!("bulk-{i:05}"), Some("STANDARD"), 1, FUTURE))
        .collect();
    let (status, body) = upload(&client, &base, batch).await;
    assert_eq!((status, body["created"].as_i64()), (201, Some(50_000)));
    assert_eq!(
        app.db().await.count("SELECT count(*) FROM coupons").await,
        50_000
    );

    // Field errors and a duplicate inside the batch: every bad entry named, nothing stored.
    let mut bad = vec![
        coupon("fine-1", None, 1, FUTURE),
        json!({"code": "bad code", "discount_kind": "FLAT", "discount_amount": 1, "expires_at": FUTURE, "max_uses": 1}),
        json!({"code": "pct", "discount_kind": "PERCENTAGE", "discount_amount": 101, "expires_at": FUTURE, "max_uses": 1}),
        json!({"code": "uses", "discount_kind": "FLAT", "discount_amount": 1, "expires_at": FUTURE, "max_uses": 0}),
        json!({"code": "kind", "discount_kind": "HALF", "discount_amount": 1, "expires_at": FUTURE, "max_uses": 1}),
        json!({"code": "when", "type": "GOLD", "discount_kind": "FLAT", "discount_amount": 1, "expires_at": "soon", "max_uses": 1}),
        coupon("FINE-1", None, 1, FUTURE),
    ];
    bad.push(coupon("past", None, 1, "2001-01-01T00:00:00Z"));
    bad.push(coupon("bulk-00042", None, 1, FUTURE));
    let (status, body) = upload(&client, &base, bad).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid_argument");
    let named: HashSet<(u64, String)> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["index"].as_u64().unwrap(),
                d["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        (1, "code"),
        (2, "discount_amount"),
        (3, "max_uses"),
        (4, "discount_kind"),
        (5, "type"),
        (5, "expires_at"),
        (6, "code"),
        (7, "expires_at"),
        (8, "code"),
    ] {
        assert!(
            named.contains(&(expected.0, expected.1.to_owned())),
            "{expected:?} not named in {named:?}"
        );
    }
    assert!(
        !named.iter().any(|(i, _)| *i == 0),
        "a good entry was blamed"
    );

    // A code that exists already: named, nothing stored.
    let (status, body) = upload(
        &client,
        &base,
        vec![
            coupon("new-1", None, 1, FUTURE),
            coupon("bulk-00007", None, 1, FUTURE),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["index"], 1);
    assert_eq!(body["error"]["details"][0]["field"], "code");

    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(db.count("SELECT count(*) FROM coupons").await, 50_000);
    assert_eq!(db.count("SELECT count(*) FROM coupon_uploads").await, 1);
    let (status, _) = upload(&client, &base, vec![]).await;
    assert_eq!(status, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_users_race_for_one_hundred_fifty_coupons() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let coupons = (0..150)
        .map(|i| coupon(&format!("std-{i}"), Some("STANDARD"), 1, FUTURE))
        .collect();
    assert_eq!(upload(&client, &base, coupons).await.0, 201);
    let tasks = (0..200).map(|i| {
        let client = client.clone();
        let url = format!("{base}/api/v1/coupons/requests");
        tokio::spawn(async move {
            post(
                &client,
                url,
                json!({"user_id": format!("user-{i}"), "type": "STANDARD"}),
            )
            .await
        })
    });
    let mut codes = HashSet::new();
    let mut none = 0;
    for r in futures::future::join_all(tasks).await {
        let (status, body) = r.unwrap();
        match status {
            200 => assert!(codes.insert(body["coupon"]["code"].as_str().unwrap().to_owned())),
            409 => {
                assert_eq!(body["error"]["code"], "no_coupon_available");
                none += 1;
            }
            other => panic!("unexpected {other} {body}"),
        }
    }
    assert_eq!((codes.len(), none), (150, 50));
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(DISTINCT allocated_to) FROM coupons WHERE allocated_to IS NOT NULL")
            .await,
        150
    );
    assert_eq!(
        db.count("SELECT count(*) FROM coupon_allocations").await,
        150
    );

    // Asking again while holding an unredeemed coupon gives the same one back.
    let holder: String = db
        .strings("SELECT allocated_to FROM coupons WHERE code = 'STD-0'")
        .await
        .remove(0);
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/requests"),
        json!({"user_id": holder, "type": "STANDARD"}),
    )
    .await;
    assert_eq!(
        (
            status,
            body["coupon"]["code"].as_str(),
            body["held"].as_bool()
        ),
        (200, Some("STD-0"), Some(true))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_never_exceed_max_uses_and_counters_match_rows() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let coupons = vec![
        coupon("five", Some("FREE"), 5, FUTURE),
        coupon("mine", None, 3, FUTURE),
    ];
    assert_eq!(upload(&client, &base, coupons).await.0, 201);
    let tasks = (0..50).map(|i| {
        let client = client.clone();
        let url = format!("{base}/api/v1/coupons/five/redeem");
        tokio::spawn(async move { post(&client, url, json!({"user_id": format!("u{i}")})).await })
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 5);
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 409 && b["error"]["code"] == "exhausted")
    );

    // Allocated coupons belong to their user.
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/requests"),
        json!({"user_id": "alice"}),
    )
    .await;
    assert_eq!(
        (status, body["coupon"]["code"].as_str()),
        (200, Some("MINE"))
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/mine/validate"),
        json!({"user_id": "bob"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_owner"))
    );
    let (status, _) = post(
        &client,
        format!("{base}/api/v1/coupons/mine/validate"),
        json!({"user_id": "alice"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &client,
        format!("{base}/api/v1/coupons/mine/redeem"),
        json!({"user_id": "alice"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/nope/redeem"),
        json!({"user_id": "alice"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/mine/redeem"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("user_id"))
    );

    // The record, filtered.
    let page: Value = client
        .get(format!("{base}/api/v1/redemptions?code=five&limit=3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["redemptions"].as_array().unwrap().len(), 3);
    let after = page["next_after"].as_i64().unwrap();
    let rest: Value = client
        .get(format!("{base}/api/v1/redemptions?code=five&after={after}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["redemptions"].as_array().unwrap().len(), 2);
    let alice: Value = client
        .get(format!("{base}/api/v1/redemptions?user_id=alice&type=NONE"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alice["redemptions"].as_array().unwrap().len(), 1);

    // Counters equal what the rows say.
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT uses FROM coupons WHERE code = 'FIVE'")
            .await,
        5
    );
    let stats: Value = client
        .get(format!("{base}/api/v1/coupons/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for t in stats["types"].as_array().unwrap() {
        let filter = match t["type"].as_str() {
            Some(name) => format!("type = '{name}'"),
            None => "type IS NULL".to_owned(),
        };
        assert_eq!(
            t["created"].as_i64().unwrap(),
            db.count(&format!("SELECT count(*) FROM coupons WHERE {filter}"))
                .await
        );
        assert_eq!(
            t["redeemed"].as_i64().unwrap(),
            db.count(&format!(
                "SELECT count(*) FROM coupon_redemptions WHERE {filter}"
            ))
            .await
        );
        assert_eq!(
            t["redeemed"].as_i64().unwrap(),
            db.count(&format!(
                "SELECT coalesce(sum(uses), 0) FROM coupons WHERE {filter}"
            ))
            .await
        );
        assert_eq!(
            t["allocated"].as_i64().unwrap(),
            db.count(&format!(
                "SELECT count(*) FROM coupon_allocations WHERE {filter}"
            ))
            .await
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_exactly_the_unused_expired_coupons() {
    let app = TestApp::spawn_with_clock(UnixMillis::from_millis(NOW_MS)).await;
    let clock = app.clock.clone().unwrap();
    let client = http();
    let base = app.url();
    let soon = "2026-11-22T11:00:00Z";
    let coupons = vec![
        coupon("old-unused", Some("FREE"), 1, soon),
        coupon("old-used", Some("FREE"), 2, soon),
        coupon("old-held", None, 1, soon),
        coupon("new-unused", Some("FREE"), 1, FUTURE),
    ];
    assert_eq!(upload(&client, &base, coupons).await.0, 201);
    assert_eq!(
        post(
            &client,
            format!("{base}/api/v1/coupons/old-used/redeem"),
            json!({"user_id": "u"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &client,
            format!("{base}/api/v1/coupons/requests"),
            json!({"user_id": "h"})
        )
        .await
        .0,
        200
    );

    clock.set(UnixMillis::from_millis(NOW_MS + 2 * 3_600_000));
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/old-used/redeem"),
        json!({"user_id": "u"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("expired"))
    );
    let (status, body) = post(&client, format!("{base}/api/v1/coupons/purge"), json!({})).await;
    assert_eq!((status, body["purged"].as_i64()), (200, Some(2)));
    let left: HashSet<String> = app
        .db()
        .await
        .strings("SELECT code FROM coupons")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        left,
        HashSet::from(["OLD-USED".to_owned(), "NEW-UNUSED".to_owned()])
    );
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM coupon_redemptions")
            .await,
        1,
        "the record stays"
    );
    let stats: Value = client
        .get(format!("{base}/api/v1/coupons/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let free = stats["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "FREE")
        .unwrap()
        .clone();
    assert_eq!(
        (
            free["created"].as_i64(),
            free["purged"].as_i64(),
            free["expired"].as_i64()
        ),
        (Some(3), Some(1), Some(1))
    );
    let (_, again) = post(&client, format!("{base}/api/v1/coupons/purge"), json!({})).await;
    assert_eq!(again["purged"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn megadeal_admission_holds_its_three_limits_and_gives_every_slot_back() {
    let app = TestApp::spawn().await;
    let client = crate::helpers::client_builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(400)
        .build()
        .unwrap();
    let base = app.url();
    let coupons = (0..400)
        .map(|i| coupon(&format!("mega-{i}"), Some("MEGADEAL"), 1, FUTURE))
        .collect();
    assert_eq!(upload(&client, &base, coupons).await.0, 201);

    let started = Instant::now();
    let (served, busy) = megadeal_storm(&client, std::slice::from_ref(&base), 300, "m").await;
    assert_eq!(served + busy, 300);
    assert!(served >= 90, "only {served} served in 10 s");
    assert!(started.elapsed() < Duration::from_secs(12));
    // Never more than 10 allocations within any one second (by the server's clock).
    assert_eq!(
        at_most_ten_allocations_a_second(&app.db().await).await,
        served
    );
    let status: Value = client
        .get(format!("{base}/api/v1/coupons/megadeal"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status["peak_in_flight"].as_u64().unwrap() <= 5, "{status}");
    assert_eq!(status["in_flight"], 0, "slots all free afterwards");

    // Five more are served at once.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let quick = Instant::now();
    let tasks = (0..5).map(|i| {
        let client = client.clone();
        let url = format!("{base}/api/v1/coupons/requests");
        tokio::spawn(async move {
            post(
                &client,
                url,
                json!({"user_id": format!("late{i}"), "type": "MEGADEAL"}),
            )
            .await
        })
    });
    for r in futures::future::join_all(tasks).await {
        assert_eq!(r.unwrap().0, 200);
    }
    assert!(quick.elapsed() < Duration::from_secs(1));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megadeal_tickets_are_served_and_readable_only_by_their_user() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    assert_eq!(
        upload(
            &client,
            &base,
            vec![coupon("mt-1", Some("MEGADEAL"), 1, FUTURE)]
        )
        .await
        .0,
        201
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/coupons/requests?wait=false"),
        json!({"user_id": "t1", "type": "MEGADEAL"}),
    )
    .await;
    assert_eq!(status, 202);
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let other = client
        .get(format!(
            "{base}/api/v1/coupons/requests/{ticket}?user_id=t2"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r: Value = client
            .get(format!(
                "{base}/api/v1/coupons/requests/{ticket}?user_id=t1"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] == "done" {
            assert_eq!(r["coupon"]["code"], "MT-1");
            assert_eq!(r["coupon"]["allocated_to"], "t1");
            break;
        }
        assert!(Instant::now() < deadline, "ticket never served: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_connections_each_get_and_redeem_one_coupon() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let setup = http();
    let coupons = (0..1_000)
        .map(|i| coupon(&format!("crowd-{i}"), Some("FREE"), 1, FUTURE))
        .collect();
    assert_eq!(upload(&setup, &base, coupons).await.0, 201);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(1_000));
    let tasks = (0..1_000).map(|i| {
        let barrier = barrier.clone();
        let base = base.clone();
        tokio::spawn(async move {
            // One client per task: a connection each, all open at once.
            let client = crate::helpers::client_builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            barrier.wait().await;
            let user = format!("crowd-user-{i}");
            let (status, body) = post(
                &client,
                format!("{base}/api/v1/coupons/requests"),
                json!({"user_id": user, "type": "FREE"}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let code = body["coupon"]["code"].as_str().unwrap().to_owned();
            let (status, body) = post(
                &client,
                format!("{base}/api/v1/coupons/{code}/redeem"),
                json!({"user_id": user}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            code
        })
    });
    let codes: HashSet<String> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(codes.len(), 1_000);
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM coupons WHERE uses = 1 AND allocated_to IS NOT NULL")
            .await,
        1_000
    );
    assert_eq!(
        db.count("SELECT count(DISTINCT user_id) FROM coupon_redemptions")
            .await,
        1_000
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_files_stream_in_through_the_cli_in_all_or_nothing_chunks() {
    let app = TestApp::spawn().await;
    let dir = tempfile::TempDir::new().unwrap();
    let good = dir.path().join("good.csv");
    let mut text = String::from("code,type,discount_kind,discount_amount,expires_at,max_uses\n");
    for i in 0..12_000 {
        text.push_str(&format!(
            "csv-{i},{},FLAT,500,{FUTURE},2\n",
            if i % 2 == 0 { "FREE" } else { "" }
        ));
    }
    std::fs::write(&good, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["coupons", "upload"])
        .arg(&good)
        .args(["--server", &app.url()])
        .env("ALLOT_API_KEY", &*crate::helpers::ADMIN_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created 12000 coupons in 3 chunks"));
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM coupons WHERE code LIKE 'CSV-%'")
            .await,
        12_000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM coupons WHERE type IS NULL")
            .await,
        6_000
    );

    // A bad row in the second chunk: the first chunk stays, the second and later do not.
    let mut text = String::from("max_uses,code,type,discount_kind,discount_amount,expires_at\n");
    for i in 0..12_000 {
        let amount = if i == 7_001 { "150" } else { "10" };
        text.push_str(&format!("1,more-{i},,PERCENTAGE,{amount},{FUTURE}\n"));
    }
    let response = http()
        .post(format!("{}/api/v1/coupons/csv", app.url()))
        .header("content-type", "text/csv")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["index"], 7_001);
    assert_eq!(body["error"]["details"][0]["field"], "discount_amount");
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM coupons WHERE code LIKE 'MORE-%'")
            .await,
        5_000
    );
    app.stop().await;
}

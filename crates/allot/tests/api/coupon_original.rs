//! The original coupon system's routes (seed 001, issue 18) at the root path: its client's
//! calls, replayed in shape (paths, parameter names, bodies, statuses, error bodies), served
//! on Allot's coupons, with Allot's guarantees underneath.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use allot_domain::UnixMillis;
use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, anonymous, http};

/// 2026-11-22T10:00:00Z
const NOW_MS: i64 = 1_795_341_600_000;
const FUTURE: &str = "2030-01-01T00:00:00.000Z";

/// A server as the original was deployed: its customer calls open, its admin call open to
/// this machine's network.
async fn spawn_open(now: Option<UnixMillis>) -> TestApp {
    TestApp::spawn_configured(now, |c| {
        c.auth.open_public_contracts = true;
        c.auth.open_admin_contracts_from = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

/// An upload entry as the original client writes one.
fn coupon(code: &str, coupon_type: Option<&str>, max_usages: i64) -> Value {
    let mut c = json!({"couponCode": code, "discountAmount": 20, "discountType": "FLAT",
                       "expiryDate": FUTURE, "maxUsages": max_usages});
    if let Some(t) = coupon_type {
        c["couponType"] = json!(t);
    }
    c
}

async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn upload(client: &reqwest::Client, base: &str, coupons: Vec<Value>) -> (u16, Value) {
    answer(
        client
            .post(format!("{base}/upload"))
            .json(&json!({ "coupons": coupons }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    answer(
        client
            .get(format!("{base}{path}"))
            .query(query)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn redeem(client: &reqwest::Client, base: &str, user: &str, code: &str) -> (u16, Value) {
    answer(
        client
            .post(format!("{base}/redeem"))
            .json(&json!({"userId": user, "couponCode": code}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn error(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message}})
}

fn invalid(fields: &[&str]) -> Value {
    json!({"errors": fields.iter().map(|f| json!({*f: "Invalid value"})).collect::<Vec<_>>()})
}

/// An instant as JavaScript's `toISOString()` writes it.
fn is_iso(v: &Value) -> bool {
    let pattern = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let s = v.as_str().unwrap_or("").as_bytes();
    s.len() == pattern.len()
        && s.iter().zip(pattern).all(|(c, p)| {
            if *p == b'd' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

/// A UserCoupon of the original's shape, for `user`, of a coupon of `coupon_type`.
fn assert_user_coupon(v: &Value, user: &str, coupon_type: &str, usages: i64) {
    assert!(v["id"].is_i64(), "{v}");
    assert!(is_iso(&v["createdAt"]), "{v}");
    assert_eq!(v["usages"], usages, "{v}");
    assert_eq!(v["userId"], user, "{v}");
    let c = &v["coupon"];
    assert_eq!(c["id"], v["id"], "one allocation per coupon: {v}");
    assert!(is_iso(&c["createdAt"]) && is_iso(&c["expiryDate"]), "{v}");
    assert_eq!(c["couponType"], coupon_type, "{v}");
    assert!(
        c["couponCode"].is_string() && c["maxUsages"].is_i64(),
        "{v}"
    );
    assert!(
        c["discountAmount"].is_i64() && c["discountType"].is_string(),
        "{v}"
    );
}

#[tokio::test]
async fn the_original_clients_calls_work_unchanged() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();

    // Upload: the answer keys each coupon by its code as sent.
    let (status, body) = upload(
        &client,
        &base,
        vec![
            coupon("std-1", Some("STANDARD"), 1),
            coupon("STD-2", Some("STANDARD"), 2),
            coupon("plain-1", None, 1),
            coupon("none-1", Some("NONE"), 1),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let uploaded = body["coupons"].as_object().unwrap();
    assert_eq!(uploaded.len(), 4);
    let std1 = &uploaded["std-1"];
    assert!(std1["id"].is_i64() && is_iso(&std1["createdAt"]), "{std1}");
    assert_eq!(
        (
            &std1["couponCode"],
            &std1["couponType"],
            &std1["discountAmount"]
        ),
        (&json!("STD-1"), &json!("STANDARD"), &json!(20))
    );
    assert_eq!(
        (
            &std1["discountType"],
            &std1["expiryDate"],
            &std1["maxUsages"]
        ),
        (&json!("FLAT"), &json!(FUTURE), &json!(1))
    );
    assert_eq!(uploaded["plain-1"]["couponType"], "NONE");

    // Typed, then untyped (couponType left out or NONE): the oldest free coupon of the type.
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u1"), ("couponType", "STANDARD")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], "u1", "STANDARD", 0);
    assert_eq!(body["data"]["coupon"]["couponCode"], "STD-1");
    let (status, body) = get(&client, &base, "/request-new", &[("userId", "u1")]).await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], "u1", "NONE", 0);
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u2"), ("couponType", "NONE")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], "u2", "NONE", 0);
    // None left: the original's 500 and message.
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u3"), ("couponType", "FREE")],
    )
    .await;
    assert_eq!(
        (status, body),
        (500, error(500, "No available coupon of type FREE"))
    );
    let (status, body) = get(&client, &base, "/request-new", &[("userId", "u3")]).await;
    assert_eq!(
        (status, body),
        (500, error(500, "No available coupon of type NONE"))
    );

    // Validate and redeem: only the user's own coupon; uses stop at maxUsages.
    let (status, body) = get(
        &client,
        &base,
        "/validate",
        &[("userId", "u1"), ("couponCode", "std-1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], "u1", "STANDARD", 0);
    for (user, code) in [("u2", "STD-1"), ("u1", "NO-SUCH"), ("u1", "STD-2")] {
        let (status, body) = get(
            &client,
            &base,
            "/validate",
            &[("userId", user), ("couponCode", code)],
        )
        .await;
        assert_eq!(
            (status, body),
            (400, error(400, "Coupon invalid")),
            "{user} {code}"
        );
        let (status, body) = redeem(&client, &base, user, code).await;
        assert_eq!(
            (status, body),
            (400, error(400, "Coupon invalid")),
            "{user} {code}"
        );
    }
    let (status, body) = redeem(&client, &base, "u1", "STD-1").await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], "u1", "STANDARD", 1);
    let (status, body) = redeem(&client, &base, "u1", "STD-1").await;
    assert_eq!((status, body), (429, error(429, "Coupon exhausted")));
    let (status, body) = get(
        &client,
        &base,
        "/validate",
        &[("userId", "u1"), ("couponCode", "STD-1")],
    )
    .await;
    assert_eq!((status, body), (429, error(429, "Coupon exhausted")));

    // A form body, as the original's urlencoded parser read it.
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u4"), ("couponType", "STANDARD")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = body["data"]["coupon"]["couponCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = client
        .post(format!("{base}/redeem"))
        .form(&[("userId", "u4"), ("couponCode", code.as_str())])
        .send()
        .await
        .unwrap();
    let (status, body) = answer(form).await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], "u4", "STANDARD", 1);

    // Validation failures: 422 naming each field, as express-validator did.
    let (status, body) = get(&client, &base, "/request-new", &[]).await;
    assert_eq!((status, body), (422, invalid(&["userId"])));
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u1"), ("couponType", "GOLD")],
    )
    .await;
    assert_eq!((status, body), (422, invalid(&["couponType"])));
    let (status, body) = get(&client, &base, "/validate", &[("couponCode", "")]).await;
    assert_eq!((status, body), (422, invalid(&["userId", "couponCode"])));
    let (status, body) = get(&client, &base, "/request-status", &[("userId", "u1")]).await;
    assert_eq!((status, body), (422, invalid(&["trackingId"])));
    let (status, body) = answer(
        client
            .post(format!("{base}/redeem"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (422, invalid(&["userId", "couponCode"])));
    let (status, body) = answer(
        client
            .post(format!("{base}/redeem"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_stores_every_coupon_or_none() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    let (status, body) = upload(&client, &base, vec![coupon("KEEP-1", Some("FREE"), 1)]).await;
    assert_eq!(status, 200, "{body}");

    // Every bad field of every entry is named by its path; nothing of the batch is stored.
    let mut bad = coupon("bad one", Some("GOLD"), 0);
    bad["discountType"] = json!("PERCENTAGE");
    bad["discountAmount"] = json!(150);
    bad["expiryDate"] = json!("next week");
    let (status, body) = upload(&client, &base, vec![coupon("NEW-1", None, 1), bad]).await;
    assert_eq!(
        (status, body),
        (
            422,
            invalid(&[
                "coupons[1].couponCode",
                "coupons[1].couponType",
                "coupons[1].discountAmount",
                "coupons[1].expiryDate",
                "coupons[1].maxUsages"
            ])
        )
    );
    // A code twice in the batch, a code already stored, an expiry in the past.
    let mut past = coupon("NEW-3", None, 1);
    past["expiryDate"] = json!("2020-01-01");
    let (status, body) = upload(
        &client,
        &base,
        vec![
            coupon("NEW-1", None, 1),
            coupon("new-1", None, 1),
            coupon("keep-1", None, 1),
            past,
        ],
    )
    .await;
    assert_eq!(
        (status, body),
        (
            422,
            invalid(&[
                "coupons[1].couponCode",
                "coupons[2].couponCode",
                "coupons[3].expiryDate"
            ])
        )
    );
    assert_eq!(db.count("SELECT count(*) FROM coupons").await, 1);

    // As many uses as both backends store, and not one more.
    let (status, body) = upload(&client, &base, vec![coupon("MANY-1", None, 2_147_483_647)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["coupons"]["MANY-1"]["maxUsages"], 2_147_483_647_i64);
    let (status, body) = upload(&client, &base, vec![coupon("MANY-2", None, 2_147_483_648)]).await;
    assert_eq!((status, body), (422, invalid(&["coupons[0].maxUsages"])));
    assert_eq!(db.count("SELECT count(*) FROM coupons").await, 2);

    // No list, an empty one, or a form (the original's parser was not the extended one).
    for body in [
        json!({}),
        json!({"coupons": []}),
        json!({"coupons": {"a": 1}}),
    ] {
        let r = client
            .post(format!("{base}/upload"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer(r).await, (422, invalid(&["coupons"])), "{body}");
    }
    let r = client
        .post(format!("{base}/upload"))
        .form(&[("coupons[0][couponCode]", "FORM-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await, (422, invalid(&["coupons"])));
    assert_eq!(db.count("SELECT count(*) FROM coupons").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_takes_up_to_fifty_thousand_coupons() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    let batch = |n: usize, prefix: &str| -> Vec<Value> {
        (0..n)
            .map(|i| coupon(&format!("{prefix}-{i}"), Some("STANDARD"), 1))
            .collect()
    };
    let (status, body) = upload(&client, &base, batch(50_001, "OVER")).await;
    assert_eq!((status, body), (422, invalid(&["coupons"])));
    let (status, body) = upload(&client, &base, batch(50_000, "BULK")).await;
    assert_eq!(status, 200);
    let uploaded = body["coupons"].as_object().unwrap();
    let ids: HashSet<i64> = uploaded
        .values()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!((uploaded.len(), ids.len()), (50_000, 50_000));
    assert_eq!(uploaded["BULK-49999"]["couponCode"], "BULK-49999");
    assert_eq!(
        app.db().await.count("SELECT count(*) FROM coupons").await,
        50_000
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_coupons_are_neither_handed_out_nor_redeemed() {
    let app = spawn_open(Some(UnixMillis::from_millis(NOW_MS))).await;
    let clock = app.clock.clone().unwrap();
    let base = app.url();
    let client = anonymous();
    let soon = "2026-11-22T11:00:00.000Z";
    let mut a = coupon("EXP-1", Some("FREE"), 1);
    a["expiryDate"] = json!(soon);
    let mut b = coupon("EXP-2", Some("FREE"), 1);
    b["expiryDate"] = json!(soon);
    assert_eq!(upload(&client, &base, vec![a, b]).await.0, 200);
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u1"), ("couponType", "FREE")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    clock.set(UnixMillis::from_millis(NOW_MS + 2 * 3_600_000));
    let (status, body) = get(
        &client,
        &base,
        "/validate",
        &[("userId", "u1"), ("couponCode", "EXP-1")],
    )
    .await;
    assert_eq!((status, body), (410, error(410, "Coupon expired")));
    let (status, body) = redeem(&client, &base, "u1", "EXP-1").await;
    assert_eq!((status, body), (410, error(410, "Coupon expired")));
    // The original handed out expired coupons; Allot does not.
    let (status, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u2"), ("couponType", "FREE")],
    )
    .await;
    assert_eq!(
        (status, body),
        (500, error(500, "No available coupon of type FREE"))
    );
    app.stop().await;
}

/// Polls `/request-status` until it is no longer 202.
async fn poll(client: &reqwest::Client, base: &str, user: &str, tracking: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(
            client,
            base,
            "/request-status",
            &[("userId", user), ("trackingId", tracking)],
        )
        .await;
        if status != 202 || Instant::now() > deadline {
            return (status, body);
        }
        assert_eq!(body, error(202, "Coupon not ready yet. Try again later."));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn megadeal_answers_a_tracking_id_that_only_its_user_may_poll() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    let coupons = (0..15)
        .map(|i| coupon(&format!("MEGA-{i}"), Some("MEGADEAL"), 1))
        .collect();
    assert_eq!(upload(&client, &base, coupons).await.0, 200);

    // 15 at once: the admission lets 10 through in a second, so the last wait and poll 202.
    let requests = (0..15).map(|i| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let user = format!("m{i}");
            let (status, body) = get(
                &client,
                &base,
                "/request-new",
                &[("userId", &user), ("couponType", "MEGADEAL")],
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let tracking = body["data"]["trackingId"].as_str().unwrap().to_owned();
            assert_eq!(body, json!({"data": {"trackingId": tracking}}));
            assert!(uuid_shaped(&tracking), "{tracking}");
            (user, tracking)
        })
    });
    let tracked: Vec<(String, String)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut pending = 0;
    for (user, tracking) in &tracked {
        let (status, body) = get(
            &client,
            &base,
            "/request-status",
            &[("userId", user), ("trackingId", tracking)],
        )
        .await;
        if status == 202 {
            assert_eq!(body, error(202, "Coupon not ready yet. Try again later."));
            pending += 1;
        }
        // Never the coupon to another user (the original gave it to whoever polled).
        let (status, body) = get(
            &client,
            &base,
            "/request-status",
            &[("userId", "intruder"), ("trackingId", tracking)],
        )
        .await;
        assert_eq!((status, body), (400, error(400, "Coupon invalid")));
    }
    assert!(
        pending > 0,
        "15 MEGADEAL requests within a second: some wait"
    );
    let mut codes = HashSet::new();
    for (user, tracking) in &tracked {
        let (status, body) = poll(&client, &base, user, tracking).await;
        assert_eq!(status, 200, "{body}");
        assert_user_coupon(&body["data"]["coupon"], user, "MEGADEAL", 0);
        assert!(
            codes.insert(body["data"]["coupon"]["coupon"]["couponCode"].clone()),
            "{user} {body} {codes:?}"
        );
    }
    // A poll after a redemption shows the coupon as it is now.
    let (user, tracking) = &tracked[0];
    let code =
        poll(&client, &base, user, tracking).await.1["data"]["coupon"]["coupon"]["couponCode"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(redeem(&client, &base, user, &code).await.0, 200);
    let (status, body) = poll(&client, &base, user, tracking).await;
    assert_eq!(
        (status, &body["data"]["coupon"]["usages"]),
        (200, &json!(1))
    );
    let (status, body) = get(
        &client,
        &base,
        "/request-status",
        &[
            ("userId", "m0"),
            ("trackingId", "4c2f3f1e-0000-4000-8000-000000000000"),
        ],
    )
    .await;
    assert_eq!((status, body), (400, error(400, "Coupon invalid")));

    // None left: the ticket's outcome is the original's refusal.
    let (_, body) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "late"), ("couponType", "MEGADEAL")],
    )
    .await;
    let tracking = body["data"]["trackingId"].as_str().unwrap().to_owned();
    let (status, body) = poll(&client, &base, "late", &tracking).await;
    assert_eq!(
        (status, body),
        (
            429,
            error(429, "Not enough coupons remaining, try again later")
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn megadeal_refuses_at_once_past_ten_seconds_of_queue() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    // The queue holds 10 s of work at 10 a second: of 200 at once, the rest are refused.
    let requests = (0..200).map(|i| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let user = format!("crowd-{i}");
            let r = client
                .get(format!("{base}/request-new"))
                .query(&[("userId", user.as_str()), ("couponType", "MEGADEAL")])
                .send()
                .await
                .unwrap();
            let retry_after = r.headers().contains_key("retry-after");
            let (status, body) = answer(r).await;
            (status, body, retry_after)
        })
    });
    let (mut tracked, mut refused) = (0, 0);
    for r in futures::future::join_all(requests).await {
        match r.unwrap() {
            (200, body, _) => {
                assert!(uuid_shaped(body["data"]["trackingId"].as_str().unwrap()));
                tracked += 1;
            }
            (429, body, retry_after) => {
                assert_eq!(
                    body,
                    error(429, "Too many users in the queue, try again later")
                );
                assert!(retry_after, "429 without Retry-After");
                refused += 1;
            }
            (status, body, _) => panic!("unexpected {status} {body}"),
        }
    }
    assert!(
        (100..=150).contains(&tracked) && refused == 200 - tracked,
        "{tracked} tracked, {refused} refused"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_megadeal_request_not_admitted_in_time_is_rate_limited() {
    // Two a second and 300 ms of wait: the third request in a second cannot be admitted.
    let app = TestApp::spawn_configured(None, |c| {
        c.auth.open_public_contracts = true;
        c.megadeal = allot_server::service::admission::AdmissionLimits {
            in_flight_max: 5,
            per_second_max: 2,
            wait_max: Duration::from_millis(300),
        };
    })
    .await;
    let base = app.url();
    let client = anonymous();
    let coupons = (0..3)
        .map(|i| coupon(&format!("SLOW-{i}"), Some("MEGADEAL"), 1))
        .collect();
    assert_eq!(upload(&http(), &base, coupons).await.0, 200);
    let mut tracked = Vec::new();
    for i in 0..3 {
        let user = format!("slow-{i}");
        let (status, body) = get(
            &client,
            &base,
            "/request-new",
            &[("userId", user.as_str()), ("couponType", "MEGADEAL")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        tracked.push((
            user,
            body["data"]["trackingId"].as_str().unwrap().to_owned(),
        ));
    }
    let mut outcomes = Vec::new();
    for (user, tracking) in &tracked {
        outcomes.push(poll(&client, &base, user, tracking).await);
    }
    assert_eq!(
        outcomes.iter().filter(|(s, _)| *s == 200).count(),
        2,
        "{outcomes:?}"
    );
    let refused: Vec<&(u16, Value)> = outcomes.iter().filter(|(s, _)| *s != 200).collect();
    assert_eq!(
        refused,
        [&(429, error(429, "Rate limit reached"))],
        "{outcomes:?}"
    );
    app.stop().await;
}

fn uuid_shaped(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn upload_is_an_admin_call_open_only_to_trusted_networks() {
    // Without trusted networks: a credential is needed, as for every admin call.
    let app = TestApp::spawn_configured(None, |c| c.auth.open_public_contracts = true).await;
    let base = app.url();
    let (status, body) = upload(&anonymous(), &base, vec![coupon("T-1", None, 1)]).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = upload(&http(), &base, vec![coupon("T-1", None, 1)]).await;
    assert_eq!(status, 200, "{body}");
    // ... while the customer calls are open with --open-public-contracts.
    let (status, body) = get(&anonymous(), &base, "/request-new", &[("userId", "u1")]).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;

    // From a trusted network, without a credential, as staff: its events say so.
    let app = spawn_open(None).await;
    let (status, body) = upload(&anonymous(), &app.url(), vec![coupon("T-2", None, 1)]).await;
    assert_eq!(status, 200, "{body}");
    let r = http()
        .get(format!("{}/api/v1/events?type=CouponsUploaded", app.url()))
        .send()
        .await
        .unwrap();
    let (_, events) = answer(r).await;
    assert_eq!(events["events"][0]["actor"], "trusted_network", "{events}");
    app.stop().await;

    // Neither flag: the customer calls need a credential too.
    let app = TestApp::spawn().await;
    let (status, _) = get(
        &anonymous(),
        &app.url(),
        "/request-new",
        &[("userId", "u1")],
    )
    .await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn racing_requests_hand_each_coupon_to_one_user() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    let coupons = (0..50)
        .map(|i| coupon(&format!("RACE-{i}"), Some("STANDARD"), 1))
        .collect();
    assert_eq!(upload(&client, &base, coupons).await.0, 200);
    let tasks = (0..200).map(|i| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let user = format!("racer-{i}");
            let r = get(
                &client,
                &base,
                "/request-new",
                &[("userId", &user), ("couponType", "STANDARD")],
            )
            .await;
            (user, r)
        })
    });
    let mut codes = HashSet::new();
    let mut none = 0;
    for r in futures::future::join_all(tasks).await {
        let (user, (status, body)) = r.unwrap();
        match status {
            200 => {
                assert_eq!(body["data"]["userId"], user.as_str());
                assert!(
                    codes.insert(
                        body["data"]["coupon"]["couponCode"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    )
                );
            }
            500 => {
                assert_eq!(body, error(500, "No available coupon of type STANDARD"));
                none += 1;
            }
            other => panic!("unexpected {other} {body}"),
        }
    }
    assert_eq!((codes.len(), none), (50, 150));
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(DISTINCT allocated_to) FROM coupons WHERE allocated_to IS NOT NULL")
            .await,
        50
    );
    assert_eq!(
        db.count("SELECT count(*) FROM coupon_allocations").await,
        50
    );
    assert_eq!(
        db.count(
            "SELECT CAST(SUM(allocated) AS BIGINT) FROM coupon_counters WHERE type = 'STANDARD'"
        )
        .await,
        50
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_redeems_stop_at_max_usages() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    assert_eq!(
        upload(&client, &base, vec![coupon("THRICE", Some("FREE"), 3)])
            .await
            .0,
        200
    );
    let (status, _) = get(
        &client,
        &base,
        "/request-new",
        &[("userId", "u1"), ("couponType", "FREE")],
    )
    .await;
    assert_eq!(status, 200);
    let tasks = (0..40).map(|_| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move { redeem(&client, &base, "u1", "THRICE").await })
    });
    let mut usages = Vec::new();
    let mut exhausted = 0;
    for r in futures::future::join_all(tasks).await {
        match r.unwrap() {
            (200, body) => usages.push(body["data"]["usages"].as_i64().unwrap()),
            (429, body) => {
                assert_eq!(body, error(429, "Coupon exhausted"));
                exhausted += 1;
            }
            (status, body) => panic!("unexpected {status} {body}"),
        }
    }
    usages.sort_unstable();
    assert_eq!((usages, exhausted), (vec![1, 2, 3], 37));
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT uses FROM coupons WHERE code = 'THRICE'")
            .await,
        3
    );
    assert_eq!(db.count("SELECT count(*) FROM coupon_redemptions").await, 3);
    assert_eq!(
        db.count("SELECT CAST(SUM(redeemed) AS BIGINT) FROM coupon_counters WHERE type = 'FREE'")
            .await,
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn the_original_routes_and_the_rest_api_share_one_store() {
    let app = spawn_open(None).await;
    let base = app.url();
    let client = anonymous();
    assert_eq!(
        upload(&client, &base, vec![coupon("SHARED-1", Some("FREE"), 2)])
            .await
            .0,
        200
    );
    // Handed out through the REST API, validated and redeemed through the original routes.
    let r = http()
        .post(format!("{base}/api/v1/coupons/requests"))
        .json(&json!({"user_id": "u7", "type": "FREE"}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["coupon"]["code"], "SHARED-1");
    let (status, body) = get(
        &client,
        &base,
        "/validate",
        &[("userId", "u7"), ("couponCode", "SHARED-1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(redeem(&client, &base, "u7", "SHARED-1").await.0, 200);
    // ... and redeemed once more through the REST API: the same count of uses.
    let r = http()
        .post(format!("{base}/api/v1/coupons/SHARED-1/redeem"))
        .json(&json!({"user_id": "u7"}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(r).await;
    assert_eq!(
        (status, &body["coupon"]["uses"]),
        (200, &json!(2)),
        "{body}"
    );
    let (status, body) = get(
        &client,
        &base,
        "/validate",
        &[("userId", "u7"), ("couponCode", "SHARED-1")],
    )
    .await;
    assert_eq!((status, body), (429, error(429, "Coupon exhausted")));
    let r = http()
        .get(format!("{base}/api/v1/coupons/stats"))
        .send()
        .await
        .unwrap();
    let (_, stats) = answer(r).await;
    let free = stats["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "FREE")
        .unwrap()
        .clone();
    assert_eq!(
        (&free["created"], &free["allocated"], &free["redeemed"]),
        (&json!(1), &json!(1), &json!(2))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_signed_in_customer_acts_only_for_its_own_user_id() {
    let app = TestApp::spawn().await;
    let base = app.url();
    assert_eq!(
        upload(&http(), &base, vec![coupon("MINE-1", Some("FREE"), 1)])
            .await
            .0,
        200
    );
    let email = Email::parse("shopper@example.com").unwrap();
    let password = "a long enough password 42";
    let user = app
        .services
        .auth
        .create_user(
            email.clone(),
            Password::parse(password).unwrap(),
            Role::Customer,
        )
        .await
        .unwrap();
    let token = app
        .services
        .auth
        .login(&email, password)
        .await
        .unwrap()
        .access_token;
    let own = user.id.get().to_string();
    let client = anonymous();
    let ask = |user: String| {
        client
            .get(format!("{base}/request-new"))
            .bearer_auth(&token)
            .query(&[("userId", user.as_str()), ("couponType", "FREE")])
            .send()
    };
    let (status, body) = answer(ask(own.clone()).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"], &own, "FREE", 0);
    // Another user's id: refused by Allot's policy, in Allot's own error body.
    let (status, body) = answer(ask("someone-else".to_owned()).await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tracking_id_is_answered_by_every_instance_sharing_redis() {
    let pg = allot_testkit::PgCluster::start();
    let redis = allot_testkit::RedisServer::start();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let (database, redis_url) = (pg.url(), redis.url());
        apps.push(
            TestApp::spawn_configured(None, move |c| {
                c.database = Some(database);
                c.redis_url = Some(redis_url);
                c.auth.open_public_contracts = true;
                c.auth.open_admin_contracts_from = vec!["127.0.0.1/32".parse().unwrap()];
            })
            .await,
        );
    }
    let (a, b) = (apps[0].url(), apps[1].url());
    let client = anonymous();
    let coupons = vec![coupon("SHARED-MEGA", Some("MEGADEAL"), 1)];
    assert_eq!(upload(&client, &a, coupons).await.0, 200);
    let (status, body) = get(
        &client,
        &a,
        "/request-new",
        &[("userId", "u1"), ("couponType", "MEGADEAL")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tracking = body["data"]["trackingId"].as_str().unwrap().to_owned();
    let (status, body) = poll(&client, &b, "u1", &tracking).await;
    assert_eq!(status, 200, "{body}");
    assert_user_coupon(&body["data"]["coupon"], "u1", "MEGADEAL", 0);
    assert_eq!(
        body["data"]["coupon"]["coupon"]["couponCode"],
        "SHARED-MEGA"
    );
    let (status, body) = get(
        &client,
        &b,
        "/request-status",
        &[("userId", "u2"), ("trackingId", &tracking)],
    )
    .await;
    assert_eq!((status, body), (400, error(400, "Coupon invalid")));
    for app in apps {
        app.stop().await;
    }
}

/// Storage that cannot write (SQLite: a full disk; PostgreSQL: the database stopped) keeps
/// Allot's 503 with `Retry-After`, in the original's error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_unavailable_is_503_in_the_original_body() {
    let app = TestApp::spawn_configured(None, |c| {
        c.auth.open_public_contracts = true;
        c.auth.open_admin_contracts_from = vec!["127.0.0.1/32".parse().unwrap()];
        c.sqlite_size_max_mb = Some(3);
        c.reservation_expiry_interval = None;
        c.coupon_purge_interval = None;
        c.sales.items = None;
    })
    .await;
    let base = app.url();
    let client = anonymous();
    let refused = if let Some(pg) = app.pg.as_ref() {
        assert_eq!(
            upload(&client, &base, vec![coupon("BEFORE", None, 1)])
                .await
                .0,
            200
        );
        tokio::task::block_in_place(|| pg.stop());
        client
            .get(format!("{base}/validate"))
            .query(&[("userId", "u1"), ("couponCode", "BEFORE")])
            .send()
            .await
            .unwrap()
    } else {
        // Upload until the database is full.
        let mut batch = 0;
        loop {
            let coupons = (0..5_000)
                .map(|i| coupon(&format!("FILL-{batch}-{i}"), None, 1))
                .collect::<Vec<_>>();
            let r = client
                .post(format!("{base}/upload"))
                .json(&json!({ "coupons": coupons }))
                .send()
                .await
                .unwrap();
            if r.status() == 503 {
                break r;
            }
            assert_eq!(r.status(), 200);
            batch += 1;
            assert!(batch < 100, "a 3 MiB database never filled");
        }
    };
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("storage is unavailable"),
        "{body}"
    );
    if let Some(pg) = app.pg.as_ref() {
        tokio::task::block_in_place(|| pg.start_again());
    }
    app.stop().await;
}

//! Storage faults told the truth (issue 13): a full disk or an unreachable database answers
//! 503 `storage_unavailable` with `Retry-After` (gRPC `UNAVAILABLE`, Connect `unavailable`),
//! `/ready` fails while writes fail and comes back by itself, nothing answered committed is
//! lost and nothing answered failed is kept; and the events of an answered write are in every
//! read that starts after the answer, whichever instance reads.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use allot_server::pb::couponpb::IssueCouponRequest;
use allot_server::pb::discount::GenerateRequest;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{TestApp, backend, connect_json, coupon_client, http, open_campaign};

/// The size limit of the full-disk test: room for the schema (about 1.3 MiB) and a little.
const SIZE_MAX_MB: u64 = 3;

async fn generate(app: &TestApp, count: u32) -> reqwest::Response {
    http()
        .post(format!("{}/api/v1/discount-codes/batches", app.url()))
        .json(&json!({"count": count, "length": 8}))
        .send()
        .await
        .unwrap()
}

/// Asserts the REST answer of a write refused for a storage fault.
async fn assert_storage_unavailable(r: reqwest::Response, reason: &str) {
    assert_eq!(r.status(), 503);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After: {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let r = http()
        .get(format!("{}/ready", app.url()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `/ready` says unavailable with a code and a short reason, and nothing of the raw error.
fn assert_not_ready((status, body): &(u16, Value), reason: &str) {
    assert_eq!(*status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["code"], "storage_unavailable");
    assert_eq!(body["reason"], reason);
    let text = body.to_string().to_lowercase();
    for internal in [
        "disk is full",
        "sqlite:",
        "postgres:",
        "error",
        "connection",
    ] {
        assert!(!text.contains(internal), "{body}");
    }
}

async fn wait_until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready(app).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "not ready after 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A full disk (here the database's size limit, which fails writes the same way): every
/// transport answers 503 / UNAVAILABLE, `/ready` fails, exactly the acknowledged codes are
/// stored; once space comes back `/ready` recovers without any client writing, and writes
/// commit again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_answered_storage_unavailable_and_recovers_by_itself() {
    if backend() == "postgres" {
        // The size limit is the embedded database's; PostgreSQL is covered by the stopped
        // database below.
        return;
    }
    let app = TestApp::spawn_configured(None, |c| {
        c.sqlite_size_max_mb = Some(SIZE_MAX_MB);
        // No background writes: a small one that still fits would clear the flag (as any
        // committed write does) and make `/ready` below depend on timing.
        c.reservation_expiry_interval = None;
        c.coupon_purge_interval = None;
        c.sales.items = None;
    })
    .await;
    let mut coupons = coupon_client(app.channel().await);
    let campaign = open_campaign(&mut coupons, 1_000_000).await;
    // Ballast that an operator can delete to give space back, as on a real disk.
    let db_file = app.data_dir.path().join("data").join("allot.db");
    let ballast = rusqlite::Connection::open(&db_file).unwrap();
    ballast.busy_timeout(Duration::from_secs(10)).unwrap();
    ballast
        .execute_batch(
            "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(262144));",
        )
        .unwrap();

    // Fill: big batches, then single codes, until the database refuses. A small write may
    // still fit in a page with room after one was refused, as on a real disk: the checks
    // below take the first refusal of each kind and count every success.
    let mut acknowledged = HashSet::new();
    let mut refused = None;
    for count in [2_000, 100, 1] {
        loop {
            let r = generate(&app, count).await;
            if r.status() == 503 {
                refused = Some(r);
                break;
            }
            assert_eq!(r.status(), 201);
            let body: Value = r.json().await.unwrap();
            for code in body["codes"].as_array().unwrap() {
                acknowledged.insert(code.as_str().unwrap().to_owned());
            }
        }
    }
    assert!(!acknowledged.is_empty());
    let full = "the database has no space left";
    assert_storage_unavailable(refused.unwrap(), full).await;
    assert_not_ready(&ready(&app).await, full);
    // Still not ready when asked again: the probe writes, and that fails too.
    assert_not_ready(&ready(&app).await, full);

    let mut discount = app.discount().await;
    let refused = loop {
        match discount
            .generate(GenerateRequest {
                count: 1,
                length: vec![8],
            })
            .await
        {
            Ok(r) => acknowledged.extend(r.into_inner().codes),
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let mut issued = 0;
    let refused = loop {
        match coupons
            .issue_coupon(IssueCouponRequest {
                campaign_id: campaign,
                ..Default::default()
            })
            .await
        {
            Ok(_) => issued += 1,
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let (status, body) = loop {
        let (status, body) = connect_json(
            &http(),
            &app.url(),
            "IssueCoupon",
            json!({"campaignId": campaign.to_string()}),
        )
        .await;
        if status != 200 {
            break (status, body);
        }
        issued += 1;
    };
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );

    // Exactly what was acknowledged is stored: nothing lost, nothing refused kept.
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, acknowledged);
    assert_eq!(
        db.count("SELECT count(*) FROM campaign_coupons").await,
        issued
    );

    // Space comes back: ready again with no client writing, then writes commit.
    ballast.execute_batch("DROP TABLE ballast").unwrap();
    wait_until_ready(&app).await;
    assert_eq!(generate(&app, 1).await.status(), 201);
    coupons
        .issue_coupon(IssueCouponRequest {
            campaign_id: campaign,
            ..Default::default()
        })
        .await
        .unwrap();
    app.stop().await;
}

/// PostgreSQL stopped under a running server: every transport answers 503 / UNAVAILABLE,
/// `/ready` fails; started again, the server recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_answered_storage_unavailable_and_recovers_by_itself() {
    if backend() != "postgres" {
        return;
    }
    let app = TestApp::spawn().await;
    let mut coupons = coupon_client(app.channel().await);
    let campaign = open_campaign(&mut coupons, 1_000).await;
    assert_eq!(generate(&app, 1).await.status(), 201);
    let pg = app.pg.as_ref().expect("the suite's cluster");
    tokio::task::block_in_place(|| pg.stop());

    let down = "the database cannot be reached";
    assert_storage_unavailable(generate(&app, 1).await, down).await;
    // Again: the first request found a dropped connection, this one a refused connect.
    assert_storage_unavailable(generate(&app, 1).await, down).await;
    let mut discount = app.discount().await;
    let refused = discount
        .generate(GenerateRequest {
            count: 1,
            length: vec![8],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let refused = coupons
        .issue_coupon(IssueCouponRequest {
            campaign_id: campaign,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let (status, body) = connect_json(
        &http(),
        &app.url(),
        "IssueCoupon",
        json!({"campaignId": campaign.to_string()}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert_not_ready(&ready(&app).await, down);

    tokio::task::block_in_place(|| pg.start_again());
    wait_until_ready(&app).await;
    assert_eq!(generate(&app, 1).await.status(), 201);
    coupons
        .issue_coupon(IssueCouponRequest {
            campaign_id: campaign,
            ..Default::default()
        })
        .await
        .unwrap();
    app.stop().await;
}

/// The events of a write are in every read that starts after its answer: on PostgreSQL
/// also on another instance, while other readers keep the sequencer busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_events_of_an_answered_write_are_in_the_next_read_on_any_instance() {
    let writer = TestApp::spawn().await;
    // On PostgreSQL a second instance on the same database reads; SQLite has one instance.
    let second = match writer.database.clone() {
        Some(url) => Some(TestApp::spawn_configured(None, move |c| c.database = Some(url)).await),
        None => None,
    };
    let reader = second.as_ref().unwrap_or(&writer);
    // Readers on the writing instance keep the sequencer running, as busy servers do.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let url = writer.url();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = http()
                        .get(format!("{url}/api/v1/events?limit=1&after=0"))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    for round in 0..60 {
        assert_eq!(generate(&writer, 1).await.status(), 201);
        for (what, path) in [
            (
                "events",
                "/api/v1/events?type=DiscountCodesGenerated&limit=1000",
            ),
            (
                "audit",
                "/api/v1/audit?type=DiscountCodesGenerated&limit=1000",
            ),
        ] {
            let page: Value = http()
                .get(format!("{}{path}", reader.url()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let seen = page
                .get("events")
                .or_else(|| page.get("entries"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            assert_eq!(
                seen,
                round + 1,
                "round {round}: {what} misses the event of the write just answered"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.await.unwrap();
    }
    if let Some(second) = second {
        second.stop().await;
    }
    writer.stop().await;
}

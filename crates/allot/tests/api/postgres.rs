//! Three allot instances sharing one real PostgreSQL: the guarantees hold across instances,
//! checked in the database afterwards.

use std::collections::HashSet;

use allot_server::pb::couponpb::GetCampaignRequest;
use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use allot_testkit::PgCluster;
use serde_json::{Value, json};

use crate::helpers::{TestApp, channels, coupon_client, http, open_campaign, race_for_campaign};
use crate::sale::run_sale;

async fn instances(cluster: &PgCluster) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..3 {
        let url = cluster.url();
        // Clocks stand still mid-hour, so the hour's sale cannot change during the test; in
        // the next hour, so that campaigns opened by the wall clock have started by theirs.
        let mid_hour = allot_domain::UnixMillis::from_millis(next_mid_hour());
        apps.push(TestApp::spawn_configured(Some(mid_hour), move |c| c.database = Some(url)).await);
    }
    apps
}

/// The middle of the next hour by the wall clock, in Unix milliseconds.
fn next_mid_hour() -> i64 {
    const HOUR: i64 = 3_600_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now / HOUR + 1) * HOUR + HOUR / 2
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_postgres_hold_every_guarantee() {
    let cluster = PgCluster::start();
    let apps = instances(&cluster).await;
    let db = allot_storage::postgres::connect(&cluster.url())
        .await
        .unwrap();

    // Discount codes: batches from every instance are distinct; one code used from every
    // instance at once is used once.
    let mut generated = HashSet::new();
    for (i, app) in apps.iter().enumerate() {
        let mut client = app.discount().await;
        let codes = client
            .generate(GenerateRequest {
                count: 2000,
                length: vec![7 + (i % 2) as u8],
            })
            .await
            .unwrap()
            .into_inner()
            .codes;
        generated.extend(codes);
    }
    assert_eq!(generated.len(), 6_000);
    assert_eq!(
        count(&db, "SELECT count(*) FROM discount_codes").await,
        6_000
    );
    let code = generated.iter().next().unwrap().clone();
    let mut uses = Vec::new();
    for i in 0..30 {
        let mut client = DiscountClient::new(apps[i % 3].channel().await);
        let code = code.clone();
        uses.push(tokio::spawn(async move {
            client
                .use_code(UseCodeRequest { code })
                .await
                .unwrap()
                .into_inner()
                .result
        }));
    }
    let results: Vec<Vec<u8>> = futures::future::join_all(uses)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.as_slice() == [0]).count(), 1);
    assert_eq!(results.iter().filter(|r| r.as_slice() == [2]).count(), 29);

    // A campaign of 10,000 raced by 1,000 clients spread over the instances: exactly 10,000.
    let id = open_campaign(&mut coupon_client(apps[0].channel().await), 10_000).await;
    let mut spread = Vec::new();
    for app in &apps {
        spread.extend(channels(app.addr, 4).await);
    }
    let received = race_for_campaign(&spread, id, 1_000).await;
    let distinct: HashSet<&String> = received.iter().collect();
    assert_eq!((received.len(), distinct.len()), (10_000, 10_000));
    let listed = coupon_client(apps[2].channel().await)
        .get_campaign(GetCampaignRequest { campaign_id: id })
        .await
        .unwrap()
        .into_inner()
        .coupon_codes;
    assert_eq!(listed.iter().collect::<HashSet<_>>(), distinct);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM campaign_coupons WHERE campaign_id = {id}")
        )
        .await,
        10_000
    );

    // Coupons: 150 STANDARD for 200 users asking through three instances.
    let client = http();
    let coupons: Vec<Value> = (0..150)
        .map(|i| json!({"code": format!("pg-{i}"), "type": "STANDARD", "discount_kind": "FLAT",
                        "discount_amount": 100, "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1}))
        .collect();
    let r = client
        .post(format!("{}/api/v1/coupons", apps[1].url()))
        .json(&json!({"coupons": coupons}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let asks = (0..200).map(|i| {
        let (client, url) = (
            client.clone(),
            format!("{}/api/v1/coupons/requests", apps[i % 3].url()),
        );
        tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"user_id": format!("pg-user-{i}"), "type": "STANDARD"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    });
    let mut given = HashSet::new();
    let mut none = 0;
    for r in futures::future::join_all(asks).await {
        match r.unwrap() {
            (200, body) => {
                assert!(given.insert(body["coupon"]["code"].as_str().unwrap().to_owned()))
            }
            (409, body) => {
                assert_eq!(body["error"]["code"], "no_coupon_available");
                none += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((given.len(), none), (150, 50));
    assert_eq!(
        count(&db, "SELECT count(DISTINCT allocated_to) FROM coupons WHERE type = 'STANDARD' AND allocated_to IS NOT NULL").await,
        150
    );

    // Flash sale: every instance opened the hour's sale; there is one.
    let mut sale_ids = HashSet::new();
    for app in &apps {
        let s: Value = client
            .get(format!("{}/api/v1/sales/current", app.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sale_ids.insert(s["id"].as_i64().unwrap());
    }
    assert_eq!(sale_ids.len(), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM sales").await, 1);

    // That sale, bought out by 300 connections spread over the instances: exactly 10,000 sold,
    // none twice, nobody above 10, every purchase a client saw in the database.
    run_sale(&[&apps[0], &apps[1], &apps[2]], 10_000, 20_000, 300, 10).await;

    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_rides_out_a_postgres_restart() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let app = TestApp::spawn_configured(None, move |c| c.database = Some(url)).await;
    let client = http();
    let generate = || {
        client
            .post(format!("{}/api/v1/discount-codes/batches", app.url()))
            .json(&json!({"count": 10, "length": 8}))
            .send()
    };
    assert_eq!(generate().await.unwrap().status(), 201);
    cluster.restart();
    // While connections are re-established, a request may be refused as unavailable (503),
    // never as an internal error; soon every request succeeds again.
    let mut ok = 0;
    for _ in 0..40 {
        match generate().await.unwrap().status().as_u16() {
            201 => ok += 1,
            503 => {}
            other => panic!("unexpected status {other} after a database restart"),
        }
    }
    assert!(ok >= 30, "the server did not recover: {ok} of 40 succeeded");
    app.stop().await;
}

/// Three `allot serve` processes on one PostgreSQL under a rush of issues and code batches;
/// one of them is killed with SIGKILL mid-load. Its clients move to the others; every code any
/// client was given is in the database, the campaign still ends at exactly its total, and the
/// two survivors serve to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_one_instance_loses_no_acknowledged_write_and_the_others_carry_on() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use allot_server::pb::couponpb::IssueCouponRequest;

    use crate::helpers::{ServerProcess, channel};

    const TOTAL: usize = 3_000;
    let cluster = PgCluster::start();
    let url = cluster.url();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::TempDir::new().unwrap()).collect();
    let mut servers: Vec<ServerProcess> = dirs
        .iter()
        .map(|d| ServerProcess::start_with(d.path(), &["--database", &url, "--sale-items", "0"]))
        .collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let id = open_campaign(&mut coupon_client(channel(addrs[0]).await), TOTAL as i64).await;

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients = (0..90).map(|i| {
        let (addrs, acknowledged) = (addrs.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut at = i % 3;
            let mut coupons = coupon_client(channel(addrs[at]).await);
            let mut discount = DiscountClient::new(channel(addrs[at]).await);
            let (mut issued, mut generated) = (Vec::new(), Vec::new());
            let mut failures = 0;
            for op in 0usize.. {
                let answer = if op % 10 == 9 {
                    discount
                        .generate(GenerateRequest {
                            count: 5,
                            length: vec![8],
                        })
                        .await
                        .map(|r| generated.extend(r.into_inner().codes))
                } else {
                    match coupons
                        .issue_coupon(IssueCouponRequest {
                            campaign_id: id,
                            ..Default::default()
                        })
                        .await
                    {
                        Ok(r) => {
                            issued.push(r.into_inner().coupon_code);
                            Ok(())
                        }
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => break,
                        Err(s) => Err(s),
                    }
                };
                match answer {
                    Ok(()) => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    // The instance died under this client: it moves to the next one.
                    Err(s) => {
                        failures += 1;
                        assert!(failures <= 3, "client {i} keeps failing: {s:?}");
                        at = (at + 1) % 3;
                        coupons = coupon_client(channel(addrs[at]).await);
                        discount = DiscountClient::new(channel(addrs[at]).await);
                    }
                }
            }
            (issued, generated)
        })
    });
    let clients: Vec<_> = clients.collect();
    while acknowledged.load(Ordering::Relaxed) < TOTAL / 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    servers[0].kill9();

    let (mut issued, mut generated) = (Vec::new(), Vec::new());
    for c in futures::future::join_all(clients).await {
        let (i, g) = c.unwrap();
        issued.extend(i);
        generated.extend(g);
    }
    let db = allot_storage::postgres::connect(&url).await.unwrap();
    let stored: HashSet<String> = db
        .query(
            "SELECT code FROM campaign_coupons WHERE campaign_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Exactly the total was issued; answers lost with the killed instance may make the
    // clients' count smaller, never larger, and every code a client holds is stored.
    assert_eq!(stored.len(), TOTAL);
    assert_eq!(
        count(
            &db,
            &format!("SELECT issued FROM campaigns WHERE id = {id}")
        )
        .await,
        TOTAL as i64
    );
    let distinct: HashSet<&String> = issued.iter().collect();
    assert_eq!(distinct.len(), issued.len(), "a code was given twice");
    assert!(issued.len() <= TOTAL && issued.len() > TOTAL / 2);
    assert!(
        issued.iter().all(|c| stored.contains(c)),
        "an acknowledged code is lost"
    );
    let codes: HashSet<String> = db
        .query("SELECT code FROM discount_codes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!generated.is_empty());
    assert!(
        generated.iter().all(|c| codes.contains(c)),
        "an acknowledged discount code is lost"
    );
    // The survivors still answer.
    for s in &servers[1..] {
        let health = http()
            .get(format!("{}/ready", s.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
    }
}

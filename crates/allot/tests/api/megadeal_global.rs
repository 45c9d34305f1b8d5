//! MEGADEAL admission shared by three instances through one Redis, on one PostgreSQL: the
//! limits hold globally (checked in the database afterwards), tickets can be polled on any
//! instance, and Redis going away refuses MEGADEAL alone.

use std::time::{Duration, Instant};

use std::path::Path;

use allot_testkit::{PgCluster, RedisServer, TestCa};
use serde_json::{Value, json};

use crate::coupon::{at_most_ten_allocations_a_second, megadeal_storm};
use crate::helpers::{TestApp, http};

const FUTURE: &str = "2030-01-01T00:00:00Z";

fn coupon(code: &str, t: &str) -> Value {
    json!({"code": code, "type": t, "discount_kind": "PERCENTAGE", "discount_amount": 10,
           "expires_at": FUTURE, "max_uses": 1})
}

async fn upload(client: &reqwest::Client, base: &str, coupons: Vec<Value>) {
    let r = client
        .post(format!("{base}/api/v1/coupons"))
        .json(&json!({ "coupons": coupons }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn instances(n: usize, pg: &PgCluster, redis: &RedisServer) -> Vec<TestApp> {
    instances_trusting(n, pg, redis, None).await
}

/// `n` instances on `pg` sharing `redis`, trusting `redis_ca` for its certificate.
async fn instances_trusting(
    n: usize,
    pg: &PgCluster,
    redis: &RedisServer,
    redis_ca: Option<&Path>,
) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        let (database, redis_url) = (pg.url(), redis.url());
        let ca_file = redis_ca.map(Path::to_owned);
        apps.push(
            TestApp::spawn_configured(None, move |c| {
                c.database = Some(database);
                c.redis_url = Some(redis_url);
                c.redis_tls.ca_file = ca_file;
            })
            .await,
        );
    }
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_the_megadeal_limits_through_redis() {
    let pg = PgCluster::start();
    let redis = RedisServer::start();
    share_the_megadeal_limits(instances(3, &pg, &redis).await).await;
}

/// The same over TLS: a Redis that speaks only TLS (`rediss://`), its certificate from a CA
/// the instances are given (`--redis-ca-file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_the_megadeal_limits_through_redis_over_tls() {
    let ca = TestCa::new("allot test Redis CA");
    let pg = PgCluster::start();
    let redis = RedisServer::start_tls(&ca);
    assert!(redis.url().starts_with("rediss://"));
    share_the_megadeal_limits(instances_trusting(3, &pg, &redis, Some(ca.ca_file())).await).await;
}

/// A Redis whose certificate no trusted CA signed: the server refuses to start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_redis_certificate_is_refused_at_start() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redis = RedisServer::start_tls(&TestCa::new("a CA nobody trusts"));
    let other = TestCa::new("the CA the server trusts");
    let data = tempfile::TempDir::new().unwrap();
    let mut config = allot_server::Config::for_data_dir(data.path().join("data"));
    config.redis_url = Some(redis.url());
    config.redis_tls.ca_file = Some(other.ca_file().to_owned());
    let refused = allot_server::Application::build(
        config,
        std::sync::Arc::new(allot_server::clock::SystemClock),
    )
    .await
    .err()
    .expect("the server must not start")
    .to_string();
    assert_eq!(
        refused,
        format!(
            "redis: TLS to 127.0.0.1:{}: certificate not trusted (UnknownIssuer)",
            redis.port()
        )
    );
}

async fn share_the_megadeal_limits(apps: Vec<TestApp>) {
    let bases: Vec<String> = apps.iter().map(TestApp::url).collect();
    let client = crate::helpers::client_builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(400)
        .build()
        .unwrap();
    let coupons = (0..400)
        .map(|i| coupon(&format!("gmega-{i}"), "MEGADEAL"))
        .collect();
    upload(&client, &bases[0], coupons).await;

    let started = Instant::now();
    let (served, busy) = megadeal_storm(&client, &bases, 300, "g").await;
    assert_eq!(served + busy, 300);
    // One global rate of 10/s over 10 s, not three.
    assert!(served >= 80, "only {served} served in 10 s");
    assert!(served <= 115, "{served} served: the rate is not global");
    assert!(started.elapsed() < Duration::from_secs(12));
    // Never more than 10 allocations within any one second, across all instances.
    assert_eq!(
        at_most_ten_allocations_a_second(&apps[0].db().await).await,
        served
    );

    // The peak in flight is global, and every slot came back (releases are asynchronous).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (code, status) = get(&client, format!("{}/api/v1/coupons/megadeal", bases[2])).await;
        assert_eq!(code, 200, "{status}");
        let peak = status["peak_in_flight"].as_u64().unwrap();
        assert!((1..=5).contains(&peak), "{status}");
        if status["in_flight"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "slots not all free: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Five more, one or two per instance, are served at once.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let quick = Instant::now();
    let tasks = (0..5).map(|i| {
        let client = client.clone();
        let url = format!("{}/api/v1/coupons/requests", bases[i % 3]);
        tokio::spawn(async move {
            post(
                &client,
                url,
                json!({"user_id": format!("glate{i}"), "type": "MEGADEAL"}),
            )
            .await
        })
    });
    for r in futures::future::join_all(tasks).await {
        let (code, body) = r.unwrap();
        assert_eq!(code, 200, "{body}");
    }
    assert!(quick.elapsed() < Duration::from_secs(1));

    // A ticket asked for on one instance is polled on another, by its user only.
    let (code, body) = post(
        &client,
        format!("{}/api/v1/coupons/requests?wait=false", bases[0]),
        json!({"user_id": "gt1", "type": "MEGADEAL"}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let (code, _) = get(
        &client,
        format!("{}/api/v1/coupons/requests/{ticket}?user_id=gt2", bases[2]),
    )
    .await;
    assert_eq!(code, 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, r) = get(
            &client,
            format!("{}/api/v1/coupons/requests/{ticket}?user_id=gt1", bases[1]),
        )
        .await;
        assert_eq!(code, 200, "{r}");
        if r["status"] == "done" {
            assert_eq!(r["coupon"]["allocated_to"], "gt1");
            assert_eq!(r["coupon"]["type"], "MEGADEAL");
            break;
        }
        assert_eq!(r["status"], "pending");
        assert!(Instant::now() < deadline, "ticket never served: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_refuses_megadeal_with_503_and_serves_the_rest() {
    let pg = PgCluster::start();
    let mut redis = RedisServer::start();
    let app = instances(1, &pg, &redis).await.remove(0);
    let base = app.url();
    let client = http();
    upload(
        &client,
        &base,
        vec![
            coupon("down-m1", "MEGADEAL"),
            coupon("down-m2", "MEGADEAL"),
            coupon("down-s1", "STANDARD"),
        ],
    )
    .await;
    let url = format!("{base}/api/v1/coupons/requests");
    let (code, body) = post(
        &client,
        url.clone(),
        json!({"user_id": "d1", "type": "MEGADEAL"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    redis.kill();
    let started = Instant::now();
    let r = client
        .post(url.clone())
        .json(&json!({"user_id": "d2", "type": "MEGADEAL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "megadeal_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (code, body) = post(
        &client,
        format!("{url}?wait=false"),
        json!({"user_id": "d3", "type": "MEGADEAL"}),
    )
    .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (503, &json!("megadeal_unavailable"))
    );
    let (code, _) = get(&client, format!("{base}/api/v1/coupons/megadeal")).await;
    assert_eq!(code, 503);

    // Other coupon types do not depend on Redis.
    let (code, body) = post(&client, url, json!({"user_id": "d4", "type": "STANDARD"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["coupon"]["code"], "DOWN-S1");
    app.stop().await;
}

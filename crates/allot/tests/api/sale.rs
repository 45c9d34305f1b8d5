//! Flash sales over HTTP, Allot's own one-code-per-item checkout under
//! `/api/v1/sales/{id}/...`: a whole sale at full size, the hour, idempotent purchase, errors.
//! The design checkout at the root path is `sale_original`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use allot_domain::UnixMillis;
use allot_domain::sale::ItemsPerSale;
use allot_server::service::sale::SaleSettings;
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::helpers::{TestApp, http};

/// 2026-11-22T10:00:00Z
const TEN: i64 = 1_795_341_600_000;
const HOUR: i64 = 3_600_000;
/// A clock that stands still mid-hour, so that no test's sale changes under it.
const MID_HOUR: UnixMillis = UnixMillis::from_millis(TEN + HOUR / 2);

async fn post(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.post(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn current(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/api/v1/sales/current"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn item_ids(client: &reqwest::Client, base: &str, sale: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor = 0;
    loop {
        let page: Value = client
            .get(format!(
                "{base}/api/v1/sales/{sale}/items?limit=1000&cursor={cursor}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for i in page["items"].as_array().unwrap() {
            assert!(!i["name"].as_str().unwrap().is_empty());
            assert!(i["image_url"].as_str().unwrap().starts_with("https://"));
            ids.push(i["id"].as_i64().unwrap());
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = c,
            None => return ids,
        }
    }
}

/// Users check out and purchase random unsold-looking items until the sale is sold out, from
/// `connections` concurrent workers spread over the instances `apps` (sharing one database);
/// then checks the database against every purchase a client saw succeed.
pub(crate) async fn run_sale(
    apps: &[&TestApp],
    items: usize,
    users: usize,
    connections: usize,
    limit: usize,
) {
    let client = crate::helpers::client_builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let bases: Vec<String> = apps.iter().map(|a| a.url()).collect();
    let base = bases[0].clone();
    let sale = current(&client, &base).await;
    let sale_id = sale["id"].as_i64().unwrap();
    assert_eq!(sale["items_total"].as_i64(), Some(items as i64));
    let mut ids = item_ids(&client, &base, sale_id).await;
    assert_eq!(ids.len(), items);
    ids.shuffle(&mut rand::rng());
    let ids = Arc::new(ids);
    let next_item = Arc::new(AtomicUsize::new(0));
    let next_user = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let workers = (0..connections).map(|w| {
        let (client, base, ids, next_item, next_user, attempts) = (
            client.clone(),
            bases[w % bases.len()].clone(),
            ids.clone(),
            next_item.clone(),
            next_user.clone(),
            attempts.clone(),
        );
        tokio::spawn(async move {
            let mut bought: Vec<(String, i64)> = Vec::new();
            let mut replays: Vec<(String, i64)> = Vec::new();
            loop {
                let u = next_user.fetch_add(1, Ordering::Relaxed) % users;
                let user = format!("shopper-{u}");
                // Each turn: up to 3 checkouts, then the purchases.
                let mut codes = Vec::new();
                let mut sold_out_seen = 0;
                for _ in 0..3 {
                    let i = next_item.fetch_add(1, Ordering::Relaxed) % ids.len();
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let (status, body) = post(
                        &client,
                        format!(
                            "{base}/api/v1/sales/{sale_id}/checkout?user_id={user}&id={}",
                            ids[i]
                        ),
                    )
                    .await;
                    match status {
                        200 => codes.push(body["code"].as_str().unwrap().to_owned()),
                        409 => {
                            let code = body["error"]["code"].as_str().unwrap();
                            assert!(
                                code == "item_sold" || code == "user_limit_reached",
                                "{body}"
                            );
                            sold_out_seen += 1;
                        }
                        other => panic!("checkout answered {other} {body}"),
                    }
                }
                for code in codes {
                    let (status, body) = post(
                        &client,
                        format!("{base}/api/v1/sales/{sale_id}/purchase?code={code}"),
                    )
                    .await;
                    match status {
                        // A replay is the first purchase of the same code answered again (two
                        // workers can serve one user and share its open code): not a new sale.
                        200 if body["replayed"] == true => replays.push((
                            body["user_id"].as_str().unwrap().to_owned(),
                            body["items"][0]["id"].as_i64().unwrap(),
                        )),
                        200 => bought.push((
                            body["user_id"].as_str().unwrap().to_owned(),
                            body["items"][0]["id"].as_i64().unwrap(),
                        )),
                        409 => assert!(
                            ["item_sold", "user_limit_reached"]
                                .contains(&body["error"]["code"].as_str().unwrap()),
                            "{body}"
                        ),
                        other => panic!("purchase answered {other} {body}"),
                    }
                }
                if sold_out_seen == 3 {
                    let now = current(&client, &base).await;
                    if now["remaining"] == 0 {
                        return (bought, replays);
                    }
                }
            }
        })
    });
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut replayed: Vec<(String, i64)> = Vec::new();
    for w in futures::future::join_all(workers).await {
        let (bought, replays) = w.unwrap();
        seen.extend(bought);
        replayed.extend(replays);
    }
    // A replayed answer names a sale some client saw first, to the same user.
    for r in &replayed {
        assert!(
            seen.contains(r),
            "a replayed purchase {r:?} matches no first purchase"
        );
    }

    // The database: exactly `items` sold, each to one user, none above the limit, every
    // purchase a client saw among them, every checkout attempt recorded.
    let db = apps[0].db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM sale_items WHERE sale_id = {sale_id} AND sold_to IS NOT NULL"
        ))
        .await,
        items as i64
    );
    assert_eq!(
        db.count(&format!("SELECT sold FROM sales WHERE id = {sale_id}"))
            .await,
        items as i64
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM (SELECT sold_to FROM sale_items WHERE sale_id = {sale_id} AND sold_to IS NOT NULL GROUP BY sold_to HAVING count(*) > {limit}) AS over_limit")).await,
        0,
        "a user bought more than the limit"
    );
    let sold: HashMap<i64, String> = db
        .strings(&format!("SELECT id || ' ' || sold_to FROM sale_items WHERE sale_id = {sale_id} AND sold_to IS NOT NULL")).await
        .into_iter()
        .map(|s| {
            let (id, user) = s.split_once(' ').unwrap();
            (id.parse().unwrap(), user.to_owned())
        })
        .collect();
    let seen_items: HashSet<i64> = seen.iter().map(|(_, i)| *i).collect();
    assert_eq!(
        seen_items.len(),
        seen.len(),
        "an item was sold twice to clients"
    );
    for (user, item) in &seen {
        assert_eq!(
            sold.get(item),
            Some(user),
            "a purchase the client saw is not in the database"
        );
    }
    assert_eq!(seen.len(), items, "clients saw every sale");
    assert_eq!(
        db.count("SELECT count(*) FROM sale_checkout_attempts")
            .await,
        attempts.load(Ordering::Relaxed) as i64,
        "every checkout attempt is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_miniature_sale_sells_exactly_its_items() {
    let app = TestApp::spawn_configured(Some(MID_HOUR), |c| {
        c.sales = SaleSettings {
            items: ItemsPerSale::parse(60).ok(),
            user_limit: 2,
        };
    })
    .await;
    run_sale(&[&app], 60, 200, 32, 2).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sale_of_ten_thousand_items_to_twenty_thousand_users() {
    let app = TestApp::spawn_configured(Some(MID_HOUR), |_| {}).await;
    run_sale(&[&app], 10_000, 20_000, 300, 10).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_follow_the_hour_and_a_code_of_a_past_sale_is_refused() {
    let app = TestApp::spawn_configured(Some(UnixMillis::from_millis(TEN + HOUR - 1_000)), |c| {
        c.sales = SaleSettings {
            items: ItemsPerSale::parse(5).ok(),
            user_limit: 10,
        };
    })
    .await;
    let clock = app.clock.clone().unwrap();
    let client = http();
    let base = app.url();
    let first = current(&client, &base).await;
    assert_eq!(first["starts_at"], "2026-11-22T10:00:00.000Z");
    assert_eq!(first["ends_at"], "2026-11-22T11:00:00.000Z");
    let first_id = first["id"].as_i64().unwrap();
    let first_item = item_ids(&client, &base, first_id).await[0];
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/sales/{first_id}/checkout?user_id=late&id={first_item}"),
    )
    .await;
    assert_eq!(status, 200);
    let code = body["code"].as_str().unwrap().to_owned();

    clock.set(UnixMillis::from_millis(TEN + HOUR - 1));
    assert_eq!(
        current(&client, &base).await["id"],
        first["id"],
        "still the ten o'clock sale"
    );
    clock.set(UnixMillis::from_millis(TEN + HOUR));
    let second = current(&client, &base).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["starts_at"], "2026-11-22T11:00:00.000Z");
    assert_eq!(second["items_total"], 5);

    let second_id = second["id"].as_i64().unwrap();
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/sales/{first_id}/purchase?code={code}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("sale_over"))
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/sales/{second_id}/purchase?code={code}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "a code is known only under its own sale"
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/sales/{second_id}/checkout?user_id=late&id={first_item}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_in_current_sale"))
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/sales/{first_id}/checkout?user_id=late&id={first_item}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("sale_not_current")),
        "only the current sale checks out"
    );
    let (status, _) = post(
        &client,
        format!("{base}/api/v1/sales/999999/checkout?user_id=late&id={first_item}"),
    )
    .await;
    assert_eq!(status, 404, "an unknown sale");
    // One sale per hour, however often it is asked for.
    assert_eq!(app.db().await.count("SELECT count(*) FROM sales").await, 2);
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM sale_items")
            .await,
        10
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_sells_once_however_often_and_concurrently_it_is_purchased() {
    let app = TestApp::spawn_configured(Some(MID_HOUR), |c| {
        c.sales = SaleSettings {
            items: ItemsPerSale::parse(10).ok(),
            user_limit: 1,
        };
    })
    .await;
    let client = http();
    let base = app.url();
    let sale = current(&client, &base).await["id"].as_i64().unwrap();
    let ids = item_ids(&client, &base, sale).await;
    let (_, body) = post(
        &client,
        format!(
            "{base}/api/v1/sales/{sale}/checkout?user_id=solo&id={}",
            ids[0]
        ),
    )
    .await;
    let code = body["code"].as_str().unwrap().to_owned();
    let tasks = (0..20).map(|_| {
        let (client, url) = (
            client.clone(),
            format!("{base}/api/v1/sales/{sale}/purchase?code={code}"),
        );
        tokio::spawn(async move { post(&client, url).await })
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(results.iter().all(|(s, _)| *s == 200));
    assert_eq!(
        results
            .iter()
            .filter(|(_, b)| b["replayed"] == false)
            .count(),
        1
    );
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM sale_items WHERE sold_to IS NOT NULL")
            .await,
        1
    );

    // The limit (1 here): checkout refuses early once reached; a code checked out before is
    // refused at purchase.
    let (_, body) = post(
        &client,
        format!(
            "{base}/api/v1/sales/{sale}/checkout?user_id=pair&id={}",
            ids[1]
        ),
    )
    .await;
    let a = body["code"].as_str().unwrap().to_owned();
    let (_, body) = post(
        &client,
        format!(
            "{base}/api/v1/sales/{sale}/checkout?user_id=pair&id={}",
            ids[2]
        ),
    )
    .await;
    let b = body["code"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &client,
            format!("{base}/api/v1/sales/{sale}/purchase?code={a}")
        )
        .await
        .0,
        200
    );
    let (status, body) = post(
        &client,
        format!("{base}/api/v1/sales/{sale}/purchase?code={b}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("user_limit_reached"))
    );
    let (status, again) = post(
        &client,
        format!("{base}/api/v1/sales/{sale}/purchase?code={b}"),
    )
    .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("user_limit_reached")),
        "the first outcome again"
    );
    let (status, body) = post(
        &client,
        format!(
            "{base}/api/v1/sales/{sale}/checkout?user_id=pair&id={}",
            ids[3]
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("user_limit_reached"))
    );
    let mine: Value = client
        .get(format!("{base}/api/v1/sales/{sale}/purchases?user_id=pair"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flash_sale_error_has_its_status() {
    let app = TestApp::spawn_configured(Some(MID_HOUR), |c| {
        c.sales = SaleSettings {
            items: ItemsPerSale::parse(3).ok(),
            user_limit: 10,
        };
    })
    .await;
    let client = http();
    let base = app.url();
    let sale = current(&client, &base).await["id"].as_i64().unwrap();
    let ids = item_ids(&client, &base, sale).await;
    let (_, body) = post(
        &client,
        format!(
            "{base}/api/v1/sales/{sale}/checkout?user_id=a&id={}",
            ids[0]
        ),
    )
    .await;
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &client,
            format!("{base}/api/v1/sales/{sale}/purchase?code={code}")
        )
        .await
        .0,
        200
    );

    let cases = [
        (
            format!("/api/v1/sales/{sale}/checkout?id={}", ids[1]),
            400,
            "bad_request",
            Some("user_id"),
        ),
        (
            format!("/api/v1/sales/{sale}/checkout?user_id=a"),
            400,
            "bad_request",
            Some("id"),
        ),
        (
            format!("/api/v1/sales/{sale}/checkout?user_id=a&id=abc"),
            400,
            "bad_request",
            Some("id"),
        ),
        (
            format!("/api/v1/sales/{sale}/checkout?user_id=a%20b&id=1"),
            400,
            "bad_request",
            Some("user_id"),
        ),
        (
            format!("/api/v1/sales/{sale}/checkout?user_id=a&id=999999"),
            404,
            "not_found",
            None,
        ),
        (
            format!("/api/v1/sales/{sale}/checkout?user_id=b&id={}", ids[0]),
            409,
            "item_sold",
            None,
        ),
        (
            format!("/api/v1/sales/{sale}/purchase"),
            400,
            "bad_request",
            Some("code"),
        ),
        (
            format!("/api/v1/sales/{sale}/purchase?code=ZZZZZZZZZZZZZZZZ"),
            404,
            "not_found",
            None,
        ),
        (
            format!("/api/v1/sales/{sale}/purchase?code=short"),
            404,
            "not_found",
            None,
        ),
    ];
    for (path, status, code, field) in cases {
        let (got, body) = post(&client, format!("{base}{path}")).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}");
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{path}");
        }
    }
    // Attempts that reached the sale are recorded with their outcome, failures included.
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM sale_checkout_attempts WHERE outcome = 'unknown_item'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sale_checkout_attempts WHERE outcome = 'item_sold'")
            .await,
        1
    );
    app.stop().await;

    let off = TestApp::spawn_configured(None, |c| {
        c.sales = SaleSettings {
            items: None,
            user_limit: 10,
        }
    })
    .await;
    let (status, body) = post(
        &client,
        format!("{}/api/v1/sales/1/checkout?user_id=a&id=1", off.url()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("no_active_sale"))
    );
    off.stop().await;
}

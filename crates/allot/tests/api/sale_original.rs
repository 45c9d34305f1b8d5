//! The flash sale's design checkout (seed 002) at the root path, as its clients call it
//! without a credential: one open code per user collects items, its purchase buys every one
//! still unsold, once; every error in the design's shape; and 20,000 shoppers racing for a
//! sale of 10,000 items, checked in the database.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use allot_domain::UnixMillis;
use allot_domain::sale::ItemsPerSale;
use allot_server::service::sale::SaleSettings;
use futures::StreamExt;
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::helpers::{TestApp, http};

/// 2026-11-22T10:00:00Z
const TEN: i64 = 1_795_341_600_000;
const HOUR: i64 = 3_600_000;
const MID_HOUR: UnixMillis = UnixMillis::from_millis(TEN + HOUR / 2);

async fn post(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.post(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A sale of `items` items, served to callers without a credential as the original was.
async fn spawn(now: UnixMillis, items: u32, user_limit: u32) -> TestApp {
    TestApp::spawn_configured(Some(now), |c| {
        c.sales = SaleSettings {
            items: ItemsPerSale::parse(items).ok(),
            user_limit,
        };
        c.auth.open_public_contracts = true;
    })
    .await
}

/// The current sale's item ids, in id order (read as staff).
async fn item_ids(base: &str) -> Vec<i64> {
    let client = http();
    let (_, sale) = get(&client, format!("{base}/api/v1/sales/current")).await;
    let sale = sale["id"].as_i64().unwrap();
    let mut ids = Vec::new();
    let mut cursor = 0;
    loop {
        let (_, page) = get(
            &client,
            format!("{base}/api/v1/sales/{sale}/items?limit=1000&cursor={cursor}"),
        )
        .await;
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = c,
            None => return ids,
        }
    }
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn assert_error(got: (u16, Value), status: u16, code: &str, message: &str, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(keys(&got.1), BTreeSet::from(["code", "message"]), "{what}");
    assert_eq!(got.1["code"], code, "{what}");
    assert!(
        got.1["message"].as_str().unwrap().contains(message),
        "{what}: {}",
        got.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_design_flow_collects_items_on_one_code_and_purchases_them_once() {
    let app = spawn(MID_HOUR, 10, 10).await;
    let base = app.url();
    let ids = item_ids(&base).await;
    // The original clients send no credential.
    let client = reqwest::Client::new();

    let (status, active) = get(&client, format!("{base}/sales/active")).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(
        keys(&active),
        BTreeSet::from([
            "active",
            "ended_at",
            "id",
            "items_sold",
            "started_at",
            "total_items"
        ])
    );
    assert_eq!(active["started_at"], "2026-11-22T10:00:00.000Z");
    assert_eq!(active["ended_at"], "2026-11-22T11:00:00.000Z");
    assert_eq!(
        (
            &active["total_items"],
            &active["items_sold"],
            &active["active"]
        ),
        (&Value::from(10), &Value::from(0), &Value::from(true))
    );

    // Three items, by `id` and by `item_id` (the design document's name): one code.
    let mut code = String::new();
    for (n, param) in [(1, "id"), (2, "item_id"), (3, "id")] {
        let (status, body) = post(
            &client,
            format!("{base}/checkout?user_id=user123&{param}={}", ids[n - 1]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            keys(&body),
            BTreeSet::from(["code", "items_count", "sale_ends_at"])
        );
        assert_eq!(body["items_count"], n);
        assert_eq!(body["sale_ends_at"], "2026-11-22T11:00:00.000Z");
        if n == 1 {
            code = body["code"].as_str().unwrap().to_owned();
        }
        assert_eq!(
            body["code"],
            code.as_str(),
            "the same code while it is open"
        );
    }
    // Nothing is reserved: another user checks the same item out.
    let (status, other) = post(
        &client,
        format!("{base}/checkout?user_id=other&id={}", ids[0]),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    assert_ne!(other["code"], code.as_str());

    let (status, bought) = post(&client, format!("{base}/purchase?code={code}")).await;
    assert_eq!(status, 200, "{bought}");
    assert_eq!(
        keys(&bought),
        BTreeSet::from([
            "failed_count",
            "purchased_items",
            "success",
            "total_purchased"
        ])
    );
    assert_eq!(bought["success"], true);
    assert_eq!(bought["total_purchased"], 3);
    assert_eq!(bought["failed_count"], 0);
    let items = bought["purchased_items"].as_array().unwrap();
    for (item, id) in items.iter().zip(&ids) {
        assert_eq!(keys(item), BTreeSet::from(["id", "name", "sold"]));
        assert_eq!(item["id"], id.to_string());
        assert!(!item["name"].as_str().unwrap().is_empty());
        assert_eq!(item["sold"], true);
    }
    // Decided once: the same status and body again, nothing sold twice.
    for _ in 0..2 {
        assert_eq!(
            post(&client, format!("{base}/purchase?code={code}")).await,
            (200, bought.clone())
        );
    }
    // The item the other user holds was sold meanwhile: nothing left for it.
    assert_error(
        post(
            &client,
            format!("{base}/purchase?code={}", other["code"].as_str().unwrap()),
        )
        .await,
        409,
        "item_sold",
        "already sold",
        "a code whose only item was sold",
    );
    // After a purchase the next checkout opens a new code.
    let (status, next) = post(
        &client,
        format!("{base}/checkout?user_id=user123&id={}", ids[3]),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_ne!(next["code"], code.as_str());
    assert_eq!(next["items_count"], 1);

    let (_, active) = get(&client, format!("{base}/sales/active")).await;
    assert_eq!(active["items_sold"], 3);
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM sale_items WHERE sold_to = 'user123'")
            .await,
        3
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sale_baskets WHERE purchased_at_ms IS NULL")
            .await,
        1,
        "only the new code is open"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'SaleCheckout'")
            .await,
        5
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'SalePurchased'")
            .await,
        3
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sale_checkout_attempts WHERE outcome = 'ok'")
            .await,
        5
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_design_error_has_its_status_and_message() {
    let app = spawn(UnixMillis::from_millis(TEN + HOUR - 60_000), 5, 3).await;
    let clock = app.clock.clone().unwrap();
    let base = app.url();
    let ids = item_ids(&base).await;
    let client = reqwest::Client::new();
    let checkout = |q: String| {
        let client = client.clone();
        let base = base.clone();
        async move { post(&client, format!("{base}/checkout?{q}")).await }
    };

    for (q, what) in [
        (format!("id={}", ids[0]), "no user_id"),
        ("user_id=a".to_owned(), "no item"),
        ("user_id=a&id=abc".to_owned(), "a bad id"),
        ("user_id=a&id=0".to_owned(), "id 0"),
        ("user_id=a%20b&id=1".to_owned(), "a bad user_id"),
        (
            format!("user_id=a&id={}&item_id={}", ids[0], ids[1]),
            "id and item_id differ",
        ),
        ("user_id=a&id=%FF%FE".to_owned(), "not UTF-8"),
    ] {
        let got = checkout(q).await;
        assert_error(got, 400, "validation_failed", "", what);
    }
    assert_error(
        checkout("user_id=a&id=999999".to_owned()).await,
        404,
        "item_not_found",
        "item not found",
        "an unknown item",
    );

    // The limit (3) counts purchased and checked-out items together.
    assert_eq!(checkout(format!("user_id=a&id={}", ids[0])).await.0, 200);
    assert_error(
        checkout(format!("user_id=a&id={}", ids[0])).await,
        400,
        "already_checked_out",
        "user already checked out this item",
        "the same item again",
    );
    let (_, body) = checkout(format!("user_id=a&id={}", ids[1])).await;
    let code = body["code"].as_str().unwrap().to_owned();
    let (status, body) = post(&client, format!("{base}/purchase?code={code}")).await;
    assert_eq!((status, &body["total_purchased"]), (200, &Value::from(2)));
    assert_eq!(checkout(format!("user_id=a&id={}", ids[2])).await.0, 200);
    assert_error(
        checkout(format!("user_id=a&id={}", ids[3])).await,
        400,
        "user_limit_exceeded",
        "limit",
        "2 bought and 1 on the code",
    );
    assert_error(
        checkout(format!("user_id=b&id={}", ids[0])).await,
        409,
        "item_sold",
        "item already sold",
        "a sold item",
    );

    for (q, status, code, what) in [
        ("", 400, "validation_failed", "no code"),
        ("code=", 400, "validation_failed", "an empty code"),
        (
            "code=ZZZZZZZZZZZZZZZZ",
            404,
            "checkout_not_found",
            "unknown",
        ),
        ("code=short", 404, "checkout_not_found", "malformed"),
    ] {
        let got = post(&client, format!("{base}/purchase?{q}")).await;
        assert_error(got, status, code, "", what);
    }

    // b holds a code when the hour ends: its purchase comes too late, and says so each time.
    let (_, body) = checkout(format!("user_id=b&id={}", ids[4])).await;
    let late = body["code"].as_str().unwrap().to_owned();
    clock.set(UnixMillis::from_millis(TEN + HOUR));
    for _ in 0..2 {
        assert_error(
            post(&client, format!("{base}/purchase?code={late}")).await,
            409,
            "sale_over",
            "sale has ended",
            "a purchase after the sale",
        );
    }
    assert_error(
        checkout(format!("user_id=b&id={}", ids[4])).await,
        400,
        "item_not_in_current_sale",
        "item not in current sale",
        "an item of the last sale",
    );
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM sale_items WHERE sold_to IS NOT NULL")
            .await,
        2
    );
    // Every attempt that reached a sale is kept with its outcome.
    let outcomes: HashMap<String, i64> = db
        .strings("SELECT outcome || ' ' || count(*) FROM sale_checkout_attempts GROUP BY outcome")
        .await
        .into_iter()
        .map(|s| {
            let (o, n) = s.split_once(' ').unwrap();
            (o.to_owned(), n.parse().unwrap())
        })
        .collect();
    let expected: HashMap<String, i64> = [
        ("ok", 4),
        ("unknown_item", 1),
        ("already_checked_out", 1),
        ("user_limit_reached", 1),
        ("item_sold", 1),
        ("not_in_current_sale", 1),
    ]
    .into_iter()
    .map(|(o, n)| (o.to_owned(), n))
    .collect();
    assert_eq!(outcomes, expected);
    app.stop().await;

    let off = TestApp::spawn_configured(None, |c| {
        c.sales = SaleSettings {
            items: None,
            user_limit: 10,
        };
        c.auth.open_public_contracts = true;
    })
    .await;
    assert_error(
        post(&client, format!("{}/checkout?user_id=a&id=1", off.url())).await,
        404,
        "sale_not_found",
        "sale not found",
        "flash sales off",
    );
    assert_error(
        get(&client, format!("{}/sales/active", off.url())).await,
        404,
        "sale_not_found",
        "sale not found",
        "no active sale",
    );
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_sells_what_is_left_and_decides_once_however_often_it_is_called() {
    let app = spawn(MID_HOUR, 10, 10).await;
    let base = app.url();
    let ids = item_ids(&base).await;
    let client = reqwest::Client::new();
    // a holds items 0, 1, 2; b buys item 1 first.
    let mut code = String::new();
    for id in &ids[..3] {
        let (_, body) = post(&client, format!("{base}/checkout?user_id=a&id={id}")).await;
        code = body["code"].as_str().unwrap().to_owned();
    }
    let (_, body) = post(&client, format!("{base}/checkout?user_id=b&id={}", ids[1])).await;
    let (status, body) = post(
        &client,
        format!("{base}/purchase?code={}", body["code"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, &body["total_purchased"]), (200, &Value::from(1)));

    // Twenty concurrent purchases of a's code: one decision, answered to all alike.
    let tasks = (0..20).map(|_| {
        let (client, url) = (client.clone(), format!("{base}/purchase?code={code}"));
        tokio::spawn(async move { post(&client, url).await })
    });
    let answers: Vec<(u16, Value)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let first = answers[0].clone();
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    assert_eq!(first.0, 200);
    assert_eq!(first.1["success"], true);
    assert_eq!(first.1["total_purchased"], 2);
    assert_eq!(first.1["failed_count"], 1, "item 1 went to b meanwhile");
    let sold: Vec<&Value> = first.1["purchased_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["id"])
        .collect();
    assert_eq!(
        sold,
        [
            &Value::from(ids[0].to_string()),
            &Value::from(ids[2].to_string())
        ]
    );
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM sale_items WHERE sold_to IS NOT NULL")
            .await,
        3
    );
    assert_eq!(db.count("SELECT sold FROM sales").await, 3);
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'SalePurchased'")
            .await,
        3
    );
    app.stop().await;
}

/// Who races, and how.
struct Race<'a> {
    /// Instances sharing one database; shoppers are spread over them.
    apps: &'a [&'a TestApp],
    items: usize,
    shoppers: usize,
    /// Distinct users: fewer than shoppers makes shoppers of one user race each other (on
    /// one open code, against the limit), and then not every item need sell.
    users: usize,
    in_flight: usize,
    limit: i64,
}

/// Shoppers racing for a whole sale: each checks out 1 to 3 items (from one shuffled walk of
/// the items, so that every item is wanted by several shoppers and none is left out) and
/// purchases its code, `in_flight` shoppers at a time. Then the database is checked: no item
/// sold twice, the sold counter equal to the rows, nobody above the limit, every checkout
/// attempt kept, every code decided, and the items sold exactly those clients saw bought.
/// Answers the items sold.
async fn race(r: Race<'_>) -> usize {
    let bases: Vec<String> = r.apps.iter().map(|a| a.url()).collect();
    let mut ids = item_ids(&bases[0]).await;
    assert_eq!(ids.len(), r.items);
    ids.shuffle(&mut rand::rng());
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    // Staff, as a shop's backend would call: anonymous callers are rate limited per address.
    let client = crate::helpers::client_builder()
        .pool_max_idle_per_host(r.in_flight)
        .build()
        .unwrap();
    let users = r.users;
    let purchases = futures::stream::iter(0..r.shoppers)
        .map(|s| {
            let (client, base, ids, next, attempts) = (
                client.clone(),
                bases[s % bases.len()].clone(),
                ids.clone(),
                next.clone(),
                attempts.clone(),
            );
            async move {
                let user = format!("shopper-{}", s % users);
                let wants = rand::rng().random_range(1..=3);
                let mut code: Option<String> = None;
                for _ in 0..wants {
                    let id = ids[next.fetch_add(1, Ordering::Relaxed) % ids.len()];
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let (status, body) =
                        post(&client, format!("{base}/checkout?user_id={user}&id={id}")).await;
                    match (status, body["code"].as_str()) {
                        (200, Some(c)) => code = Some(c.to_owned()),
                        (409, Some("item_sold")) => {}
                        // Another shopper of the same user: the limit, or the item on the
                        // code they share.
                        (400, Some("user_limit_exceeded" | "already_checked_out")) => {}
                        _ => panic!("checkout answered {status} {body}"),
                    }
                }
                let code = code?;
                let (status, body) = post(&client, format!("{base}/purchase?code={code}")).await;
                match (status, body["code"].as_str()) {
                    (200, _) => {
                        let items: Vec<(String, i64)> = body["purchased_items"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|i| (user.clone(), i["id"].as_str().unwrap().parse().unwrap()))
                            .collect();
                        Some((code, items))
                    }
                    (409, Some("item_sold")) => None,
                    _ => panic!("purchase answered {status} {body}"),
                }
            }
        })
        .buffer_unordered(r.in_flight)
        .filter_map(|p| async move { p })
        .collect::<Vec<(String, Vec<(String, i64)>)>>()
        .await;
    // Shoppers of one user share its open code: each purchase of a code answers alike.
    let mut by_code: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (code, items) in purchases {
        let first = by_code.entry(code).or_insert_with(|| items.clone());
        assert_eq!(*first, items, "a code answered two outcomes");
    }
    let seen: Vec<(String, i64)> = by_code.into_values().flatten().collect();
    let seen_items: HashSet<i64> = seen.iter().map(|(_, i)| *i).collect();
    assert_eq!(seen_items.len(), seen.len(), "an item was sold twice");

    let db = r.apps[0].db().await;
    crate::invariants::assert_invariants(&db).await;
    let sold_rows = db
        .count("SELECT count(*) FROM sale_items WHERE sold_to IS NOT NULL")
        .await;
    assert_eq!(sold_rows, seen.len() as i64, "the items clients saw sold");
    assert_eq!(db.count("SELECT sold FROM sales").await, sold_rows);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM (SELECT sold_to FROM sale_items WHERE sold_to IS NOT NULL \
             GROUP BY sold_to HAVING count(*) > {}) AS over_limit",
            r.limit
        ))
        .await,
        0,
        "a user bought more than the limit"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sale_checkout_attempts")
            .await,
        attempts.load(Ordering::Relaxed) as i64,
        "every checkout attempt is kept"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sale_baskets WHERE purchased_at_ms IS NULL")
            .await,
        0,
        "every code was decided"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sale_basket_items WHERE outcome = 'sold'")
            .await,
        sold_rows
    );
    let sold: HashMap<i64, String> = db
        .strings("SELECT id || ' ' || sold_to FROM sale_items WHERE sold_to IS NOT NULL")
        .await
        .into_iter()
        .map(|s| {
            let (id, user) = s.split_once(' ').unwrap();
            (id.parse().unwrap(), user.to_owned())
        })
        .collect();
    for (user, item) in &seen {
        assert_eq!(sold.get(item), Some(user), "a purchase the client saw");
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_shoppers_buy_exactly_the_ten_thousand_items_of_a_sale() {
    let app = spawn(MID_HOUR, 10_000, 10).await;
    let started = std::time::Instant::now();
    let sold = race(Race {
        apps: &[&app],
        items: 10_000,
        shoppers: 20_000,
        users: 20_000,
        in_flight: 256,
        limit: 10,
    })
    .await;
    assert_eq!(sold, 10_000, "every item sold");
    eprintln!("20,000 shoppers: {:?}", started.elapsed());
    app.stop().await;
}

/// Shoppers of one user arriving at once, on three instances sharing one PostgreSQL (on
/// SQLite, which one instance owns, on that one): one open code per user and the limit
/// (counting checked-out items) hold, whichever instance serves each call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shoppers_of_one_user_on_three_instances_share_one_code_and_the_limit() {
    let first = spawn(MID_HOUR, 1_000, 4).await;
    let mut others = Vec::new();
    if first.database.is_some() {
        for _ in 0..2 {
            others.push(
                TestApp::spawn_on(first.database.clone(), MID_HOUR, |c| {
                    c.sales = SaleSettings {
                        items: ItemsPerSale::parse(1_000).ok(),
                        user_limit: 4,
                    };
                })
                .await,
            );
        }
    }
    let apps: Vec<&TestApp> = std::iter::once(&first).chain(&others).collect();
    let sold = race(Race {
        apps: &apps,
        items: 1_000,
        shoppers: 3_000,
        users: 200,
        in_flight: 96,
        limit: 4,
    })
    .await;
    assert!(sold > 0);
    for app in others {
        app.stop().await;
    }
    first.stop().await;
}

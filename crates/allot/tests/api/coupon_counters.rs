//! The coupon counters stay exact under concurrent allocations and redemptions. On PostgreSQL
//! each type's counters are spread over 16 slots (migration 0031): every transaction adds to
//! the slot of its connection and the readers add the slots up.

use allot_testkit::PgCluster;
use serde_json::{Value, json};

use crate::helpers::{AppDb, TestApp, backend, http};

const FUTURE: &str = "2030-01-01T00:00:00Z";

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Sends every `(base, path, body)` at once; answers the statuses and bodies in order.
async fn all_at_once(client: &reqwest::Client, calls: Vec<(String, Value)>) -> Vec<(u16, Value)> {
    let tasks = calls.into_iter().map(|(url, body)| {
        let client = client.clone();
        tokio::spawn(async move { post(&client, url, body).await })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// The statistics' counters of each type (`NONE` for untyped coupons).
async fn stats(client: &reqwest::Client, base: &str) -> Vec<(String, [i64; 3])> {
    let stats: Value = client
        .get(format!("{base}/api/v1/coupons/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_i64().unwrap();
            (
                t["type"].as_str().unwrap_or("NONE").to_owned(),
                [n("created"), n("allocated"), n("redeemed")],
            )
        })
        .collect()
}

/// Each type's counters as the rows count them.
async fn from_rows(db: &AppDb) -> Vec<(String, [i64; 3])> {
    let mut out = Vec::new();
    for t in ["NONE", "FREE", "STANDARD", "MEGADEAL"] {
        let of = |table: &str| {
            format!("SELECT count(*) FROM {table} WHERE COALESCE(type, 'NONE') = '{t}'")
        };
        out.push((
            t.to_owned(),
            [
                db.count(&of("coupons")).await,
                db.count(&of("coupon_allocations")).await,
                db.count(&format!(
                    "{} AND reversed_at_ms IS NULL",
                    of("coupon_redemptions")
                ))
                .await,
            ],
        ));
    }
    out
}

/// Each type's counters as the counters' table sums them (as the tests read it on both).
async fn from_counters(db: &AppDb) -> Vec<(String, [i64; 3])> {
    let mut out = Vec::new();
    for t in ["NONE", "FREE", "STANDARD", "MEGADEAL"] {
        let sum = |c: &str| {
            format!("SELECT CAST(SUM({c}) AS BIGINT) FROM coupon_counters WHERE type = '{t}'")
        };
        out.push((
            t.to_owned(),
            [
                db.count(&sum("created")).await,
                db.count(&sum("allocated")).await,
                db.count(&sum("redeemed")).await,
            ],
        ));
    }
    out
}

fn sorted(mut v: Vec<(String, [i64; 3])>) -> Vec<(String, [i64; 3])> {
    v.sort();
    v
}

/// 300 users race for 240 STANDARD coupons and 60 for 40 untyped ones, the holders redeem
/// theirs twice at once (one more try each past the last use), through two instances on
/// PostgreSQL (each with connections, so slots, of its own): every counter equals what the
/// rows say, in the statistics and in the table's sums. On PostgreSQL a count moved from one
/// slot to others still reads as its sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_stay_exact_under_concurrent_allocations_and_redemptions() {
    let pg = (backend() == "postgres").then(PgCluster::start);
    let mut apps = Vec::new();
    match &pg {
        Some(pg) => {
            for _ in 0..2 {
                apps.push(TestApp::spawn_sharing(Some(pg.url()), |_| {}).await);
            }
        }
        None => apps.push(TestApp::spawn().await),
    }
    let bases: Vec<String> = apps.iter().map(TestApp::url).collect();
    let base = |i: usize| bases[i % bases.len()].clone();
    let client = http();

    let mut coupons: Vec<Value> = (0..240)
        .map(|i| {
            json!({"code": format!("std-{i:03}"), "type": "STANDARD", "discount_kind": "FLAT",
                   "discount_amount": 5, "expires_at": FUTURE, "max_uses": 2})
        })
        .collect();
    coupons.extend((0..40).map(|i| {
        json!({"code": format!("any-{i:02}"), "discount_kind": "FLAT", "discount_amount": 5,
               "expires_at": FUTURE, "max_uses": 1})
    }));
    let (status, _) = post(
        &client,
        format!("{}/api/v1/coupons", base(0)),
        json!({ "coupons": coupons }),
    )
    .await;
    assert_eq!(status, 201);

    // Allocations: typed and untyped at once.
    let mut calls: Vec<(String, Value)> = (0..300)
        .map(|i| {
            (
                format!("{}/api/v1/coupons/requests", base(i)),
                json!({"user_id": format!("s{i}"), "type": "STANDARD"}),
            )
        })
        .collect();
    calls.extend((0..60).map(|i| {
        (
            format!("{}/api/v1/coupons/requests", base(i)),
            json!({"user_id": format!("n{i}")}),
        )
    }));
    let mut held: Vec<(String, String)> = Vec::new();
    let mut none = 0;
    for (i, (status, body)) in all_at_once(&client, calls).await.into_iter().enumerate() {
        match status {
            200 => {
                let user = if i < 300 {
                    format!("s{i}")
                } else {
                    format!("n{}", i - 300)
                };
                held.push((user, body["coupon"]["code"].as_str().unwrap().to_owned()));
            }
            409 => {
                assert_eq!(body["error"]["code"], "no_coupon_available");
                none += 1;
            }
            other => panic!("unexpected {other} {body}"),
        }
    }
    assert_eq!((held.len(), none), (280, 80));

    // Redemptions: each holder three times at once; a STANDARD coupon has two uses, an
    // untyped one has one.
    let calls: Vec<(String, Value)> = held
        .iter()
        .enumerate()
        .flat_map(|(i, (user, code))| {
            (0..3).map(move |k| {
                (
                    format!("{}/api/v1/coupons/{code}/redeem", base(i + k)),
                    json!({ "user_id": user }),
                )
            })
        })
        .collect();
    let answers = all_at_once(&client, calls).await;
    let redeemed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 409 && b["error"]["code"] == "exhausted"),
        "a redemption failed otherwise than exhausted"
    );
    assert_eq!(redeemed, 240 * 2 + 40);

    let db = apps[0].db().await;
    crate::invariants::assert_invariants(&db).await;
    let want = vec![
        ("FREE".to_owned(), [0, 0, 0]),
        ("MEGADEAL".to_owned(), [0, 0, 0]),
        ("NONE".to_owned(), [40, 40, 40]),
        ("STANDARD".to_owned(), [240, 240, 480]),
    ];
    assert_eq!(sorted(from_rows(&db).await), want);
    assert_eq!(sorted(from_counters(&db).await), want);
    for b in &bases {
        assert_eq!(
            sorted(stats(&client, b).await),
            want,
            "the statistics of {b}"
        );
    }

    if let AppDb::Postgres(pg_db) = &db {
        // How the load spread (shown, not asserted: it depends on which connections served).
        let used = db
            .count(
                "SELECT count(*) FROM coupon_counters
                 WHERE type = 'STANDARD' AND (allocated <> 0 OR redeemed <> 0)",
            )
            .await;
        eprintln!("STANDARD's counts spread over {used} of 16 slots");
        assert_eq!(
            db.count("SELECT count(*) FROM coupon_counters").await,
            4 * 16,
            "every type has its 16 slots"
        );
        // A count moved across slots (as when a use counted in one slot is given back in
        // another) reads as its sum: slot 3 below zero, the rest elsewhere.
        pg_db
            .batch_execute(
                "UPDATE coupon_counters SET redeemed = redeemed - 500, allocated = allocated - 7
                 WHERE type = 'STANDARD' AND slot = 3;
                 UPDATE coupon_counters SET redeemed = redeemed + 250
                 WHERE type = 'STANDARD' AND slot IN (5, 15);
                 UPDATE coupon_counters SET allocated = allocated + 7
                 WHERE type = 'STANDARD' AND slot = 5;",
            )
            .await
            .unwrap();
        assert_eq!(sorted(from_counters(&db).await), want);
        for b in &bases {
            assert_eq!(
                sorted(stats(&client, b).await),
                want,
                "the statistics of {b}"
            );
        }
        crate::invariants::assert_invariants(&db).await;
    }
    for app in apps {
        app.stop().await;
    }
}

/// Migration 0031 on a database of 0029: the counts so far carry over exactly (in slot 0 on
/// PostgreSQL, with 15 empty slots beside it per type; SQLite keeps its row per type).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0031_carries_the_counts_over() {
    use allot_storage::migrations::MIGRATIONS;
    const SET: &str = "UPDATE coupon_counters SET created = 10, allocated = 7, redeemed = 5,
                           purged = 2 WHERE type = 'STANDARD';
                       UPDATE coupon_counters SET created = 3, allocated = 1, redeemed = 1,
                           purged = 0 WHERE type = 'NONE';";
    const READ: &str = "SELECT type || ':' || CAST(SUM(created) AS TEXT) || ','
                            || CAST(SUM(allocated) AS TEXT) || ','
                            || CAST(SUM(redeemed) AS TEXT) || ',' || CAST(SUM(purged) AS TEXT)
                        FROM coupon_counters GROUP BY type ORDER BY type";
    const WANT: &str = "FREE:0,0,0,0,MEGADEAL:0,0,0,0,NONE:3,1,1,0,STANDARD:10,7,5,2";
    let before = MIGRATIONS.iter().filter(|m| m.version < 31);
    let m31 = MIGRATIONS.iter().find(|m| m.version == 31).unwrap();
    if backend() == "postgres" {
        let pg = PgCluster::start();
        let db = allot_storage::postgres::connect(&pg.url()).await.unwrap();
        for m in before {
            db.batch_execute(m.postgres).await.unwrap();
        }
        db.batch_execute(SET).await.unwrap();
        db.batch_execute(m31.postgres).await.unwrap();
        let all = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(all(db.query(READ, &[]).await.unwrap()), WANT);
        let slot0 = "SELECT type || ':' || CAST(created AS TEXT) || ',' || CAST(allocated AS TEXT)
                     FROM coupon_counters WHERE slot = 0 ORDER BY type";
        assert_eq!(
            all(db.query(slot0, &[]).await.unwrap()),
            "FREE:0,0,MEGADEAL:0,0,NONE:3,1,STANDARD:10,7"
        );
        let slots = db
            .query_one(
                "SELECT count(*), count(DISTINCT (type, slot)) FROM coupon_counters",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((slots.get::<_, i64>(0), slots.get::<_, i64>(1)), (64, 64));
        // The slot a transaction writes is one of them, the same within the transaction.
        let slot = db
            .query_one(
                "SELECT coupon_counter_slot(), coupon_counter_slot(), pg_backend_pid() % 16",
                &[],
            )
            .await
            .unwrap();
        let (a, b, pid): (i16, i16, i32) = (slot.get(0), slot.get(1), slot.get(2));
        assert_eq!((a, b), (pid as i16, pid as i16));
    } else {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for m in before {
            db.execute_batch(m.sqlite).unwrap();
        }
        db.execute_batch(SET).unwrap();
        db.execute_batch(m31.sqlite).unwrap();
        let mut stmt = db.prepare(READ).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        let got = rows.map(Result::unwrap).collect::<Vec<_>>().join(",");
        assert_eq!(got, WANT);
    }
}

//! What was acknowledged survives a restart and a SIGKILL of the `allot` process, on the
//! suite's backend: on PostgreSQL the database keeps running while `allot` restarts.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};

use crate::helpers::{ProcessBackend, channel, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_their_used_state_survive_a_restart() {
    let backend = ProcessBackend::new();
    let mut server = backend.start();
    let client = http();
    let body: serde_json::Value = client
        .post(format!("{}/api/v1/discount-codes/batches", server.url()))
        .json(&serde_json::json!({"count": 10, "length": 8}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: Vec<String> = body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let used = client
        .post(format!(
            "{}/api/v1/discount-codes/{}/use",
            server.url(),
            codes[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    server.stop();

    let server = backend.start();
    let mut grpc = DiscountClient::new(channel(server.addr).await);
    let again = grpc
        .use_code(UseCodeRequest {
            code: codes[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.result, [2], "a used code stays used across a restart");
    for code in &codes[1..] {
        let first = grpc
            .use_code(UseCodeRequest { code: code.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            first.result,
            [0],
            "an unused code survives a restart unused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_generate_or_use() {
    let backend = ProcessBackend::new();
    let mut server = backend.start();
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..16u32 {
        let stop = stop.clone();
        let mut client = DiscountClient::new(channel(addr).await);
        clients.push(tokio::spawn(async move {
            let mut generated = Vec::new();
            let mut used = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(response) = client
                    .generate(GenerateRequest {
                        count: 1 + (i * 7) % 50,
                        length: vec![8],
                    })
                    .await
                else {
                    break;
                };
                let response = response.into_inner();
                assert!(response.result);
                let first = response.codes[0].clone();
                generated.extend(response.codes);
                match client
                    .use_code(UseCodeRequest {
                        code: first.clone(),
                    })
                    .await
                {
                    Ok(r) => {
                        assert_eq!(r.into_inner().result, [0]);
                        used.push(first);
                    }
                    Err(_) => break,
                }
            }
            (generated, used)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);

    let mut generated = HashSet::new();
    let mut used = HashSet::new();
    for c in clients {
        let (g, u) = c.await.unwrap();
        generated.extend(g);
        used.extend(u);
    }
    assert!(
        generated.len() >= 100 && used.len() >= 10,
        "too little work before the kill to prove anything: {} generated, {} used",
        generated.len(),
        used.len()
    );

    // Restarting recovers the write-ahead log (SQLite); PostgreSQL committed before answering.
    let server = backend.start();
    let db = backend.db().await;
    crate::invariants::assert_invariants(&db).await;
    crate::told_events::assert_each_row_once(&db).await;
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .await
        .into_iter()
        .collect();
    let lost: Vec<_> = generated.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged codes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let stored_used: HashSet<String> = db
        .strings("SELECT code FROM discount_codes WHERE used_at_ms IS NOT NULL")
        .await
        .into_iter()
        .collect();
    let unused: Vec<_> = used.difference(&stored_used).collect();
    assert!(unused.is_empty(), "{} acknowledged uses lost", unused.len());

    // And the server carries on.
    let mut grpc = DiscountClient::new(channel(server.addr).await);
    let some_used = used.iter().next().unwrap().clone();
    let again = grpc
        .use_code(UseCodeRequest { code: some_used })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.result, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let backend = ProcessBackend::new();
    let mut server = backend.start();
    let channel = channel(server.addr).await;
    // Requests in flight when the signal arrives must all be answered and kept.
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let mut client = DiscountClient::new(channel.clone());
            tokio::spawn(async move {
                client
                    .generate(GenerateRequest {
                        count: 2000,
                        length: vec![8],
                    })
                    .await
                    .map(|r| r.into_inner().codes)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stop = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    });
    let mut answered = Vec::new();
    for c in calls {
        if let Ok(codes) = c.await.unwrap() {
            answered.extend(codes);
        }
    }
    let _server = stop.await.unwrap();
    assert!(!answered.is_empty(), "no request was in flight");
    let _server = backend.start();
    let db = backend.db().await;
    crate::invariants::assert_invariants(&db).await;
    crate::told_events::assert_each_row_once(&db).await;
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .await
        .into_iter()
        .collect();
    assert!(
        answered.iter().all(|c| stored.contains(c)),
        "an answered code was not kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_purchase_or_redemption() {
    let backend = ProcessBackend::new();
    let flags = ["--sale-items", "5000", "--sale-user-limit", "1000"];
    let mut server = backend.start_with(&flags);
    let base = server.url();
    let client = crate::helpers::http();
    let coupons: Vec<serde_json::Value> = (0..5_000)
        .map(|i| serde_json::json!({"code": format!("k-{i}"), "discount_kind": "FLAT", "discount_amount": 1,
                                    "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1}))
        .collect();
    let r = client
        .post(format!("{base}/api/v1/coupons"))
        .json(&serde_json::json!({"coupons": coupons}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sale: serde_json::Value = client
        .get(format!("{base}/api/v1/sales/current"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sale_id = sale["id"].as_i64().unwrap();
    let first_item = {
        let page: serde_json::Value = client
            .get(format!("{base}/api/v1/sales/{sale_id}/items?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"][0]["id"].as_i64().unwrap()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..32i64 {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut purchased = Vec::new();
            let mut redeemed = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) && i < 5_000 {
                let user = format!("crash-{w}");
                let Ok(r) = client
                    .post(format!(
                        "{base}/api/v1/sales/{sale_id}/checkout?user_id={user}&id={}",
                        first_item + i
                    ))
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == 200 {
                    let code = r.json::<serde_json::Value>().await.unwrap()["code"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    match client
                        .post(format!(
                            "{base}/api/v1/sales/{sale_id}/purchase?code={code}"
                        ))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            purchased.push((first_item + i, user.clone()))
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                match client
                    .post(format!("{base}/api/v1/coupons/k-{i}/redeem"))
                    .json(&serde_json::json!({"user_id": user}))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => redeemed.push(format!("K-{i}")),
                    Ok(_) => {}
                    Err(_) => break,
                }
                i += 32;
            }
            (purchased, redeemed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut purchased = Vec::new();
    let mut redeemed = Vec::new();
    for t in tasks {
        let (p, r) = t.await.unwrap();
        purchased.extend(p);
        redeemed.extend(r);
    }
    assert!(
        purchased.len() >= 20 && redeemed.len() >= 20,
        "too little before the kill: {} {}",
        purchased.len(),
        redeemed.len()
    );

    let _server = backend.start_with(&flags);
    let db = backend.db().await;
    crate::invariants::assert_invariants_with(&db, 1000).await;
    crate::told_events::assert_each_row_once(&db).await;
    for (item, user) in &purchased {
        assert_eq!(
            db.strings(&format!("SELECT sold_to FROM sale_items WHERE id = {item}"))
                .await,
            vec![user.clone()],
            "an acknowledged purchase was lost"
        );
    }
    for code in &redeemed {
        assert_eq!(
            db.count(&format!("SELECT uses FROM coupons WHERE code = '{code}'"))
                .await,
            1,
            "an acknowledged redemption was lost"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM coupon_redemptions WHERE code = '{code}'"
            ))
            .await,
            1
        );
    }
    // Counts agree with the rows after recovery.
    assert_eq!(
        db.count("SELECT sum(sold) FROM sales").await,
        db.count("SELECT count(*) FROM sale_items WHERE sold_to IS NOT NULL")
            .await
    );
    assert_eq!(
        db.count("SELECT CAST(SUM(redeemed) AS BIGINT) FROM coupon_counters WHERE type = 'NONE'")
            .await,
        db.count("SELECT count(*) FROM coupon_redemptions").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_load_holds_everything_acknowledged_before_it() {
    // SQLite in both runs: `allot admin backup` copies the embedded SQLite database (VACUUM
    // INTO) out of the data directory; a PostgreSQL database is backed up with its own tools.
    let backend = ProcessBackend::sqlite();
    let data = backend.data_dir.clone();
    let server = backend.start();
    let mut client = DiscountClient::new(channel(server.addr).await);
    let before = client
        .generate(GenerateRequest {
            count: 2000,
            length: vec![8],
        })
        .await
        .unwrap()
        .into_inner()
        .codes;
    // Writes keep going while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let mut client = client.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client
                    .generate(GenerateRequest {
                        count: 500,
                        length: vec![7],
                    })
                    .await
                    .unwrap();
            }
        })
    };
    let out = data.parent().unwrap().join("backup.db");
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["admin", "backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(String::from_utf8_lossy(&result.stdout).contains("integrity ok"));

    let copy = rusqlite::Connection::open(&out).unwrap();
    let in_copy: HashSet<String> = copy
        .prepare("SELECT code FROM discount_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        before.iter().all(|c| in_copy.contains(c)),
        "the backup misses codes acknowledged before it"
    );

    // Never overwrites a file.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["admin", "backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

/// On SQLite a key claimed by a server that was killed before answering is given up when the
/// next server opens the data directory (no other process can hold it: the directory is
/// locked): the retry is served at once, not answered `idempotency_key_in_use` for a minute.
/// The claims are made by MEGADEAL requests waiting for admission (10 a second) when the
/// server is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_left_by_a_killed_server_does_not_hold_its_retry_on_sqlite() {
    let backend = ProcessBackend::sqlite();
    let mut server = backend.start();
    let client = http();
    let url = format!("{}/api/v1/coupons/requests", server.url());
    let waiting: Vec<_> = (0..60)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("Idempotency-Key", format!("mega-{i}"))
                    .json(&serde_json::json!({"user_id": format!("u{i}"), "type": "MEGADEAL"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill9();
    let mut unanswered = Vec::new();
    for (i, w) in waiting.into_iter().enumerate() {
        if w.await.unwrap().is_err() {
            unanswered.push(i);
        }
    }
    assert!(
        unanswered.len() >= 20,
        "only {} requests were still waiting",
        unanswered.len()
    );

    let server = backend.start();
    let url = format!("{}/api/v1/coupons/requests", server.url());
    for i in unanswered {
        let r = client
            .post(&url)
            .header("Idempotency-Key", format!("mega-{i}"))
            .json(&serde_json::json!({"user_id": format!("u{i}"), "type": "MEGADEAL"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert_ne!(
            body["error"]["code"], "idempotency_key_in_use",
            "request {i}: the dead server's claim held the retry ({status})"
        );
    }
}

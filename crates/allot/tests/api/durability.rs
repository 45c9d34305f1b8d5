//! What was acknowledged survives a restart and a SIGKILL.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use tempfile::TempDir;

use crate::helpers::{Db, ServerProcess, channel, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_their_used_state_survive_a_restart() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data);
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

    let server = ServerProcess::start(&data);
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
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data);
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

    // Restarting recovers the write-ahead log.
    let server = ServerProcess::start(&data);
    let db = Db::open(&data);
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
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
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data);
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
    let server = ServerProcess::start(&data);
    let db = Db::open(&server.data_dir);
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .into_iter()
        .collect();
    assert!(
        answered.iter().all(|c| stored.contains(c)),
        "an answered code was not kept"
    );
}

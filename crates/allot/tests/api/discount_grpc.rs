//! Discount codes over the original gRPC contract.

use std::collections::HashSet;

use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};

use crate::helpers::{TestApp, channels};

fn well_formed(code: &str, len: usize) -> bool {
    code.len() == len
        && code
            .bytes()
            .all(|b| allot_domain::discount::ALPHABET.contains(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_generate_calls_return_distinct_well_formed_codes() {
    let app = TestApp::spawn().await;
    let channels = channels(app.addr, 8).await;
    let calls = (0..64).map(|i| {
        let mut client = DiscountClient::new(channels[i % channels.len()].clone());
        tokio::spawn(async move {
            client
                .generate(GenerateRequest {
                    count: 2000,
                    length: vec![8],
                })
                .await
                .expect("generate succeeds")
                .into_inner()
        })
    });
    let mut all = HashSet::new();
    for call in futures::future::join_all(calls).await {
        let response = call.unwrap();
        assert!(response.result);
        assert_eq!(response.codes.len(), 2000);
        for code in response.codes {
            assert!(well_formed(&code, 8), "malformed code {code:?}");
            assert!(all.insert(code), "a code was handed out twice");
        }
    }
    assert_eq!(all.len(), 128_000);

    let db = app.db().await;
    assert_eq!(
        db.count("SELECT count(*) FROM discount_codes").await,
        128_000
    );
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        stored, all,
        "the database holds exactly the codes handed out"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_symbol_codes_are_generated_too() {
    let app = TestApp::spawn().await;
    let mut client = app.discount().await;
    let response = client
        .generate(GenerateRequest {
            count: 500,
            length: vec![7],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.result);
    assert_eq!(response.codes.len(), 500);
    assert!(response.codes.iter().all(|c| well_formed(c, 7)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_of_one_code_succeed_exactly_once() {
    let app = TestApp::spawn().await;
    let mut client = app.discount().await;
    let code = client
        .generate(GenerateRequest {
            count: 1,
            length: vec![8],
        })
        .await
        .unwrap()
        .into_inner()
        .codes
        .remove(0);

    let channels = channels(app.addr, 8).await;
    let uses = (0..32).map(|i| {
        let mut client = DiscountClient::new(channels[i % channels.len()].clone());
        let code = code.clone();
        tokio::spawn(async move {
            client
                .use_code(UseCodeRequest { code })
                .await
                .expect("use answers")
                .into_inner()
                .result
        })
    });
    let mut results = Vec::new();
    for r in futures::future::join_all(uses).await {
        results.push(r.unwrap());
    }
    let used_now = results.iter().filter(|r| r.as_slice() == [0]).count();
    let already = results.iter().filter(|r| r.as_slice() == [2]).count();
    assert_eq!((used_now, already), (1, 31), "results: {results:?}");
    assert_eq!(
        app.db().await.count(&format!(
            "SELECT count(*) FROM discount_codes WHERE code = '{code}' AND used_at_ms IS NOT NULL"
        )).await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_generate_input_answers_false_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.discount().await;
    let bad: &[(u32, &[u8])] = &[
        (0, &[8]),
        (2001, &[8]),
        (65_536 + 500, &[8]),
        (u32::MAX, &[7]),
        (10, &[]),
        (10, &[7, 8]),
        (10, &[0, 8]),
        (10, &[6]),
        (10, &[9]),
        (10, &[0]),
        (10, b"8"),
    ];
    for (count, length) in bad {
        let response = client
            .generate(GenerateRequest {
                count: *count,
                length: length.to_vec(),
            })
            .await
            .expect("bad input is an answer, not an error")
            .into_inner();
        assert!(
            !response.result,
            "count {count}, length {length:?} was accepted"
        );
        assert!(response.codes.is_empty());
    }
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM discount_code_batches").await,
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_code_trims_upper_cases_and_tells_invalid_from_used() {
    let app = TestApp::spawn().await;
    let mut client = app.discount().await;
    let code = client
        .generate(GenerateRequest {
            count: 1,
            length: vec![7],
        })
        .await
        .unwrap()
        .into_inner()
        .codes
        .remove(0);
    let mut use_code = async |raw: String| {
        client
            .use_code(UseCodeRequest { code: raw })
            .await
            .unwrap()
            .into_inner()
            .result
    };
    assert_eq!(use_code(format!("  {}\t", code.to_lowercase())).await, [0]);
    assert_eq!(use_code(code.clone()).await, [2]);
    for bad in [
        "",
        "ABC",
        "ABCDEFGHJK",
        "ABCDEF0",
        "ABCDEF1",
        "ÅBCDEFG",
        "ZZZZZZZ",
    ] {
        assert_eq!(use_code(bad.to_owned()).await, [1], "{bad:?}");
    }
    app.stop().await;
}

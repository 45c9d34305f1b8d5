//! Campaign issuance over gRPC, Connect and REST: exactly N, on time, every error its status.

use std::collections::HashSet;

use allot_domain::UnixMillis;
use allot_domain::campaign::CouponCode;
use allot_server::pb::couponpb::{
    CreateCampaignRequest, GetCampaignRequest, IssueCouponRequest, IssueCouponResponse,
};
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{
    TestApp, channels, connect_json, coupon_client, http, open_campaign, race_for_campaign,
    timestamp,
};

/// 2026-11-22T10:00:00Z
const START_MS: i64 = 1_795_341_600_000;

fn assert_code(code: &str) {
    assert!(CouponCode::parse(code).is_ok(), "malformed code {code:?}");
    assert!(code.chars().count() <= 10);
}

/// Checks the campaign against what clients received: exactly `total` distinct codes, all in
/// GetCampaign in issue order, all in the database.
async fn check_exactly(app: &TestApp, id: i64, total: usize, received: &[String]) {
    let distinct: HashSet<&String> = received.iter().collect();
    assert_eq!(
        received.len(),
        total,
        "clients received a code count other than total"
    );
    assert_eq!(distinct.len(), total, "a code was handed out twice");
    received.iter().for_each(|c| assert_code(c));

    let mut client = coupon_client(app.channel().await);
    let got = client
        .get_campaign(GetCampaignRequest { campaign_id: id })
        .await
        .unwrap()
        .into_inner();
    let listed: HashSet<&String> = got.coupon_codes.iter().collect();
    assert_eq!(got.coupon_codes.len(), total);
    assert_eq!(
        listed, distinct,
        "GetCampaign lists exactly the codes handed out"
    );
    assert_eq!(got.campaign.unwrap().issued_coupons, total as i64);

    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM campaign_coupons WHERE campaign_id = {id}"
        ))
        .await,
        total as i64
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(DISTINCT code) FROM campaign_coupons WHERE campaign_id = {id}"
        ))
        .await,
        total as i64
    );
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await,
        total as i64
    );
    let seqs = db
        .strings(&format!(
            "SELECT code FROM campaign_coupons WHERE campaign_id = {id} ORDER BY seq"
        ))
        .await;
    assert_eq!(
        seqs, got.coupon_codes,
        "GetCampaign lists codes in issue order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_grpc_clients_get_exactly_the_campaign_total() {
    let app = TestApp::spawn().await;
    let channels = channels(app.addr, 16).await;
    let id = open_campaign(&mut coupon_client(channels[0].clone()), 1_000).await;
    let received = race_for_campaign(&channels, id, 512).await;
    check_exactly(&app, id, 1_000, &received).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_connect_and_rest_clients_get_exactly_the_campaign_total() {
    let app = TestApp::spawn().await;
    let id = open_campaign(&mut coupon_client(app.channel().await), 1_000).await;
    let base = app.url();
    let http = http();
    let clients = (0..512).map(|i| {
        let http = http.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                if i % 2 == 0 {
                    let (status, body) = connect_json(
                        &http,
                        &base,
                        "IssueCoupon",
                        json!({"campaignId": id.to_string()}),
                    )
                    .await;
                    match status {
                        200 => mine.push(body["couponCode"].as_str().unwrap().to_owned()),
                        429 => {
                            assert_eq!(body["code"], "resource_exhausted");
                            return mine;
                        }
                        other => panic!("unexpected {other} {body}"),
                    }
                } else {
                    let response = http
                        .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap();
                    match status {
                        201 => mine.push(body["code"].as_str().unwrap().to_owned()),
                        409 => {
                            assert_eq!(body["error"]["code"], "sold_out");
                            return mine;
                        }
                        other => panic!("unexpected {other} {body}"),
                    }
                }
            }
        })
    });
    let mut received = Vec::new();
    for c in futures::future::join_all(clients).await {
        received.extend(c.unwrap());
    }
    check_exactly(&app, id, 1_000, &received).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_opens_at_the_start_instant_to_the_millisecond() {
    let app = TestApp::spawn_with_clock(UnixMillis::from_millis(START_MS - 60_000)).await;
    let clock = app.clock.clone().unwrap();
    let mut grpc = coupon_client(app.channel().await);
    let id = grpc
        .create_campaign(CreateCampaignRequest {
            name: "ten o'clock".into(),
            start_time: Some(timestamp(START_MS)),
            total_coupons: 10,
            end_time: Some(timestamp(START_MS + 1_000)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .campaign_id;
    let http = http();
    let issue = IssueCouponRequest {
        campaign_id: id,
        ..Default::default()
    };

    clock.set(UnixMillis::from_millis(START_MS - 1));
    let early = grpc.issue_coupon(issue.clone()).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(
        early
            .message()
            .contains("issuance starts at 2026-11-22T10:00:00.000Z"),
        "{early:?}"
    );
    let (status, body) =
        connect_json(&http, &app.url(), "IssueCoupon", json!({"campaignId": id})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("failed_precondition"))
    );

    clock.set(UnixMillis::from_millis(START_MS));
    let code = grpc
        .issue_coupon(issue.clone())
        .await
        .unwrap()
        .into_inner()
        .coupon_code;
    assert_code(&code);
    let (status, _) =
        connect_json(&http, &app.url(), "IssueCoupon", json!({"campaignId": id})).await;
    assert_eq!(status, 200);

    clock.set(UnixMillis::from_millis(START_MS + 1_000));
    let late = grpc.issue_coupon(issue).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM campaign_coupons")
            .await,
        2
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_status_over_grpc_and_connect() {
    let app = TestApp::spawn().await;
    let mut grpc = coupon_client(app.channel().await);
    let http = http();
    let base = app.url();
    let one = open_campaign(&mut grpc, 1).await;
    grpc.issue_coupon(IssueCouponRequest {
        campaign_id: one,
        ..Default::default()
    })
    .await
    .unwrap();

    // Unknown campaign, sold out, bad id.
    let cases: Vec<(&str, Value, Code, u16, &str)> = vec![
        (
            "IssueCoupon",
            json!({"campaignId": "999"}),
            Code::NotFound,
            404,
            "not_found",
        ),
        (
            "GetCampaign",
            json!({"campaignId": "999"}),
            Code::NotFound,
            404,
            "not_found",
        ),
        (
            "IssueCoupon",
            json!({"campaignId": one.to_string()}),
            Code::ResourceExhausted,
            429,
            "resource_exhausted",
        ),
        (
            "IssueCoupon",
            json!({"campaignId": "0"}),
            Code::InvalidArgument,
            400,
            "invalid_argument",
        ),
    ];
    for (method, body, grpc_code, status, connect_code) in cases {
        let id: i64 = body["campaignId"].as_str().unwrap().parse().unwrap();
        let err = match method {
            "IssueCoupon" => grpc
                .issue_coupon(IssueCouponRequest {
                    campaign_id: id,
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            _ => grpc
                .get_campaign(GetCampaignRequest { campaign_id: id })
                .await
                .unwrap_err(),
        };
        assert_eq!(err.code(), grpc_code, "{method} {body}");
        let (got_status, got) = connect_json(&http, &base, method, body.clone()).await;
        assert_eq!(got_status, status, "{method} {body}");
        assert_eq!(got["code"], connect_code, "{method} {body}");
        assert!(!got["message"].as_str().unwrap().is_empty());
    }

    // Invalid campaigns name their field, over both protocols, and store nothing.
    let start = Some(timestamp(START_MS));
    let bad: Vec<(CreateCampaignRequest, Value, &str)> = vec![
        (
            CreateCampaignRequest {
                name: "".into(),
                start_time: start,
                total_coupons: 5,
                ..Default::default()
            },
            json!({"name": "", "startTime": "2026-11-22T10:00:00Z", "totalCoupons": "5"}),
            "name",
        ),
        (
            CreateCampaignRequest {
                name: "x".into(),
                start_time: start,
                total_coupons: 0,
                ..Default::default()
            },
            json!({"name": "x", "startTime": "2026-11-22T10:00:00Z", "totalCoupons": "0"}),
            "total_coupons",
        ),
        (
            CreateCampaignRequest {
                name: "x".into(),
                start_time: start,
                total_coupons: 10_000_001,
                ..Default::default()
            },
            json!({"name": "x", "startTime": "2026-11-22T10:00:00Z", "totalCoupons": "10000001"}),
            "total_coupons",
        ),
        (
            CreateCampaignRequest {
                name: "x".into(),
                start_time: None,
                total_coupons: 5,
                ..Default::default()
            },
            json!({"name": "x", "totalCoupons": "5"}),
            "start_time",
        ),
    ];
    for (request, body, field) in bad {
        let err = grpc.create_campaign(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
        let (status, got) = connect_json(&http, &base, "CreateCampaign", body).await;
        assert_eq!(
            (status, got["code"].as_str()),
            (400, Some("invalid_argument"))
        );
        assert!(got["message"].as_str().unwrap().starts_with(field));
    }
    // Malformed Connect bodies and unknown methods.
    let (status, got) = connect_json(&http, &base, "IssueCoupon", json!({"campaignId": "x"})).await;
    assert_eq!(
        (status, got["code"].as_str()),
        (400, Some("invalid_argument"))
    );
    let (status, got) = connect_json(&http, &base, "Nope", json!({})).await;
    assert_eq!((status, got["code"].as_str()), (404, Some("unimplemented")));

    assert_eq!(
        app.db().await.count("SELECT count(*) FROM campaigns").await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_speaks_binary_protobuf_over_http2_too() {
    let app = TestApp::spawn().await;
    let id = open_campaign(&mut coupon_client(app.channel().await), 3).await;
    let h2 = crate::helpers::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .post(format!("{}/couponpb.CouponService/IssueCoupon", app.url()))
        .header("content-type", "application/proto")
        .body(
            IssueCouponRequest {
                campaign_id: id,
                ..Default::default()
            }
            .encode_to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let issued = IssueCouponResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_code(&issued.coupon_code);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_and_per_user_limits_hold_under_concurrency() {
    let app = TestApp::spawn().await;
    let mut grpc = coupon_client(app.channel().await);
    let id = grpc
        .create_campaign(CreateCampaignRequest {
            name: "limited".into(),
            start_time: Some(timestamp(START_MS - 86_400_000)),
            total_coupons: 100,
            per_user_limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .campaign_id;
    let channels = channels(app.addr, 4).await;

    // 20 concurrent requests of one user: exactly 2 codes.
    let tries = (0..20).map(|i| {
        let mut c = coupon_client(channels[i % 4].clone());
        tokio::spawn(async move {
            c.issue_coupon(IssueCouponRequest {
                campaign_id: id,
                user_id: "alice".into(),
                ..Default::default()
            })
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| s.code() == Code::ResourceExhausted)
    );

    // 20 concurrent retries with one idempotency key: one code, issued once.
    let tries = (0..20).map(|i| {
        let mut c = coupon_client(channels[i % 4].clone());
        tokio::spawn(async move {
            c.issue_coupon(IssueCouponRequest {
                campaign_id: id,
                user_id: "bob".into(),
                idempotency_key: "order-17".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .coupon_code
        })
    });
    let codes: HashSet<String> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(codes.len(), 1);
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM campaign_coupons WHERE user_id = 'alice'")
            .await,
        2
    );
    assert_eq!(
        db.count("SELECT count(*) FROM campaign_coupons WHERE user_id = 'bob'")
            .await,
        1
    );
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await,
        3
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_campaigns_create_read_issue_and_page() {
    let app = TestApp::spawn().await;
    let http = http();
    let base = app.url();
    let created = http
        .post(format!("{base}/api/v1/campaigns"))
        .json(&json!({"name": "rest", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["remaining"], 5);

    let mut codes = Vec::new();
    for i in 0..5 {
        let r = http
            .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
            .header("Idempotency-Key", format!("k{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["seq"], i + 1);
        codes.push(body["code"].as_str().unwrap().to_owned());
    }
    // A field of the wrong type is named, as in every other body (and issues nothing).
    let mistyped = http
        .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
        .json(&json!({"idempotency_key": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(mistyped.status(), 422);
    let mistyped: Value = mistyped.json().await.unwrap();
    assert_eq!(mistyped["error"]["field"], "idempotency_key", "{mistyped}");
    // A retry after sell-out still gets its code back.
    let again = http
        .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
        .json(&json!({"idempotency_key": "k2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["code"], codes[2].as_str());
    assert_eq!(again["replayed"], true);

    let read: Value = http
        .get(format!("{base}/api/v1/campaigns/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (read["issued"].as_i64(), read["remaining"].as_i64()),
        (Some(5), Some(0))
    );

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{base}/api/v1/campaigns/{id}/coupons?after={after}&limit=2"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in page["coupons"].as_array().unwrap() {
            paged.push(c["code"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(paged, codes);

    for (body, field) in [
        (
            json!({"start_time": "2020-01-01T00:00:00Z", "total_coupons": 5}),
            "name",
        ),
        (json!({"name": "x", "total_coupons": 5}), "start_time"),
        (
            json!({"name": "x", "start_time": "yesterday", "total_coupons": 5}),
            "start_time",
        ),
        (
            json!({"name": "x", "start_time": "2020-01-01T00:00:00Z"}),
            "total_coupons",
        ),
        (
            json!({"name": "x", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 5, "end_time": "2019-01-01T00:00:00Z"}),
            "end_time",
        ),
    ] {
        let r = http
            .post(format!("{base}/api/v1/campaigns"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["error"]["field"], field, "{body}");
    }
    let missing = http
        .get(format!("{base}/api/v1/campaigns/777"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_work_over_http1() {
    let app = TestApp::spawn().await;
    let id = open_campaign(&mut coupon_client(app.channel().await), 2).await;
    let message = IssueCouponRequest {
        campaign_id: id,
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let response = crate::helpers::client_builder()
        .http1_only()
        .build()
        .unwrap()
        .post(format!("{}/couponpb.CouponService/IssueCoupon", app.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body[0], 0, "a data frame first");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let issued = IssueCouponResponse::decode(&body[5..5 + len]).unwrap();
    assert_code(&issued.coupon_code);
    let trailer = &body[5 + len..];
    assert_eq!(trailer[0], 0x80, "then the trailers frame");
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));
    app.stop().await;
}

/// A per-user limit the database cannot hold is the client's mistake, named, on every
/// transport: above 2,147,483,647 it was stored wrapped on PostgreSQL (a 500) and as given on
/// SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_user_limit_past_what_the_database_holds_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let rest = http()
        .post(format!("{}/api/v1/campaigns", app.url()))
        .json(&json!({"name": "big", "start_time": "2030-01-01T00:00:00Z",
                      "total_coupons": 10, "per_user_limit": 3_000_000_000_i64}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 422);
    let body: Value = rest.json().await.unwrap();
    assert_eq!(body["error"]["field"], "per_user_limit", "{body}");
    let grpc = coupon_client(app.channel().await)
        .create_campaign(CreateCampaignRequest {
            name: "big".into(),
            start_time: Some(timestamp(START_MS)),
            total_coupons: 10,
            per_user_limit: 2_147_483_648,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(grpc.code(), Code::InvalidArgument, "{grpc:?}");
    assert_eq!(
        app.db().await.count("SELECT count(*) FROM campaigns").await,
        0
    );
    app.stop().await;
}

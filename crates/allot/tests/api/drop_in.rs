//! Drop-in for the originals (issue 18), beyond one system's own routes: the originals' admin
//! calls served to trusted networks without a credential (`--open-admin-contracts-from`), the
//! discount-code client dialing `https://localhost:7268` as it always did, and the campaign
//! system's load test over Connect, both without any credential, through the real binary and the
//! command lines README "Replacing the original systems" gives.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allot_server::pb::couponpb::{
    CreateCampaignRequest, CreateCampaignResponse, GetCampaignRequest, GetCampaignResponse,
    IssueCouponRequest, IssueCouponResponse,
};
use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use prost::Message;
use serde_json::Value;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::helpers::{ProcessBackend, TestApp, timestamp};

/// A trusted-network server on the suite's backend (in process): the originals' customer
/// calls closed, their admin calls open to `networks`.
async fn trusting(networks: &str, trust_forwarded_for: bool) -> TestApp {
    let networks = allot_server::config::parse_networks(networks).unwrap();
    TestApp::spawn_configured(None, move |c| {
        c.auth.open_admin_contracts_from = networks;
        c.trust_forwarded_for = trust_forwarded_for;
    })
    .await
}

/// A gRPC client with no credential at all (the harness's channels add its admin key).
async fn anonymous_discount(app: &TestApp) -> DiscountClient<tonic::transport::Channel> {
    DiscountClient::new(crate::helpers::raw_channel(app.addr).await)
}

async fn generate(
    client: &mut DiscountClient<tonic::transport::Channel>,
    count: u32,
) -> Result<Vec<String>, tonic::Status> {
    client
        .generate(GenerateRequest {
            count,
            length: vec![8],
        })
        .await
        .map(|r| r.into_inner().codes)
}

/// One Connect unary call in binary protobuf, as connect-go sends it, with no credential
/// unless `headers` carry one: the HTTP status and the body.
async fn connect<M: Message>(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    message: &M,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let mut request = client
        .post(format!("{base}/couponpb.CouponService/{method}"))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(message.encode_to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("connect call");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_are_open_to_trusted_networks_only_and_nothing_else_is() {
    // Without trusted networks, an original's admin call needs a credential, as before.
    let closed = TestApp::spawn().await;
    let refused = generate(&mut anonymous_discount(&closed).await, 5)
        .await
        .expect_err("Generate without a credential");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    closed.stop().await;

    // A network that does not hold the caller (127.0.0.1) changes nothing.
    let elsewhere = trusting("10.0.0.0/8, 192.168.0.0/16", false).await;
    let refused = generate(&mut anonymous_discount(&elsewhere).await, 5)
        .await
        .expect_err("Generate from outside the trusted networks");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    elsewhere.stop().await;

    let app = trusting("127.0.0.1", false).await;
    let mut discount = anonymous_discount(&app).await;
    let codes = generate(&mut discount, 7).await.expect("Generate, trusted");
    assert_eq!(codes.len(), 7);
    // The customer-facing call stays closed without --open-public-contracts.
    let used = discount
        .use_code(UseCodeRequest {
            code: codes[0].clone(),
        })
        .await
        .expect_err("UseCode is not an admin call");
    assert_eq!(used.code(), Code::Unauthenticated);
    // A credential, when one is sent, is proved as usual: a wrong one is refused.
    let mut request = tonic::Request::new(GenerateRequest {
        count: 1,
        length: vec![8],
    });
    request
        .metadata_mut()
        .insert("x-api-key", "ak_not-a-key".parse().unwrap());
    let wrong = discount.generate(request).await.expect_err("a wrong key");
    assert_eq!(wrong.code(), Code::Unauthenticated);

    // Connect: CreateCampaign and GetCampaign with every code, IssueCoupon closed.
    let http = reqwest::Client::new();
    let (status, body) = connect(
        &http,
        &app.url(),
        "CreateCampaign",
        &CreateCampaignRequest {
            name: "trusted".into(),
            start_time: Some(timestamp(now_ms() - 60_000)),
            total_coupons: 3,
            ..Default::default()
        },
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let id = CreateCampaignResponse::decode(body.as_slice())
        .unwrap()
        .campaign_id;
    let (status, _) = connect(
        &http,
        &app.url(),
        "IssueCoupon",
        &IssueCouponRequest {
            campaign_id: id,
            ..Default::default()
        },
        &[],
    )
    .await;
    assert_eq!(status, 401, "IssueCoupon is a customer call: closed");
    // Any other admin call of Allot's own API stays closed to the trusted network.
    let rest = http
        .get(format!("{}/api/v1/campaigns/{id}/coupons", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 401);
    let rest = http
        .post(format!("{}/api/v1/discount-codes/batches", app.url()))
        .json(&serde_json::json!({"count": 1, "length": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 401);

    // What the trusted caller did is recorded as theirs, with their address.
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    let actors = db
        .strings("SELECT DISTINCT actor FROM events WHERE type IN ('DiscountCodesGenerated', 'CampaignCreated')")
        .await;
    assert_eq!(actors, ["trusted_network"], "{actors:?}");
    app.stop().await;

    // Behind a proxy (--trust-forwarded-for) the client's address is the forwarded one.
    let proxied = trusting("203.0.113.0/24", true).await;
    let mut forwarded = tonic::Request::new(GenerateRequest {
        count: 2,
        length: vec![7],
    });
    forwarded
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    let mut discount = anonymous_discount(&proxied).await;
    assert_eq!(
        discount
            .generate(forwarded)
            .await
            .expect("a forwarded address in the trusted network")
            .into_inner()
            .codes
            .len(),
        2
    );
    let mut other = tonic::Request::new(GenerateRequest {
        count: 2,
        length: vec![7],
    });
    other
        .metadata_mut()
        .insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
    assert_eq!(
        discount.generate(other).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    proxied.stop().await;
}

#[test]
fn trusted_networks_parse_as_cidr_lists_and_bad_ones_are_named() {
    let nets = allot_server::config::parse_networks("10.0.0.0/8, 127.0.0.1,::1/128,").unwrap();
    let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    let err = allot_server::config::parse_networks("10.0.0.0/8,localnet").unwrap_err();
    assert!(err.contains("\"localnet\""), "{err}");
    // The binary refuses to start on one, naming the setting.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["serve", "--open-admin-contracts-from", "10.0.0.0/33"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("open_admin_contracts_from"), "{err}");
}

/// The fixed address the original discount-code client dials.
const DISCOUNT_ORIGINAL_LISTEN: &str = "127.0.0.1:7268";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_discount_client_dials_https_localhost_7268_without_a_credential() {
    // README: `allot admin gen-cert --hosts localhost,127.0.0.1 --out-dir tls`.
    let tls = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args([
            "admin",
            "gen-cert",
            "--hosts",
            "localhost,127.0.0.1",
            "--out-dir",
        ])
        .arg(tls.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let cert = tls.path().join("cert.pem");
    let key = tls.path().join("key.pem");
    let backend = ProcessBackend::new();
    let log = tls.path().join("allot.log");
    // README: `allot serve --listen 127.0.0.1:7268 --tls-cert tls/cert.pem --tls-key
    // tls/key.pem --open-admin-contracts-from 127.0.0.1 --open-public-contracts`.
    let server = backend.start_with_logging_to(
        &[
            "--listen",
            DISCOUNT_ORIGINAL_LISTEN,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--open-admin-contracts-from",
            "127.0.0.1",
            "--open-public-contracts",
        ],
        &log,
    );
    assert_eq!(server.addr.to_string(), DISCOUNT_ORIGINAL_LISTEN);

    // The client as the original's: https://localhost:7268, the certificate trusted (as a
    // developer trusts a dev certificate), no metadata of its own.
    let channel = Endpoint::from_static("https://localhost:7268")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&cert).unwrap())),
        )
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("dials https://localhost:7268");
    let mut client = DiscountClient::new(channel);
    let generated = client
        .generate(GenerateRequest {
            count: 2000,
            length: vec![8],
        })
        .await
        .expect("Generate, the most one call may ask")
        .into_inner();
    assert!(generated.result);
    assert_eq!(generated.codes.len(), 2000);
    let distinct: BTreeSet<&String> = generated.codes.iter().collect();
    assert_eq!(distinct.len(), 2000, "never repeated");
    let seven = client
        .generate(GenerateRequest {
            count: 10,
            length: vec![7],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(seven.codes.iter().all(|c| c.len() == 7));
    // UseCode: 0 the first time, 2 (already used) after, 1 for an unknown code, whichever
    // client uses it.
    let code = generated.codes[0].clone();
    let use_code = |code: String| {
        let mut client = client.clone();
        async move {
            client
                .use_code(UseCodeRequest { code })
                .await
                .expect("UseCode")
                .into_inner()
                .result
        }
    };
    let racing: Vec<_> = (0..16)
        .map(|_| tokio::spawn(use_code(code.clone())))
        .collect();
    let mut results = Vec::new();
    for r in racing {
        results.push(r.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.as_slice() == [0]).count(), 1);
    assert_eq!(results.iter().filter(|r| r.as_slice() == [2]).count(), 15);
    assert_ne!(use_code("ZZZZZZZZ".to_owned()).await, [0]);

    let db = backend.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 2010);
    assert_eq!(
        db.count("SELECT count(*) FROM discount_codes WHERE used_at_ms IS NOT NULL")
            .await,
        1
    );
    drop(server);
    // Both open settings were said loudly at start, with what they open.
    let logged = std::fs::read_to_string(&log).unwrap();
    for said in [
        "OPEN PUBLIC CONTRACTS",
        "OPEN ADMIN CONTRACTS",
        "127.0.0.1/32",
        "/discount.Discount/Generate",
    ] {
        assert!(
            logged.contains(said),
            "the log does not say {said:?}:\n{logged}"
        );
    }
}

/// Shoppers of the campaign load test: more than there are codes.
const LOAD_CLIENTS: usize = 1_500;
const LOAD_CODES: i64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_original_campaign_load_test_runs_over_connect_without_a_credential() {
    // README: `allot serve --open-public-contracts --open-admin-contracts-from 127.0.0.1/32
    // --code-use-rate-per-sec 0` (one machine sends every issue: no per-address limit).
    let backend = ProcessBackend::new();
    let server = backend.start_with(&[
        "--open-public-contracts",
        "--open-admin-contracts-from",
        "127.0.0.1/32",
        "--code-use-rate-per-sec",
        "0",
    ]);
    let base = server.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // The load test creates its campaign to start a few seconds ahead...
    let start_ms = now_ms() + 3_000;
    let (status, body) = connect(
        &http,
        &base,
        "CreateCampaign",
        &CreateCampaignRequest {
            name: "loadtest".into(),
            start_time: Some(timestamp(start_ms)),
            total_coupons: LOAD_CODES,
            ..Default::default()
        },
        &[],
    )
    .await;
    assert_eq!(status, 200, "CreateCampaign: {body:?}");
    let id = CreateCampaignResponse::decode(body.as_slice())
        .unwrap()
        .campaign_id;
    let issue = IssueCouponRequest {
        campaign_id: id,
        ..Default::default()
    };
    // ... an issue before the start is refused, with Connect's JSON error ...
    let (status, body) = connect(&http, &base, "IssueCoupon", &issue, &[]).await;
    assert_eq!(status, 400, "{body:?}");
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "failed_precondition", "{error}");

    // ... and at the start its clients race, every one at once.
    let gate = Arc::new(tokio::sync::Barrier::new(LOAD_CLIENTS));
    let clients: Vec<_> = (0..LOAD_CLIENTS)
        .map(|_| {
            let (http, base, issue, gate) =
                (http.clone(), base.clone(), issue.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                let wait = start_ms - now_ms();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64 + 5)).await;
                }
                connect(&http, &base, "IssueCoupon", &issue, &[]).await
            })
        })
        .collect();
    let mut told = Vec::new();
    let mut refused = 0;
    for client in clients {
        let (status, body) = client.await.unwrap();
        if status == 200 {
            told.push(
                IssueCouponResponse::decode(body.as_slice())
                    .unwrap()
                    .coupon_code,
            );
        } else {
            let error: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                (status, error["code"].as_str()),
                (429, Some("resource_exhausted")),
                "{error}"
            );
            refused += 1;
        }
    }
    assert_eq!(
        told.len() as i64,
        LOAD_CODES,
        "exactly the campaign's codes"
    );
    assert_eq!(refused, LOAD_CLIENTS - LOAD_CODES as usize);
    let told: BTreeSet<String> = told.into_iter().collect();
    assert_eq!(told.len() as i64, LOAD_CODES, "no code issued twice");

    // GetCampaign, without a credential, from the trusted network: every code.
    let (status, body) = connect(
        &http,
        &base,
        "GetCampaign",
        &GetCampaignRequest { campaign_id: id },
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let got = GetCampaignResponse::decode(body.as_slice()).unwrap();
    let campaign = got.campaign.expect("the campaign");
    assert_eq!(campaign.issued_coupons, LOAD_CODES);
    assert_eq!(campaign.total_coupons, LOAD_CODES);
    let listed: BTreeSet<String> = got.coupon_codes.into_iter().collect();
    assert_eq!(
        listed, told,
        "GetCampaign lists exactly the codes the clients got"
    );

    let db = backend.db().await;
    crate::invariants::assert_invariants(&db).await;
    let mut stored = db
        .strings(&format!(
            "SELECT code FROM campaign_coupons WHERE campaign_id = {id}"
        ))
        .await;
    stored.sort();
    assert_eq!(stored, told.into_iter().collect::<Vec<_>>());
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await,
        LOAD_CODES
    );
    assert_eq!(
        db.strings("SELECT DISTINCT actor FROM events WHERE type = 'CampaignCreated'")
            .await,
        ["trusted_network"]
    );
}

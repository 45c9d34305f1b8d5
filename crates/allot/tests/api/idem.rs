//! Issue 13, "callers' data stays theirs; revocation takes effect", on the suite's backend:
//! `GetCampaign` shows issued codes to staff only (bounded), idempotency keys belong to their
//! caller (orders, campaign issues and every other keyed request; refused requests leave no
//! stored answer), access tokens stop when their user is deactivated, changes role or
//! password (at once here, within 5 s on another instance), a sign-in's refresh chain ends,
//! and the smaller limits (signing secret with a database, codes kept out of info logs,
//! product attribute filters, CSV uploads).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Email, Password, Role};
use allot_server::pb::couponpb::coupon_service_client::CouponServiceClient;
use allot_server::pb::couponpb::{GetCampaignRequest, IssueCouponRequest};
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::{
    TestApp, all_campaign_codes, anonymous, connect_json, coupon_client, http, open_campaign,
    race_for_campaign, raw_channel,
};

const PASSWORD: &str = "correct horse battery staple";

/// A bearer token as gRPC metadata, or none.
#[derive(Clone)]
struct Bearer(Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            let value = format!("Bearer {t}").parse().expect("ASCII token");
            r.metadata_mut().insert("authorization", value);
        }
        Ok(r)
    }
}

type Coupons = CouponServiceClient<InterceptedService<Channel, Bearer>>;

async fn grpc_as(app: &TestApp, token: Option<&str>) -> Coupons {
    CouponServiceClient::new(InterceptedService::new(
        raw_channel(app.addr).await,
        Bearer(token.map(str::to_owned)),
    ))
}

/// A REST/Connect client that sends `token` as its credential.
fn client_as(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Creates a user of `role` and signs it in: (user id, access token, refresh token).
async fn user(app: &TestApp, email: &str, role: Role) -> (i64, String, String) {
    app.services
        .auth
        .create_user(
            Email::parse(email).unwrap(),
            Password::parse(PASSWORD).unwrap(),
            role,
        )
        .await
        .unwrap();
    let (id, access, refresh) = sign_in(&app.url(), email).await;
    (id, access, refresh)
}

async fn sign_in(base: &str, email: &str) -> (i64, String, String) {
    let r = anonymous()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (
        body["user"]["id"].as_i64().unwrap(),
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value, bool) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        replayed,
    )
}

/// `/me` with `token`: the status.
async fn me(base: &str, token: &str) -> u16 {
    client_as(token)
        .get(format!("{base}/api/v1/auth/me"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// Finding 3: GetCampaign.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_get_campaign_shows_codes_to_staff_and_a_customer_only_its_own() {
    let app = TestApp::spawn_configured(None, |c| c.auth.open_public_contracts = true).await;
    let base = app.url();
    let (_, ann_token, _) = user(&app, "ann@example.com", Role::Customer).await;
    let (_, bob_token, _) = user(&app, "bob@example.com", Role::Customer).await;
    let (_, marketing, _) = user(&app, "mia@example.com", Role::Marketing).await;
    let id = open_campaign(&mut coupon_client(app.channel().await), 10).await;

    // Ann gets two codes (gRPC and REST), the harness admin three for others.
    let mut anns = Vec::new();
    let issued = grpc_as(&app, Some(&ann_token))
        .await
        .issue_coupon(IssueCouponRequest {
            campaign_id: id,
            ..Default::default()
        })
        .await
        .unwrap();
    anns.push(issued.into_inner().coupon_code);
    let (status, body, _) = send(
        client_as(&ann_token)
            .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    anns.push(body["code"].as_str().unwrap().to_owned());
    let mut everyone = anns.clone();
    for user_id in ["u1", "u2", "u3"] {
        let code = coupon_client(app.channel().await)
            .issue_coupon(IssueCouponRequest {
                campaign_id: id,
                user_id: user_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .coupon_code;
        everyone.push(code);
    }

    // gRPC: staff see every code; Ann her own; Bob none of Ann's; anonymous none.
    let get = |token: Option<String>| {
        let app = &app;
        async move {
            let got = grpc_as(app, token.as_deref())
                .await
                .get_campaign(GetCampaignRequest { campaign_id: id })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.campaign.as_ref().unwrap().issued_coupons, 5);
            got.coupon_codes
        }
    };
    assert_eq!(get(Some(marketing.clone())).await, everyone);
    assert_eq!(get(Some(ann_token.clone())).await, anns);
    assert!(get(Some(bob_token.clone())).await.is_empty());
    assert!(get(None).await.is_empty());
    // A customer API key stands for no one customer: none either.
    let (_, customer_key) = app
        .services
        .auth
        .create_api_key("shop front", Role::Customer)
        .await
        .unwrap();
    assert!(get(Some(customer_key)).await.is_empty());

    // Connect: the same.
    let connect = |client: reqwest::Client| {
        let base = base.clone();
        async move {
            let (status, body) =
                connect_json(&client, &base, "GetCampaign", json!({"campaignId": id})).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["campaign"]["issuedCoupons"], "5", "{body}");
            body["couponCodes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| c.as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    assert_eq!(connect(client_as(&marketing)).await, everyone);
    assert_eq!(connect(http()).await, everyone);
    assert_eq!(connect(client_as(&ann_token)).await, anns);
    assert!(connect(client_as(&bob_token)).await.is_empty());
    assert!(connect(anonymous()).await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idem_get_campaign_answers_a_bounded_number_of_codes_the_listing_has_the_rest() {
    let app = TestApp::spawn().await;
    let max = allot_server::service::campaign::GET_CAMPAIGN_CODES_MAX as usize;
    let total = max + 25;
    let id = open_campaign(&mut coupon_client(app.channel().await), total as i64).await;
    let channels = crate::helpers::channels(app.addr, 4).await;
    let received = race_for_campaign(&channels, id, 16).await;
    assert_eq!(received.len(), total);

    let got = coupon_client(app.channel().await)
        .get_campaign(GetCampaignRequest { campaign_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.campaign.unwrap().issued_coupons, total as i64);
    let all = all_campaign_codes(&app.url(), id).await;
    assert_eq!(all.len(), total);
    // The first codes in issue order; past them, the listing.
    assert_eq!(got.coupon_codes, all[..max]);
    app.stop().await;
}

// Finding 4: idempotency keys belong to their caller.

/// A product with stock, for orders.
async fn stocked_product(base: &str, sku: &str) -> i64 {
    let c = http();
    let (s, p, _) = send(c.post(format!("{base}/api/v1/products")).json(
        &json!({"sku": sku, "name": sku, "price": {"amount_minor": 1_000, "currency": "EUR"}}),
    ))
    .await;
    assert_eq!(s, 201, "{p}");
    let (s, w, _) = send(
        c.post(format!("{base}/api/v1/warehouses"))
            .json(&json!({"code": format!("W-{sku}"), "name": "Main"})),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let (s, b, _) = send(c.post(format!("{base}/api/v1/inventory/adjust")).json(
        &json!({"product_id": p["id"], "warehouse_id": w["id"], "mode": "set",
                "quantity": 100, "reason": "count"}),
    ))
    .await;
    assert_eq!(s, 200, "{b}");
    p["id"].as_i64().unwrap()
}

fn order(product: i64, name: &str) -> Value {
    json!({
        "shipping_address": {"name": name, "line1": format!("1 {name} Road"), "city": "Paris",
                             "postal_code": "75001", "country": "FR"},
        "lines": [{"product_id": product, "quantity": 1}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_another_customer_reusing_an_order_key_gets_its_own_order() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let product = stocked_product(&base, "IDEM-ORDER").await;
    let (ann, ann_token, _) = user(&app, "ann@example.com", Role::Customer).await;
    let (bob, bob_token, _) = user(&app, "bob@example.com", Role::Customer).await;
    let place = |token: &str, body: Value| {
        send(
            client_as(token)
                .post(format!("{base}/api/v1/orders"))
                .header("Idempotency-Key", "order-1")
                .json(&body),
        )
    };

    let (s, first, replayed) = place(&ann_token, order(product, "Ann")).await;
    assert_eq!((s, replayed), (201, false), "{first}");
    // Ann's retry is her first order.
    let (s, again, replayed) = place(&ann_token, order(product, "Ann")).await;
    assert_eq!((s, replayed), (200, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    // Bob with the same key: his own new order, never Ann's (nor her address).
    let (s, bobs, replayed) = place(&bob_token, order(product, "Bob")).await;
    assert_eq!((s, replayed), (201, false), "{bobs}");
    assert_ne!(bobs["id"], first["id"]);
    assert_eq!(bobs["customer"], bob.to_string());
    assert!(!bobs.to_string().contains("Ann"), "{bobs}");
    assert_eq!(first["customer"], ann.to_string());
    // And his retry is his.
    let (s, again, replayed) = place(&bob_token, order(product, "Bob")).await;
    assert_eq!((s, replayed, &again["id"]), (200, true, &bobs["id"]));
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_another_caller_reusing_a_campaign_issue_key_gets_its_own_code() {
    let app = TestApp::spawn_configured(None, |c| c.auth.open_public_contracts = true).await;
    let base = app.url();
    let (_, ann_token, _) = user(&app, "ann@example.com", Role::Customer).await;
    let (_, bob_token, _) = user(&app, "bob@example.com", Role::Customer).await;
    let id = open_campaign(&mut coupon_client(app.channel().await), 20).await;

    // REST.
    let rest = |token: String| {
        let base = base.clone();
        async move {
            let (s, b, _) = send(
                client_as(&token)
                    .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
                    .header("Idempotency-Key", "issue-1")
                    .json(&json!({})),
            )
            .await;
            assert!([200, 201].contains(&s), "{b}");
            b["code"].as_str().unwrap().to_owned()
        }
    };
    let ann_rest = rest(ann_token.clone()).await;
    assert_eq!(
        rest(ann_token.clone()).await,
        ann_rest,
        "a retry is the same code"
    );
    let bob_rest = rest(bob_token.clone()).await;
    assert_ne!(bob_rest, ann_rest, "Bob was handed Ann's code");

    // gRPC.
    let grpc = |token: Option<String>| {
        let app = &app;
        async move {
            grpc_as(app, token.as_deref())
                .await
                .issue_coupon(IssueCouponRequest {
                    campaign_id: id,
                    user_id: if token.is_none() {
                        "anon-1".into()
                    } else {
                        String::new()
                    },
                    idempotency_key: "issue-2".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .coupon_code
        }
    };
    let ann_grpc = grpc(Some(ann_token.clone())).await;
    assert_eq!(grpc(Some(ann_token.clone())).await, ann_grpc);
    let bob_grpc = grpc(Some(bob_token.clone())).await;
    assert_ne!(bob_grpc, ann_grpc, "Bob was handed Ann's code over gRPC");
    // An anonymous caller of the open contract has keys of its own (by its address).
    let anon_grpc = grpc(None).await;
    assert!(![&ann_grpc, &bob_grpc].contains(&&anon_grpc));
    assert_eq!(grpc(None).await, anon_grpc);

    // Connect.
    let connect = |client: reqwest::Client| {
        let base = base.clone();
        async move {
            let (s, b) = connect_json(
                &client,
                &base,
                "IssueCoupon",
                json!({"campaignId": id, "idempotencyKey": "issue-3"}),
            )
            .await;
            assert_eq!(s, 200, "{b}");
            b["couponCode"].as_str().unwrap().to_owned()
        }
    };
    let ann_connect = connect(client_as(&ann_token)).await;
    assert_eq!(connect(client_as(&ann_token)).await, ann_connect);
    let bob_connect = connect(client_as(&bob_token)).await;
    assert_ne!(
        bob_connect, ann_connect,
        "Bob was handed Ann's code over Connect"
    );

    let all: HashSet<String> = all_campaign_codes(&base, id).await.into_iter().collect();
    assert_eq!(all.len(), 7, "one code per caller and key: {all:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_a_stored_answer_is_replayed_only_to_its_own_caller() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let (_, admin, _) = user(&app, "ada@example.com", Role::Admin).await;
    let product = json!({"sku": "IDEM-GEN", "name": "Kettle",
                         "price": {"amount_minor": 2_500, "currency": "EUR"}});
    let create = |client: reqwest::Client| {
        send(
            client
                .post(format!("{base}/api/v1/products"))
                .header("Idempotency-Key", "p-1")
                .json(&product),
        )
    };
    let (s, first, replayed) = create(http()).await;
    assert_eq!((s, replayed), (201, false), "{first}");
    let (s, again, replayed) = create(http()).await;
    assert_eq!((s, replayed, &again), (201, true, &first));
    // Another caller with the same key and body runs its own request (the SKU is taken by
    // then) instead of being answered the admin's.
    let (s, theirs, replayed) = create(client_as(&admin)).await;
    assert_eq!((s, replayed), (409, false), "{theirs}");
    assert_eq!(theirs["error"]["code"], "sku_taken");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_a_refused_request_leaves_no_answer_for_its_key() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let db = app.db().await;
    let (_, ann_token, _) = user(&app, "ann@example.com", Role::Customer).await;
    let post = |client: reqwest::Client, path: &str, key: &str, body: Value| {
        send(
            client
                .post(format!("{base}{path}"))
                .header("Idempotency-Key", key)
                .json(&body),
        )
    };

    // Refused as sent (422): the corrected request with the same key is served.
    let bad = json!({"sku": "IDEM-R", "price": {"amount_minor": 100, "currency": "EUR"}});
    let (s, b, _) = post(http(), "/api/v1/products", "fix-1", bad).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(db.count("SELECT count(*) FROM idempotency_keys").await, 0);
    let good = json!({"sku": "IDEM-R", "name": "Radio",
                      "price": {"amount_minor": 100, "currency": "EUR"}});
    let (s, b, replayed) = post(http(), "/api/v1/products", "fix-1", good.clone()).await;
    assert_eq!((s, replayed), (201, false), "{b}");
    let (s, _, replayed) = post(http(), "/api/v1/products", "fix-1", good).await;
    assert_eq!((s, replayed), (201, true));

    // Refused by the handler's ownership check (403): nothing kept either; the request made
    // as the customer may is served with the same key (a free coupon is waiting).
    let (s, b, _) = post(
        http(),
        "/api/v1/coupons",
        "upload-1",
        json!({"coupons": [{"code": "IDEMFREE1", "type": "FREE", "discount_kind": "PERCENTAGE",
                            "discount_amount": 10, "expires_at": "2099-01-01T00:00:00Z",
                            "max_uses": 1}]}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let other = json!({"user_id": "someone-else", "type": "FREE"});
    let (s, b, _) = post(
        client_as(&ann_token),
        "/api/v1/coupons/requests",
        "own-1",
        other,
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (s, b, replayed) = post(
        client_as(&ann_token),
        "/api/v1/coupons/requests",
        "own-1",
        json!({"type": "FREE"}),
    )
    .await;
    assert_eq!((s, replayed), (200, false), "{b}");
    app.stop().await;
}

// Finding 9: revocation takes effect.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_deactivation_role_and_password_changes_stop_access_tokens_at_once() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let (id, token, _) = user(&app, "ann@example.com", Role::Marketing).await;
    let account = AccountId::new(id);
    assert_eq!(me(&base, &token).await, 200);

    // Role change: the token carrying the old role stops; a new sign-in has the new role.
    app.services
        .auth
        .set_role(account, Role::Support)
        .await
        .unwrap();
    assert_eq!(me(&base, &token).await, 401);
    let mut grpc = grpc_as(&app, Some(&token)).await;
    let e = grpc
        .get_campaign(GetCampaignRequest { campaign_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let (s, b) = connect_json(
        &client_as(&token),
        &base,
        "GetCampaign",
        json!({"campaignId": 1}),
    )
    .await;
    assert_eq!(s, 401, "Connect: {b}");
    let (_, token, _) = sign_in(&base, "ann@example.com").await;
    let r: Value = client_as(&token)
        .get(format!("{base}/api/v1/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["role"], "support");

    // Password change: the token that made it stops too.
    let (s, b, _) = send(
        client_as(&token)
            .post(format!("{base}/api/v1/auth/password"))
            .json(&json!({"current_password": PASSWORD, "new_password": "another long one"})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(me(&base, &token).await, 401);
    let r = anonymous()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "ann@example.com", "password": "another long one"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&base, &token).await, 200);

    // Deactivation: the access token and the refresh token stop.
    app.services.auth.set_active(account, false).await.unwrap();
    assert_eq!(me(&base, &token).await, 401);
    let (s, _, _) = send(
        anonymous()
            .post(format!("{base}/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(s, 401);
    app.stop().await;
}

/// Two instances on one PostgreSQL: a deactivation or role change made on one, or by
/// `allot admin` beside them, stops the user's access tokens on every instance within
/// `TOKEN_STATE_CACHE_TTL` (5 s), even where they were just believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idem_revocation_reaches_every_instance_within_5_s() {
    let cluster = allot_testkit::PgCluster::start();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let url = cluster.url();
        apps.push(TestApp::spawn_configured(None, move |c| c.database = Some(url)).await);
    }
    let (a, b) = (&apps[0], &apps[1]);
    let (id, _, _) = user(a, "ann@example.com", Role::Marketing).await;
    let account = AccountId::new(id);
    let bound = allot_server::service::auth::TOKEN_STATE_CACHE_TTL + Duration::from_secs(1);

    // Signed in on A, believed on both (cached there now).
    for change in ["role", "cli role", "deactivate"] {
        let (_, token, _) = sign_in(&a.url(), "ann@example.com").await;
        for app in [a, b] {
            assert_eq!(me(&app.url(), &token).await, 200, "{change}");
        }
        let changed = Instant::now();
        match change {
            "role" => {
                a.services
                    .auth
                    .set_role(account, Role::Support)
                    .await
                    .unwrap();
            }
            "cli role" => {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
                    .args(["admin", "set-user-role", "--role", "marketing", "--id"])
                    .arg(id.to_string())
                    .args(["--database", &cluster.url()])
                    .env("ALLOT_DATA_KEY", allot_testkit::TEST_DATA_KEY)
                    .output()
                    .expect("allot admin runs");
                let said = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "{said} {out:?}");
                assert!(said.contains("is now marketing"), "{said}");
            }
            _ => {
                a.services.auth.set_active(account, false).await.unwrap();
            }
        }
        if change != "cli role" {
            assert_eq!(
                me(&a.url(), &token).await,
                401,
                "{change}: at once where made"
            );
        }
        for app in [a, b] {
            let stopped = loop {
                if me(&app.url(), &token).await == 401 {
                    break changed.elapsed();
                }
                assert!(
                    changed.elapsed() < bound,
                    "{change}: an instance still accepts the token"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert!(stopped < bound, "{change}: {stopped:?}");
        }
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_a_sign_in_cannot_be_refreshed_past_its_absolute_lifetime() {
    const DAY_MS: i64 = 24 * 3_600_000;
    let start = UnixMillis::from_millis(1_900_000_000_000);
    let app = TestApp::spawn_configured(Some(start), |c| {
        c.auth.refresh_token_ttl = Duration::from_secs(5 * 24 * 3_600);
        c.auth.refresh_family_ttl = Duration::from_secs(10 * 24 * 3_600);
    })
    .await;
    let clock = app.clock.clone().unwrap();
    let base = app.url();
    let (_, _, mut refresh) = user(&app, "ann@example.com", Role::Customer).await;
    let rotate = |token: String| {
        let base = base.clone();
        async move {
            send(
                anonymous()
                    .post(format!("{base}/api/v1/auth/refresh"))
                    .json(&json!({"refresh_token": token})),
            )
            .await
        }
    };
    // Refreshed every 4 days: each token lives 5, so only the family's 10 days stop it.
    for day in [4, 8] {
        clock.set(start.plus_millis(day * DAY_MS));
        let (s, b, _) = rotate(refresh.clone()).await;
        assert_eq!(s, 200, "day {day}: {b}");
        refresh = b["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.set(start.plus_millis(12 * DAY_MS));
    let (s, b, _) = rotate(refresh).await;
    assert_eq!(s, 401, "the sign-in outlived its 10 days: {b}");
    assert_eq!(b["error"]["code"], "invalid_token");
    // A new sign-in starts a new family.
    let (_, _, fresh) = sign_in(&base, "ann@example.com").await;
    assert_eq!(rotate(fresh).await.0, 200);
    app.stop().await;
}

// Finding 10 (part).

#[tokio::test]
async fn idem_a_server_on_a_database_refuses_to_start_without_a_jwt_secret() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = allot_server::Config::for_data_dir(dir.path().to_owned());
    // Refused before the database is opened: no server is needed behind the URL.
    config.database = Some("postgres://allot@127.0.0.1:1/none".to_owned());
    config.data_key = Some(crate::helpers::test_data_key());
    let clock = std::sync::Arc::new(allot_server::clock::SystemClock);
    let refused = match allot_server::Application::build(config, clock).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started without a JWT secret"),
    };
    assert!(refused.contains("JWT secret is required"), "{refused}");
    assert!(refused.contains("ALLOT_JWT_SECRET"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_product_attribute_filters_are_bounded_and_named() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/v1/products", app.url());
    let get = |query: String| {
        let url = url.clone();
        async move { send(http().get(format!("{url}?{query}"))).await }
    };
    let ten: Vec<String> = (0..10).map(|i| format!("attr.k{i}=v")).collect();
    let (s, b, _) = get(ten.join("&")).await;
    assert_eq!(s, 200, "{b}");
    let eleven: Vec<String> = (0..11).map(|i| format!("attr.k{i}=v")).collect();
    let (s, b, _) = get(eleven.join("&")).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "attr");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10")
    );
    let (s, b, _) = get(format!("attr.colour={}", "x".repeat(501))).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "attr");
    assert!(b["error"]["message"].as_str().unwrap().contains("500"));
    app.stop().await;
}

const CSV_HEADER: &str = "code,type,discount_kind,discount_amount,expires_at,max_uses\n";

async fn upload_csv(base: &str, body: Vec<u8>) -> (u16, Value) {
    let (s, b, _) = send(
        http()
            .post(format!("{base}/api/v1/coupons/csv"))
            .header("content-type", "text/csv")
            .body(body),
    )
    .await;
    (s, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_a_csv_upload_is_bounded_in_rows_and_bytes() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let rows = |n: usize, prefix: &str| {
        let mut csv = CSV_HEADER.to_owned();
        for i in 0..n {
            csv.push_str(&format!(
                "{prefix}{i:06},,PERCENTAGE,10,2099-01-01T00:00:00Z,1\n"
            ));
        }
        csv.into_bytes()
    };
    let max = allot_domain::coupon::UPLOAD_MAX;

    // One row past the limit: refused, naming the limit.
    let (s, b) = upload_csv(&base, rows(max + 1, "CSVA")).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "csv");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("more than {max} rows")),
        "{message}"
    );

    // Past the byte limit (blank lines hold no rows, yet count as bytes): refused.
    let mut big = CSV_HEADER.as_bytes().to_vec();
    big.resize(17 * 1024 * 1024, b'\n');
    let (s, b) = upload_csv(&base, big).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "csv");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.contains("bytes"), "{message}");

    // Within the limits: stored.
    let (s, b) = upload_csv(&base, rows(10, "CSVB")).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["created"], 10);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_coupon_codes_stay_out_of_the_info_log() {
    let backend = crate::helpers::ProcessBackend::new();
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("allot.log");
    let mut server = backend.start_logging_to(&log);
    let base = server.url();
    let codes = ["LOGSECRETA1", "LOGSECRETB2"];
    let coupons: Vec<Value> = codes
        .iter()
        .map(|c| {
            json!({"code": c, "type": "FREE", "discount_kind": "PERCENTAGE",
                   "discount_amount": 10, "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1})
        })
        .collect();
    let (s, b, _) = send(
        http()
            .post(format!("{base}/api/v1/coupons"))
            .json(&json!({"coupons": coupons})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    // Allocated, validated and redeemed: each logs its operation at info.
    let (s, b, _) = send(
        http()
            .post(format!("{base}/api/v1/coupons/requests"))
            .json(&json!({"user_id": "u1", "type": "FREE"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let allocated = b["coupon"]["code"]
        .as_str()
        .or(b["code"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no code in {b}"));
    for step in ["validate", "redeem"] {
        let (s, b, _) = send(
            http()
                .post(format!("{base}/api/v1/coupons/{allocated}/{step}"))
                .json(&json!({"user_id": "u1"})),
        )
        .await;
        assert_eq!(s, 200, "{step}: {b}");
    }
    server.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("coupons.redeem"),
        "the info log is kept: {logged}"
    );
    for code in codes {
        assert!(!logged.contains(code), "{code} is in the log:\n{logged}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_a_template_that_never_ends_fails_rendering_with_a_clear_error() {
    let app = TestApp::spawn().await;
    let base = app.url();
    let (ann, _, _) = user(&app, "ann@example.com", Role::Customer).await;
    let endless = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}\
                   {% endfor %}";
    let (s, b, _) = send(
        http()
            .post(format!("{base}/api/v1/notifications/templates"))
            .json(&json!({"name": "endless", "in_app": {"title": "Hi", "body": endless}})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let started = Instant::now();
    let (s, b, _) = send(http().post(format!("{base}/api/v1/notifications")).json(
        &json!({"user_id": ann, "channel": "in_app", "template": "endless",
                          "variables": {}}),
    ))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "rendering hung"
    );
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "variables");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.contains("took more than 100000 steps"), "{message}");
    app.stop().await;
}

/// Migration 0016 on a database of 0015: an order's and a campaign issue's key become their
/// customer's (`user:<customer> <key>`), stored answers get the empty owner (which no caller
/// has), every user starts at token generation 0 and a change of role, active or password
/// moves it (a change of anything else does not), and a refresh token's family starts at its
/// creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idem_migration_0016_gives_old_keys_to_their_customer_and_old_answers_to_no_one() {
    use allot_storage::migrations::MIGRATIONS;
    const ROWS: &[&str] = &[
        "INSERT INTO users (email_index, email_enc, password_hash, role, active, created_at_ms,
                            updated_at_ms) VALUES ('i', 'e', 'h', 'customer', TRUE, 1, 1)",
        "INSERT INTO refresh_tokens (user_id, token_hash, expires_at_ms, created_at_ms)
         VALUES (1, 't', 99, 42)",
        "INSERT INTO orders (customer, status, currency, shipping_address_enc, subtotal_minor,
                             total_minor, idempotency_key, created_at_ms, updated_at_ms)
         VALUES ('7', 'pending', 'EUR', 'sealed', 0, 0, 'k-old', 1, 1)",
        "INSERT INTO campaigns (name, starts_at_ms, total, issued, created_at_ms)
         VALUES ('c', 1, 5, 2, 1)",
        "INSERT INTO campaign_coupons (campaign_id, seq, code, user_id, idempotency_key,
                                       issued_at_ms)
         VALUES (1, 1, 'A1', 'u1', 'k1', 1), (1, 2, 'A2', NULL, 'k2', 1)",
        "INSERT INTO idempotency_keys (key, method, path, request_hash, status, started_at_ms)
         VALUES ('k', 'POST', '/api/v1/products', 'h', 201, 1)",
    ];
    const CHECKS: &[(&str, &str)] = &[
        ("SELECT idempotency_key FROM orders", "user:7 k-old"),
        (
            "SELECT idempotency_key FROM campaign_coupons ORDER BY seq",
            "user:u1 k1,anonymous k2",
        ),
        ("SELECT '[' || owner || ']' FROM idempotency_keys", "[]"),
        ("SELECT CAST(token_generation AS TEXT) FROM users", "0"),
        (
            "SELECT CAST(family_started_at_ms AS TEXT) FROM refresh_tokens",
            "42",
        ),
    ];
    const CHANGES: &[(&str, &str)] = &[
        ("UPDATE users SET email_enc = 'other'", "0"),
        ("UPDATE users SET role = 'support'", "1"),
        ("UPDATE users SET active = FALSE", "2"),
        ("UPDATE users SET password_hash = 'h2'", "3"),
        ("UPDATE users SET password_hash = 'h2'", "3"),
    ];
    let generation = "SELECT CAST(token_generation AS TEXT) FROM users";
    let before = MIGRATIONS.iter().filter(|m| m.version < 16);
    let m16 = MIGRATIONS.iter().find(|m| m.version == 16).unwrap();
    if crate::helpers::backend() == "postgres" {
        let pg = allot_testkit::PgCluster::start();
        let db = allot_storage::postgres::connect(&pg.url()).await.unwrap();
        for m in before {
            db.batch_execute(m.postgres).await.unwrap();
        }
        for row in ROWS {
            db.batch_execute(row).await.unwrap();
        }
        db.batch_execute(m16.postgres).await.unwrap();
        for (sql, want) in CHECKS {
            assert_eq!(pg_all(&db, sql).await, *want, "{sql}");
        }
        for (sql, want) in CHANGES {
            db.batch_execute(sql).await.unwrap();
            assert_eq!(pg_all(&db, generation).await, *want, "{sql}");
        }
    } else {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let all = |db: &rusqlite::Connection, sql: &str| {
            let mut stmt = db.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join(",")
        };
        for m in before {
            db.execute_batch(m.sqlite).unwrap();
        }
        for row in ROWS {
            db.execute_batch(row).unwrap();
        }
        db.execute_batch(m16.sqlite).unwrap();
        for (sql, want) in CHECKS {
            assert_eq!(all(&db, sql), *want, "{sql}");
        }
        for (sql, want) in CHANGES {
            db.execute_batch(sql).unwrap();
            assert_eq!(all(&db, generation), *want, "{sql}");
        }
    }
}

/// Every row's first column, as text, joined by commas.
async fn pg_all(db: &tokio_postgres::Client, sql: &str) -> String {
    let rows = db.query(sql, &[]).await.expect(sql);
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join(",")
}

//! Authorization (issue 8): every endpoint group against every role (allowed, 401 without a
//! credential, 403 with the wrong role) over REST, gRPC and Connect; customers act only for
//! themselves; the open public contracts; the policy table against the real routes and the
//! README.

use std::collections::BTreeSet;

use allot_domain::auth::{Email, Password, Role};
use allot_server::pb::couponpb::coupon_service_client::CouponServiceClient;
use allot_server::pb::couponpb::{CreateCampaignRequest, GetCampaignRequest, IssueCouponRequest};
use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use allot_server::policy::{self, Transport};
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::{b64, claims, signed};
use crate::helpers::{TestApp, anonymous, connect_json, http, raw_channel};

const PASSWORD: &str = "correct horse battery staple";
const SECRET: u8 = b'r';

/// A credential as a header value, or none.
#[derive(Clone)]
struct Cred(Option<String>);

impl tonic::service::Interceptor for Cred {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(c) = &self.0 {
            r.metadata_mut()
                .insert("authorization", c.parse().expect("ASCII credential"));
        }
        Ok(r)
    }
}

/// A server with a user of every role, signed in.
struct World {
    app: TestApp,
    /// `(role, "Bearer <access token>", user id)`.
    users: Vec<(Role, String, i64)>,
}

impl World {
    async fn open(configure: impl FnOnce(&mut allot_server::Config)) -> World {
        let app = TestApp::spawn_configured(None, |c| {
            c.auth.jwt_secret = Some(allot_server::config::Secret::new(
                String::from_utf8(vec![SECRET; 32]).unwrap(),
            ));
            configure(c);
        })
        .await;
        let mut users = Vec::new();
        let mut roles = Role::ALL.to_vec();
        roles.push(Role::Customer); // a second customer
        for (i, role) in roles.into_iter().enumerate() {
            let email = format!("{}{i}@example.com", role.as_str());
            app.services
                .auth
                .create_user(
                    Email::parse(&email).unwrap(),
                    Password::parse(PASSWORD).unwrap(),
                    role,
                )
                .await
                .unwrap();
            let r = anonymous()
                .post(format!("{}/api/v1/auth/login", app.url()))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            users.push((
                role,
                format!("Bearer {}", body["access_token"].as_str().unwrap()),
                body["user"]["id"].as_i64().unwrap(),
            ));
        }
        World { app, users }
    }

    fn token(&self, role: Role) -> String {
        self.users.iter().find(|u| u.0 == role).unwrap().1.clone()
    }

    /// The two customers: (token, user id).
    fn customers(&self) -> [(String, i64); 2] {
        let mut c = self
            .users
            .iter()
            .filter(|u| u.0 == Role::Customer)
            .map(|u| (u.1.clone(), u.2));
        [c.next().unwrap(), c.next().unwrap()]
    }

    async fn rest(
        &self,
        cred: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.app.url());
        let mut req = anonymous().request(method.parse().unwrap(), url);
        if let Some(c) = cred {
            req = req.header("authorization", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let www = r.headers().contains_key("www-authenticate");
        let body = r.json().await.unwrap_or(Value::Null);
        if status == 401 {
            assert!(www, "401 without WWW-Authenticate: {method} {path}");
        }
        (status, body)
    }

    async fn grpc(&self, cred: Option<&str>) -> InterceptedService<Channel, Cred> {
        InterceptedService::new(
            raw_channel(self.app.addr).await,
            Cred(cred.map(str::to_owned)),
        )
    }
}

fn roles(names: &str) -> Vec<Role> {
    names
        .split_whitespace()
        .map(|n| Role::parse_field(n, "role").unwrap())
        .collect()
}

/// One representative call of each group: (group, method, path, body, roles allowed).
fn rest_calls() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Option<Value>,
    &'static str,
)> {
    vec![
        (
            "discount codes",
            "POST",
            "/api/v1/discount-codes/batches",
            Some(json!({})),
            "admin marketing",
        ),
        (
            "discount codes",
            "GET",
            "/api/v1/discount-codes/ABCDEFGH",
            None,
            "admin marketing",
        ),
        (
            "discount codes",
            "POST",
            "/api/v1/discount-codes/ABCDEFGH/use",
            Some(json!({})),
            "admin marketing customer",
        ),
        (
            "campaigns",
            "POST",
            "/api/v1/campaigns",
            Some(json!({})),
            "admin marketing",
        ),
        (
            "campaigns",
            "GET",
            "/api/v1/campaigns",
            None,
            "admin marketing",
        ),
        (
            "campaigns",
            "GET",
            "/api/v1/campaigns/1",
            None,
            "admin marketing customer",
        ),
        (
            "campaigns",
            "GET",
            "/api/v1/campaigns/1/coupons",
            None,
            "admin marketing",
        ),
        (
            "campaigns",
            "POST",
            "/api/v1/campaigns/1/coupons",
            Some(json!({})),
            "admin marketing customer",
        ),
        (
            "coupons",
            "POST",
            "/api/v1/coupons",
            Some(json!({})),
            "admin marketing",
        ),
        (
            "coupons",
            "GET",
            "/api/v1/coupons/stats",
            None,
            "admin marketing",
        ),
        (
            "coupons",
            "GET",
            "/api/v1/coupons/NOPE1234",
            None,
            "admin marketing support",
        ),
        (
            "coupons",
            "POST",
            "/api/v1/coupons/NOPE1234/validate",
            Some(json!({})),
            "admin marketing customer",
        ),
        (
            "coupons",
            "POST",
            "/api/v1/coupons/NOPE1234/redeem",
            Some(json!({})),
            "admin marketing customer",
        ),
        (
            "coupons",
            "GET",
            "/api/v1/redemptions",
            None,
            "admin marketing",
        ),
        ("sales", "GET", "/api/v1/sales", None, "admin marketing"),
        (
            "sales",
            "GET",
            "/api/v1/sales/current",
            None,
            "admin marketing customer",
        ),
        (
            "sales",
            "POST",
            "/purchase?code=nope",
            None,
            "admin marketing customer",
        ),
        (
            "sales",
            "POST",
            "/api/v1/sales/1/purchase?code=nope",
            None,
            "admin marketing customer",
        ),
        (
            "sales",
            "GET",
            "/sales/active",
            None,
            "admin marketing customer",
        ),
        (
            "sales",
            "GET",
            "/api/v1/sales/1/purchases",
            None,
            "admin marketing",
        ),
        (
            "catalog",
            "GET",
            "/api/v1/products",
            None,
            "admin marketing warehouse support customer",
        ),
        (
            "catalog",
            "GET",
            "/api/v1/categories/tree",
            None,
            "admin marketing warehouse support customer",
        ),
        (
            "catalog",
            "POST",
            "/api/v1/products",
            Some(json!({})),
            "admin",
        ),
        (
            "catalog",
            "GET",
            "/api/v1/warehouses",
            None,
            "admin warehouse",
        ),
        (
            "catalog",
            "POST",
            "/api/v1/warehouses",
            Some(json!({})),
            "admin warehouse",
        ),
        (
            "inventory",
            "GET",
            "/api/v1/inventory",
            None,
            "admin warehouse",
        ),
        (
            "inventory",
            "POST",
            "/api/v1/inventory/adjust",
            Some(json!({})),
            "admin warehouse",
        ),
        (
            "orders",
            "GET",
            "/api/v1/orders",
            None,
            "admin support warehouse customer",
        ),
        (
            "orders",
            "POST",
            "/api/v1/orders",
            Some(json!({})),
            "admin customer",
        ),
        (
            "orders",
            "GET",
            "/api/v1/orders/999",
            None,
            "admin support warehouse customer",
        ),
        (
            "orders",
            "PUT",
            "/api/v1/orders/999/status",
            Some(json!({"status": "cancelled"})),
            "admin support customer",
        ),
        ("events", "GET", "/api/v1/events", None, "admin"),
        (
            "auth",
            "GET",
            "/api/v1/auth/me",
            None,
            "admin marketing warehouse support customer",
        ),
        (
            "notifications",
            "GET",
            "/api/v1/notifications",
            None,
            "admin marketing warehouse support customer",
        ),
        (
            "notifications",
            "POST",
            "/api/v1/notifications",
            Some(json!({})),
            "admin support",
        ),
        (
            "notifications",
            "GET",
            "/api/v1/notifications/status/1",
            None,
            "admin support",
        ),
        (
            "notifications",
            "GET",
            "/api/v1/notifications/templates",
            None,
            "admin marketing",
        ),
        (
            "notifications",
            "GET",
            "/api/v1/notifications/rules",
            None,
            "admin marketing",
        ),
        ("webhooks", "GET", "/api/v1/webhooks", None, "admin"),
        ("audit", "GET", "/api/v1/audit", None, "admin"),
    ]
}

#[tokio::test]
async fn roles_every_rest_group_allows_its_roles_and_refuses_the_rest() {
    let w = World::open(|_| {}).await;
    for (group, method, path, body, allowed) in rest_calls() {
        let allowed = roles(allowed);
        let (status, b) = w.rest(None, method, path, body.clone()).await;
        assert_eq!(
            status, 401,
            "{group}: {method} {path} without a credential: {b}"
        );
        assert_eq!(b["error"]["code"], "unauthenticated");
        let (status, _) = w
            .rest(Some("Bearer not-a-token"), method, path, body.clone())
            .await;
        assert_eq!(status, 401, "{group}: {method} {path} with garbage");
        for role in Role::ALL {
            let (status, b) = w
                .rest(Some(&w.token(role)), method, path, body.clone())
                .await;
            if allowed.contains(&role) {
                assert!(
                    status != 401 && status != 403,
                    "{group}: {method} {path} as {} answered {status}: {b}",
                    role.as_str()
                );
            } else {
                assert_eq!(
                    status,
                    403,
                    "{group}: {method} {path} as {}: {b}",
                    role.as_str()
                );
                assert_eq!(b["error"]["code"], "forbidden", "{b}");
            }
        }
    }
    // Public: probes and signing in.
    assert_eq!(w.rest(None, "GET", "/health", None).await.0, 200);
    assert_eq!(
        w.rest(None, "GET", "/api/v1/openapi.json", None).await.0,
        200
    );
    assert_eq!(
        w.rest(None, "POST", "/api/v1/auth/login", Some(json!({})))
            .await
            .0,
        422
    );
    // HEAD follows the GET rule.
    let customer = w.token(Role::Customer);
    assert_eq!(
        w.rest(Some(&customer), "HEAD", "/api/v1/products", None)
            .await
            .0,
        200
    );
    assert_eq!(
        w.rest(Some(&customer), "HEAD", "/api/v1/inventory", None)
            .await
            .0,
        403
    );
    // A route nobody declared is admin only (fail closed).
    assert_eq!(w.rest(None, "GET", "/api/v1/nothing", None).await.0, 401);
    assert_eq!(
        w.rest(
            Some(&w.token(Role::Support)),
            "GET",
            "/api/v1/nothing",
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        w.rest(Some(&w.token(Role::Admin)), "GET", "/api/v1/nothing", None)
            .await
            .0,
        404
    );
    w.app.stop().await;
}

#[tokio::test]
async fn roles_grpc_and_connect_calls_answer_unauthenticated_and_permission_denied() {
    let w = World::open(|_| {}).await;
    let id = crate::helpers::open_campaign(
        &mut crate::helpers::coupon_client(w.app.channel().await),
        100,
    )
    .await;
    for cred in [None, Some("Bearer nope".to_owned())]
        .into_iter()
        .chain(Role::ALL.map(|r| Some(w.token(r))))
    {
        let role = w
            .users
            .iter()
            .find(|u| Some(&u.1) == cred.as_ref())
            .map(|u| u.0);
        let expect = |allowed: &str, got: Result<(), tonic::Status>, call: &str| {
            let code = got.err().map(|s| s.code());
            match role {
                None => assert_eq!(code, Some(tonic::Code::Unauthenticated), "{call} {cred:?}"),
                Some(r) if roles(allowed).contains(&r) => assert!(
                    !matches!(
                        code,
                        Some(tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
                    ),
                    "{call} as {}: {code:?}",
                    r.as_str()
                ),
                Some(r) => assert_eq!(
                    code,
                    Some(tonic::Code::PermissionDenied),
                    "{call} as {}",
                    r.as_str()
                ),
            }
        };
        let channel = w.grpc(cred.as_deref()).await;
        let mut discount = DiscountClient::new(channel.clone());
        let got = discount
            .generate(GenerateRequest {
                count: 1,
                length: vec![8],
            })
            .await;
        expect("admin marketing", got.map(drop), "Generate");
        let got = discount
            .use_code(UseCodeRequest {
                code: "ABCDEFGH".into(),
            })
            .await;
        expect("admin marketing customer", got.map(drop), "UseCode");
        let mut coupons = CouponServiceClient::new(channel);
        let got = coupons
            .create_campaign(CreateCampaignRequest::default())
            .await;
        expect("admin marketing", got.map(drop), "CreateCampaign");
        let got = coupons
            .get_campaign(GetCampaignRequest { campaign_id: id })
            .await;
        expect("admin marketing customer", got.map(drop), "GetCampaign");
        let got = coupons
            .issue_coupon(IssueCouponRequest {
                campaign_id: id,
                ..Default::default()
            })
            .await;
        expect("admin marketing customer", got.map(drop), "IssueCoupon");

        // Connect, on the same paths.
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(c) = &cred {
            headers.insert("authorization", c.parse().unwrap());
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        for (method, body, allowed) in [
            ("CreateCampaign", json!({}), "admin marketing"),
            (
                "IssueCoupon",
                json!({"campaignId": id}),
                "admin marketing customer",
            ),
        ] {
            let (status, b) = connect_json(&client, &w.app.url(), method, body).await;
            match role {
                None => {
                    assert_eq!(
                        (status, b["code"].as_str()),
                        (401, Some("unauthenticated")),
                        "{method}"
                    )
                }
                Some(r) if roles(allowed).contains(&r) => {
                    assert!(
                        status != 401 && status != 403,
                        "{method} as {}: {status} {b}",
                        r.as_str()
                    )
                }
                Some(r) => assert_eq!(
                    (status, b["code"].as_str()),
                    (403, Some("permission_denied")),
                    "{method} as {}",
                    r.as_str()
                ),
            }
        }
    }
    w.app.stop().await;
}

#[tokio::test]
async fn roles_customers_see_and_act_only_for_themselves() {
    let w = World::open(|_| {}).await;
    let admin = http();
    let base = w.app.url();
    let post = |path: &str, body: Value| admin.post(format!("{base}{path}")).json(&body).send();
    let product: Value = post(
        "/api/v1/products",
        json!({"sku": "mug", "name": "Mug",
        "price": {"amount_minor": 500, "currency": "EUR"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let warehouse: Value = post("/api/v1/warehouses", json!({"code": "w1", "name": "W1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = post(
        "/api/v1/inventory/adjust",
        json!({"product_id": product["id"],
        "warehouse_id": warehouse["id"], "mode": "set", "quantity": 100, "reason": "count"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    let [(ann, ann_id), (bob, bob_id)] = w.customers();
    let order = |customer: Option<String>| {
        let mut body = json!({
            "shipping_address": {"name": "A", "line1": "1 St", "city": "C",
                                 "postal_code": "1", "country": "NL"},
            "lines": [{"product_id": product["id"], "quantity": 1}],
        });
        if let Some(c) = customer {
            body["customer"] = json!(c);
        }
        Some(body)
    };
    // A customer places orders for itself: with its own id, or the field left out.
    let (s, a1) = w
        .rest(Some(&ann), "POST", "/api/v1/orders", order(None))
        .await;
    assert_eq!(s, 201, "{a1}");
    assert_eq!(a1["customer"], ann_id.to_string());
    let (s, a2) = w
        .rest(
            Some(&ann),
            "POST",
            "/api/v1/orders",
            order(Some(ann_id.to_string())),
        )
        .await;
    assert_eq!(s, 201, "{a2}");
    let (s, b1) = w
        .rest(Some(&bob), "POST", "/api/v1/orders", order(None))
        .await;
    assert_eq!(s, 201, "{b1}");
    // ... never for another customer.
    let (s, e) = w
        .rest(
            Some(&ann),
            "POST",
            "/api/v1/orders",
            order(Some(bob_id.to_string())),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{e}"
    );
    assert_eq!(e["error"]["field"], "customer");

    // Reading another customer's order: 404, as if it did not exist.
    let b1_path = format!("/api/v1/orders/{}", b1["id"]);
    let (s, e) = w.rest(Some(&ann), "GET", &b1_path, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(w.rest(Some(&bob), "GET", &b1_path, None).await.0, 200);
    assert_eq!(
        w.rest(Some(&w.token(Role::Support)), "GET", &b1_path, None)
            .await
            .0,
        200
    );
    // Listing: only its own, whatever the filter asks.
    let (s, page) = w.rest(Some(&ann), "GET", "/api/v1/orders", None).await;
    assert_eq!(s, 200);
    let ids: BTreeSet<i64> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([a1["id"].as_i64().unwrap(), a2["id"].as_i64().unwrap()])
    );
    let asked = format!("/api/v1/orders?customer={bob_id}");
    assert_eq!(w.rest(Some(&ann), "GET", &asked, None).await.0, 403);
    let (_, staff) = w
        .rest(Some(&w.token(Role::Support)), "GET", "/api/v1/orders", None)
        .await;
    assert_eq!(staff["orders"].as_array().unwrap().len(), 3);

    // Status changes: a customer cancels its own order, not another's; warehouse staff may
    // not cancel; support may.
    let cancel = Some(json!({"status": "cancelled"}));
    let (s, _) = w
        .rest(
            Some(&ann),
            "PUT",
            &format!("{b1_path}/status"),
            cancel.clone(),
        )
        .await;
    assert_eq!(s, 404);
    let (s, e) = w
        .rest(
            Some(&w.token(Role::Warehouse)),
            "PUT",
            &format!("{b1_path}/status"),
            cancel.clone(),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (403, Some("status")),
        "{e}"
    );
    let (s, e) = w
        .rest(
            Some(&ann),
            "PUT",
            &format!("/api/v1/orders/{}/status", a1["id"]),
            Some(json!({"status": "confirmed"})),
        )
        .await;
    assert_eq!(s, 403, "{e}");
    let (s, o) = w
        .rest(
            Some(&ann),
            "PUT",
            &format!("/api/v1/orders/{}/status", a1["id"]),
            cancel.clone(),
        )
        .await;
    assert_eq!((s, o["status"].as_str()), (200, Some("cancelled")), "{o}");
    let (s, o) = w
        .rest(
            Some(&w.token(Role::Support)),
            "PUT",
            &format!("{b1_path}/status"),
            cancel,
        )
        .await;
    assert_eq!((s, o["status"].as_str()), (200, Some("cancelled")), "{o}");

    // Coupons, sales and campaign issues: its own user id or none.
    let other = Some(json!({"user_id": bob_id.to_string()}));
    for (method, path) in [
        ("POST", "/api/v1/coupons/requests"),
        ("POST", "/api/v1/coupons/NOPE1234/validate"),
        ("POST", "/api/v1/coupons/NOPE1234/redeem"),
        ("POST", "/api/v1/campaigns/1/coupons"),
    ] {
        let (s, e) = w.rest(Some(&ann), method, path, other.clone()).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (403, Some("user_id")),
            "{path}: {e}"
        );
        let own = Some(json!({"user_id": ann_id.to_string()}));
        let (s, e) = w.rest(Some(&ann), method, path, own).await;
        assert!(s != 401 && s != 403, "{path} for itself: {s} {e}");
    }
    let (s, _) = w
        .rest(
            Some(&ann),
            "POST",
            &format!("/checkout?id=1&user_id={bob_id}"),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let id = crate::helpers::open_campaign(
        &mut crate::helpers::coupon_client(w.app.channel().await),
        10,
    )
    .await;
    let mut grpc = CouponServiceClient::new(w.grpc(Some(&ann)).await);
    let e = grpc
        .issue_coupon(IssueCouponRequest {
            campaign_id: id,
            user_id: bob_id.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    grpc.issue_coupon(IssueCouponRequest {
        campaign_id: id,
        ..Default::default()
    })
    .await
    .expect("a customer issues for itself");
    let (_, listed) = w
        .rest(
            Some(&w.token(Role::Marketing)),
            "GET",
            &format!("/api/v1/campaigns/{id}/coupons"),
            None,
        )
        .await;
    assert_eq!(
        listed["coupons"][0]["user_id"],
        ann_id.to_string(),
        "{listed}"
    );
    w.app.stop().await;
}

#[tokio::test]
async fn roles_forged_none_and_expired_tokens_are_refused_on_every_transport() {
    let w = World::open(|c| c.auth.access_token_ttl = std::time::Duration::from_secs(1)).await;
    let id = w.users[0].2;
    let forged = format!(
        "Bearer {}",
        signed(jsonwebtoken::Algorithm::HS256, &[b'x'; 32], id)
    );
    let none = format!(
        "Bearer {}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(id).to_string().as_bytes())
    );
    let right = format!(
        "Bearer {}",
        signed(jsonwebtoken::Algorithm::HS256, &[SECRET; 32], id)
    );
    assert_eq!(
        w.rest(Some(&right), "GET", "/api/v1/events", None).await.0,
        200,
        "control"
    );
    let admin = w.token(Role::Admin);
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    for bad in [&forged, &none, &admin] {
        assert_eq!(
            w.rest(Some(bad), "GET", "/api/v1/events", None).await.0,
            401
        );
        let e = DiscountClient::new(w.grpc(Some(bad)).await)
            .generate(GenerateRequest {
                count: 1,
                length: vec![8],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
    w.app.stop().await;
}

#[tokio::test]
async fn roles_the_open_setting_opens_only_the_customer_facing_contract_calls() {
    for open in [false, true] {
        let w = World::open(|c| c.auth.open_public_contracts = open).await;
        let id = crate::helpers::open_campaign(
            &mut crate::helpers::coupon_client(w.app.channel().await),
            10,
        )
        .await;
        let anon = w.grpc(None).await;
        let used = DiscountClient::new(anon.clone())
            .use_code(UseCodeRequest {
                code: "ABCDEFGH".into(),
            })
            .await;
        let issued = CouponServiceClient::new(anon.clone())
            .issue_coupon(IssueCouponRequest {
                campaign_id: id,
                ..Default::default()
            })
            .await;
        let (connect_status, b) = connect_json(
            &anonymous(),
            &w.app.url(),
            "IssueCoupon",
            json!({"campaignId": id}),
        )
        .await;
        let checkout = w
            .rest(None, "POST", "/checkout?id=1&user_id=u1", None)
            .await
            .0;
        let purchase = w.rest(None, "POST", "/purchase?code=nope", None).await.0;
        let items = w.rest(None, "GET", "/api/v1/sales/1/items", None).await.0;
        if open {
            assert!(used.is_ok(), "{used:?}");
            assert!(issued.is_ok(), "{issued:?}");
            assert_eq!(connect_status, 200, "{b}");
            assert!(
                ![401, 403].contains(&checkout)
                    && ![401, 403].contains(&purchase)
                    && ![401, 403].contains(&items)
            );
        } else {
            assert_eq!(used.unwrap_err().code(), tonic::Code::Unauthenticated);
            assert_eq!(issued.unwrap_err().code(), tonic::Code::Unauthenticated);
            assert_eq!(connect_status, 401);
            assert_eq!((checkout, purchase, items), (401, 401, 401));
        }
        // The admin side of the same contracts stays closed either way.
        let e = DiscountClient::new(anon.clone())
            .generate(GenerateRequest {
                count: 1,
                length: vec![8],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let (s, _) = connect_json(&anonymous(), &w.app.url(), "CreateCampaign", json!({})).await;
        assert_eq!(s, 401);
        // A credential, when sent, is checked on the same terms.
        let [(ann, _), (_, bob_id)] = w.customers();
        let e = CouponServiceClient::new(w.grpc(Some(&ann)).await)
            .issue_coupon(IssueCouponRequest {
                campaign_id: id,
                user_id: bob_id.to_string(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = CouponServiceClient::new(w.grpc(Some("Bearer nope")).await)
            .issue_coupon(IssueCouponRequest {
                campaign_id: id,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        w.app.stop().await;
    }
}

/// Every route of the OpenAPI document and every RPC method has its own rule, and every exact
/// rule names a real route or method (prefix rules cover families, some built elsewhere).
#[tokio::test]
async fn roles_the_policy_table_and_the_routes_match() {
    let app = TestApp::spawn().await;
    let doc: Value = anonymous()
        .get(format!("{}/api/v1/openapi.json", app.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let rule = policy::rule_for(&method, path)
                .unwrap_or_else(|| panic!("{method} {path} has no rule in the policy table"));
            assert!(
                !rule.is_prefix()
                    || path.starts_with("/api/v1/notifications")
                    || path.starts_with("/api/v1/webhooks")
                    || path.starts_with("/api/v1/audit"),
                "{method} {path} is covered only by the prefix rule {}",
                rule.path
            );
            documented.insert((method, path.clone()));
        }
    }
    use prost::Message;
    let set =
        prost_types::FileDescriptorSet::decode(allot_server::pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = BTreeSet::new();
    for file in &set.file {
        for service in &file.service {
            for m in &service.method {
                let path = format!("/{}.{}/{}", file.package(), service.name(), m.name());
                let rule = policy::rule_for("POST", &path)
                    .unwrap_or_else(|| panic!("{path} has no rule in the policy table"));
                assert_eq!(rule.path, path, "{path} is covered only by a prefix rule");
                methods.insert(path);
            }
        }
    }
    let undocumented = ["/metrics", "/api/v1/openapi.json", "/api/v1/docs"];
    // The console's pages are HTML, not API: the console tests visit them.
    let console = |path: &str| {
        path == "/"
            || path.starts_with("/console")
            || [
                "/setup",
                "/signup",
                "/verify-email",
                "/forgot-password",
                "/reset-password",
            ]
            .contains(&path)
    };
    for rule in policy::RULES
        .iter()
        .filter(|r| !r.is_prefix() && !console(r.path))
    {
        match rule.transport {
            Transport::Rest if undocumented.contains(&rule.path) => {
                let r = anonymous()
                    .get(format!("{}{}", app.url(), rule.path))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status().is_success(),
                    "{} answers {}",
                    rule.path,
                    r.status()
                );
            }
            Transport::Rest => assert!(
                documented.contains(&(rule.method.to_owned(), rule.path.to_owned())),
                "the rule {} {} names no route",
                rule.method,
                rule.path
            ),
            Transport::Rpc => assert!(
                methods.contains(rule.path),
                "the rule {} names no method",
                rule.path
            ),
        }
    }
    app.stop().await;
}

#[test]
fn roles_the_readme_shows_the_policy_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(
        readme.contains(&policy::markdown_table()),
        "README.md's table of roles differs from the policy table; paste this:\n{}",
        policy::markdown_table()
    );
}

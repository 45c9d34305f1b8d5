//! The hardened edge (issue 13): limits at the socket (header read timeout, connection cap,
//! request timeout, body size before any buffering) and on guessing (code use counted by what
//! is called whatever the content type, orders with a code, anonymous campaign issues; staff
//! and service keys not throttled; sign-in per email and address; password changes; the
//! limiters' memory bounded).

use std::time::{Duration, Instant};

use allot_domain::auth::{Email, Password, Role};
use allot_server::Config;
use allot_server::pb::couponpb::IssueCouponRequest;
use allot_server::pb::couponpb::coupon_service_client::CouponServiceClient;
use allot_server::pb::discount::UseCodeRequest;
use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::rate_limit::RateLimitSettings;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, anonymous, connect_json, http, raw_channel};

const PASSWORD: &str = "correct horse battery staple";
/// The code-use burst of the tests that meet it.
const BURST: u32 = 3;
/// More calls than any test needs to meet its limit.
const CALLS_MAX: usize = 100;

/// A server whose only limit is code use: 1 a second after a burst of [`BURST`].
async fn code_use_limited(configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            code_use_per_sec: 1,
            code_use_burst: BURST,
            ..RateLimitSettings::OFF
        };
        configure(c);
    })
    .await
}

/// A customer account: its access token and its id.
async fn customer(app: &TestApp, email: &str) -> (String, i64) {
    let email = Email::parse(email).unwrap();
    let user = app
        .services
        .auth
        .create_user(
            email.clone(),
            Password::parse(PASSWORD).unwrap(),
            Role::Customer,
        )
        .await
        .unwrap();
    let tokens = app.services.auth.login(&email, PASSWORD).await.unwrap();
    (tokens.access_token, user.id.get())
}

/// The `n`th guessed code: 8 characters of the discount-code alphabet.
fn guess(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut code = b"GS".to_vec();
    for i in (0..6).rev() {
        code.push(ALPHABET[(n >> (5 * i)) & 31]);
    }
    String::from_utf8(code).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends `call` until it is refused (`refused` says when); answers the number of calls made
/// before and the refusal, or panics when none of [`CALLS_MAX`] was refused.
async fn calls_until_refused<F, Fut>(
    mut call: F,
    refused: impl Fn(&Fut::Output) -> bool,
) -> (usize, Fut::Output)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future,
{
    for n in 0..CALLS_MAX {
        let answer = call(n).await;
        if refused(&answer) {
            return (n, answer);
        }
    }
    panic!("no call of {CALLS_MAX} was refused");
}

/// A Connect IssueCoupon without a credential, as a future that owns what it needs.
async fn connect_json_owned(base: String, body: Value) -> (u16, Value) {
    connect_json(&anonymous(), &base, "IssueCoupon", body).await
}

fn is_429(r: &reqwest::Response) -> bool {
    r.status() == 429
}

/// A gRPC-shaped refusal (trailers-only, HTTP 200) or a REST one.
fn is_refused_any_protocol(r: &reqwest::Response) -> bool {
    r.status() == 429 || r.headers().get("grpc-status").is_some_and(|v| v == "8")
}

// Finding 1: the code-use limit goes by what is called, not by the content type.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_code_use_is_counted_by_path_whatever_the_content_type() {
    let app = code_use_limited(|_| {}).await;
    let (token, _) = customer(&app, "guesser@example.com").await;
    // REST use, claiming to be gRPC.
    let (made, _) = calls_until_refused(
        |n| {
            anonymous()
                .post(format!(
                    "{}/api/v1/discount-codes/{}/use",
                    app.url(),
                    guess(n)
                ))
                .header("authorization", bearer(&token))
                .header("content-type", "application/grpc")
                .send()
        },
        |r| is_refused_any_protocol(r.as_ref().unwrap()),
    )
    .await;
    assert!(made >= BURST as usize, "the burst is served: {made}");

    // gRPC UseCode, claiming to be JSON: the same client's allowance is spent already.
    let (token, _) = customer(&app, "second@example.com").await;
    let (made, _) = calls_until_refused(
        |_| {
            anonymous()
                .post(format!("{}/discount.Discount/UseCode", app.url()))
                .header("authorization", bearer(&token))
                .header("content-type", "application/json")
                .body("{}")
                .send()
        },
        |r| is_429(r.as_ref().unwrap()),
    )
    .await;
    assert!(made >= BURST as usize, "the burst is served: {made}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_orders_that_carry_a_code_count_as_code_uses() {
    let app = code_use_limited(|_| {}).await;
    let (token, id) = customer(&app, "shopper@example.com").await;
    let order = |code: Option<(&str, String)>| {
        let mut body = json!({
            "customer": id.to_string(),
            "shipping_address": {"name": "A", "line1": "1 Road", "city": "Town",
                                  "postal_code": "1", "country": "KR"},
            "lines": [{"product_id": 999_999, "quantity": 1}],
        });
        if let Some((field, value)) = code {
            body[field] = json!(value);
        }
        anonymous()
            .post(format!("{}/api/v1/orders", app.url()))
            .header("authorization", bearer(&token))
            .json(&body)
            .send()
    };
    // Without a code, orders are not code uses: never refused.
    for _ in 0..3 * BURST {
        let r = order(None).await.unwrap();
        assert_ne!(r.status(), 429);
    }
    for field in ["discount_code", "coupon"] {
        let (made, refusal) = calls_until_refused(
            |n| order(Some((field, guess(n)))),
            |r| is_429(r.as_ref().unwrap()),
        )
        .await;
        assert!(
            made <= BURST as usize + 1,
            "{field}: {made} guesses before the refusal"
        );
        let r = refusal.unwrap();
        assert!(r.headers().contains_key("retry-after"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
    }
    app.stop().await;
}

// Finding 10 (part): anonymous IssueCoupon is limited per address, and a campaign with a
// per-user limit refuses an issue that names no user.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_anonymous_issues_are_limited_per_address_on_grpc_and_connect() {
    let app = code_use_limited(|c| c.auth.open_public_contracts = true).await;
    let id = crate::helpers::open_campaign(
        &mut crate::helpers::coupon_client(app.channel().await),
        1_000,
    )
    .await;
    let grpc = CouponServiceClient::new(raw_channel(app.addr).await);
    let (made, _) = calls_until_refused(
        |_| {
            let mut grpc = grpc.clone();
            async move {
                grpc.issue_coupon(IssueCouponRequest {
                    campaign_id: id,
                    ..Default::default()
                })
                .await
            }
        },
        |r| match r {
            Ok(_) => false,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                true
            }
        },
    )
    .await;
    assert!(made >= BURST as usize, "the burst is served: {made}");
    // Connect, from the same address: refused too, its allowance spent (but for what a
    // second has given back meanwhile).
    let (made, (status, body)) = calls_until_refused(
        |_| connect_json_owned(app.url(), json!({"campaignId": id})),
        |(status, _)| *status != 200,
    )
    .await;
    assert!(
        made <= 1,
        "{made} anonymous Connect issues after the gRPC ones"
    );
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "resource_exhausted");
    // Staff issue for anyone, without a limit.
    let mut staff = crate::helpers::coupon_client(app.channel().await);
    for n in 0..3 * BURST {
        staff
            .issue_coupon(IssueCouponRequest {
                campaign_id: id,
                user_id: format!("u{n}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_a_per_user_limit_needs_a_user_on_every_transport() {
    let app = TestApp::spawn_configured(None, |c| c.auth.open_public_contracts = true).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut admin = crate::helpers::coupon_client(app.channel().await);
    let limited = admin
        .create_campaign(allot_server::pb::couponpb::CreateCampaignRequest {
            name: "one each".to_owned(),
            start_time: Some(crate::helpers::timestamp(now - 60_000)),
            total_coupons: 100,
            per_user_limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .campaign_id;
    let mut anon = CouponServiceClient::new(raw_channel(app.addr).await);
    let e = anon
        .issue_coupon(IssueCouponRequest {
            campaign_id: limited,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("user_id"), "{e:?}");
    let (status, body) = connect_json(
        &anonymous(),
        &app.url(),
        "IssueCoupon",
        json!({"campaignId": limited}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument"))
    );
    let r = http()
        .post(format!("{}/api/v1/campaigns/{limited}/coupons", app.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "user_id");
    // Naming a user, the limit holds: one code, then user_limit_reached.
    let one = IssueCouponRequest {
        campaign_id: limited,
        user_id: "u1".to_owned(),
        ..Default::default()
    };
    anon.issue_coupon(one.clone()).await.unwrap();
    let e = anon.issue_coupon(one).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    // The original contract, a campaign without a per-user limit, issues with no user.
    let open = crate::helpers::open_campaign(&mut admin, 10).await;
    anon.issue_coupon(IssueCouponRequest {
        campaign_id: open,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        app.db()
            .await
            .count(&format!(
                "SELECT COUNT(*) FROM campaign_coupons WHERE campaign_id = {limited}"
            ))
            .await,
        1
    );
    app.stop().await;
}

// Finding 12: staff roles and service keys are not throttled unless listed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_staff_and_service_keys_are_not_throttled_unless_listed() {
    // The harness admin key is the first API key (id 1); the listed one is the second.
    let app = code_use_limited(|c| c.rate_limits.code_use_limited_api_keys = vec![2]).await;
    for n in 0..10 * BURST as usize {
        let r = http()
            .post(format!(
                "{}/api/v1/discount-codes/{}/use",
                app.url(),
                guess(n)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "the shop's own key is never refused");
    }
    let mut grpc = app.discount().await;
    for _ in 0..10 * BURST {
        let r = grpc
            .use_code(UseCodeRequest {
                code: "STAFF999".to_owned(),
            })
            .await
            .unwrap();
        assert_eq!(r.into_inner().result, vec![1]);
    }
    let listed = format!("ak_{:032x}", rand::random::<u128>());
    app.services
        .auth
        .register_api_key("listed partner", &listed, Role::Marketing)
        .await
        .unwrap();
    assert_eq!(
        app.services
            .auth
            .api_key(&listed)
            .await
            .unwrap()
            .unwrap()
            .id,
        2
    );
    let (made, _) = calls_until_refused(
        |n| {
            anonymous()
                .post(format!(
                    "{}/api/v1/discount-codes/{}/use",
                    app.url(),
                    guess(n)
                ))
                .header("x-api-key", &listed)
                .send()
        },
        |r| is_429(r.as_ref().unwrap()),
    )
    .await;
    assert!(made >= BURST as usize);
    // A customer is limited too.
    let (token, _) = customer(&app, "c@example.com").await;
    let discount = DiscountClient::new(raw_channel(app.addr).await);
    let (made, _) = calls_until_refused(
        |_| {
            let mut discount = discount.clone();
            let mut call = tonic::Request::new(UseCodeRequest {
                code: "CUST9999".to_owned(),
            });
            call.metadata_mut()
                .insert("authorization", bearer(&token).parse().unwrap());
            async move { discount.use_code(call).await }
        },
        |r| r.is_err(),
    )
    .await;
    assert!(made >= BURST as usize);
    app.stop().await;
}

// Finding 10 (part): sign-in limited per email and address; another address is not locked
// out. Finding 2: junk emails never become limiter keys.

async fn login_from(
    app: &TestApp,
    address: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    anonymous()
        .post(format!("{}/api/v1/auth/login", app.url()))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_an_attacker_at_one_address_does_not_lock_the_owner_out() {
    let app = TestApp::spawn_configured(None, |c| {
        c.trust_forwarded_for = true;
        c.rate_limits = RateLimitSettings {
            code_use_per_sec: 0,
            ..RateLimitSettings::default()
        };
    })
    .await;
    customer(&app, "owner@example.com").await;
    for _ in 0..5 {
        let r = login_from(&app, "203.0.113.9", "owner@example.com", "wrong password!").await;
        assert_eq!(r.status(), 401);
    }
    let r = login_from(&app, "203.0.113.9", "owner@example.com", PASSWORD).await;
    assert_eq!(r.status(), 429, "the attacker's address is held back");
    let r = login_from(&app, "198.51.100.1", "owner@example.com", PASSWORD).await;
    assert_eq!(r.status(), 200, "the owner, elsewhere, signs in");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_junk_emails_never_become_limiter_keys() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            login_per_email_per_ip_per_min: 5,
            login_per_email_per_min: 60,
            ..RateLimitSettings::OFF
        };
    })
    .await;
    let client = anonymous();
    for n in 0..300 {
        // 100 KB of junk each, all different.
        let junk = format!("{n}{}", "x".repeat(100_000));
        let r = client
            .post(format!("{}/api/v1/auth/login", app.url()))
            .json(&json!({"email": junk, "password": "whatever"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
    }
    let clients: std::collections::HashMap<_, _> = app.rate_limits.clients().into_iter().collect();
    assert_eq!(clients["login_email_ip"], 0, "{clients:?}");
    assert_eq!(clients["login_email"], 0, "{clients:?}");
    let metrics = anonymous()
        .get(format!("{}/metrics", app.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("allot_rate_limit_clients"), "{metrics}");
    app.stop().await;
}

// Finding 6: password changes are limited per user.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_password_changes_are_limited_per_user() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            password_change_per_user_per_min: 3,
            ..RateLimitSettings::OFF
        };
    })
    .await;
    let (token, _) = customer(&app, "changer@example.com").await;
    let change = || {
        anonymous()
            .post(format!("{}/api/v1/auth/password", app.url()))
            .header("authorization", bearer(&token))
            .json(&json!({"current_password": "not the password", "new_password": "a new long password"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(change().await.unwrap().status(), 401);
    }
    let r = change().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Another user is not held back.
    let (other, _) = customer(&app, "other@example.com").await;
    let r = anonymous()
        .post(format!("{}/api/v1/auth/password", app.url()))
        .header("authorization", bearer(&other))
        .json(&json!({"current_password": PASSWORD, "new_password": "a new long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    app.stop().await;
}

// Finding 5: timeouts and caps at the socket, body limits before any buffering.

/// A connection that sends part of a request's headers, one byte at a time, and never ends
/// them; or, when `silent`, nothing at all. Answers when the server closed it.
async fn slow_client(mut tcp: TcpStream, silent: bool) -> Instant {
    let mut buf = [0u8; 1024];
    if silent {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    }
    let head = b"GET /health HTTP/1.1\r\nhost: allot\r\nx-slow: ";
    let _ = tcp.write_all(head).await;
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Instant::now(),
                // hyper may answer 408 before it closes.
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if tcp.write_all(b"a").await.is_err() {
                    return Instant::now();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_a_thousand_slow_connections_are_closed_and_others_served() {
    // 1,000 client sockets and 1,000 server sockets in this process: `ulimit -n` must allow
    // some 2,100 (the test machines allow 20,000).
    const SLOW: usize = 1_000;
    let timeout = Duration::from_millis(1_500);
    let app = TestApp::spawn_configured(None, |c| {
        c.connections.header_read_timeout = timeout;
    })
    .await;
    let started = Instant::now();
    let mut slow = tokio::task::JoinSet::new();
    for n in 0..SLOW {
        // One after the other, as an attacker opens them: a thousand connects at once would
        // overflow the listen backlog, whose dropped handshakes then look like open
        // connections to a client that sends nothing.
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        slow.spawn(slow_client(tcp, n % 2 == 0));
    }
    // While they hang on, other clients are served at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let t = Instant::now();
        let r = anonymous()
            .get(format!("{}/health", app.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(t.elapsed() < timeout, "served in {:?}", t.elapsed());
    }
    // And every slow one is closed after the header timeout.
    let mut closed = Vec::with_capacity(SLOW);
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(at) = slow.join_next().await {
            closed.push(at.unwrap() - started);
        }
    })
    .await;
    slow.abort_all();
    assert_eq!(closed.len(), SLOW, "slow connections the server closed");
    let last = closed.iter().max().unwrap();
    assert!(
        *last < timeout * 4,
        "the last slow connection closed after {last:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_an_http2_connection_that_never_makes_a_request_is_closed() {
    let timeout = Duration::from_millis(1_000);
    let app = TestApp::spawn_configured(None, |c| {
        c.connections.header_read_timeout = timeout;
    })
    .await;
    let started = Instant::now();
    // The preface and an empty SETTINGS frame, then nothing.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(timeout * 5, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // SETTINGS, GOAWAY
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {:?}", started.elapsed());
    assert!(started.elapsed() >= timeout - Duration::from_millis(100));
    // A real HTTP/2 client is served as before.
    let r = crate::helpers::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .get(format!("{}/health", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_past_the_connection_cap_a_client_waits_for_a_slot() {
    let timeout = Duration::from_millis(1_000);
    let app = TestApp::spawn_configured(None, |c| {
        c.connections.header_read_timeout = timeout;
        c.connections.connections_max = 2;
    })
    .await;
    let started = Instant::now();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        holders.push(tokio::spawn(slow_client(tcp, true)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = anonymous()
        .get(format!("{}/health", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(100),
        "served in {waited:?}, before a slot was free"
    );
    for h in holders {
        h.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_a_request_trickling_its_body_times_out_but_the_event_stream_lives_on() {
    let timeout = Duration::from_millis(800);
    let app = TestApp::spawn_configured(None, |c| {
        c.connections.request_timeout = timeout;
        c.connections.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/products HTTP/1.1\r\nhost: allot\r\nx-api-key: {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"sku\":",
        *crate::helpers::ADMIN_KEY
    );
    let t = Instant::now();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("request_timeout") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("an answer within the timeout")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(t.elapsed() >= timeout);

    // The event stream's response has started; its body is not cut off.
    let mut stream = http()
        .get(format!("{}/api/v1/events/stream", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let quiet = tokio::time::timeout(timeout * 3, async {
        while let Some(_chunk) = stream.chunk().await.unwrap() {}
    })
    .await;
    assert!(
        quiet.is_err(),
        "the stream ended within the request timeout"
    );
    // gRPC calls with their own deadline work as before.
    let mut grpc = app.discount().await;
    let mut call = tonic::Request::new(UseCodeRequest {
        code: "ABCDEFGH".to_owned(),
    });
    call.set_timeout(Duration::from_secs(5));
    assert_eq!(
        grpc.use_code(call).await.unwrap().into_inner().result,
        vec![1]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_a_body_past_its_route_s_limit_is_refused_before_idempotency_buffers_it() {
    let app = TestApp::spawn().await;
    // Spoken over a raw connection that never writes more than the server must read to decide:
    // a server that refuses early closes with the rest unread, and a client still writing then
    // meets a reset instead of the answer (a client library's race, not the server's).
    let addr = app.addr;
    let refused = |content_type: &'static str, framing: String, body: Vec<u8>| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/v1/products HTTP/1.1\r\nhost: allot\r\nx-api-key: {}\r\n\
             idempotency-key: big-1\r\ncontent-type: {content_type}\r\n{framing}\r\n",
            *crate::helpers::ADMIN_KEY
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&body).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("payload_too_large") {
            let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
                .await
                .expect("an answer without the rest of the body")
                .unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    };
    // Declared too large: refused at once, before a byte of the body is sent.
    let declared = format!("content-length: {}\r\n", 3 * 1024 * 1024);
    refused("application/json", declared.clone(), Vec::new()).await;
    // Claiming to be gRPC changes nothing: a REST route is known by its path.
    refused("application/grpc", declared, Vec::new()).await;
    // Sent without a length (chunked): refused when the limit is passed, without the end.
    let mut chunked = b"{\"sku\":\"".to_vec();
    for _ in 0..33 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&[b'x'; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    let mut body = format!("{:x}\r\n", 8).into_bytes();
    body.extend_from_slice(&chunked[..8]);
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(&chunked[8..]);
    refused(
        "application/json",
        "transfer-encoding: chunked\r\n".to_owned(),
        body,
    )
    .await;
    // The bulk upload takes more than 2 MiB (and answers for its content).
    let r = http()
        .post(format!("{}/api/v1/coupons", app.url()))
        .header("content-type", "application/json")
        .body(format!("[{}]", "1,".repeat(1_600_000) + "1"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 413);
    app.stop().await;
}

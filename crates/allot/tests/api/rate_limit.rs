//! Rate limits per client (issue 8): sign-in per address and per email against credential
//! stuffing, code use per customer (else address) against code enumeration; 429 with
//! `Retry-After` and `rate_limited` over REST, RESOURCE_EXHAUSTED with `retry-after` over gRPC;
//! other clients unaffected.

use allot_domain::auth::{Email, Password, Role};
use allot_server::pb::discount::UseCodeRequest;
use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::rate_limit::RateLimitSettings;
use serde_json::{Value, json};

use crate::helpers::{TestApp, anonymous, http, raw_channel};

const PASSWORD: &str = "correct horse battery staple";
/// More calls than any test needs to meet its limit.
const CALLS_MAX: usize = 200;

async fn user(app: &TestApp, email: &str) {
    app.services
        .auth
        .create_user(
            Email::parse(email).unwrap(),
            Password::parse(PASSWORD).unwrap(),
            Role::Customer,
        )
        .await
        .unwrap();
}

/// A customer's access token and account id (customers' code uses are limited; staff's and
/// API keys' are not, unless listed).
async fn customer_token(app: &TestApp, email: &str) -> (String, i64) {
    user(app, email).await;
    let tokens = app
        .services
        .auth
        .login(&Email::parse(email).unwrap(), PASSWORD)
        .await
        .unwrap();
    (
        format!("Bearer {}", tokens.access_token),
        tokens.user.id.get(),
    )
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    anonymous()
        .post(format!("{}/api/v1/auth/login", app.url()))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn assert_rate_limited(r: reqwest::Response) {
    assert_eq!(r.status(), 429);
    let wait = retry_after(&r);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_wrong_password_in_a_minute_is_refused_and_so_is_the_right_one() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            code_use_per_sec: 0,
            ..RateLimitSettings::default()
        };
    })
    .await;
    user(&app, "ann@example.com").await;
    user(&app, "bob@example.com").await;
    for _ in 0..5 {
        assert_eq!(
            login(&app, "ann@example.com", "wrong password!")
                .await
                .status(),
            401
        );
    }
    assert_rate_limited(login(&app, "ann@example.com", "wrong password!").await).await;
    // The right password does not get through until the wait is over.
    assert_rate_limited(login(&app, "ANN@example.com", PASSWORD).await).await;
    // Another account is not locked by Ann's attacker.
    assert_eq!(login(&app, "bob@example.com", PASSWORD).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_trying_many_emails_is_refused() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            login_per_ip_per_min: 3,
            ..RateLimitSettings::OFF
        };
    })
    .await;
    for n in 0..3 {
        let email = format!("nobody{n}@example.com");
        assert_eq!(login(&app, &email, "guess guess guess").await.status(), 401);
    }
    assert_rate_limited(login(&app, "nobody9@example.com", "guess guess guess").await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_use_is_limited_per_client_over_rest_and_grpc() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            code_use_per_sec: 1,
            code_use_burst: 5,
            ..RateLimitSettings::OFF
        };
    })
    .await;
    // An enumerating client: a customer, guessing codes.
    let (guesser, _) = customer_token(&app, "guesser@example.com").await;
    let mut allowed = 0;
    let mut refused = None;
    for n in 0..CALLS_MAX {
        let r = http()
            .post(format!(
                "{}/api/v1/discount-codes/GUESS{n:03}/use",
                app.url()
            ))
            .header("authorization", &guesser)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 404);
        allowed += 1;
    }
    assert!(allowed >= 5, "the burst is served: {allowed}");
    assert_rate_limited(refused.expect("the guesses are refused")).await;

    // The same client over gRPC shares its allowance.
    let mut grpc = DiscountClient::new(raw_channel(app.addr).await);
    let mut exhausted = None;
    for _ in 0..CALLS_MAX {
        let mut call = tonic::Request::new(UseCodeRequest {
            code: "GUESS999".to_owned(),
        });
        call.metadata_mut()
            .insert("authorization", guesser.parse().unwrap());
        match grpc.use_code(call).await {
            Ok(r) => assert_eq!(r.into_inner().result, vec![1]),
            Err(status) => {
                exhausted = Some(status);
                break;
            }
        }
    }
    let status = exhausted.expect("the gRPC guesses are refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let wait: u64 = status
        .metadata()
        .get("retry-after")
        .expect("retry-after metadata")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));

    // Another client is not held back by the first.
    let (other, _) = customer_token(&app, "other@example.com").await;
    let r = anonymous()
        .post(format!("{}/api/v1/discount-codes/GUESS000/use", app.url()))
        .header("authorization", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nor are the calls that use no code.
    let r = http()
        .post(format!("{}/api/v1/discount-codes/batches", app.url()))
        .json(&json!({"count": 1, "length": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupon_redemption_guesses_are_limited_too() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits = RateLimitSettings {
            code_use_per_sec: 1,
            code_use_burst: 3,
            ..RateLimitSettings::OFF
        };
    })
    .await;
    let (guesser, id) = customer_token(&app, "guesser@example.com").await;
    let mut refused = None;
    for n in 0..CALLS_MAX {
        let action = if n % 2 == 0 { "validate" } else { "redeem" };
        let r = http()
            .post(format!("{}/api/v1/coupons/GUESS-{n}/{action}", app.url()))
            .header("authorization", &guesser)
            .json(&json!({"user_id": id.to_string()}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 404);
    }
    assert_rate_limited(refused.expect("the guesses are refused")).await;
    app.stop().await;
}

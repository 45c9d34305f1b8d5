//! Accounts over the API (issue 15): users and API keys managed by admins, each change taking
//! effect at once; the first admin (setup link, bootstrap settings); self sign-up with email
//! verification and forgot password, through the real test SMTP server; `allot admin` against
//! a running server.

use std::time::{Duration, Instant};

use allot_domain::UnixMillis;
use allot_server::service::notification::SmtpTls;
use allot_testkit::{ReceivedMail, SmtpServer};
use serde_json::{Value, json};

use crate::helpers::{ProcessBackend, TestApp, anonymous, http};

const PASSWORD: &str = "correct horse battery staple";
const PATIENCE: Duration = Duration::from_secs(30);

/// A request as the harness admin (its API key), or as `bearer` when given.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = if bearer.is_some() {
        anonymous()
    } else {
        http()
    };
    let url = format!("{}{path}", app.url());
    let mut req = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "PUT" => client.put(url),
        "DELETE" => client.delete(url),
        m => panic!("method {m}"),
    };
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, email: &str, role: &str) -> i64 {
    let (s, b) = call(
        app,
        "POST",
        "/api/v1/users",
        None,
        Some(json!({"email": email, "password": PASSWORD, "role": role})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_i64().unwrap()
}

/// Signs in: (access token, refresh token).
async fn login(app: &TestApp, email: &str, password: &str) -> (u16, String, String) {
    let (s, b) = call(
        app,
        "POST",
        "/api/v1/auth/login",
        Some("none"),
        Some(json!({"email": email, "password": password})),
    )
    .await;
    let token = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
    (s, token("access_token"), token("refresh_token"))
}

async fn me(app: &TestApp, access: &str) -> u16 {
    call(app, "GET", "/api/v1/auth/me", Some(access), None)
        .await
        .0
}

async fn refresh(app: &TestApp, refresh: &str) -> u16 {
    call(
        app,
        "POST",
        "/api/v1/auth/refresh",
        Some("none"),
        Some(json!({"refresh_token": refresh})),
    )
    .await
    .0
}

async fn events_of(app: &TestApp, kind: &str) -> Vec<Value> {
    let (s, b) = call(
        app,
        "GET",
        &format!("/api/v1/events?type={kind}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_listed_found_and_paged_by_admins_only() {
    let app = TestApp::spawn().await;
    let ann = create(&app, "Ann@Example.com", "support").await;
    let bob = create(&app, "bob@example.com", "warehouse").await;
    let cat = create(&app, "cat@example.com", "warehouse").await;
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/users",
        None,
        Some(json!({"email": "ann@example.com", "password": PASSWORD, "role": "admin"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("email_taken")),
        "{b}"
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/users",
        None,
        Some(json!({"email": "dan@example.com", "password": "short", "role": "admin"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("password")),
        "{b}"
    );

    let (s, page) = call(&app, "GET", "/api/v1/users?role=warehouse", None, None).await;
    assert_eq!(s, 200, "{page}");
    let ids: Vec<i64> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![bob, cat]);
    let (_, first) = call(&app, "GET", "/api/v1/users?limit=1", None, None).await;
    assert_eq!(first["users"][0]["id"], ann);
    assert_eq!(first["next_after"], ann);
    let (_, second) = call(
        &app,
        "GET",
        &format!("/api/v1/users?limit=2&after={ann}"),
        None,
        None,
    )
    .await;
    assert_eq!(second["users"][0]["id"], bob);
    // An exact email, whatever its case, through the blind index.
    let (_, found) = call(
        &app,
        "GET",
        "/api/v1/users?email=ANN@example.com",
        None,
        None,
    )
    .await;
    assert_eq!(found["users"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["users"][0]["email"], "ann@example.com");
    assert!(found["users"][0].get("password_hash").is_none());
    let (s, one) = call(&app, "GET", &format!("/api/v1/users/{bob}"), None, None).await;
    assert_eq!((s, one["role"].as_str()), (200, Some("warehouse")), "{one}");
    assert_eq!(one["active"], true);
    assert_eq!(one["email_verified"], true);
    let (s, _) = call(&app, "GET", "/api/v1/users/999999", None, None).await;
    assert_eq!(s, 404);

    // Every users and keys route refuses a signed-in non-admin.
    let (s, access, _) = login(&app, "bob@example.com", PASSWORD).await;
    assert_eq!(s, 200);
    let refused = [
        ("GET", "/api/v1/users".to_owned(), None),
        (
            "POST",
            "/api/v1/users".to_owned(),
            Some(json!({"email": "x@example.com", "password": PASSWORD, "role": "admin"})),
        ),
        ("GET", format!("/api/v1/users/{bob}"), None),
        (
            "PUT",
            format!("/api/v1/users/{bob}/role"),
            Some(json!({"role": "admin"})),
        ),
        (
            "PUT",
            format!("/api/v1/users/{ann}/active"),
            Some(json!({"active": false})),
        ),
        (
            "POST",
            format!("/api/v1/users/{ann}/password"),
            Some(json!({"new_password": PASSWORD})),
        ),
        ("GET", "/api/v1/api-keys".to_owned(), None),
        (
            "POST",
            "/api/v1/api-keys".to_owned(),
            Some(json!({"name": "x", "role": "admin"})),
        ),
        ("DELETE", "/api/v1/api-keys/1".to_owned(), None),
    ];
    for (method, path, body) in refused {
        let (s, b) = call(&app, method, &path, Some(&access), body).await;
        assert_eq!(s, 403, "{method} {path}: {b}");
    }
    let (_, still) = call(&app, "GET", &format!("/api/v1/users/{bob}"), None, None).await;
    assert_eq!(still["role"], "warehouse");
    assert_eq!(events_of(&app, "UserCreated").await.len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_deactivation_role_change_and_password_reset_take_effect_at_once() {
    let app = TestApp::spawn().await;
    let ann = create(&app, "ann@example.com", "support").await;

    let (_, access, refresh_token) = login(&app, "ann@example.com", PASSWORD).await;
    assert_eq!(me(&app, &access).await, 200);
    let (s, b) = call(
        &app,
        "PUT",
        &format!("/api/v1/users/{ann}/active"),
        None,
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!((s, b["active"].as_bool()), (200, Some(false)), "{b}");
    assert_eq!(
        me(&app, &access).await,
        401,
        "the access token stops at once"
    );
    assert_eq!(
        refresh(&app, &refresh_token).await,
        401,
        "so does the session"
    );
    assert_eq!(login(&app, "ann@example.com", PASSWORD).await.0, 401);
    let (s, b) = call(
        &app,
        "PUT",
        &format!("/api/v1/users/{ann}/active"),
        None,
        Some(json!({"active": true})),
    )
    .await;
    assert_eq!((s, b["active"].as_bool()), (200, Some(true)), "{b}");

    let (s, access, refresh_token) = login(&app, "ann@example.com", PASSWORD).await;
    assert_eq!(s, 200);
    let (s, b) = call(
        &app,
        "PUT",
        &format!("/api/v1/users/{ann}/role"),
        None,
        Some(json!({"role": "marketing"})),
    )
    .await;
    assert_eq!((s, b["role"].as_str()), (200, Some("marketing")), "{b}");
    assert_eq!(
        me(&app, &access).await,
        401,
        "a token of the old role stops"
    );
    assert_eq!(
        refresh(&app, &refresh_token).await,
        401,
        "so does the session"
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/auth/login",
        Some("none"),
        Some(json!({"email": "ann@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["user"]["role"], "marketing",
        "a new sign-in carries the new role"
    );
    let access = b["access_token"].as_str().unwrap().to_owned();
    let refresh_token = b["refresh_token"].as_str().unwrap().to_owned();

    let (s, b) = call(
        &app,
        "POST",
        &format!("/api/v1/users/{ann}/password"),
        None,
        Some(json!({"new_password": "a new password of some length"})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(me(&app, &access).await, 401);
    assert_eq!(refresh(&app, &refresh_token).await, 401);
    assert_eq!(login(&app, "ann@example.com", PASSWORD).await.0, 401);
    assert_eq!(
        login(&app, "ann@example.com", "a new password of some length")
            .await
            .0,
        200
    );

    for kind in [
        "UserDeactivated",
        "UserReactivated",
        "UserRoleChanged",
        "UserPasswordReset",
    ] {
        let got = events_of(&app, kind).await;
        assert_eq!(got.len(), 1, "{kind}: {got:?}");
        assert_eq!(got[0]["payload"]["user_id"], ann, "{kind}");
        assert!(
            !got[0]["payload"].to_string().contains("@example.com"),
            "no email in the log"
        );
    }
    let changed = &events_of(&app, "UserRoleChanged").await[0];
    assert_eq!(changed["payload"]["from"], "support");
    assert_eq!(changed["payload"]["role"], "marketing");
    assert!(changed["actor"].as_str().unwrap().starts_with("api_key:"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_the_last_active_admin_can_be_neither_deactivated_nor_demoted() {
    let app = TestApp::spawn().await;
    let ann = create(&app, "ann@example.com", "admin").await;
    let last = |s: u16, b: &Value| s == 409 && b["error"]["code"] == "last_admin";
    let (s, b) = call(
        &app,
        "PUT",
        &format!("/api/v1/users/{ann}/active"),
        None,
        Some(json!({"active": false})),
    )
    .await;
    assert!(last(s, &b), "{s} {b}");
    let (s, b) = call(
        &app,
        "PUT",
        &format!("/api/v1/users/{ann}/role"),
        None,
        Some(json!({"role": "support"})),
    )
    .await;
    assert!(last(s, &b), "{s} {b}");
    let bob = create(&app, "bob@example.com", "admin").await;
    // Both at once: one may go, never both.
    let (deactivate, demote) = (
        format!("/api/v1/users/{ann}/active"),
        format!("/api/v1/users/{bob}/role"),
    );
    let (one, two) = tokio::join!(
        call(
            &app,
            "PUT",
            &deactivate,
            None,
            Some(json!({"active": false})),
        ),
        call(&app, "PUT", &demote, None, Some(json!({"role": "support"}))),
    );
    let mut statuses = [one.0, two.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{one:?} {two:?}");
    let (_, admins) = call(
        &app,
        "GET",
        "/api/v1/users?role=admin&active=true",
        None,
        None,
    )
    .await;
    assert_eq!(admins["users"].as_array().unwrap().len(), 1, "{admins}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_keys_are_listed_without_secrets_shown_once_and_revoked_at_once() {
    let app = TestApp::spawn().await;
    let (s, made) = call(
        &app,
        "POST",
        "/api/v1/api-keys",
        None,
        Some(json!({"name": "checkout", "role": "marketing"})),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    let id = made["api_key"]["id"].as_i64().unwrap();
    assert!(key.starts_with("ak_"));
    assert_eq!(me(&app, &key).await, 200);
    let (s, list) = call(&app, "GET", "/api/v1/api-keys", None, None).await;
    assert_eq!(s, 200, "{list}");
    let listed = list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .expect("the key is listed")
        .clone();
    assert_eq!(listed["name"], "checkout");
    assert_eq!(listed["role"], "marketing");
    assert_eq!(listed["revoked_at"], Value::Null);
    assert!(!list.to_string().contains(&key), "no secret is listed");
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/api-keys/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(me(&app, &key).await, 401, "revoked here: refused at once");
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/api-keys/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/api-keys",
        None,
        Some(json!({"name": "x", "role": "root"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("role")),
        "{b}"
    );
    assert_eq!(
        events_of(&app, "ApiKeyCreated").await.len(),
        2,
        "harness key too"
    );
    let revoked = events_of(&app, "ApiKeyRevoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["payload"]["api_key_id"], id);

    // A retry key is ignored here: a kept answer would keep the new key's secret.
    let with_key = || {
        http()
            .post(format!("{}/api/v1/api-keys", app.url()))
            .header("idempotency-key", "same")
            .json(&json!({"name": "twice", "role": "support"}))
            .send()
    };
    let first: Value = with_key().await.unwrap().json().await.unwrap();
    let second: Value = with_key().await.unwrap().json().await.unwrap();
    assert_ne!(first["key"], second["key"], "two keys, neither replayed");
    let kept = app
        .db()
        .await
        .count("SELECT count(*) FROM idempotency_keys")
        .await;
    assert_eq!(kept, 0);
    app.stop().await;
}

fn setup_token(url: &str) -> String {
    url.split("token=").nth(1).expect("a token").to_owned()
}

async fn setup(app: &TestApp, token: &str, email: &str) -> (u16, Value) {
    call(
        app,
        "POST",
        "/api/v1/setup",
        Some("none"),
        Some(json!({"token": token, "email": email, "password": PASSWORD})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_two_completions_at_once_make_one_admin_and_the_link_works_once() {
    let app = TestApp::spawn().await;
    let url = app.setup_url.clone().expect("no admin: a setup link");
    assert!(
        url.starts_with(&format!("{}/setup?token=", app.url())),
        "{url}"
    );
    assert!(!app.services.accounts.admin_exists().await.unwrap());
    let token = setup_token(&url);
    let (s, b) = setup(&app, "st_wrong", "x@example.com").await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (403, Some("token")),
        "{b}"
    );

    let (one, two) = tokio::join!(
        setup(&app, &token, "first@example.com"),
        setup(&app, &token, "second@example.com"),
    );
    let mut statuses = [one.0, two.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 410], "{one:?} {two:?}");
    let winner = if one.0 == 201 { &one.1 } else { &two.1 };
    assert_eq!(winner["role"], "admin");
    let (_, admins) = call(&app, "GET", "/api/v1/users?role=admin", None, None).await;
    assert_eq!(admins["users"].as_array().unwrap().len(), 1, "{admins}");
    let (s, b) = setup(&app, &token, "third@example.com").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (410, Some("setup_done")),
        "{b}"
    );
    // A token longer than any the server prints is the client's mistake whatever the state.
    let (s, b) = setup(&app, &"t".repeat(129), "fourth@example.com").await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("token")),
        "{b}"
    );
    let email = winner["email"].as_str().unwrap();
    assert_eq!(login(&app, email, PASSWORD).await.0, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_a_link_past_its_hour_is_refused() {
    let start = UnixMillis::from_millis(1_800_000_000_000);
    let app = TestApp::spawn_with_clock(start).await;
    let token = setup_token(app.setup_url.as_deref().expect("a setup link"));
    app.clock
        .as_ref()
        .unwrap()
        .set(start.plus_millis(3_600_000));
    let (s, b) = setup(&app, &token, "late@example.com").await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (403, Some("token")),
        "{b}"
    );
    assert!(!app.services.accounts.admin_exists().await.unwrap());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_the_bootstrap_admin_is_made_at_start_once() {
    let app = TestApp::spawn_configured(None, |c| {
        c.bootstrap_admin = Some((
            allot_domain::auth::Email::parse("boss@example.com").unwrap(),
            allot_domain::auth::Password::parse(PASSWORD).unwrap(),
        ));
    })
    .await;
    assert_eq!(app.setup_url, None, "an admin exists: no setup link");
    assert_eq!(login(&app, "boss@example.com", PASSWORD).await.0, 200);
    app.stop().await;

    // The real binary (the flags are the settings ALLOT_BOOTSTRAP_ADMIN_EMAIL and
    // ALLOT_BOOTSTRAP_ADMIN_PASSWORD), started twice on one storage.
    let backend = ProcessBackend::new();
    let serve = |email: &str, password: &str| {
        let server = backend.start_with(&[
            "--bootstrap-admin-email",
            email,
            "--bootstrap-admin-password",
            password,
        ]);
        let url = server.url();
        (server, url)
    };
    let (mut first, url) = serve("boss@example.com", PASSWORD);
    let sign_in = |url: String, email: &'static str, password: &'static str| async move {
        anonymous()
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        sign_in(url.clone(), "boss@example.com", PASSWORD).await,
        200
    );
    first.stop();
    let (mut second, url) = serve("other@example.com", "another long password");
    assert_eq!(
        sign_in(url.clone(), "other@example.com", "another long password").await,
        401,
        "an admin existed: the second bootstrap made nobody"
    );
    assert_eq!(sign_in(url, "boss@example.com", PASSWORD).await, 200);
    second.stop();
}

/// A server that delivers email to a real SMTP server quickly, links based at `public_url`.
async fn app_with_mail(smtp: &SmtpServer, allow_signup: bool) -> TestApp {
    let url = smtp.url();
    TestApp::spawn_configured(None, move |c| {
        c.notifications.smtp_url = Some(url);
        // The test server is plain SMTP on loopback.
        c.notifications.smtp_tls = Some(SmtpTls::Plain);
        c.notifications.smtp_from = "shop@allot.test".to_owned();
        c.notifications.poll_interval = Duration::from_millis(100);
        c.notifications.retry_base = Duration::from_millis(200);
        c.notifications.retry_max = Duration::from_millis(500);
        c.accounts.allow_signup = allow_signup;
        c.accounts.public_url = Some("https://shop.example/allot/".to_owned());
    })
    .await
}

async fn mail(smtp: &SmtpServer, n: usize) -> Vec<ReceivedMail> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = smtp.messages();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} emails"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A message's body as a mail client shows it: quoted-printable decoded when so sent (a line
/// holding a long link is).
fn text_of(m: &ReceivedMail) -> String {
    let qp = m
        .header("Content-Transfer-Encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
    if !qp {
        return m.body.clone();
    }
    let joined = m.body.replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'=', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The token of the link to `<public_url><path>?token=` in a message's body.
fn link_token(m: &ReceivedMail, path: &str) -> String {
    let text = text_of(m);
    let prefix = format!("https://shop.example/allot{path}?token=");
    let start = text.find(&prefix).unwrap_or_else(|| panic!("{text}")) + prefix.len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_is_off_by_default() {
    let app = TestApp::spawn().await;
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/auth/signup",
        Some("none"),
        Some(json!({"email": "eve@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("signup_closed")),
        "{b}"
    );
    let (_, found) = call(
        &app,
        "GET",
        "/api/v1/users?email=eve@example.com",
        None,
        None,
    )
    .await;
    assert_eq!(found["users"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_verifies_the_email_by_a_link_before_the_first_sign_in() {
    let smtp = SmtpServer::start();
    let app = app_with_mail(&smtp, true).await;
    let sign_up = |email: &'static str| {
        call(
            &app,
            "POST",
            "/api/v1/auth/signup",
            Some("none"),
            Some(json!({"email": email, "password": PASSWORD})),
        )
    };
    let (s, b) = sign_up("New@Example.com").await;
    assert_eq!(s, 202, "{b}");
    let (s, _, _) = login(&app, "new@example.com", PASSWORD).await;
    assert_eq!(s, 403, "not verified yet");
    let got = mail(&smtp, 1).await;
    assert_eq!(got[0].rcpt_to, vec!["new@example.com".to_owned()]);
    let token = link_token(&got[0], "/verify-email");
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/auth/verify-email",
        Some("none"),
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["role"].as_str(), b["email_verified"].as_bool()),
        (Some("customer"), Some(true))
    );
    assert_eq!(login(&app, "new@example.com", PASSWORD).await.0, 200);
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/auth/verify-email",
        Some("none"),
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("token")),
        "used once: {b}"
    );

    // The same email again: the same answer, and no account or email made.
    let (s, _) = sign_up("new@example.com").await;
    assert_eq!(s, 202);
    assert_eq!(events_of(&app, "UserSignedUp").await.len(), 1);
    assert_eq!(events_of(&app, "UserEmailVerified").await.len(), 1);
    assert_eq!(events_of(&app, "NotificationQueued").await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_emails_a_link_that_resets_it_once_and_ends_every_session() {
    let smtp = SmtpServer::start();
    let app = app_with_mail(&smtp, false).await;
    create(&app, "ann@example.com", "support").await;
    let (_, access, refresh_token) = login(&app, "ann@example.com", PASSWORD).await;
    let forgot = |email: &'static str| {
        call(
            &app,
            "POST",
            "/api/v1/auth/forgot-password",
            Some("none"),
            Some(json!({"email": email})),
        )
    };
    assert_eq!(forgot("nobody@example.com").await.0, 202, "the same answer");
    assert_eq!(forgot("Ann@example.com").await.0, 202);
    let got = mail(&smtp, 1).await;
    assert_eq!(got.len(), 1, "nobody@ got nothing");
    assert_eq!(got[0].rcpt_to, vec!["ann@example.com".to_owned()]);
    let token = link_token(&got[0], "/reset-password");
    let reset = |token: String| {
        call(
            &app,
            "POST",
            "/api/v1/auth/reset-password",
            Some("none"),
            Some(json!({"token": token, "new_password": "brand new and long enough"})),
        )
    };
    let (s, b) = reset(token.clone()).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(me(&app, &access).await, 401, "old access token refused");
    assert_eq!(
        refresh(&app, &refresh_token).await,
        401,
        "old session refused"
    );
    assert_eq!(login(&app, "ann@example.com", PASSWORD).await.0, 401);
    assert_eq!(
        login(&app, "ann@example.com", "brand new and long enough")
            .await
            .0,
        200
    );
    let (s, b) = reset(token).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("token")),
        "{b}"
    );
    let resets = events_of(&app, "UserPasswordReset").await;
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0]["payload"]["by"], "email");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_is_limited_per_email() {
    let app = TestApp::spawn_configured(None, |c| {
        c.rate_limits.account_email_per_hour = 2;
    })
    .await;
    let ask = || {
        call(
            &app,
            "POST",
            "/api/v1/auth/forgot-password",
            Some("none"),
            Some(json!({"email": "ann@example.com"})),
        )
    };
    assert_eq!(ask().await.0, 202);
    assert_eq!(ask().await.0, 202);
    let (s, b) = ask().await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{b}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_work_against_a_running_server() {
    use std::process::Command;

    let app = TestApp::spawn().await;
    let admin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_allot"))
            .arg("admin")
            .args(args)
            .env("ALLOT_SERVER", app.url())
            .env("ALLOT_API_KEY", crate::helpers::ADMIN_KEY.as_str())
            .env("ALLOT_NEW_USER_PASSWORD", PASSWORD)
            .env_remove("ALLOT_DATABASE_URL")
            .output()
            .expect("allot admin runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = admin(&[
        "create-user",
        "--email",
        "Ann@Example.com",
        "--role",
        "support",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ann@example.com (support)"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let (ok, out, err) = admin(&["set-user-role", "--id", &id, "--role", "marketing"]);
    assert!(ok && out.contains("is now marketing"), "{out}{err}");
    let (ok, out, err) = admin(&["set-user-active", "--id", &id, "--active", "false"]);
    assert!(ok && out.contains("deactivated"), "{out}{err}");
    let (ok, out, err) = admin(&["list-users", "--role", "marketing"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ann@example.com") && out.contains("inactive"),
        "{out}"
    );
    let (ok, out, err) = admin(&["create-api-key", "--name", "ci", "--role", "warehouse"]);
    assert!(ok, "{out}{err}");
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("ak_"))
        .expect("the key is printed")
        .to_owned();
    let key_id = out.split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(me(&app, &key).await, 200);
    let (ok, out, err) = admin(&["revoke-api-key", "--id", &key_id]);
    assert!(ok, "{out}{err}");
    assert_eq!(me(&app, &key).await, 401);
    // A refusal of the server is the command's failure, in the server's words.
    let (ok, _, err) = admin(&["set-user-role", "--id", "999999", "--role", "admin"]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (_, user) = call(&app, "GET", &format!("/api/v1/users/{id}"), None, None).await;
    assert_eq!(
        (user["role"].as_str(), user["active"].as_bool()),
        (Some("marketing"), Some(false))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_links_expire_and_only_their_hashes_are_stored() {
    let smtp = SmtpServer::start();
    let start = UnixMillis::from_millis(1_800_000_000_000);
    let url = smtp.url();
    let app = TestApp::spawn_configured(Some(start), move |c| {
        c.notifications.smtp_url = Some(url);
        c.notifications.smtp_tls = Some(SmtpTls::Plain);
        c.notifications.poll_interval = Duration::from_millis(100);
        c.accounts.allow_signup = true;
        c.accounts.public_url = Some("https://shop.example/allot".to_owned());
    })
    .await;
    let setup = app.setup_url.clone().unwrap();
    assert!(
        setup.starts_with("https://shop.example/allot/setup?token=st_"),
        "{setup}"
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/auth/signup",
        Some("none"),
        Some(json!({"email": "late@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 202);
    create(&app, "ann@example.com", "support").await;
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/auth/forgot-password",
        Some("none"),
        Some(json!({"email": "ann@example.com"})),
    )
    .await;
    assert_eq!(s, 202);
    let got = mail(&smtp, 2).await;
    let to = |m: &ReceivedMail| m.rcpt_to[0].clone();
    let verify = got.iter().find(|m| to(m) == "late@example.com").unwrap();
    let reset = got.iter().find(|m| to(m) == "ann@example.com").unwrap();
    let verify = link_token(verify, "/verify-email");
    let reset = link_token(reset, "/reset-password");

    let stored = app
        .db()
        .await
        .strings("SELECT token_hash FROM account_tokens ORDER BY token_hash")
        .await;
    assert_eq!(stored.len(), 2);
    for hash in &stored {
        assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            hash != &verify && hash != &reset,
            "a token is stored in the clear"
        );
    }

    let clock = app.clock.clone().unwrap();
    clock.set(start.plus_millis(3_600_000));
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/auth/reset-password",
        Some("none"),
        Some(json!({"token": reset, "new_password": "brand new and long enough"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("token")),
        "{b}"
    );
    clock.set(start.plus_millis(24 * 3_600_000));
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/auth/verify-email",
        Some("none"),
        Some(json!({"token": verify})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("token")),
        "{b}"
    );
    assert_eq!(login(&app, "late@example.com", PASSWORD).await.0, 403);
    assert_eq!(login(&app, "ann@example.com", PASSWORD).await.0, 200);
    app.stop().await;
}

/// Two instances on one PostgreSQL, whatever the suite's backend: the first admin and the last
/// admin are decided across instances (an advisory lock), not by each instance alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn setup_and_the_last_admin_hold_across_two_instances_of_one_postgres() {
    let cluster = allot_testkit::PgCluster::start();
    let now = UnixMillis::from_millis(1_800_000_000_000);
    let one = TestApp::spawn_on(Some(cluster.url()), now, |_| {}).await;
    let two = TestApp::spawn_on(Some(cluster.url()), now, |_| {}).await;
    let token_one = setup_token(one.setup_url.as_deref().expect("a link on the first"));
    let token_two = setup_token(two.setup_url.as_deref().expect("a link on the second"));
    let (s, _) = setup(&two, &token_one, "x@example.com").await;
    assert_eq!(s, 403, "a link works only on the instance that printed it");

    let (a, b) = tokio::join!(
        setup(&one, &token_one, "one@example.com"),
        setup(&two, &token_two, "two@example.com"),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 410], "{a:?} {b:?}");
    let db = allot_storage::postgres::connect(&cluster.url())
        .await
        .unwrap();
    assert_eq!(active_admins(&db).await, 1);

    // A second admin, then each instance takes one of the two away at once: one stays.
    let first = if a.0 == 201 { &a.1 } else { &b.1 };
    let first = first["id"].as_i64().unwrap();
    let second = create(&one, "second@example.com", "admin").await;
    let (deactivate, demote) = (
        format!("/api/v1/users/{first}/active"),
        format!("/api/v1/users/{second}/role"),
    );
    let (x, y) = tokio::join!(
        call(
            &one,
            "PUT",
            &deactivate,
            None,
            Some(json!({"active": false}))
        ),
        call(&two, "PUT", &demote, None, Some(json!({"role": "support"}))),
    );
    let mut statuses = [x.0, y.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{x:?} {y:?}");
    assert_eq!(active_admins(&db).await, 1);
    one.stop().await;
    two.stop().await;
}

async fn active_admins(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM users WHERE role = 'admin' AND active",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

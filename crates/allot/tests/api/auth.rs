//! Sign-in (issue 8): passwords, access tokens pinned to HS256, refresh-token rotation with
//! reuse detection, logout, password change, API keys.

use std::time::Duration;

use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, anonymous, http};

const PASSWORD: &str = "correct horse battery staple";

async fn app_with_user(configure: impl FnOnce(&mut allot_server::Config)) -> TestApp {
    let app = TestApp::spawn_configured(None, |c| {
        c.auth.jwt_secret = Some(allot_server::config::Secret::new("s".repeat(32)));
        configure(c);
    })
    .await;
    app.services
        .auth
        .create_user(
            Email::parse("Ann@Example.com").unwrap(),
            Password::parse(PASSWORD).unwrap(),
            Role::Support,
        )
        .await
        .unwrap();
    app
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", app.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `/me` with only `header` as a credential (not the harness admin key).
async fn me(app: &TestApp, header: (&str, String)) -> (u16, Value, Option<String>) {
    let r = anonymous()
        .get(format!("{}/api/v1/auth/me", app.url()))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap_or(Value::Null), www)
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn login(app: &TestApp) -> Value {
    let (status, body) = post(
        app,
        "/api/v1/auth/login",
        json!({"email": "ann@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub(crate) fn claims(sub: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"sub": sub.to_string(), "role": "admin", "iss": "allot", "aud": "allot-api",
           "exp": now + 600, "iat": now, "jti": "x"})
}

pub(crate) fn signed(alg: jsonwebtoken::Algorithm, secret: &[u8], sub: i64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims(sub),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn login_me_and_bad_credentials_answer_alike() {
    let app = app_with_user(|_| {}).await;
    let body = login(&app).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["role"], "support");
    let access = body["access_token"].as_str().unwrap();
    let (status, me_body, _) = me(&app, bearer(access)).await;
    assert_eq!(status, 200, "{me_body}");
    assert_eq!(me_body["email"], "ann@example.com");
    assert_eq!(me_body["kind"], "user");

    let (s1, wrong) = post(
        &app,
        "/api/v1/auth/login",
        json!({"email": "ann@example.com", "password": "not the password at all"}),
    )
    .await;
    let (s2, unknown) = post(
        &app,
        "/api/v1/auth/login",
        json!({"email": "bob@example.com", "password": "not the password at all"}),
    )
    .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");

    let (status, body) = post(&app, "/api/v1/auth/login", json!({"password": "x"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("email"))
    );
    let (status, body) = post(
        &app,
        "/api/v1/auth/login",
        json!({"email": "no-at-sign", "password": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("email"))
    );
    let (status, body) = post(&app, "/api/v1/auth/login", json!({"email": "a@b.c"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("password"))
    );
    let (status, body) = post(&app, "/api/v1/auth/refresh", json!({})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("refresh_token"))
    );
    app.stop().await;
}

#[tokio::test]
async fn forged_none_and_other_algorithm_tokens_are_refused() {
    let app = app_with_user(|_| {}).await;
    let id = login(&app).await["user"]["id"].as_i64().unwrap();
    let (status, _, www) = me(&app, ("x-nothing", String::new())).await;
    assert_eq!(status, 401);
    assert!(www.unwrap().starts_with("Bearer"));
    let forged = signed(jsonwebtoken::Algorithm::HS256, &[b'o'; 32], id);
    assert_eq!(me(&app, bearer(&forged)).await.0, 401);
    let hs512 = signed(jsonwebtoken::Algorithm::HS512, &[b's'; 32], id);
    assert_eq!(me(&app, bearer(&hs512)).await.0, 401);
    let right = signed(jsonwebtoken::Algorithm::HS256, &[b's'; 32], id);
    assert_eq!(
        me(&app, bearer(&right)).await.0,
        200,
        "the control token is accepted"
    );
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(id).to_string().as_bytes())
    );
    let (status, body, _) = me(&app, bearer(&none)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(me(&app, bearer("garbage")).await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = app_with_user(|c| c.auth.access_token_ttl = Duration::from_secs(1)).await;
    let access = login(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me(&app, bearer(&access)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(me(&app, bearer(&access)).await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = app_with_user(|_| {}).await;
    let first = login(&app).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, second) = post(
        &app,
        "/api/v1/auth/refresh",
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let second = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let (status, body) = post(
        &app,
        "/api/v1/auth/refresh",
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    // The reuse revoked the successor too.
    let (status, _) = post(
        &app,
        "/api/v1/auth/refresh",
        json!({"refresh_token": second}),
    )
    .await;
    assert_eq!(status, 401);
    app.stop().await;
}

/// Sign-in routes never keep answers for an `Idempotency-Key`: a replayed refresh with the same
/// key is a reuse of a spent token (and revokes the family), never the stored new pair, and
/// nothing of the credentials is written to the idempotency table.
#[tokio::test]
async fn sign_in_routes_ignore_idempotency_keys() {
    let app = app_with_user(|_| {}).await;
    let refresh = |token: String| {
        let url = format!("{}/api/v1/auth/refresh", app.url());
        async move {
            let r = http()
                .post(url)
                .header("idempotency-key", "same-key")
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let first = login(&app).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = refresh(first.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, replay) = refresh(first).await;
    assert_eq!(
        (status, replay["error"]["code"].as_str()),
        (401, Some("invalid_token")),
        "{replay}"
    );
    let r = http()
        .post(format!("{}/api/v1/auth/login", app.url()))
        .header("idempotency-key", "login-key")
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM idempotency_keys").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn logout_and_password_change_revoke_refresh_tokens() {
    let app = app_with_user(|_| {}).await;
    let refresh = login(&app).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http()
        .post(format!("{}/api/v1/auth/logout", app.url()))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, _) = post(
        &app,
        "/api/v1/auth/refresh",
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, 401);

    let body = login(&app).await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let change = |b: Value| {
        http()
            .post(format!("{}/api/v1/auth/password", app.url()))
            .header("authorization", format!("Bearer {access}"))
            .json(&b)
            .send()
    };
    let r = change(json!({"current_password": PASSWORD, "new_password": "short"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "new_password");
    let r = change(
        json!({"current_password": "wrong wrong wrong", "new_password": "a new long password"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = change(json!({"current_password": PASSWORD, "new_password": "a new long password"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, _) = post(
        &app,
        "/api/v1/auth/refresh",
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &app,
        "/api/v1/auth/login",
        json!({"email": "ann@example.com", "password": "a new long password"}),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked() {
    let app = app_with_user(|_| {}).await;
    let (key, secret) = app
        .services
        .auth
        .create_api_key("picker", Role::Warehouse)
        .await
        .unwrap();
    assert!(secret.starts_with("ak_"));
    let (status, body, _) = me(&app, bearer(&secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["kind"].as_str(),
            body["role"].as_str(),
            body["name"].as_str()
        ),
        (Some("api_key"), Some("warehouse"), Some("picker"))
    );
    // A key has no password to change: refused as a matter of role, not of credential.
    let r = anonymous()
        .post(format!("{}/api/v1/auth/password", app.url()))
        .header("authorization", format!("Bearer {secret}"))
        .json(&json!({"current_password": PASSWORD, "new_password": "another long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(me(&app, ("x-api-key", secret.clone())).await.0, 200);
    app.services.auth.revoke_api_key(key.id).await.unwrap();
    assert_eq!(me(&app, bearer(&secret)).await.0, 401);
    assert_eq!(me(&app, ("x-api-key", secret)).await.0, 401);
    app.stop().await;
}

/// The first admin is made from the command line, on the storage the server will use (before
/// it starts: SQLite's data directory is locked while a server runs), and signs in; a service
/// API key made the same way is accepted until revoked from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_and_an_api_key_are_made_from_the_command_line() {
    use std::process::Command;

    use crate::helpers::ProcessBackend;

    let backend = ProcessBackend::new();
    let storage: Vec<String> = match backend.database() {
        Some(url) => vec!["--database".into(), url],
        None => vec!["--data-dir".into(), backend.data_dir.display().to_string()],
    };
    let admin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_allot"))
            .arg("admin")
            .args(args)
            .args(&storage)
            .env("ALLOT_NEW_USER_PASSWORD", PASSWORD)
            .envs(
                backend
                    .database()
                    .map(|_| ("ALLOT_DATA_KEY", allot_testkit::TEST_DATA_KEY)),
            )
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
        "Boss@Example.com",
        "--role",
        "admin",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("boss@example.com (admin)"), "{out}");
    let (ok, _, err) = admin(&["create-user", "--email", "x@example.com", "--role", "boss"]);
    assert!(!ok && err.contains("role"), "{err}");
    let (ok, out, err) = admin(&["create-api-key", "--name", "ci", "--role", "marketing"]);
    assert!(ok, "{out}{err}");
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("ak_"))
        .expect("the key is printed")
        .to_owned();
    let key_id = out
        .split_whitespace()
        .nth(2)
        .expect("the key id is printed")
        .to_owned();

    let mut server = backend.start_with(&["--jwt-secret", &"k".repeat(32)]);
    let client = http();
    let r = client
        .post(format!("{}/api/v1/auth/login", server.url()))
        .json(&json!({"email": "boss@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin", "{body}");
    let me = |auth: String| {
        client
            .get(format!("{}/api/v1/auth/me", server.url()))
            .header("authorization", auth)
            .send()
    };
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(format!("Bearer {token}")).await.unwrap().status(), 200);
    assert_eq!(me(format!("Bearer {key}")).await.unwrap().status(), 200);
    server.stop();

    let (ok, out, err) = admin(&["revoke-api-key", "--id", &key_id]);
    assert!(ok, "{out}{err}");
    let server = backend.start_with(&["--jwt-secret", &"k".repeat(32)]);
    let r = client
        .get(format!("{}/api/v1/auth/me", server.url()))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

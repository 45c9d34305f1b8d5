//! The console's sessions and guards, through HTTP as a browser would send them: sign-in
//! by form, the session cookie, the CSRF token on API calls made with the cookie, pages by
//! the policy table, sign-out, and a session that ends at once when its user is deactivated.

use allot_domain::auth::{Email, Password, Role};
use reqwest::StatusCode;

use crate::helpers::{TestApp, browser, http};

const PASSWORD: &str = "correct horse battery staple";

async fn user(app: &TestApp, email: &str, role: Role) -> i64 {
    app.services
        .auth
        .create_user(
            Email::parse(email).unwrap(),
            Password::parse(PASSWORD).unwrap(),
            role,
        )
        .await
        .unwrap()
        .id
        .get()
}

/// Signs in through the console's form; answers the `allot_session=...` cookie pair and the
/// whole Set-Cookie line.
async fn sign_in(app: &TestApp, email: &str) -> (String, String) {
    let r = browser()
        .post(format!("{}/console/sign-in", app.url()))
        .header("sec-fetch-site", "same-origin")
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign-in of {email}");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set.split(';').next().unwrap().to_owned();
    (pair, set)
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, String) {
    let r = browser()
        .get(format!("{}{path}", app.url()))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let body = r.text().await.unwrap();
    (status, location.unwrap_or(body))
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf-token" content=""#)
        .expect("csrf meta")
        + 27;
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn console_the_front_page_is_the_sign_in_form_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    let r = browser().get(app.url()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let body = r.text().await.unwrap();
    assert!(body.contains(r#"id="sign-in""#), "{body}");
    // Every asset the page names is served from the binary.
    for asset in ["/console/assets/app.css", "/console/assets/app.js"] {
        assert!(body.contains(asset));
        let r = browser()
            .get(format!("{}{asset}", app.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let etag = r.headers()["etag"].clone();
        let again = browser()
            .get(format!("{}{asset}", app.url()))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
    }
    // A signed-out visit to a page goes to the sign-in, and comes back after it.
    let (status, location) = get(&app, "/console/orders", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/?next=%2Fconsole%2Forders");
    app.stop().await;
}

#[tokio::test]
async fn console_a_session_cookie_is_http_only_strict_and_ends_at_sign_out() {
    let app = TestApp::spawn().await;
    user(&app, "ann@example.com", Role::Admin).await;
    // A wrong password is one answer, on the form, and no cookie.
    let r = browser()
        .post(format!("{}/console/sign-in", app.url()))
        .form(&[
            ("email", "ann@example.com"),
            ("password", "wrong password!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("do not match"));

    let (cookie, set) = sign_in(&app, "ann@example.com").await;
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
        "Secure",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    let (status, page) = get(&app, "/console", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("ann@example.com"));
    let csrf = csrf_of(&page);

    // Sign-out needs the session's CSRF token.
    let forged = browser()
        .post(format!("{}/console/sign-out", app.url()))
        .header("cookie", &cookie)
        .form(&[("_csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&app, "/console", &cookie).await.0, StatusCode::OK);

    let out = browser()
        .post(format!("{}/console/sign-out", app.url()))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie, replayed, is nobody's.
    assert_eq!(
        get(&app, "/console", &cookie).await.0,
        StatusCode::SEE_OTHER
    );
    app.stop().await;
}

#[tokio::test]
async fn console_pages_follow_the_policy_table() {
    let app = TestApp::spawn().await;
    user(&app, "wes@example.com", Role::Warehouse).await;
    user(&app, "mia@example.com", Role::Marketing).await;
    let (warehouse, _) = sign_in(&app, "wes@example.com").await;
    let (_, page) = get(&app, "/console", &warehouse).await;
    assert!(page.contains(r#"href="/console/inventory""#));
    assert!(page.contains(r#"href="/console/orders""#));
    assert!(!page.contains(r#"href="/console/users""#), "{page}");
    assert!(!page.contains(r#"href="/console/webhooks""#));
    let (status, page) = get(&app, "/console/users", &warehouse).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("<h1>Not allowed</h1>"), "{page}");
    // In the console's frame: its navigation and its sign-out are still there.
    assert!(page.contains(r#"id="sign-out""#), "{page}");
    assert!(page.contains(r#"href="/console/inventory""#), "{page}");

    let (marketing, _) = sign_in(&app, "mia@example.com").await;
    let (_, page) = get(&app, "/console", &marketing).await;
    assert!(page.contains(r#"href="/console/campaigns""#));
    assert!(!page.contains(r#"href="/console/inventory""#));
    assert_eq!(
        get(&app, "/console/inventory", &marketing).await.0,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn console_api_calls_by_cookie_need_the_csrf_token_to_change_anything() {
    let app = TestApp::spawn().await;
    let mia = user(&app, "mia@example.com", Role::Marketing).await;
    let (cookie, _) = sign_in(&app, "mia@example.com").await;
    let csrf = csrf_of(&get(&app, "/console", &cookie).await.1);
    let body = serde_json::json!({"name": "spring", "total_coupons": 3,
        "start_time": "2026-01-01T00:00:00Z"});
    let create = |token: Option<&str>| {
        let mut req = browser()
            .post(format!("{}/api/v1/campaigns", app.url()))
            .header("cookie", &cookie)
            .json(&body);
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    let r = create(None).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "X-CSRF-Token");
    assert_eq!(
        create(Some(&"a".repeat(64))).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let r = create(Some(&csrf)).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    // Reading needs no token (a cross-site page cannot read the answer anyway).
    let r = browser()
        .get(format!("{}/api/v1/campaigns/1", app.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The cookie's role is the user's: marketing may not read the event log.
    let r = browser()
        .get(format!("{}/api/v1/events", app.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // And the change is the user's in the audit log (its actor), like any other call's.
    let audit: serde_json::Value = http()
        .get(format!("{}/api/v1/audit?type=CampaignCreated", app.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], format!("user:{mia}"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn console_a_deactivated_user_is_signed_out_at_once_and_cross_site_sign_ins_are_refused() {
    let app = TestApp::spawn().await;
    let id = user(&app, "sam@example.com", Role::Support).await;
    let (cookie, _) = sign_in(&app, "sam@example.com").await;
    assert_eq!(get(&app, "/console", &cookie).await.0, StatusCode::OK);
    app.services
        .auth
        .set_active(allot_domain::auth::AccountId::new(id), false)
        .await
        .unwrap();
    assert_eq!(
        get(&app, "/console", &cookie).await.0,
        StatusCode::SEE_OTHER
    );

    user(&app, "eve@example.com", Role::Admin).await;
    let r = browser()
        .post(format!("{}/console/sign-in", app.url()))
        .header("sec-fetch-site", "cross-site")
        .form(&[("email", "eve@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    // After signing in, only a page of this console is a place to go back to.
    let r = browser()
        .post(format!("{}/console/sign-in", app.url()))
        .form(&[
            ("email", "eve@example.com"),
            ("password", PASSWORD),
            ("next", "//evil.example/console"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/console");
    app.stop().await;
}

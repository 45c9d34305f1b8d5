//! The console's account pages (issue 15): users and API keys for admins, and the pages of
//! visitors who are not signed in: first-run setup from the printed link, sign-up, email
//! verification, forgotten and reset passwords, and what the sign-in page links to.

use allot_domain::auth::Role;
use serde_json::json;

use crate::console_ops::Console;
use crate::helpers::TestApp;
use crate::helpers::browser;

const PASSWORD: &str = "correct horse battery staple";

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let res = browser()
        .get(format!("{}{path}", app.url()))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn admins_manage_users_from_the_users_pages() {
    let app = TestApp::spawn().await;
    let admin = Console::sign_in(&app, "boss@example.com", Role::Admin).await;
    let support = Console::sign_in(&app, "help@example.com", Role::Support).await;
    assert_eq!(support.get("/console/users").await.0, 403);
    assert_eq!(support.get("/console/api-keys").await.0, 403);

    // The create form's call, as app.js sends it.
    let (status, user) = admin
        .api(
            "POST",
            "/api/v1/users",
            Some(json!({"email": "pack@example.com", "password": PASSWORD, "role": "warehouse"})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_i64().unwrap();
    let (status, html) = admin.get("/console/users").await;
    assert_eq!(status, 200);
    assert!(html.contains("pack@example.com") && html.contains("help@example.com"));
    assert!(html.contains("id=\"user-create\""));
    let (_, html) = admin.get("/console/users?role=warehouse").await;
    assert!(html.contains("pack@example.com") && !html.contains("help@example.com"));
    let (_, html) = admin.get("/console/users?email=PACK%40example.com").await;
    assert!(html.contains("pack@example.com") && !html.contains("help@example.com"));
    let (status, html) = admin.get("/console/users?email=nope").await;
    assert_eq!(status, 200);
    let alert = html.split("id=\"users-filter-error\"").nth(1).unwrap();
    assert!(!alert.starts_with(" role=\"alert\"></p>"), "{alert}");
    assert!(
        alert.split("</p>").next().unwrap().contains("email"),
        "{alert}"
    );

    // The user's page and its three forms.
    let (status, html) = admin.get(&format!("/console/users/{id}")).await;
    assert_eq!(status, 200);
    for form in ["user-role", "user-password", "user-active"] {
        assert!(html.contains(&format!("id=\"{form}\"")), "{form}");
    }
    assert!(html.contains("<option value=\"warehouse\" selected>"));
    let path = format!("/api/v1/users/{id}/active");
    let (status, _) = admin
        .api("PUT", &path, Some(json!({"active": false})))
        .await;
    assert_eq!(status, 200);
    let (_, html) = admin.get(&format!("/console/users/{id}")).await;
    assert!(html.contains("deactivated") && html.contains(">Reactivate</button>"));
    let (_, html) = admin.get("/console/users?active=false").await;
    assert!(html.contains("pack@example.com") && !html.contains("help@example.com"));
    let path = format!("/api/v1/users/{id}/role");
    let (status, _) = admin
        .api("PUT", &path, Some(json!({"role": "support"})))
        .await;
    assert_eq!(status, 200);
    let (_, html) = admin.get(&format!("/console/users/{id}")).await;
    assert!(html.contains("<option value=\"support\" selected>"));
    assert_eq!(admin.get("/console/users/999999").await.0, 404);
    // The support user may not make the page's calls either.
    let (status, _) = support
        .api("PUT", &path, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn api_keys_are_created_shown_once_and_revoked_from_their_page() {
    let app = TestApp::spawn().await;
    let admin = Console::sign_in(&app, "boss@example.com", Role::Admin).await;
    let (status, created) = admin
        .api(
            "POST",
            "/api/v1/api-keys",
            Some(json!({"name": "checkout service", "role": "marketing"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["api_key"]["id"].as_i64().unwrap();
    let (status, html) = admin.get("/console/api-keys").await;
    assert_eq!(status, 200);
    assert!(html.contains("checkout service"));
    assert!(!html.contains(&key), "the secret is never listed");
    assert!(html.contains("id=\"api-key-create-reveal\""));
    assert!(html.contains(&format!("id=\"api-key-revoke-{id}\"")));
    let (status, _) = admin
        .api("DELETE", &format!("/api/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, html) = admin.get("/console/api-keys").await;
    assert!(html.contains("revoked"));
    assert!(!html.contains(&format!("id=\"api-key-revoke-{id}\"")));
}

#[tokio::test]
async fn the_first_admin_is_made_from_the_printed_link_and_lands_signed_in() {
    let app = TestApp::spawn().await;
    let url = app.setup_url.clone().expect("no admin: a setup link");
    let path_and_query = url.strip_prefix(&app.url()).unwrap().to_owned();
    let token = path_and_query.split("token=").nth(1).unwrap().to_owned();

    let (status, html) = page(&app, "/").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"setup-pending\""),
        "the sign-in page says where setup is"
    );
    assert!(html.contains("href=\"/forgot-password\""));
    assert!(
        !html.contains("href=\"/signup\""),
        "sign-up is off by default"
    );

    let (status, html) = page(&app, &path_and_query).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"setup\""));
    let (status, html) = page(&app, "/setup?token=st_wrong").await;
    assert_eq!(status, 403);
    assert!(html.contains("used or expired"));
    let (status, html) = page(&app, "/setup").await;
    assert_eq!(status, 403);
    assert!(html.contains("setup link the server printed"));

    let post = |form: Vec<(&'static str, String)>| {
        let url = format!("{}/setup", app.url());
        let origin = app.url();
        async move {
            browser()
                .post(url)
                .header("origin", origin)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let res = post(vec![
        ("token", token.clone()),
        ("email", "owner@example.com".into()),
        ("password", PASSWORD.into()),
        ("password_again", "something else entirely".into()),
    ])
    .await;
    assert_eq!(res.status().as_u16(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("The two passwords differ.")
    );
    assert!(!app.services.accounts.admin_exists().await.unwrap());

    let res = post(vec![
        ("token", token.clone()),
        ("email", "owner@example.com".into()),
        ("password", PASSWORD.into()),
        ("password_again", PASSWORD.into()),
    ])
    .await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/console");
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("allot_session="))
        .and_then(|v| v.split(';').next())
        .expect("signed in")
        .to_owned();
    let res = browser()
        .get(format!("{}/console/users", app.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "signed in as the admin");
    assert!(res.text().await.unwrap().contains("owner@example.com"));

    // Used: the link now says setup is done, and so does a second post of the form.
    let (status, html) = page(&app, &path_and_query).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"setup-done\""));
    let res = post(vec![
        ("token", token),
        ("email", "late@example.com".into()),
        ("password", PASSWORD.into()),
        ("password_again", PASSWORD.into()),
    ])
    .await;
    assert!(res.text().await.unwrap().contains("id=\"setup-done\""));
    let (_, html) = page(&app, "/").await;
    assert!(!html.contains("id=\"setup-pending\""));
}

#[tokio::test]
async fn the_signed_out_pages_offer_their_forms() {
    let app = TestApp::spawn().await;
    let (status, html) = page(&app, "/signup").await;
    assert_eq!(status, 404);
    assert!(html.contains("Sign-up is off"));
    for (path, form) in [
        ("/forgot-password", "forgot-password"),
        ("/reset-password?token=rp_x", "reset-password"),
        ("/verify-email?token=ve_x", "verify-email"),
    ] {
        let (status, html) = page(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains(&format!("id=\"{form}\"")), "{path}");
        assert!(html.contains("role=\"alert\""), "{path}");
    }
    let (_, html) = page(&app, "/reset-password?token=rp_%22x").await;
    assert!(
        html.contains("value=\"rp_&quot;x\""),
        "the token is escaped"
    );
    assert!(html.contains("name=\"_new_password_again\" data-match=\"new_password\""));

    let open = TestApp::spawn_configured(None, |c| c.accounts.allow_signup = true).await;
    let (status, html) = page(&open, "/signup").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"signup\""));
    let (_, html) = page(&open, "/").await;
    assert!(html.contains("href=\"/signup\""));
}

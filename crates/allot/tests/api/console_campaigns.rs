//! The console's campaign pages (issue 15): the list and create form, a campaign's page with
//! its live counter, its codes and their CSV export, each shown to the roles that may create
//! campaigns and refused to the others; and the campaign listing of the API they read.

use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, anonymous, http};

const PASSWORD: &str = "correct horse battery staple";

/// A browser signed in to the console: the session cookie it was given.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    /// Creates a user of `role` and signs it in through the console's sign-in form.
    pub async fn sign_in(app: &TestApp, role: Role) -> Browser {
        let email = format!("{}-{}@example.com", role.as_str(), rand::random::<u32>());
        app.services
            .auth
            .create_user(
                Email::parse(&email).unwrap(),
                Password::parse(PASSWORD).unwrap(),
                role,
            )
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .post(format!("{}/console/sign-in", app.url()))
            .form(&[("email", email.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "signing in redirects to a page");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("allot_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        Browser {
            client,
            base: app.url(),
            cookie,
        }
    }

    /// GETs a console path: its status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// A campaign open since 2020 with `total` codes: its id.
pub async fn campaign(app: &TestApp, name: &str, total: i64) -> i64 {
    let r = http()
        .post(format!("{}/api/v1/campaigns", app.url()))
        .json(&json!({"name": name, "start_time": "2020-01-01T00:00:00Z", "total_coupons": total}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

pub async fn issue(app: &TestApp, id: i64, user: &str) -> String {
    let r = http()
        .post(format!("{}/api/v1/campaigns/{id}/coupons", app.url()))
        .json(&json!({"user_id": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn marketing_sees_campaigns_their_live_count_and_every_code_as_csv() {
    let app = TestApp::spawn().await;
    let id = campaign(&app, "Winter <launch>", 10).await;
    let mut codes = Vec::new();
    for user in ["alice", "bob", "carol,ann"] {
        codes.push(issue(&app, id, user).await);
    }
    let marketing = Browser::sign_in(&app, Role::Marketing).await;

    let (status, list) = marketing.get("/console/campaigns").await;
    assert_eq!(status, 200);
    assert!(list.contains(r#"id="campaign-create""#), "the create form");
    assert!(list.contains(r#"data-api="/api/v1/campaigns""#));
    assert!(
        list.contains("Winter &lt;launch&gt;"),
        "the campaign, escaped: {list}"
    );
    assert!(list.contains(&format!(r#"href="/console/campaigns/{id}""#)));

    let (status, page) = marketing.get(&format!("/console/campaigns/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"id="campaign-issued" data-field="issued" data-format="raw">3<"#),
        "the issued count as plain digits: {page}"
    );
    for code in &codes {
        assert!(page.contains(code.as_str()), "code {code} listed");
    }
    assert!(page.contains("/console/assets/campaign.js"));

    issue(&app, id, "dave").await;
    let progress = marketing
        .json(&format!("/console/campaigns/{id}/progress.json"))
        .await;
    assert_eq!(progress["issued"], 4, "the counter moves: {progress}");
    assert_eq!(progress["remaining"], 6);
    assert_eq!(progress["state"], "issuing");

    let (status, csv) = marketing
        .get(&format!("/console/campaigns/{id}/codes.csv"))
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "seq,code,user_id,issued_at");
    assert_eq!(lines.len(), 5, "a header and every code: {csv}");
    assert!(lines[1].starts_with(&format!("1,{},alice,", codes[0])));
    assert!(
        lines[3].starts_with(&format!("3,{},\"carol,ann\",", codes[2])),
        "a field with a comma is quoted: {}",
        lines[3]
    );

    let (status, _) = marketing.get("/console/campaigns/999999").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_codes_are_paged_and_the_export_streams_past_one_page() {
    let app = TestApp::spawn().await;
    let id = campaign(&app, "Many", 120).await;
    for i in 0..120 {
        issue(&app, id, &format!("u{i}")).await;
    }
    let admin = Browser::sign_in(&app, Role::Admin).await;
    let (_, first) = admin.get(&format!("/console/campaigns/{id}")).await;
    assert!(first.contains("u0<") && first.contains("u49<") && !first.contains("u50<"));
    assert!(first.contains(&format!("/console/campaigns/{id}?after=50")));
    let (_, second) = admin
        .get(&format!("/console/campaigns/{id}?after=50"))
        .await;
    assert!(second.contains("u50<") && !second.contains("u49<"));
    let (_, csv) = admin
        .get(&format!("/console/campaigns/{id}/codes.csv"))
        .await;
    assert_eq!(csv.lines().count(), 121);
    app.stop().await;
}

#[tokio::test]
async fn roles_that_may_not_create_campaigns_are_refused_the_pages() {
    let app = TestApp::spawn().await;
    let id = campaign(&app, "Hidden", 5).await;
    for role in [Role::Warehouse, Role::Support] {
        let browser = Browser::sign_in(&app, role).await;
        for path in [
            "/console/campaigns".to_owned(),
            format!("/console/campaigns/{id}"),
            format!("/console/campaigns/{id}/progress.json"),
            format!("/console/campaigns/{id}/codes.csv"),
        ] {
            let (status, body) = browser.get(&path).await;
            assert_eq!(status, 403, "{role:?} {path}");
            assert!(body.contains("Not allowed"), "{role:?} {path}");
        }
    }
    let (status, _) = Browser::sign_in(&app, Role::Customer)
        .await
        .get("/console/campaigns")
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn the_api_lists_campaigns_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let ids = [
        campaign(&app, "one", 1).await,
        campaign(&app, "two", 2).await,
        campaign(&app, "three", 3).await,
    ];
    let url = format!("{}/api/v1/campaigns", app.url());
    let page: Value = http()
        .get(format!("{url}?limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = page["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["three", "two"]);
    assert_eq!(page["next_before"], ids[1]);
    let rest: Value = http()
        .get(format!("{url}?limit=2&before={}", ids[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["campaigns"][0]["name"], "one");
    assert_eq!(rest["campaigns"][0]["total_coupons"], 1);
    assert_eq!(rest["next_before"], Value::Null);

    let r = http().get(format!("{url}?limit=0")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = anonymous().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

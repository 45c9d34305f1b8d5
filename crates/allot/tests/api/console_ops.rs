//! The console's operations pages (issue 15): webhooks, events, audit log and notifications,
//! read by a signed-in browser session, each shown only to the roles whose API call it shows;
//! and the template preview the editor uses.

use std::time::Duration;

use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

const PASSWORD: &str = "correct horse battery staple";

/// A browser's session: the `allot_session` cookie from the sign-in form, and the CSRF token
/// its pages carry, sent with the API calls a page makes.
pub struct Console {
    base: String,
    client: reqwest::Client,
    cookie: String,
    csrf: String,
    pub user_id: i64,
}

impl Console {
    /// Creates a user of `role` and signs it in through the sign-in form.
    pub async fn sign_in(app: &TestApp, email: &str, role: Role) -> Console {
        let user = app
            .services
            .auth
            .create_user(
                Email::parse(email).unwrap(),
                Password::parse(PASSWORD).unwrap(),
                role,
            )
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let res = client
            .post(format!("{}/console/sign-in", app.url()))
            .header("origin", app.url())
            .form(&[("email", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "signed in");
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("allot_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let mut console = Console {
            base: app.url(),
            client,
            cookie,
            csrf: String::new(),
            user_id: user.id.get(),
        };
        let landing = res.headers()["location"].to_str().unwrap().to_owned();
        let (_, page) = console.get(&landing).await;
        console.csrf = page
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the page carries the CSRF token")
            .to_owned();
        console
    }

    /// A console page: its status and HTML.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// An API call as a page's script makes it: the session cookie and the CSRF token.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

async fn admin_call(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    let res = http()
        .request(method.parse().unwrap(), format!("{}{path}", app.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "{method} {path}: {}",
        res.status()
    );
    res.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn pages_follow_the_policy_table() {
    let app = TestApp::spawn().await;
    let warehouse = Console::sign_in(&app, "wh@example.com", Role::Warehouse).await;
    let marketing = Console::sign_in(&app, "mk@example.com", Role::Marketing).await;
    let admin = Console::sign_in(&app, "admin@example.com", Role::Admin).await;
    for page in ["/console/webhooks", "/console/events", "/console/audit"] {
        let (status, html) = warehouse.get(page).await;
        assert_eq!(status, 403, "{page} for a warehouse user");
        assert!(html.contains("Not allowed"), "{page}");
        assert_eq!(marketing.get(page).await.0, 403, "{page} for marketing");
        assert_eq!(admin.get(page).await.0, 200, "{page} for an admin");
    }
    assert_eq!(warehouse.get("/console/notifications").await.0, 403);
    assert_eq!(marketing.get("/console/notifications").await.0, 200);
    // The navigation offers what the role may open, nothing else.
    let (_, html) = marketing.get("/console/notifications").await;
    assert!(!html.contains("href=\"/console/webhooks\""));
    let (_, html) = admin.get("/console/notifications").await;
    assert!(html.contains("href=\"/console/webhooks\""));
}

#[tokio::test]
async fn a_failing_webhook_is_marked_and_its_failed_attempts_are_listed() {
    // The failing receiver speaks plain http.
    let app = TestApp::spawn_configured(None, |c| c.webhooks.allow_http = true).await;
    let admin = Console::sign_in(&app, "admin@example.com", Role::Admin).await;
    // Registered through the API as the page's form sends it, to a receiver that answers every
    // delivery 500 at once (a closed port is not enough: a machine may have a service there
    // that never answers, and the attempt would fail only at the delivery timeout).
    let receiver = failing_receiver().await;
    let (status, hook) = admin
        .api(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("http://{receiver}/hook"), "from_seq": 1})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    assert!(hook["secret"].as_str().is_some_and(|s| !s.is_empty()));
    let id = hook["id"].as_i64().unwrap();
    let (status, html) = admin.get("/console/webhooks").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("http://{receiver}/hook")));
    assert!(html.contains("id=\"webhook-create\""));
    // The worker tries the first event and fails; the page says so (within 30 s on a loaded
    // machine; a few hundred milliseconds alone).
    let mut detail = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        detail = admin.get(&format!("/console/webhooks/{id}")).await.1;
        // The failed delivery's row and the endpoint's attempt count may be read a moment
        // apart (PostgreSQL): wait for the page to show both.
        if detail.contains("badge bad\">failed") && detail.contains("id=\"webhook-retry\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(detail.contains("badge bad\">failed"), "{detail}");
    assert!(
        detail.contains("class=\"failed\""),
        "the row is highlighted"
    );
    let (_, list) = admin.get("/console/webhooks").await;
    assert!(list.contains("failing ("), "the endpoint is marked failing");

    // Retry now: the next attempt is due at once, where the backoff had put it later.
    assert!(detail.contains("id=\"webhook-retry\""));
    let before = admin
        .api("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await
        .1;
    assert!(before["failed_attempts"].as_i64().unwrap() >= 1, "{before}");
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let asked = now_ms();
    let (status, after) = admin
        .api("POST", &format!("/api/v1/webhooks/{id}/retry"), None)
        .await;
    assert_eq!(status, 200, "{after}");
    let due = allot_server::time::parse_rfc3339(after["next_attempt_at"].as_str().unwrap())
        .unwrap()
        .as_millis();
    assert!(due <= now_ms() && due >= asked - 1_000, "{after}");
    assert!(after["failed_attempts"].as_i64().unwrap() >= 1);
    // Audited as the admin's change of the endpoint.
    let me = format!("user:{}", admin.user_id);
    let (_, audit) = admin
        .api(
            "GET",
            &format!("/api/v1/audit?actor={me}&type=WebhookEndpointUpdated"),
            None,
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["payload"]["retry_requested"], true);
    let marketing = Console::sign_in(&app, "mk@example.com", Role::Marketing).await;
    let (status, _) = marketing
        .api("POST", &format!("/api/v1/webhooks/{id}/retry"), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = admin.api("POST", "/api/v1/webhooks/999/retry", None).await;
    assert_eq!(status, 404);
}

/// A webhook receiver on 127.0.0.1 answering every request 500 at once; its address.
async fn failing_receiver() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_event_log_shows_the_newest_events_and_filters_by_type() {
    let app = TestApp::spawn().await;
    let admin = Console::sign_in(&app, "admin@example.com", Role::Admin).await;
    admin_call(
        &app,
        "POST",
        "/api/v1/webhooks",
        json!({"url": "https://127.0.0.1:9/a", "description": "first"}),
    )
    .await;
    let (status, html) = admin.get("/console/events").await;
    assert_eq!(status, 200);
    assert!(html.contains("WebhookEndpointCreated"), "the newest event");
    assert!(html.contains("data-stream=\"/api/v1/events/stream\""));
    assert!(html.contains("aria-live=\"polite\""));
    let (status, html) = admin.get("/console/events?type=OrderCreated").await;
    assert_eq!(status, 200);
    assert!(!html.contains("<code>WebhookEndpointCreated</code>"));
    // The oldest page from the start of the log.
    let (status, html) = admin.get("/console/events?after=0").await;
    assert_eq!(status, 200);
    assert!(html.contains("<code>WebhookEndpointCreated</code>"));
}

#[tokio::test]
async fn the_audit_log_filters_by_who_did_it() {
    let app = TestApp::spawn().await;
    let admin = Console::sign_in(&app, "admin@example.com", Role::Admin).await;
    let (status, _) = admin
        .api(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://127.0.0.1:9/mine"})),
        )
        .await;
    assert_eq!(status, 201);
    admin_call(
        &app,
        "POST",
        "/api/v1/webhooks",
        json!({"url": "https://127.0.0.1:9/theirs"}),
    )
    .await;
    let me = format!("user:{}", admin.user_id);
    let (status, html) = admin
        .get(&format!(
            "/console/audit?actor={me}&type=WebhookEndpointCreated"
        ))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("/mine"), "{html}");
    assert!(!html.contains("/theirs"));
    let (status, html) = admin.get("/console/audit").await;
    assert_eq!(status, 200);
    assert!(html.contains("/mine") && html.contains("/theirs"));
    let (status, html) = admin.get("/console/audit?actor=root").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("actor: user:&lt;id&gt;"),
        "the filter's error is shown"
    );
    let (_, html) = admin.get("/console/audit?since=yesterday").await;
    assert!(html.contains("since: a date and time"));
}

#[tokio::test]
async fn the_template_editor_previews_through_the_notifier_engine() {
    let app = TestApp::spawn().await;
    let marketing = Console::sign_in(&app, "mk@example.com", Role::Marketing).await;
    let warehouse = Console::sign_in(&app, "wh@example.com", Role::Warehouse).await;
    let (status, t) = marketing
        .api(
            "POST",
            "/api/v1/notifications/templates",
            Some(json!({"name": "welcome",
                        "email": {"subject": "Hi {{ name }}", "body": "<b>{{ name }}</b> joined"}})),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let (status, html) = marketing
        .get(&format!("/console/notifications/templates/{}", t["id"]))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Hi {{ name }}"));
    assert!(
        html.contains("&lt;b&gt;{{ name }}&lt;/b&gt; joined"),
        "escaped"
    );
    let (_, list) = marketing.get("/console/notifications").await;
    assert!(list.contains(">welcome</a>"));

    let templates = |v: Value| v["templates"].as_array().unwrap().len();
    let before = templates(
        marketing
            .api("GET", "/api/v1/notifications/templates", None)
            .await
            .1,
    );
    let preview = json!({"email": {"subject": "Hi {{ name }}", "body": "<b>{{ name }}</b> joined"},
                         "variables": {"name": "Ann"}});
    let (status, out) = marketing
        .api(
            "POST",
            "/api/v1/notifications/template-preview",
            Some(preview.clone()),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["email"]["subject"], "Hi Ann");
    assert_eq!(
        out["email"]["body"], "<b>Ann</b> joined",
        "plain text, as sent"
    );
    assert!(out.get("in_app").is_none());
    let (status, out) = marketing
        .api(
            "POST",
            "/api/v1/notifications/template-preview",
            Some(json!({"in_app": {"title": "t", "body": "{{ missing }}"}})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(out["error"]["field"], "in_app.body", "{out}");
    let (status, _) = marketing
        .api(
            "POST",
            "/api/v1/notifications/template-preview",
            Some(json!({"email": {"subject": "a", "body": "b"}, "variables": [1]})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = warehouse
        .api(
            "POST",
            "/api/v1/notifications/template-preview",
            Some(preview),
        )
        .await;
    assert_eq!(status, 403);
    // Nothing was stored by the previews.
    let (_, list) = marketing
        .api("GET", "/api/v1/notifications/templates", None)
        .await;
    assert_eq!(templates(list), before);
}

#[tokio::test]
async fn the_outbox_lists_emails_by_state_with_their_failures() {
    let app = TestApp::spawn().await;
    let admin = Console::sign_in(&app, "admin@example.com", Role::Admin).await;
    let support = Console::sign_in(&app, "help@example.com", Role::Support).await;
    let marketing = Console::sign_in(&app, "mk@example.com", Role::Marketing).await;
    // No SMTP server configured: an email fails at once, with the reason.
    let (status, sent) = support
        .api(
            "POST",
            "/api/v1/notifications",
            Some(json!({"user_id": marketing.user_id, "channel": "email",
                        "subject": "Stock count on Friday", "body": "Please count aisle 4."})),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["id"].as_i64().unwrap();
    let mut failed = Value::Null;
    for _ in 0..100 {
        let (status, page) = support
            .api("GET", "/api/v1/notifications/outbox?status=failed", None)
            .await;
        assert_eq!(status, 200, "{page}");
        if page["notifications"].as_array().unwrap().len() == 1 {
            failed = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = &failed["notifications"][0];
    assert_eq!(row["id"], id, "{failed}");
    assert_eq!(row["subject"], "Stock count on Friday");
    assert!(
        row["reason"].as_str().unwrap().contains("smtp_url"),
        "{row}"
    );
    let (_, sent_page) = support
        .api("GET", "/api/v1/notifications/outbox?status=sent", None)
        .await;
    assert_eq!(sent_page["notifications"], json!([]));
    let (status, _) = support
        .api("GET", "/api/v1/notifications/outbox?status=lost", None)
        .await;
    assert_eq!(status, 422);
    let (status, _) = marketing
        .api("GET", "/api/v1/notifications/outbox", None)
        .await;
    assert_eq!(status, 403);

    let (status, html) = admin
        .get("/console/notifications/outbox?status=failed")
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Stock count on Friday") && html.contains("smtp_url"));
    let (_, html) = admin.get("/console/notifications").await;
    assert!(html.contains("href=\"/console/notifications/outbox\""));
    // Marketing sees the templates, not the outbox (nor a link to it).
    let (_, html) = marketing.get("/console/notifications").await;
    assert!(!html.contains("/console/notifications/outbox"));
    assert_eq!(marketing.get("/console/notifications/outbox").await.0, 403);
}

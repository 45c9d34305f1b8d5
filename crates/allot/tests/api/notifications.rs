//! Notifications (issue 8): templates checked by the engine at save time, rules that turn
//! events into notifications for the right users on the channels they keep on, the inbox,
//! direct sends and their delivery state, and email delivered as real SMTP messages to a real
//! SMTP server (aiosmtpd), once, across SMTP outages and a SIGKILL of the server.

use std::time::Duration;

use allot_domain::auth::Role;
use allot_server::service::notification::SmtpTls;
use allot_testkit::{ReceivedMail, SmtpServer};
use serde_json::{Value, json};

use crate::helpers::{
    Account, AppDb, ProcessBackend, TEST_PASSWORD as PASSWORD, TestApp, account, call, call_at,
    eventually,
};

/// A server that delivers email to the plain SMTP server at `smtp_url` (on loopback: TLS
/// off, `smtp_tls = none`), with workers that poll and retry quickly.
async fn app_with_smtp(smtp_url: String) -> TestApp {
    app_with_smtp_tls(smtp_url, Some(SmtpTls::Plain), None).await
}

/// Like [`app_with_smtp`], TLS as `tls` says (`None`: the URL's scheme), trusting `ca_file`.
async fn app_with_smtp_tls(
    smtp_url: String,
    tls: Option<SmtpTls>,
    ca_file: Option<std::path::PathBuf>,
) -> TestApp {
    TestApp::spawn_configured(None, move |c| {
        c.auth.jwt_secret = Some(allot_server::config::Secret::new("n".repeat(32)));
        c.notifications.smtp_url = Some(smtp_url);
        c.notifications.smtp_tls = tls;
        c.notifications.smtp_ca_file = ca_file;
        c.notifications.smtp_from = "shop@allot.test".to_owned();
        c.notifications.poll_interval = Duration::from_millis(100);
        c.notifications.retry_base = Duration::from_millis(200);
        c.notifications.retry_max = Duration::from_millis(500);
        c.notifications.attempts_max = 1_000;
    })
    .await
}

/// One REST call; `bearer` None: as the harness client (admin where enforcement exists).
/// Places an order of `quantity` of `product` as the customer `who` (201), and gives its id.
async fn place_order(app: &TestApp, who: &Account, product: i64, quantity: i64) -> i64 {
    let (s, order) = call(
        app,
        "POST",
        "/api/v1/orders",
        Some(&who.bearer),
        Some(json!({
            "customer": who.id.to_string(),
            "shipping_address": {"name": "Customer", "line1": "1 Road", "city": "Paris",
                                 "postal_code": "75001", "country": "FR"},
            "lines": [{"product_id": product, "quantity": quantity}],
        })),
    )
    .await;
    assert_eq!(s, 201, "{order}");
    order["id"].as_i64().unwrap()
}

/// Moves an order to `status` as the harness admin (200).
async fn set_status(app: &TestApp, order: i64, status: &str) {
    let (s, b) = call(
        app,
        "PUT",
        &format!("/api/v1/orders/{order}/status"),
        None,
        Some(json!({"status": status})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

async fn inbox(app: &TestApp, who: &Account, query: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        "GET",
        &format!("/api/v1/notifications{query}"),
        Some(&who.bearer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_for_mail(smtp: &SmtpServer, n: usize) -> Vec<ReceivedMail> {
    let smtp_messages = || async {
        let got = smtp.messages();
        (got.len() >= n).then_some(got)
    };
    eventually(&format!("{n} messages at the SMTP server"), smtp_messages).await
}

async fn product_in_stock(app: &TestApp, sku: &str, on_hand: i64) -> (i64, i64) {
    let (s, p) = call(
        app,
        "POST",
        "/api/v1/products",
        None,
        Some(json!({"sku": sku, "name": sku, "price": {"amount_minor": 1500, "currency": "EUR"}})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let (s, w) = call(
        app,
        "POST",
        "/api/v1/warehouses",
        None,
        Some(json!({"code": format!("W-{sku}"), "name": "main"})),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let (p, w) = (p["id"].as_i64().unwrap(), w["id"].as_i64().unwrap());
    let (s, b) = call(
        app,
        "POST",
        "/api/v1/inventory/adjust",
        None,
        Some(json!({"product_id": p, "warehouse_id": w, "mode": "set",
                    "quantity": on_hand, "reason": "count"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    (p, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_an_order_status_change_reaches_the_customer_inbox_and_smtp() {
    let smtp = SmtpServer::start();
    let app = app_with_smtp(smtp.url()).await;
    let ada = account(&app, "ada@example.com", Role::Customer).await;
    let (product, _) = product_in_stock(&app, "LAMP", 10).await;
    let order_id = place_order(&app, &ada, product, 2).await;
    set_status(&app, order_id, "confirmed").await;

    let items = eventually("the customer's in-app notification", || async {
        let items = inbox(&app, &ada, "").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["title"], format!("Order {order_id} is confirmed"));
    assert_eq!(
        items[0]["body"],
        format!("Your order {order_id} went from pending to confirmed.")
    );
    assert_eq!(items[0]["rule"], "order_status_changed");
    assert_eq!(items[0]["read"], false);

    let mail = wait_for_mail(&smtp, 1).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].rcpt_to, vec![ada.email.clone()]);
    assert_eq!(mail[0].mail_from, "shop@allot.test");
    assert_eq!(
        mail[0].subject(),
        Some(format!("Your order {order_id} is now confirmed").as_str())
    );
    assert!(
        mail[0].body.contains(&format!(
            "Hello,\n\nyour order {order_id} went from pending to confirmed."
        )),
        "{}",
        mail[0].body
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_low_stock_reaches_warehouse_users_on_the_channels_they_keep_on() {
    let smtp = SmtpServer::start();
    let app = app_with_smtp(smtp.url()).await;
    let both = account(&app, "both@example.com", Role::Warehouse).await;
    let no_email = account(&app, "no-email@example.com", Role::Warehouse).await;
    let no_inbox = account(&app, "no-inbox@example.com", Role::Warehouse).await;
    let muted = account(&app, "muted@example.com", Role::Warehouse).await;
    let support = account(&app, "support@example.com", Role::Support).await;
    for (who, prefs) in [
        (&no_email, json!({"email": false, "in_app": true})),
        // Per rule: this rule's in-app notifications off, email kept.
        (
            &no_inbox,
            json!({"rules": {"low_stock": {"email": true, "in_app": false}}}),
        ),
        (&muted, json!({"email": false, "in_app": false})),
    ] {
        let (s, b) = call(
            &app,
            "PUT",
            "/api/v1/notifications/preferences",
            Some(&who.bearer),
            Some(prefs),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = call(
        &app,
        "GET",
        "/api/v1/notifications/preferences",
        Some(&no_inbox.bearer),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rules"]["low_stock"]["in_app"], false, "{b}");
    assert_eq!(b["email"], true, "{b}");

    let (p, w) = product_in_stock(&app, "BOLT", 10).await;
    let (s, b) = call(
        &app,
        "PUT",
        &format!("/api/v1/inventory/{p}/reorder"),
        None,
        Some(json!({"warehouse_id": w, "reorder_threshold": 5, "reorder_quantity": 20})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/inventory/reserve",
        None,
        Some(json!({"product_id": p, "quantity": 6, "holder": "o"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // The notifications of one event are stored together: once one is there, all are.
    let got = eventually("the low-stock in-app notification", || async {
        let items = inbox(&app, &both, "").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(
        got[0]["title"],
        format!("Low stock: product {p}"),
        "{got:?}"
    );
    assert_eq!(inbox(&app, &no_email, "").await.len(), 1);
    assert!(inbox(&app, &no_inbox, "").await.is_empty());
    assert!(inbox(&app, &muted, "").await.is_empty());
    assert!(inbox(&app, &support, "").await.is_empty());

    let db = app.db().await;
    let emails_to = |user: i64| {
        format!("SELECT COUNT(*) FROM notifications WHERE channel = 'email' AND user_id = {user}")
    };
    assert_eq!(db.count(&emails_to(both.id)).await, 1);
    assert_eq!(db.count(&emails_to(no_inbox.id)).await, 1);
    assert_eq!(db.count(&emails_to(no_email.id)).await, 0);
    assert_eq!(db.count(&emails_to(muted.id)).await, 0);
    assert_eq!(db.count(&emails_to(support.id)).await, 0);

    let mail = wait_for_mail(&smtp, 2).await;
    let mut to: Vec<String> = mail.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    to.sort();
    assert_eq!(to, vec![both.email.clone(), no_inbox.email.clone()]);
    for m in &mail {
        assert_eq!(
            m.subject(),
            Some(format!("Low stock: product {p} in warehouse {w}").as_str())
        );
        assert!(
            m.body
                .contains(&format!("has 4 available in warehouse {w} (threshold 5)")),
            "{}",
            m.body
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_a_template_that_does_not_parse_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let before = db
        .count("SELECT COUNT(*) FROM notification_templates")
        .await;
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/notifications/templates",
        None,
        Some(json!({"name": "welcome",
                    "email": {"subject": "Hi", "body": "Hello\n{{ user.email "}})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["code"], "invalid_argument");
    assert_eq!(b["error"]["field"], "email.body");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not parse") && message.contains("line 2"),
        "{message}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notification_templates")
            .await,
        before
    );
    let (s, _) = call(
        &app,
        "GET",
        "/api/v1/notifications/templates/welcome",
        None,
        None,
    )
    .await;
    assert_eq!(s, 404);

    // A good one is stored, found by name and id, replaced, and deleted; a used one stays.
    let (s, t) = call(
        &app,
        "POST",
        "/api/v1/notifications/templates",
        None,
        Some(json!({"name": "welcome", "in_app": {"title": "Hi {{ name }}", "body": "Welcome"}})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_i64().unwrap();
    let (s, again) = call(
        &app,
        "POST",
        "/api/v1/notifications/templates",
        None,
        Some(json!({"name": "welcome", "in_app": {"title": "x", "body": "y"}})),
    )
    .await;
    assert_eq!(
        (s, &again["error"]["code"]),
        (409, &json!("template_name_taken"))
    );
    let (s, by_id) = call(
        &app,
        "GET",
        &format!("/api/v1/notifications/templates/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!((s, &by_id["name"]), (200, &json!("welcome")));
    let (s, b) = call(
        &app,
        "PUT",
        "/api/v1/notifications/templates/welcome",
        None,
        Some(json!({"name": "welcome", "in_app": {"title": "Hello {{ name }}", "body": "{% if x %}"}})),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (422, &json!("in_app.body")),
        "{b}"
    );
    let (s, list) = call(&app, "GET", "/api/v1/notifications/templates", None, None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "low_stock",
            "order_shipped",
            "order_status_changed",
            "welcome"
        ]
    );
    let (s, _) = call(
        &app,
        "DELETE",
        "/api/v1/notifications/templates/welcome",
        None,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = call(
        &app,
        "DELETE",
        "/api/v1/notifications/templates/low_stock",
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (409, &json!("template_in_use")),
        "{b}"
    );
    // Each change that happened is an event; the refused ones are not.
    for (kind, n) in [
        ("NotificationTemplateCreated", 1),
        ("NotificationTemplateUpdated", 0),
        ("NotificationTemplateDeleted", 1),
    ] {
        let sql = format!("SELECT COUNT(*) FROM events WHERE type = '{kind}'");
        assert_eq!(db.count(&sql).await, n, "{kind}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_the_inbox_shows_only_the_callers_own_and_reads_them() {
    let app = TestApp::spawn().await;
    let ann = account(&app, "ann@example.com", Role::Customer).await;
    let bob = account(&app, "bob@example.com", Role::Customer).await;
    let support = account(&app, "help@example.com", Role::Support).await;
    let mut sent = Vec::new();
    for (to, title) in [(&ann, "first"), (&bob, "for bob"), (&ann, "second")] {
        let (s, b) = call(
            &app,
            "POST",
            "/api/v1/notifications",
            Some(&support.bearer),
            Some(json!({"user_id": to.id, "channel": "in_app",
                        "subject": title, "body": "text"})),
        )
        .await;
        assert_eq!(s, 202, "{b}");
        assert_eq!(
            b["status"], "sent",
            "in-app is delivered by being stored: {b}"
        );
        sent.push(b["id"].as_i64().unwrap());
    }
    let titles = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|n| n["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        titles(&inbox(&app, &ann, "").await),
        vec!["second", "first"]
    );
    assert_eq!(titles(&inbox(&app, &bob, "").await), vec!["for bob"]);

    let (s, b) = call(
        &app,
        "POST",
        &format!("/api/v1/notifications/{}/read", sent[0]),
        Some(&ann.bearer),
        None,
    )
    .await;
    assert_eq!((s, &b["read"]), (200, &json!(true)), "{b}");
    let b_read_at = b["read_at"].clone();
    assert_eq!(
        titles(&inbox(&app, &ann, "?unread=true").await),
        vec!["second"]
    );
    let (s, b) = call(
        &app,
        "POST",
        &format!("/api/v1/notifications/{}/read", sent[1]),
        Some(&ann.bearer),
        None,
    )
    .await;
    assert_eq!((s, &b["error"]["code"]), (404, &json!("not_found")), "{b}");
    assert_eq!(inbox(&app, &bob, "?unread=true").await.len(), 1);
    let (s, again) = call(
        &app,
        "POST",
        &format!("/api/v1/notifications/{}/read", sent[0]),
        Some(&ann.bearer),
        None,
    )
    .await;
    assert_eq!((s, &again["read_at"]), (200, &b_read_at), "read once, kept");
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationRead'")
            .await,
        1
    );

    let page = inbox(&app, &ann, "?limit=1").await;
    assert_eq!(titles(&page), vec!["second"]);
    let (_, body) = call(
        &app,
        "GET",
        "/api/v1/notifications?limit=1",
        Some(&ann.bearer),
        None,
    )
    .await;
    let next = body["next_before"].as_i64().unwrap();
    let rest = inbox(&app, &ann, &format!("?limit=1&before={next}")).await;
    assert_eq!(titles(&rest), vec!["first"]);

    let (s, b) = call(
        &app,
        "GET",
        "/api/v1/notifications?unread=maybe",
        Some(&ann.bearer),
        None,
    )
    .await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("unread")));
    app.stop().await;
}

async fn status_of(base: &str, id: i64) -> Value {
    let (s, b) = call_at(
        base,
        "GET",
        &format!("/api/v1/notifications/status/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_status_shows_queued_sent_and_failed_with_the_reason_then_retried() {
    let mut smtp = SmtpServer::start();
    let app = app_with_smtp(smtp.url()).await;
    let cy = account(&app, "cy@example.com", Role::Customer).await;
    let send = |subject: &'static str| {
        call(
            &app,
            "POST",
            "/api/v1/notifications",
            None,
            Some(json!({"user_id": cy.id, "channel": "email",
                        "template": "order_status_changed",
                        "variables": {"order_id": 42, "from": "pending", "to": subject,
                                      "reason": null}})),
        )
    };
    let (s, first) = send("confirmed").await;
    assert_eq!(s, 202, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["attempts"], 0);
    let first_id = first["id"].as_i64().unwrap();
    let base = app.url();
    let sent = eventually("the first email sent", || async {
        let st = status_of(&base, first_id).await;
        (st["status"] == "sent").then_some(st)
    })
    .await;
    assert_eq!(
        (&sent["attempts"], &sent["retried"]),
        (&json!(1), &json!(false))
    );
    assert_eq!(wait_for_mail(&smtp, 1).await.len(), 1);

    smtp.kill();
    let (s, second) = send("shipped").await;
    assert_eq!(s, 202, "{second}");
    let second_id = second["id"].as_i64().unwrap();
    let failed = eventually("a failed attempt", || async {
        let st = status_of(&base, second_id).await;
        (st["status"] == "failed").then_some(st)
    })
    .await;
    assert!(
        failed["reason"].as_str().unwrap().starts_with("SMTP"),
        "{failed}"
    );
    assert_eq!(failed["will_retry"], true, "{failed}");
    assert!(failed["next_attempt_at"].is_string(), "{failed}");

    smtp.restart();
    let sent = eventually("the retried email sent", || async {
        let st = status_of(&base, second_id).await;
        (st["status"] == "sent").then_some(st)
    })
    .await;
    assert_eq!(sent["retried"], true, "{sent}");
    assert!(sent["attempts"].as_u64().unwrap() >= 2, "{sent}");
    let mail = wait_for_mail(&smtp, 2).await;
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[1].subject(), Some("Your order 42 is now shipped"));

    // Variables the template needs but the request lacks: refused, nothing queued.
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/notifications",
        None,
        Some(json!({"user_id": cy.id, "channel": "email",
                    "template": "order_status_changed", "variables": {"order_id": 1}})),
    )
    .await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("variables")), "{b}");
    let db = app.db().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM notifications").await, 2);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationSent'")
            .await,
        2
    );
    assert!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationFailed'")
            .await
            >= 1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_an_email_queued_before_a_sigkill_is_sent_once_after_the_restart() {
    use std::process::Command;

    let backend = ProcessBackend::new();
    let mut smtp = SmtpServer::start();
    smtp.kill();
    let storage: Vec<String> = match backend.database() {
        Some(url) => vec!["--database".into(), url],
        None => vec!["--data-dir".into(), backend.data_dir.display().to_string()],
    };
    let out = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args([
            "admin",
            "create-user",
            "--email",
            "dee@example.com",
            "--role",
            "customer",
        ])
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flags = [
        "--smtp-url",
        &smtp.url(),
        "--smtp-tls",
        "none",
        "--smtp-from",
        "shop@allot.test",
    ];
    let mut server = backend.start_with(&flags);
    let base = server.url();
    let (s, login) = call_at(
        &base,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "dee@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200, "{login}");
    let user_id = login["user"]["id"].as_i64().unwrap();
    let (s, queued) = call_at(
        &base,
        "POST",
        "/api/v1/notifications",
        None,
        Some(json!({"user_id": user_id, "channel": "email",
                    "subject": "Your parcel", "body": "It left the warehouse."})),
    )
    .await;
    assert_eq!(s, 202, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    eventually("an attempt against the stopped SMTP server", || async {
        let st = status_of(&base, id).await;
        (st["status"] == "failed").then_some(())
    })
    .await;
    server.kill9();

    smtp.restart();
    let server = backend.start_with(&flags);
    let base = server.url();
    let sent = eventually("the email sent after the restart", || async {
        let st = status_of(&base, id).await;
        (st["status"] == "sent").then_some(st)
    })
    .await;
    assert!(sent["attempts"].as_u64().unwrap() >= 2, "{sent}");
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].rcpt_to, vec!["dee@example.com".to_owned()]);
    assert_eq!(mail[0].subject(), Some("Your parcel"));
    assert!(mail[0].body.contains("It left the warehouse."));
    let db = backend.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationSent'")
            .await,
        1
    );
}

#[tokio::test]
async fn notifications_every_endpoint_is_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let (s, doc) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    for (method, path) in [
        ("get", "/api/v1/notifications"),
        ("post", "/api/v1/notifications"),
        ("post", "/api/v1/notifications/{id}/read"),
        ("get", "/api/v1/notifications/status/{id}"),
        ("get", "/api/v1/notifications/templates"),
        ("post", "/api/v1/notifications/templates"),
        ("get", "/api/v1/notifications/templates/{key}"),
        ("put", "/api/v1/notifications/templates/{key}"),
        ("delete", "/api/v1/notifications/templates/{key}"),
        ("get", "/api/v1/notifications/rules"),
        ("put", "/api/v1/notifications/rules/{name}"),
        ("get", "/api/v1/notifications/preferences"),
        ("put", "/api/v1/notifications/preferences"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    app.stop().await;
}

/// The rules consumer and the email sender run on every instance: on PostgreSQL two instances
/// share the log and the outbox, and still each status change makes one in-app notification
/// and one email, each delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_each_event_notifies_once_with_every_instance_consuming() {
    const ORDERS: usize = 12;
    let smtp = SmtpServer::start();
    let first = app_with_smtp(smtp.url()).await;
    let second = match &first.database {
        Some(url) => {
            let (url, smtp_url) = (url.clone(), smtp.url());
            Some(
                TestApp::spawn_configured(None, move |c| {
                    c.database = Some(url);
                    c.auth.jwt_secret = Some(allot_server::config::Secret::new("n".repeat(32)));
                    c.notifications.smtp_url = Some(smtp_url);
                    c.notifications.smtp_tls = Some(SmtpTls::Plain);
                    c.notifications.smtp_from = "shop@allot.test".to_owned();
                    c.notifications.poll_interval = Duration::from_millis(100);
                })
                .await,
            )
        }
        None => None,
    };
    let apps: Vec<&TestApp> = std::iter::once(&first).chain(second.as_ref()).collect();
    let eve = account(&first, "eve@example.com", Role::Customer).await;
    let (product, _) = product_in_stock(&first, "CUP", 100).await;
    let mut orders = Vec::new();
    for i in 0..ORDERS {
        orders.push(place_order(apps[i % apps.len()], &eve, product, 1).await);
    }
    let moves = orders.iter().enumerate().map(|(i, id)| {
        let (app, path) = (apps[i % apps.len()], format!("/api/v1/orders/{id}/status"));
        async move {
            call(
                app,
                "PUT",
                &path,
                None,
                Some(json!({"status": "confirmed"})),
            )
            .await
        }
    });
    for (s, b) in futures::future::join_all(moves).await {
        assert_eq!(s, 200, "{b}");
    }

    let mail = wait_for_mail(&smtp, ORDERS).await;
    let items = eventually("every in-app notification", || async {
        let items = inbox(&first, &eve, "?limit=200").await;
        (items.len() >= ORDERS).then_some(items)
    })
    .await;
    let db = first.db().await;
    let sent_emails =
        "SELECT COUNT(*) FROM notifications WHERE channel = 'email' AND status = 'sent'";
    eventually("every email marked sent", || async {
        (db.count(sent_emails).await == ORDERS as i64).then_some(())
    })
    .await;
    assert_eq!(items.len(), ORDERS);
    let mut subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m.subject().unwrap_or_default().to_owned())
        .collect();
    subjects.sort();
    let mut expected: Vec<String> = orders
        .iter()
        .map(|id| format!("Your order {id} is now confirmed"))
        .collect();
    expected.sort();
    assert_eq!(subjects, expected, "{mail:?}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notifications").await,
        2 * ORDERS as i64
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationQueued'")
            .await,
        2 * ORDERS as i64
    );
    if let Some(second) = second {
        second.stop().await;
    }
    first.stop().await;
}

/// Rules are configurable (channels, template, on/off) and checked; without an SMTP server an
/// email fails at once with a clear reason instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_rules_are_configurable_and_email_without_smtp_fails_with_the_reason() {
    let app = TestApp::spawn_configured(None, |c| {
        c.auth.jwt_secret = Some(allot_server::config::Secret::new("n".repeat(32)));
        c.notifications.poll_interval = Duration::from_millis(100);
    })
    .await;
    let fay = account(&app, "fay@example.com", Role::Customer).await;
    let (s, rules) = call(&app, "GET", "/api/v1/notifications/rules", None, None).await;
    assert_eq!(s, 200, "{rules}");
    let names: Vec<&str> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["low_stock", "order_shipped", "order_status_changed"]
    );
    let rule = "/api/v1/notifications/rules/order_status_changed";
    for (body, field) in [
        (json!({"channels": ["fax"]}), "channels"),
        (json!({"channels": []}), "channels"),
        (json!({"template": "nope"}), "template"),
    ] {
        let (s, b) = call(&app, "PUT", rule, None, Some(body.clone())).await;
        assert_eq!(
            (s, &b["error"]["field"]),
            (422, &json!(field)),
            "{body}: {b}"
        );
    }
    let (s, b) = call(
        &app,
        "PUT",
        "/api/v1/notifications/rules/nope",
        None,
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = call(
        &app,
        "PUT",
        rule,
        Some(&fay.bearer),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(s, 403, "a customer may not change rules: {b}");
    let (s, b) = call(
        &app,
        "PUT",
        rule,
        None,
        Some(json!({"channels": ["in_app"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["channels"], json!(["in_app"]));
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationRuleUpdated'")
            .await,
        1,
        "only the accepted change is an event"
    );

    let (product, _) = product_in_stock(&app, "PEN", 5).await;
    let order = place_order(&app, &fay, product, 1).await;
    set_status(&app, order, "cancelled").await;
    eventually("the in-app notification", || async {
        (!inbox(&app, &fay, "").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notifications WHERE channel = 'email'")
            .await,
        0,
        "the rule sends in-app only now"
    );

    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/notifications",
        None,
        Some(json!({"user_id": fay.id, "channel": "email", "subject": "Hi", "body": "Hello"})),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_i64().unwrap();
    let base = app.url();
    let failed = eventually("the email failed", || async {
        let st = status_of(&base, id).await;
        (st["status"] == "failed").then_some(st)
    })
    .await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("email is not configured"),
        "{failed}"
    );
    assert_eq!(
        (&failed["will_retry"], &failed["attempts"]),
        (&json!(false), &json!(1))
    );
    app.stop().await;
}

/// Every value of every row of every table, as text (byte values in hex), lower-cased.
async fn every_row(db: &AppDb) -> String {
    let mut all = String::new();
    match db {
        AppDb::Sqlite(_) => {
            let tables = db
                .strings("SELECT name FROM sqlite_master WHERE type = 'table'")
                .await;
            for t in tables {
                let columns = db
                    .strings(&format!("SELECT name FROM pragma_table_info('{t}')"))
                    .await;
                for c in columns {
                    let values = db
                        .strings(&format!(
                            "SELECT coalesce(group_concat(quote(\"{c}\"), char(10)), '') FROM \"{t}\""
                        ))
                        .await;
                    all.push_str(&values.concat());
                    all.push('\n');
                }
            }
        }
        AppDb::Postgres(_) => {
            let tables = db
                .strings("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .await;
            for t in tables {
                let values = db
                    .strings(&format!(
                        "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{t}\" t"
                    ))
                    .await;
                all.push_str(&values.concat());
                all.push('\n');
            }
        }
    }
    all.to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_texts_that_render_the_users_email_are_sealed_at_rest() {
    const EMAIL: &str = "ida.rhodes.sealed@example.org";
    let smtp = SmtpServer::start();
    let app = app_with_smtp(smtp.url()).await;
    let ida = account(&app, EMAIL, Role::Customer).await;
    let (s, t) = call(
        &app,
        "POST",
        "/api/v1/notifications/templates",
        None,
        Some(json!({"name": "personal",
                    "email": {"subject": "For {{ user.email }}",
                              "body": "Hello {{ user.email }}, order {{ order_id }} is {{ to }}."},
                    "in_app": {"title": "For {{ user.email }}",
                               "body": "Order {{ order_id }} of {{ user.email }} is {{ to }}."}})),
    )
    .await;
    assert_eq!(s, 201, "{t}");

    // A direct send on both channels, and a rule's notifications on both.
    for channel in ["email", "in_app"] {
        let (s, b) = call(
            &app,
            "POST",
            "/api/v1/notifications",
            None,
            Some(
                json!({"user_id": ida.id, "channel": channel, "template": "personal",
                        "variables": {"order_id": 7, "to": "direct"}}),
            ),
        )
        .await;
        assert_eq!(s, 202, "{b}");
    }
    let (s, b) = call(
        &app,
        "PUT",
        "/api/v1/notifications/rules/order_status_changed",
        None,
        Some(json!({"template": "personal"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (product, _) = product_in_stock(&app, "SEAL", 10).await;
    let order_id = place_order(&app, &ida, product, 1).await;
    set_status(&app, order_id, "confirmed").await;

    // The inbox and the SMTP messages show the email...
    let items = eventually("both in-app notifications", || async {
        let items = inbox(&app, &ida, "").await;
        (items.len() >= 2).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["title"], format!("For {EMAIL}"));
    assert_eq!(
        items[0]["body"],
        format!("Order {order_id} of {EMAIL} is confirmed.")
    );
    assert_eq!(items[1]["body"], format!("Order 7 of {EMAIL} is direct."));
    let mut mail = wait_for_mail(&smtp, 2).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    mail.sort_by_key(|m| m.body.contains("direct"));
    for (m, order, to) in [(&mail[0], order_id, "confirmed"), (&mail[1], 7, "direct")] {
        assert_eq!(m.rcpt_to, vec![EMAIL.to_owned()]);
        assert_eq!(m.subject(), Some(format!("For {EMAIL}").as_str()));
        assert!(
            m.body
                .contains(&format!("Hello {EMAIL}, order {order} is {to}.")),
            "{}",
            m.body
        );
    }
    // ...while no row of any table holds it in plaintext (or hex).
    let db = app.db().await;
    let sent = "SELECT COUNT(*) FROM notifications WHERE status = 'sent'";
    eventually("every notification sent", || async {
        (db.count(sent).await == 4).then_some(())
    })
    .await;
    let rows = every_row(&db).await;
    assert!(rows.contains("order_status_changed"), "the dump reads rows");
    let hex: String = EMAIL.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!rows.contains(EMAIL), "the email is stored in plaintext");
    assert!(
        !rows.contains(&hex),
        "the email is stored in plaintext (hex)"
    );
    app.stop().await;
}

/// Email over TLS (issue 17): STARTTLS (required) or implicit TLS, the login sent only inside
/// TLS, the server's certificate verified against the system's store and `smtp_ca_file`.
mod tls {
    use super::*;
    use allot_testkit::{SmtpOptions, SmtpServerTls, TestCa};

    const LOGIN: (&str, &str) = ("shop", "s3cret-pw");

    fn tls_server(tls: SmtpServerTls) -> SmtpServer {
        SmtpServer::start_with(SmtpOptions {
            tls,
            login: Some((LOGIN.0.to_owned(), LOGIN.1.to_owned())),
        })
    }

    /// The server's URL with the login in it.
    fn with_login(smtp: &SmtpServer) -> String {
        smtp.url()
            .replacen("://", &format!("://{}:{}@", LOGIN.0, LOGIN.1), 1)
    }

    /// Sends one email to a new customer; answers the notification's id.
    async fn send_one(app: &TestApp, to: &str) -> i64 {
        let cy = account(app, to, Role::Customer).await;
        let (s, queued) = call(
            app,
            "POST",
            "/api/v1/notifications",
            None,
            Some(json!({"user_id": cy.id, "channel": "email",
                        "template": "order_status_changed",
                        "variables": {"order_id": 7, "from": "pending", "to": "confirmed",
                                      "reason": null}})),
        )
        .await;
        assert_eq!(s, 202, "{queued}");
        queued["id"].as_i64().unwrap()
    }

    async fn delivered_with_the_login_inside_tls(smtp: SmtpServer, ca: &TestCa) {
        // No smtp_tls: the URL's scheme says (smtp:// STARTTLS, smtps:// TLS).
        let app = app_with_smtp_tls(with_login(&smtp), None, Some(ca.ca_file().to_owned())).await;
        send_one(&app, "tls@example.com").await;
        let mail = wait_for_mail(&smtp, 1).await;
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].rcpt_to, vec!["tls@example.com"]);
        assert_eq!(mail[0].subject(), Some("Your order 7 is now confirmed"));
        assert_eq!(mail[0].header("X-Tls"), Some("yes"), "{:?}", mail[0]);
        assert_eq!(
            mail[0].header("X-Auth-Login"),
            Some(LOGIN.0),
            "{:?}",
            mail[0]
        );
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_email_goes_over_starttls_with_the_login_inside_it() {
        let ca = TestCa::new("mail relays");
        let smtp = tls_server(SmtpServerTls::StartTls(
            ca.server_cert("smtp", &["localhost"]),
        ));
        assert!(smtp.url().starts_with("smtp://"));
        delivered_with_the_login_inside_tls(smtp, &ca).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_email_goes_over_smtps_with_the_login_inside_it() {
        let ca = TestCa::new("mail relays");
        let smtp = tls_server(SmtpServerTls::Implicit(
            ca.server_cert("smtp", &["localhost"]),
        ));
        assert!(smtp.url().starts_with("smtps://"));
        delivered_with_the_login_inside_tls(smtp, &ca).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_with_an_untrusted_certificate_gets_nothing_and_the_status_says_why() {
        let trusted = TestCa::new("mail relays");
        let rogue = TestCa::new("someone else");
        let smtp = tls_server(SmtpServerTls::StartTls(
            rogue.server_cert("smtp", &["localhost"]),
        ));
        let app =
            app_with_smtp_tls(with_login(&smtp), None, Some(trusted.ca_file().to_owned())).await;
        let id = send_one(&app, "rogue@example.com").await;
        let base = app.url();
        let failed = eventually("a failed attempt", || async {
            let st = status_of(&base, id).await;
            (st["status"] == "failed").then_some(st)
        })
        .await;
        assert_eq!(
            failed["reason"].as_str(),
            Some(
                format!(
                    "TLS to localhost:{}: certificate not trusted (UnknownIssuer)",
                    smtp.port()
                )
                .as_str()
            ),
            "{failed}"
        );
        assert_eq!(failed["will_retry"], true, "{failed}");
        assert!(smtp.messages().is_empty(), "nothing was delivered");
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_without_starttls_is_refused_never_used_in_clear() {
        // Plain SMTP, no STARTTLS offered; smtp:// without smtp_tls requires it.
        let smtp = SmtpServer::start();
        let app = app_with_smtp_tls(smtp.url(), None, None).await;
        let id = send_one(&app, "plain@example.com").await;
        let base = app.url();
        let failed = eventually("a failed attempt", || async {
            let st = status_of(&base, id).await;
            (st["status"] == "failed").then_some(st)
        })
        .await;
        let reason = failed["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("SMTP to 127.0.0.1:{}: ", smtp.port()))
                && reason.contains("STARTTLS is not supported"),
            "{failed}"
        );
        assert!(smtp.messages().is_empty(), "nothing was sent in clear");
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_never_finishes_the_handshake_fails_the_email_in_bounded_time() {
        // Accepts connections and says nothing: a TLS handshake (smtps://) never completes.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                open.push(conn);
            }
        });
        let app = TestApp::spawn_configured(None, move |c| {
            c.notifications.smtp_url = Some(format!("smtps://localhost:{port}"));
            c.notifications.smtp_timeout = Duration::from_millis(500);
            c.notifications.poll_interval = Duration::from_millis(100);
        })
        .await;
        let id = send_one(&app, "silent@example.com").await;
        let base = app.url();
        let failed = eventually("a failed attempt", || async {
            let st = status_of(&base, id).await;
            (st["status"] == "failed").then_some(st)
        })
        .await;
        assert_eq!(
            failed["reason"].as_str(),
            Some(format!("SMTP to localhost:{port}: no answer within 500 ms").as_str()),
            "{failed}"
        );
        held.abort();
        app.stop().await;
    }

    #[test]
    fn credentials_with_tls_off_are_refused_at_start() {
        let dir = tempfile::TempDir::new().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--smtp-url", "smtp://shop:s3cret@127.0.0.1:2525"])
            .args(["--smtp-tls", "none"])
            .env_remove("ALLOT_DATABASE_URL")
            .output()
            .expect("allot runs");
        assert!(!out.status.success(), "it started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("smtp_url: credentials with smtp_tls = none would be sent in clear"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("s3cret"),
            "the password is not printed: {stderr}"
        );
    }
}

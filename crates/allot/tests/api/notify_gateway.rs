//! SMS and push notifications through the shop's HTTP gateway (issue 19): a real gateway (a
//! small axum server in the test) receives each one POSTed as JSON, signed like webhooks
//! (the test checks the signature), with the notification id as idempotency key; a failing
//! gateway is retried until it takes the message, which is then delivered once; preferences
//! switch the channels off; each change has its events exactly once; phone numbers are parsed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allot_domain::auth::Role;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Account, TestApp, account, call, eventually};

const SECRET: &str = "gateway-secret-for-tests";

/// One request the gateway got, its signature checked.
#[derive(Debug, Clone)]
struct Hit {
    body: Value,
    idempotency_key: String,
    signature_valid: bool,
    /// The status the gateway answered.
    status: u16,
}

#[derive(Default)]
struct Inbox {
    /// Requests still to answer 503.
    fail_next: AtomicUsize,
    hits: Mutex<Vec<Hit>>,
}

/// Whether `header` (`t=<secs>,v1=<hex>`) is the HMAC-SHA256 of `"<t>.<body>"` under the
/// secret, computed here independently of the server's code.
fn signature_valid(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let failing = inbox
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::ACCEPTED
    };
    inbox.hits.lock().unwrap().push(Hit {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        idempotency_key: header("idempotency-key"),
        signature_valid: signature_valid(&header("allot-signature"), &body),
        status: status.as_u16(),
    });
    status
}

/// A gateway on 127.0.0.1 failing its first `fail_first` requests with 503; its URL.
async fn gateway(fail_first: usize) -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox::default());
    inbox.fail_next.store(fail_first, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/send", post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/send"), inbox)
}

/// A server sending SMS and push to `gateway_url` (None: no gateway), retrying quickly.
async fn app(gateway_url: Option<String>) -> TestApp {
    TestApp::spawn_configured(None, move |c| {
        c.auth.jwt_secret = Some(allot_server::config::Secret::new("n".repeat(32)));
        c.notifications.gateway_secret = gateway_url
            .is_some()
            .then(|| allot_server::config::Secret::new(SECRET));
        c.notifications.gateway_url = gateway_url;
        // The test gateway speaks plain http on loopback.
        c.webhooks.allow_http = true;
        c.notifications.poll_interval = Duration::from_millis(100);
        c.notifications.retry_base = Duration::from_millis(100);
        c.notifications.retry_max = Duration::from_millis(300);
        c.notifications.attempts_max = 1_000;
    })
    .await
}

async fn set_preferences(app: &TestApp, who: &Account, prefs: Value) {
    let (s, b) = call(
        app,
        "PUT",
        "/api/v1/notifications/preferences",
        Some(&who.bearer),
        Some(prefs),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

async fn status_of(app: &TestApp, id: i64) -> Value {
    let (s, b) = call(
        app,
        "GET",
        &format!("/api/v1/notifications/status/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Waits until notification `id` is sent, and answers its status.
async fn sent(app: &TestApp, id: i64) -> Value {
    eventually(&format!("notification {id} sent"), || async move {
        let b = status_of(app, id).await;
        (b["status"] == "sent").then_some(b)
    })
    .await
}

/// Every event of the log, oldest first.
async fn all_events(app: &TestApp) -> Vec<Value> {
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let (s, page) = call(
            app,
            "GET",
            &format!("/api/v1/events?after={after}&limit=1000"),
            None,
            None,
        )
        .await;
        assert_eq!(s, 200, "{page}");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last() else {
            return all;
        };
        after = last["seq"].as_i64().unwrap();
        all.extend(events);
    }
}

/// How many events of `kind` name notification `id`.
fn count(events: &[Value], kind: &str, id: i64) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["payload"]["notification_id"] == id)
        .count()
}

/// A direct send as the harness admin (202); the notification's id.
async fn send(app: &TestApp, body: Value) -> i64 {
    let (s, b) = call(app, "POST", "/api/v1/notifications", None, Some(body)).await;
    assert_eq!(s, 202, "{b}");
    b["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_and_push_reach_the_gateway_signed_once_with_their_events() {
    let (url, inbox) = gateway(0).await;
    let app = app(Some(url)).await;
    let ann = account(&app, "ann@example.com", Role::Customer).await;
    set_preferences(
        &app,
        &ann,
        json!({"sms": true, "phone": "+49 (151) 2345-6789"}),
    )
    .await;
    let (s, prefs) = call(
        &app,
        "GET",
        "/api/v1/notifications/preferences",
        Some(&ann.bearer),
        None,
    )
    .await;
    assert_eq!(s, 200, "{prefs}");
    assert_eq!(prefs["phone"], "+4915123456789", "{prefs}");
    assert_eq!(
        (
            &prefs["email"],
            &prefs["in_app"],
            &prefs["sms"],
            &prefs["push"]
        ),
        (&json!(true), &json!(true), &json!(true), &json!(true))
    );

    let (s, t) = call(
        &app,
        "POST",
        "/api/v1/notifications/templates",
        None,
        Some(json!({
            "name": "parcel",
            "sms": {"text": "Parcel {{ tracking }} is on its way."},
            "push": {"title": "Parcel {{ tracking }}", "body": "On its way.",
                     "url": "https://shop.example/track/{{ tracking }}"},
        })),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        t["push"]["url"],
        "https://shop.example/track/{{ tracking }}"
    );
    assert_eq!(t["email"], Value::Null);

    let vars = json!({"tracking": "ZX9"});
    let sms = send(
        &app,
        json!({"user_id": ann.id, "channel": "sms", "template": "parcel", "variables": vars}),
    )
    .await;
    let push = send(
        &app,
        json!({"user_id": ann.id, "channel": "push", "template": "parcel", "variables": vars}),
    )
    .await;
    let inbox_note = send(
        &app,
        json!({"user_id": ann.id, "channel": "in_app", "subject": "Hi", "body": "Hello"}),
    )
    .await;
    for id in [sms, push] {
        let st = sent(&app, id).await;
        assert_eq!(st["attempts"], 1, "{st}");
        assert_eq!(st["retried"], false, "{st}");
    }

    let hits = inbox.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2, "{hits:?}");
    for h in &hits {
        assert!(h.signature_valid, "{h:?}");
        assert_eq!(h.idempotency_key, h.body["id"].to_string(), "{h:?}");
        assert_eq!(h.body["user_id"], ann.id);
        assert!(
            h.body["created_at"].as_str().unwrap().ends_with('Z'),
            "{h:?}"
        );
    }
    let sms_hit = hits.iter().find(|h| h.body["id"] == sms).unwrap();
    assert_eq!(sms_hit.body["channel"], "sms");
    assert_eq!(sms_hit.body["to"], "+4915123456789");
    assert_eq!(sms_hit.body["text"], "Parcel ZX9 is on its way.");
    let push_hit = hits.iter().find(|h| h.body["id"] == push).unwrap();
    assert_eq!(push_hit.body["channel"], "push");
    assert_eq!(push_hit.body["to"], ann.id.to_string());
    assert_eq!(push_hit.body["title"], "Parcel ZX9");
    assert_eq!(push_hit.body["body"], "On its way.");
    assert_eq!(push_hit.body["url"], "https://shop.example/track/ZX9");

    // The outbox lists them with email's delivery state.
    let (s, out) = call(&app, "GET", "/api/v1/notifications/outbox", None, None).await;
    assert_eq!(s, 200, "{out}");
    let channels: Vec<&str> = out["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, vec!["push", "sms"], "{out}");

    // Each change has its events exactly once, in the design's names and the old ones.
    let events = all_events(&app).await;
    for (id, requested) in [
        (sms, "SmsNotificationRequested"),
        (push, "PushNotificationRequested"),
    ] {
        for kind in [
            "NotificationQueued",
            requested,
            "NotificationSent",
            "NotificationDelivered",
        ] {
            assert_eq!(count(&events, kind, id), 1, "{kind} of {id}");
        }
        assert_eq!(count(&events, "NotificationFailed", id), 0);
        assert_eq!(count(&events, "EmailNotificationRequested", id), 0);
    }
    for kind in [
        "NotificationQueued",
        "NotificationSent",
        "NotificationDelivered",
    ] {
        assert_eq!(count(&events, kind, inbox_note), 1, "{kind} of in-app");
    }
    for kind in [
        "EmailNotificationRequested",
        "SmsNotificationRequested",
        "PushNotificationRequested",
    ] {
        assert_eq!(count(&events, kind, inbox_note), 0, "{kind} of in-app");
    }
    // No event carries the phone number.
    let prefs_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "NotificationPreferencesUpdated")
        .collect();
    assert_eq!(prefs_events.len(), 1);
    assert_eq!(prefs_events[0]["payload"]["phone_set"], true);
    assert!(!events.iter().any(|e| e.to_string().contains("2345")));
    // The number is sealed at rest.
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notification_phones WHERE phone_enc LIKE '%2345%'")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notification_phones").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gateway_is_retried_until_it_takes_the_message_once() {
    let (url, inbox) = gateway(2).await;
    let app = app(Some(url)).await;
    let bo = account(&app, "bo@example.com", Role::Customer).await;
    set_preferences(&app, &bo, json!({"phone": "+33 6 12 34 56 78"})).await;
    let id = send(
        &app,
        json!({"user_id": bo.id, "channel": "sms", "body": "Your code is 1234."}),
    )
    .await;
    let st = sent(&app, id).await;
    assert_eq!(st["attempts"], 3, "{st}");
    assert_eq!(st["retried"], true, "{st}");
    assert_eq!(st["will_retry"], false, "{st}");
    assert!(
        st["reason"].as_str().unwrap().contains("503"),
        "the last failure is kept: {st}"
    );

    let hits = inbox.hits.lock().unwrap().clone();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![503, 503, 202],
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| h.signature_valid));
    assert!(hits.iter().all(|h| h.idempotency_key == id.to_string()));
    assert!(hits.iter().all(|h| h.body["to"] == "+33612345678"));

    let events = all_events(&app).await;
    assert_eq!(count(&events, "NotificationQueued", id), 1);
    assert_eq!(count(&events, "SmsNotificationRequested", id), 1);
    assert_eq!(count(&events, "NotificationFailed", id), 2);
    assert_eq!(count(&events, "NotificationSent", id), 1);
    assert_eq!(count(&events, "NotificationDelivered", id), 1);
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "NotificationFailed")
        .collect();
    assert!(failed.iter().all(|e| e["payload"]["gave_up"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_send_sms_and_push_only_on_the_channels_a_user_keeps_on() {
    let (url, inbox) = gateway(0).await;
    let app = app(Some(url)).await;
    let (s, b) = call(
        &app,
        "PUT",
        "/api/v1/notifications/rules/order_status_changed",
        None,
        Some(json!({"channels": ["in_app", "sms", "push"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["channels"], json!(["in_app", "sms", "push"]));

    // cal: SMS opted in with a number, push on (default). dan: defaults, a number but SMS
    // off (the default), push off for this rule. eve: SMS on but no number.
    let cal = account(&app, "cal@example.com", Role::Customer).await;
    let dan = account(&app, "dan@example.com", Role::Customer).await;
    let eve = account(&app, "eve@example.com", Role::Customer).await;
    set_preferences(&app, &cal, json!({"sms": true, "phone": "+12025550123"})).await;
    set_preferences(
        &app,
        &dan,
        json!({"phone": "+12025550124", "rules": {"order_status_changed": {"push": false}}}),
    )
    .await;
    set_preferences(&app, &eve, json!({"sms": true})).await;

    let (s, p) = call(
        &app,
        "POST",
        "/api/v1/products",
        None,
        Some(
            json!({"sku": "KIT", "name": "Kit", "price": {"amount_minor": 900, "currency": "EUR"}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let (s, w) = call(
        &app,
        "POST",
        "/api/v1/warehouses",
        None,
        Some(json!({"code": "W-KIT", "name": "main"})),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/inventory/adjust",
        None,
        Some(
            json!({"product_id": p["id"], "warehouse_id": w["id"], "mode": "set",
                    "quantity": 10, "reason": "count"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for who in [&cal, &dan, &eve] {
        let (s, order) = call(
            &app,
            "POST",
            "/api/v1/orders",
            Some(&who.bearer),
            Some(json!({
                "customer": who.id.to_string(),
                "shipping_address": {"name": "C", "line1": "1 Road", "city": "Paris",
                                     "postal_code": "75001", "country": "FR"},
                "lines": [{"product_id": p["id"], "quantity": 1}],
            })),
        )
        .await;
        assert_eq!(s, 201, "{order}");
        let id = order["id"].as_i64().unwrap();
        let (s, b) = call(
            &app,
            "PUT",
            &format!("/api/v1/orders/{id}/status"),
            None,
            Some(json!({"status": "confirmed"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    // Every customer's in-app notification is made in the same commit as any SMS or push of
    // the same event: once all three are in, the consumer has passed the events.
    let db = app.db().await;
    eventually("the in-app notifications", || {
        let db = &db;
        async move {
            (db.count("SELECT COUNT(*) FROM notifications WHERE channel = 'in_app'")
                .await
                == 3)
                .then_some(())
        }
    })
    .await;
    let made = |user: i64, channel: &str| {
        format!(
            "SELECT COUNT(*) FROM notifications WHERE user_id = {user} AND channel = '{channel}'"
        )
    };
    assert_eq!(db.count(&made(cal.id, "sms")).await, 1);
    assert_eq!(db.count(&made(cal.id, "push")).await, 1);
    assert_eq!(db.count(&made(dan.id, "sms")).await, 0, "SMS are opt-in");
    assert_eq!(
        db.count(&made(dan.id, "push")).await,
        0,
        "push off for the rule"
    );
    assert_eq!(db.count(&made(eve.id, "sms")).await, 0, "no number, no SMS");
    assert_eq!(db.count(&made(eve.id, "push")).await, 1);

    eventually("three messages at the gateway", || {
        let inbox = inbox.clone();
        async move { (inbox.hits.lock().unwrap().len() >= 3).then_some(()) }
    })
    .await;
    let hits = inbox.hits.lock().unwrap().clone();
    let mut got: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            (
                h.body["channel"].as_str().unwrap().to_owned(),
                h.body["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        ("push".to_owned(), cal.id.to_string()),
        ("push".to_owned(), eve.id.to_string()),
        ("sms".to_owned(), "+12025550123".to_owned()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(hits.iter().all(|h| h.signature_valid));
    let sms_hit = hits.iter().find(|h| h.body["channel"] == "sms").unwrap();
    assert!(
        sms_hit.body["text"]
            .as_str()
            .unwrap()
            .ends_with("is now confirmed."),
        "{sms_hit:?}"
    );

    // The rule's notifications have their events once each, the rule's actor on them.
    let made: Vec<(i64, String)> = db
        .strings(
            "SELECT id || ' ' || channel FROM notifications WHERE channel <> 'in_app' ORDER BY id",
        )
        .await
        .iter()
        .map(|row| {
            let (id, channel) = row.split_once(' ').unwrap();
            (id.parse().unwrap(), channel.to_owned())
        })
        .collect();
    assert_eq!(made.len(), 3, "{made:?}");
    for (id, _) in &made {
        sent(&app, *id).await;
    }
    let events = all_events(&app).await;
    for (id, channel) in &made {
        let requested = if channel == "sms" {
            "SmsNotificationRequested"
        } else {
            "PushNotificationRequested"
        };
        for kind in [
            "NotificationQueued",
            requested,
            "NotificationSent",
            "NotificationDelivered",
        ] {
            assert_eq!(count(&events, kind, *id), 1, "{kind} of {id}");
        }
        let queued = events
            .iter()
            .find(|e| e["type"] == requested && e["payload"]["notification_id"] == *id)
            .unwrap();
        assert_eq!(queued["actor"], "system:notifier", "{queued}");
        assert_eq!(
            queued["payload"]["rule"], "order_status_changed",
            "{queued}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_phone_numbers_are_refused_naming_the_field_and_nothing_is_written() {
    let app = app(None).await;
    let fay = account(&app, "fay@example.com", Role::Customer).await;
    for phone in [
        json!("0151 2345678"),
        json!("+0151234567"),
        json!("+49 151 abc"),
        json!("+1234567"),
        json!(""),
        json!(format!("+49 151 2345678{}", " ".repeat(30))),
    ] {
        let (s, b) = call(
            &app,
            "PUT",
            "/api/v1/notifications/preferences",
            Some(&fay.bearer),
            Some(json!({"sms": true, "phone": phone})),
        )
        .await;
        assert_eq!(
            (s, &b["error"]["code"], &b["error"]["field"]),
            (422, &json!("invalid_argument"), &json!("phone")),
            "{phone}: {b}"
        );
    }
    let (s, prefs) = call(
        &app,
        "GET",
        "/api/v1/notifications/preferences",
        Some(&fay.bearer),
        None,
    )
    .await;
    assert_eq!(s, 200, "{prefs}");
    assert_eq!(prefs["phone"], Value::Null);
    assert_eq!(prefs["sms"], false, "SMS stay off until opted in: {prefs}");
    assert_eq!(prefs["push"], true, "{prefs}");
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notification_preferences")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'NotificationPreferencesUpdated'")
            .await,
        0
    );
    // An SMS to a user without a number is refused before anything is stored.
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/notifications",
        None,
        Some(json!({"user_id": fay.id, "channel": "sms", "body": "hi"})),
    )
    .await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("user_id")), "{b}");
    assert_eq!(db.count("SELECT COUNT(*) FROM notifications").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gateway_sms_and_push_fail_at_once_with_the_reason() {
    let app = app(None).await;
    let gus = account(&app, "gus@example.com", Role::Customer).await;
    let id = send(
        &app,
        json!({"user_id": gus.id, "channel": "push", "subject": "Sale", "body": "Today only"}),
    )
    .await;
    let st = eventually("the push given up", || {
        let app = &app;
        async move {
            let b = status_of(app, id).await;
            (b["status"] == "failed").then_some(b)
        }
    })
    .await;
    assert_eq!(st["will_retry"], false, "{st}");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains("notification gateway is not configured"),
        "{st}"
    );
    let events = all_events(&app).await;
    assert_eq!(count(&events, "PushNotificationRequested", id), 1);
    assert_eq!(count(&events, "NotificationFailed", id), 1);
    assert_eq!(count(&events, "NotificationDelivered", id), 0);
}

//! The console's overview (issue 15): the live figures, each shown only to a role that may see
//! its section, on the page and in the JSON its script polls.

use allot_domain::auth::Role;
use serde_json::json;

use crate::console_campaigns::{Browser, campaign, issue};
use crate::helpers::{TestApp, http};

#[tokio::test]
async fn the_overview_shows_running_campaigns_and_the_shops_counts() {
    let app = TestApp::spawn().await;
    let id = campaign(&app, "Racing", 100).await;
    issue(&app, id, "alice").await;
    issue(&app, id, "bob").await;
    // A campaign that is over is not running.
    let full = campaign(&app, "Gone", 1).await;
    issue(&app, full, "carol").await;
    let r = http()
        .post(format!("{}/api/v1/webhooks", app.url()))
        .json(&json!({"url": "https://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let admin = Browser::sign_in(&app, Role::Admin).await;
    let (status, page) = admin.get("/console").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-poll="/console/overview.json""#));
    assert!(page.contains(r#"aria-live="polite""#));
    assert!(
        page.contains("Racing") && !page.contains(">Gone<"),
        "{page}"
    );
    for card in [
        "overview-orders",
        "overview-megadeal",
        "overview-sale",
        "Failing webhooks",
        "Low-stock alerts",
        "Failing notifications",
    ] {
        assert!(page.contains(card), "{card} shown to an admin");
    }

    let o = admin.json("/console/overview.json").await;
    let running = o["campaigns"].as_array().unwrap();
    assert_eq!(running.len(), 1, "{o}");
    assert_eq!(running[0]["id"], id);
    assert_eq!(running[0]["issued"], 2);
    assert_eq!(running[0]["remaining"], 98);
    assert_eq!(o["orders"]["last_minute"], 0);
    assert_eq!(o["stock"]["count"], 0);
    assert_eq!(o["megadeal"]["in_flight"], 0);
    assert!(o["megadeal"]["refused"].is_u64());
    assert!(o["now_ms"].is_i64());

    issue(&app, id, "dave").await;
    let o = admin.json("/console/overview.json").await;
    assert_eq!(o["campaigns"][0]["issued"], 3, "the figures move");

    // Nothing listens on port 9: the endpoint's first delivery fails, and it is counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let o = admin.json("/console/overview.json").await;
        if o["webhooks"]["count"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failing endpoint is counted: {o}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn each_role_sees_only_the_panels_of_its_sections() {
    let app = TestApp::spawn().await;
    campaign(&app, "Marketing only", 10).await;

    let warehouse = Browser::sign_in(&app, Role::Warehouse).await;
    let (status, page) = warehouse.get("/console").await;
    assert_eq!(status, 200);
    assert!(page.contains("Low-stock alerts") && page.contains("overview-orders"));
    assert!(!page.contains("Marketing only") && !page.contains("overview-megadeal"));
    assert!(!page.contains("Failing webhooks"));
    let o = warehouse.json("/console/overview.json").await;
    assert!(o["campaigns"].is_null() && o["megadeal"].is_null() && o["webhooks"].is_null());
    assert!(o["stock"]["count"].is_i64() && o["orders"]["last_minute"].is_i64());

    let marketing = Browser::sign_in(&app, Role::Marketing).await;
    let o = marketing.json("/console/overview.json").await;
    assert_eq!(o["campaigns"][0]["name"], "Marketing only");
    assert!(o["megadeal"].is_object());
    assert!(o["orders"].is_null() && o["stock"].is_null() && o["webhooks"].is_null());
    assert!(
        o["notifications"].is_object(),
        "marketing edits notifications"
    );

    let customer = Browser::sign_in(&app, Role::Customer).await;
    for path in ["/console", "/console/overview.json"] {
        let (status, _) = customer.get(path).await;
        assert_eq!(status, 403, "{path}");
    }
    app.stop().await;
}

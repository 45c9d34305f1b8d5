//! The console's flash sale pages (issue 15): the current sale's live counter, past sales
//! paged, a sale's items and a user's purchases; the sales listing of the API they read.

use allot_domain::UnixMillis;
use allot_domain::auth::Role;
use allot_domain::sale::ItemsPerSale;
use allot_server::service::sale::SaleSettings;
use serde_json::Value;

use crate::console_campaigns::Browser;
use crate::helpers::{TestApp, http};

/// 2026-11-22T10:30:00Z: mid-hour, so no sale changes under a test.
const MID_HOUR: UnixMillis = UnixMillis::from_millis(1_795_341_600_000 + 1_800_000);
const HOUR_MS: i64 = 3_600_000;

async fn get(app: &TestApp, path: &str) -> Value {
    let r = http()
        .get(format!("{}{path}", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn sale_app() -> TestApp {
    TestApp::spawn_configured(Some(MID_HOUR), |c| {
        c.sales = SaleSettings {
            items: ItemsPerSale::parse(5).ok(),
            user_limit: 2,
        };
    })
    .await
}

/// Checks the sale's first item out for `user` and buys it: the item's name.
async fn buy_first_item(app: &TestApp, user: &str) -> String {
    let sale = get(app, "/api/v1/sales/current").await["id"]
        .as_i64()
        .unwrap();
    let items = get(app, &format!("/api/v1/sales/{sale}/items")).await;
    let item = &items["items"][0];
    let r = http()
        .post(format!(
            "{}/api/v1/sales/{sale}/checkout?user_id={user}&id={}",
            app.url(),
            item["id"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let code = r.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http()
        .post(format!(
            "{}/api/v1/sales/{sale}/purchase?code={code}",
            app.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    item["name"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn marketing_watches_the_current_sale_and_finds_a_users_purchases() {
    let app = sale_app().await;
    let sale = get(&app, "/api/v1/sales/current").await["id"]
        .as_i64()
        .unwrap();
    let marketing = Browser::sign_in(&app, Role::Marketing).await;

    let (status, page) = marketing.get("/console/sales").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"id="sale-sold" data-field="sold">0<"#),
        "{page}"
    );
    assert!(page.contains(&format!(r#"href="/console/sales/{sale}""#)));
    assert!(
        page.contains(r#"id="sale-current-purchases""#)
            && page.contains(&format!(r#"method="get" action="/console/sales/{sale}""#)),
        "a search of a user's purchases in the current sale"
    );

    let name = buy_first_item(&app, "solo").await;
    let now = marketing.json("/console/sales/current.json").await;
    assert_eq!(now["sold"], 1, "the counter moves: {now}");
    assert_eq!(now["remaining"], 4);

    let (status, page) = marketing.get(&format!("/console/sales/{sale}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="sale-items""#) && page.contains(&name));
    assert!(page.contains("solo"), "the buyer of the sold item");
    let (_, found) = marketing
        .get(&format!("/console/sales/{sale}?user_id=solo"))
        .await;
    assert!(found.contains(r#"id="sale-purchases-result""#) && found.contains(&name));
    let (_, none) = marketing
        .get(&format!("/console/sales/{sale}?user_id=nobody"))
        .await;
    assert!(none.contains("nobody bought nothing"));
    let (status, _) = marketing.get("/console/sales/999999").await;
    assert_eq!(status, 404);

    for role in [Role::Warehouse, Role::Support] {
        let browser = Browser::sign_in(&app, role).await;
        for path in ["/console/sales", "/console/sales/current.json"] {
            assert_eq!(browser.get(path).await.0, 403, "{role:?} {path}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn past_sales_are_listed_newest_first_a_page_at_a_time() {
    let app = sale_app().await;
    let clock = app.clock.clone().unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            get(&app, "/api/v1/sales/current").await["id"]
                .as_i64()
                .unwrap(),
        );
        clock.advance_ms(HOUR_MS);
    }
    let page = get(&app, "/api/v1/sales?limit=2").await;
    let listed: Vec<i64> = page["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [ids[2], ids[1]]);
    assert_eq!(page["next_before"], ids[1]);
    let rest = get(&app, &format!("/api/v1/sales?limit=2&before={}", ids[1])).await;
    assert_eq!(rest["sales"][0]["id"], ids[0]);
    assert_eq!(rest["sales"][0]["items_total"], 5);
    assert_eq!(rest["next_before"], Value::Null);

    let admin = Browser::sign_in(&app, Role::Admin).await;
    let (status, page) = admin.get("/console/sales").await;
    assert_eq!(status, 200);
    for id in &ids {
        assert!(page.contains(&format!(r#"href="/console/sales/{id}""#)));
    }
    app.stop().await;
}

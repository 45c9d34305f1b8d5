//! The console's coupons page: counters per type, a look-up, redemptions, purge and MEGADEAL
//! admission for marketing; the CSV upload it sends names each refused row.

use allot_domain::auth::Role;
use serde_json::json;

use crate::console_catalog::{Console, refused};

#[tokio::test]
async fn the_coupons_page_shows_counters_a_lookup_and_redemptions_and_the_upload_names_bad_rows() {
    let c = Console::open(&[Role::Marketing, Role::Warehouse]).await;
    c.admin(
        "POST",
        "/api/v1/coupons",
        Some(json!({"coupons": [
            {"code": "SPRING-10", "type": "STANDARD", "discount_kind": "PERCENTAGE",
             "discount_amount": 10, "expires_at": "2099-01-01T00:00:00Z", "max_uses": 5},
            {"code": "FREE-SHIP", "type": "FREE", "discount_kind": "FLAT",
             "discount_amount": 300, "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1}
        ]})),
    )
    .await;
    c.admin(
        "POST",
        "/api/v1/coupons/SPRING-10/redeem",
        Some(json!({"user_id": "shopper-42"})),
    )
    .await;

    let (s, html) = c.page(Role::Marketing, "/console/coupons").await;
    assert_eq!(s, 200, "{html}");
    for id in [
        "coupon-upload",
        "coupon-stats",
        "coupon-lookup",
        "coupon-purge",
        "megadeal",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("name=\"file\"") && html.contains("<progress"));
    assert!(html.contains("STANDARD") && html.contains("FREE"));
    assert!(html.contains("shopper-42"), "the redemption");
    let (_, theirs) = c
        .page(Role::Marketing, "/console/coupons?by_user=shopper-42")
        .await;
    assert!(theirs.contains(">SPRING-10<"), "{theirs}");
    let (_, others) = c
        .page(Role::Marketing, "/console/coupons?by_user=someone-else")
        .await;
    assert!(!others.contains(">SPRING-10<"));
    let (s, _) = c
        .page(Role::Marketing, "/console/coupons?by_code=not%20a%20code")
        .await;
    assert_eq!(s, 422);

    let (_, found) = c
        .page(Role::Marketing, "/console/coupons?code=spring-10")
        .await;
    assert!(found.contains("id=\"coupon-found\""));
    assert!(found.contains("1 of 5"), "{found}");
    let (_, missing) = c.page(Role::Marketing, "/console/coupons?code=NOPE").await;
    assert!(missing.contains("not found"), "{missing}");

    // The upload as the page's script sends it: one bad row, named by its row and field.
    let csv = "code,type,discount_kind,discount_amount,expires_at,max_uses\n\
               GOOD-1,STANDARD,FLAT,500,2099-01-01T00:00:00Z,1\n\
               BAD-2,STANDARD,FLAT,500,not-a-time,1\n";
    let (s, b) = c
        .api_raw(
            Role::Marketing,
            "POST",
            "/api/v1/coupons/csv",
            Some(("text/csv", csv.to_owned())),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let details = b["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "{b}");
    assert_eq!(details[0]["index"], 1);
    assert_eq!(details[0]["field"], "expires_at");

    let (s, b) = c
        .api(Role::Marketing, "POST", "/api/v1/coupons/purge", None)
        .await;
    assert_eq!(s, 200, "{b}");

    let (s, live) = c
        .page(Role::Marketing, "/console/coupons/megadeal.json")
        .await;
    assert_eq!(s, 200, "{live}");
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["in_flight"], 0, "{live}");

    let (s, html) = c.page(Role::Warehouse, "/console/coupons").await;
    refused(s, &html);
    let (s, _) = c
        .page(Role::Warehouse, "/console/coupons/megadeal.json")
        .await;
    assert_eq!(s, 403);
}

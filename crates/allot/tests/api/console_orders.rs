//! The console's orders pages: the list with its filters, and an order's page whose buttons
//! are exactly the statuses the workflow allows next and the role may set.

use allot_domain::auth::Role;
use serde_json::json;

use crate::console_catalog::{Console, refused};

#[tokio::test]
async fn the_orders_pages_filter_show_an_order_and_offer_only_allowed_moves() {
    let c = Console::open(&[
        Role::Admin,
        Role::Warehouse,
        Role::Support,
        Role::Customer,
        Role::Marketing,
    ])
    .await;
    let (p, _) = c.stocked("TEA-3", "MAIN", 10).await;
    let customer = c.user_id(Role::Customer);
    let order = c
        .admin(
            "POST",
            "/api/v1/orders",
            Some(json!({
                "customer": customer,
                "shipping_address": {"name": "Kim Minji", "line1": "1 Sejong-daero",
                                     "city": "Seoul", "postal_code": "04524", "country": "KR"},
                "lines": [{"product_id": p, "quantity": 2}]
            })),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let link = format!("href=\"/console/orders/{order}\"");

    let (s, html) = c.page(Role::Support, "/console/orders").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains(&link), "{html}");
    let (_, pending) = c
        .page(Role::Support, "/console/orders?status=pending")
        .await;
    assert!(pending.contains(&link));
    let (_, delivered) = c
        .page(Role::Support, "/console/orders?status=delivered")
        .await;
    assert!(!delivered.contains(&link));
    let (_, theirs) = c
        .page(
            Role::Support,
            &format!("/console/orders?customer={customer}"),
        )
        .await;
    assert!(theirs.contains(&link));
    let (_, later) = c
        .page(Role::Support, "/console/orders?from=2999-01-01")
        .await;
    assert!(!later.contains(&link));
    let (s, _) = c.page(Role::Support, "/console/orders?status=lost").await;
    assert_eq!(s, 422);

    // Pending: an admin may confirm or cancel; a warehouse user may do neither yet.
    let path = format!("/console/orders/{order}");
    let (s, html) = c.page(Role::Admin, &path).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("id=\"order-status\""));
    assert!(html.contains(">pending<"));
    assert!(html.contains("Kim Minji") && html.contains("TEA-3"));
    assert!(html.contains("name=\"status\" value=\"confirmed\""));
    assert!(html.contains("name=\"status\" value=\"cancelled\""));
    assert!(!html.contains("name=\"status\" value=\"fulfilled\""));
    let (_, html) = c.page(Role::Warehouse, &path).await;
    assert!(!html.contains("name=\"status\""), "{html}");

    // The buttons' call, as the page sends it; then a warehouse user may fulfil.
    let (s, b) = c
        .api(
            Role::Admin,
            "PUT",
            &format!("/api/v1/orders/{order}/status"),
            Some(json!({"status": "confirmed", "reason": "paid"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, html) = c.page(Role::Warehouse, &path).await;
    assert!(html.contains(">confirmed<") && html.contains("paid"));
    assert!(html.contains("name=\"status\" value=\"fulfilled\""));
    assert!(!html.contains("name=\"status\" value=\"cancelled\""));

    // A customer sees its own order, and may only cancel it.
    let (s, html) = c.page(Role::Customer, &path).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("name=\"status\" value=\"cancelled\""));
    assert!(!html.contains("name=\"status\" value=\"fulfilled\""));
    let (_, html) = c.page(Role::Customer, "/console/orders").await;
    assert!(html.contains(&link));

    let (s, html) = c.page(Role::Marketing, "/console/orders").await;
    refused(s, &html);
    let (s, html) = c.page(Role::Marketing, &path).await;
    refused(s, &html);
    let (s, _) = c.page(Role::Support, "/console/orders/999999").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn orders_list_newest_first_on_the_page_by_default_and_on_the_api_when_asked() {
    let c = Console::open(&[Role::Support]).await;
    let (p, _) = c.stocked("SOAP-1", "MAIN", 10).await;
    let mut ids = Vec::new();
    for name in ["First", "Second", "Third"] {
        let o = c
            .admin(
                "POST",
                "/api/v1/orders",
                Some(json!({
                    "customer": "shopper-1",
                    "shipping_address": {"name": name, "line1": "1 Main St", "city": "Seoul",
                                         "postal_code": "04524", "country": "KR"},
                    "lines": [{"product_id": p, "quantity": 1}]
                })),
            )
            .await;
        ids.push(o["id"].as_i64().unwrap());
    }
    let at = |html: &str, id: i64| {
        html.find(&format!("href=\"/console/orders/{id}\""))
            .expect("the order is listed")
    };
    let (_, html) = c.page(Role::Support, "/console/orders").await;
    assert!(at(&html, ids[2]) < at(&html, ids[1]) && at(&html, ids[1]) < at(&html, ids[0]));
    let (_, html) = c.page(Role::Support, "/console/orders?order=oldest").await;
    assert!(at(&html, ids[0]) < at(&html, ids[1]) && at(&html, ids[1]) < at(&html, ids[2]));

    // The API: two pages of newest first, then the end.
    let (s, first) = c
        .api(
            Role::Support,
            "GET",
            "/api/v1/orders?sort=-created&limit=2",
            None,
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let page_ids = |page: &serde_json::Value| -> Vec<i64> {
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(page_ids(&first), [ids[2], ids[1]]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = c
        .api(
            Role::Support,
            "GET",
            &format!("/api/v1/orders?sort=-created&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page_ids(&second), [ids[0]]);
    let (_, oldest) = c
        .api(Role::Support, "GET", "/api/v1/orders?limit=2", None)
        .await;
    assert_eq!(page_ids(&oldest), [ids[0], ids[1]]);
    let (s, b) = c
        .api(Role::Support, "GET", "/api/v1/orders?sort=price", None)
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "sort");
}

#[tokio::test]
async fn an_orders_page_shows_its_promotions_and_shipping() {
    let c = Console::open(&[Role::Support]).await;
    let (p, _) = c.stocked("TEA-4", "MAIN", 10).await;
    let promotion = c
        .admin(
            "POST",
            "/api/v1/promotions",
            Some(json!({"name": "ship free", "trigger": "automatic",
                        "actions": [{"type": "amount_off", "amount_minor": 50},
                                    {"type": "free_shipping", "cap_minor": 300}]})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let order = c
        .admin(
            "POST",
            "/api/v1/orders",
            Some(json!({
                "customer": "kim",
                "shipping_address": {"name": "Kim Minji", "line1": "1 Sejong-daero",
                                     "city": "Seoul", "postal_code": "04524", "country": "KR"},
                "lines": [{"product_id": p, "quantity": 1}],
                "shipping_minor": 500
            })),
        )
        .await;
    assert_eq!(order["promotions"][0]["amount_minor"], 350, "{order}");
    let (s, html) = c
        .page(Role::Support, &format!("/console/orders/{}", order["id"]))
        .await;
    assert_eq!(s, 200, "{html}");
    let row = |id: &str| {
        let start = html.find(&format!("id=\"{id}\"")).expect(id);
        html[start..start + html[start..].find("</td>").expect("cell end")].to_owned()
    };
    let promotions = row("order-promotions");
    assert!(
        promotions.contains(&format!("href=\"/console/promotions/{promotion}\"")),
        "{promotions}"
    );
    let shipping = row("order-shipping");
    assert!(shipping.contains('−'), "{shipping}");
}

#[tokio::test]
async fn an_orders_page_shows_its_payments_shipments_and_returns() {
    let c = Console::open(&[Role::Support]).await;
    let (p, _) = c.stocked("TEA-5", "MAIN", 10).await;
    let order = c
        .admin(
            "POST",
            "/api/v1/orders",
            Some(json!({
                "customer": "kim",
                "shipping_address": {"name": "Kim Minji", "line1": "1 Sejong-daero",
                                     "city": "Seoul", "postal_code": "04524", "country": "KR"},
                "lines": [{"product_id": p, "quantity": 2}],
            })),
        )
        .await;
    let id = order["id"].as_i64().unwrap();
    let paid = c
        .admin(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            Some(
                json!({"provider": "bank_transfer", "reference": "BT-CONSOLE",
                        "amount_minor": order["total_minor"], "currency": order["currency"]}),
            ),
        )
        .await;
    assert_eq!(paid["order_paid"], true, "{paid}");
    let shipped = c
        .admin(
            "POST",
            &format!("/api/v1/orders/{id}/shipments"),
            Some(
                json!({"lines": [{"line_id": 0, "quantity": 2}], "carrier": "Korea Post",
                        "tracking_number": "KP-123456"}),
            ),
        )
        .await;
    assert_eq!(shipped["order_fulfilled"], true, "{shipped}");
    let returned = c
        .admin(
            "POST",
            &format!("/api/v1/orders/{id}/returns"),
            Some(json!({"lines": [{"product_id": p, "quantity": 1}], "reason": "chipped cup"})),
        )
        .await;
    assert_eq!(returned["status"], "requested", "{returned}");

    let (s, html) = c
        .page(Role::Support, &format!("/console/orders/{id}"))
        .await;
    assert_eq!(s, 200, "{html}");
    let table = |id: &str| {
        let start = html.find(&format!("id=\"{id}\"")).expect(id);
        html[start..start + html[start..].find("</table>").expect("table end")].to_owned()
    };
    let payments = table("order-payments");
    assert!(
        payments.contains("BT-CONSOLE") && payments.contains("captured"),
        "{payments}"
    );
    let shipments = table("order-shipments");
    assert!(
        shipments.contains("Korea Post")
            && shipments.contains("KP-123456")
            && shipments.contains("TEA-5"),
        "{shipments}"
    );
    let returns = table("order-returns");
    assert!(
        returns.contains("chipped cup") && returns.contains("requested"),
        "{returns}"
    );
}

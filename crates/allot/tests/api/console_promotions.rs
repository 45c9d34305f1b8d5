//! The console's promotions pages (issue 16): the list with each promotion's budget used, a
//! promotion's page with its spec in words, its usage and its latest holds, the create form's
//! examples (each one accepted by the API as the page would send it), and the preview form;
//! shown to admin and marketing, "Not allowed" to the other roles.

use allot_domain::auth::Role;
use serde_json::{Value, json};

use crate::console_catalog::{Console, refused};

/// An automatic 10% off EUR carts from 50.00 EUR, with a budget of 1,000.00 EUR and 10
/// redemptions: its id.
async fn ten_percent(c: &Console, name: &str) -> i64 {
    c.admin(
        "POST",
        "/api/v1/promotions",
        Some(json!({
            "name": name,
            "trigger": "automatic",
            "conditions": {"currency": "EUR", "min_subtotal_minor": 5000},
            "actions": [{"type": "percent_off", "percent": 10}],
            "stacking": {"class": "seasonal", "priority": 7},
            "limits": {"budget_minor": 100000, "redemptions_max": 10},
        })),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// A hold of a one-line EUR cart of 80.00 EUR for `customer`: the hold's JSON.
async fn hold(c: &Console, customer: &str) -> Value {
    c.admin(
        "POST",
        "/api/v1/promotions/holds",
        Some(json!({
            "currency": "EUR",
            "lines": [{"product_id": 9001, "quantity": 2, "unit_price_minor": 4000}],
            "customer": {"id": customer},
        })),
    )
    .await
}

#[tokio::test]
async fn marketing_reads_a_promotion_in_words_with_its_budget_used_and_its_holds() {
    let c = Console::open(&[Role::Marketing]).await;
    let id = ten_percent(&c, "Autumn <sale>").await;
    let redeemed = hold(&c, "ada").await;
    assert_eq!(redeemed["evaluation"]["discount_minor"], 800, "{redeemed}");
    let redeemed_id = redeemed["id"].as_i64().unwrap();
    c.admin(
        "POST",
        &format!("/api/v1/promotions/holds/{redeemed_id}/redeem"),
        Some(json!({"reference": "ext-77"})),
    )
    .await;
    let held = hold(&c, "bob").await["id"].as_i64().unwrap();

    let (s, list) = c.page(Role::Marketing, "/console/promotions").await;
    assert_eq!(s, 200, "{list}");
    assert!(list.contains("Autumn &lt;sale&gt;"), "the name, escaped");
    assert!(list.contains(&format!("href=\"/console/promotions/{id}\"")));
    assert!(
        list.contains("8.00 EUR redeemed and 8.00 EUR held of 1,000.00 EUR"),
        "the budget used, redeemed and held: {list}"
    );
    assert!(
        list.contains("2 of 10"),
        "redemptions and holds of the maximum"
    );
    assert!(list.contains("seasonal · 7"), "class and priority");
    assert!(list.contains("href=\"/console/promotions/new\""));

    let (s, page) = c
        .page(Role::Marketing, &format!("/console/promotions/{id}"))
        .await;
    assert_eq!(s, 200, "{page}");
    for words in [
        "Carts in EUR",
        "Subtotal of the cart at least 50.00 EUR",
        "10% off the order",
        "combines within the class",
        "Budget 1,000.00 EUR in all",
        "At most 10 redemptions in all",
    ] {
        assert!(page.contains(words), "{words:?} in {page}");
    }
    // The latest holds, newest first, with their status and what each took of this one.
    let newest = page.find(&format!(">{held}<")).expect("the held hold");
    let older = page
        .find(&format!(">{redeemed_id}<"))
        .expect("the redeemed");
    assert!(newest < older, "newest first");
    assert!(page.contains(">held<") && page.contains(">redeemed<"));
    assert!(page.contains("ext-77"), "the redemption's reference");
    // The edit form holds the spec as JSON, and the bind form the three kinds of codes.
    assert!(page.contains(&format!(
        "data-api=\"/api/v1/promotions/{id}\" data-method=\"PUT\""
    )));
    assert!(
        page.contains("&quot;percent&quot;: 10"),
        "the spec's JSON: {page}"
    );
    assert!(page.contains(&format!("data-api=\"/api/v1/promotions/{id}/codes\"")));
    for name in ["coupons", "discount_codes", "campaign_id"] {
        assert!(page.contains(&format!("name=\"{name}\"")), "{name}");
    }

    // Released, the hold gives its share back and the bar says so.
    c.admin(
        "POST",
        &format!("/api/v1/promotions/holds/{held}/release"),
        None,
    )
    .await;
    let (_, list) = c.page(Role::Marketing, "/console/promotions").await;
    assert!(
        list.contains("8.00 EUR redeemed and 0.00 EUR held of 1,000.00 EUR"),
        "{list}"
    );
}

#[tokio::test]
async fn every_example_of_the_create_form_is_a_spec_the_api_accepts() {
    let c = Console::open(&[Role::Marketing]).await;
    let (s, html) = c.page(Role::Marketing, "/console/promotions/new").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("data-api=\"/api/v1/promotions\" data-method=\"POST\""));
    assert!(html.contains("data-then=\"/console/promotions/{id}\""));
    let examples: Vec<Value> = html
        .split("data-example=\"")
        .skip(1)
        .map(|rest| {
            let raw = rest.split('"').next().unwrap();
            let json = raw
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            serde_json::from_str(&json).unwrap()
        })
        .collect();
    assert!(
        examples.len() >= 6,
        "an example per action: {}",
        examples.len()
    );
    for mut spec in examples {
        // As the form sends it: the spec's fields and the active box.
        spec["active"] = json!(true);
        let (status, body) = c
            .api(
                Role::Marketing,
                "POST",
                "/api/v1/promotions",
                Some(spec.clone()),
            )
            .await;
        assert_eq!(status, 201, "{spec}: {body}");
        let id = body["id"].as_i64().unwrap();
        let (s, page) = c
            .page(Role::Marketing, &format!("/console/promotions/{id}"))
            .await;
        assert_eq!(s, 200, "{page}");
    }

    // A spec the API refuses is refused naming the field, as the form shows it.
    let (status, body) = c
        .api(
            Role::Marketing,
            "POST",
            "/api/v1/promotions",
            Some(json!({"name": "Bad", "trigger": "automatic",
                        "actions": [{"type": "percent_off", "percent": 0}]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["field"]
            .as_str()
            .is_some_and(|f| f.contains("percent")),
        "{body}"
    );
}

#[tokio::test]
async fn the_list_filters_by_trigger_and_state_and_names_a_bad_filter() {
    let c = Console::open(&[Role::Admin]).await;
    ten_percent(&c, "Automatic one").await;
    c.admin(
        "POST",
        "/api/v1/promotions",
        Some(
            json!({"name": "Code one", "trigger": "code", "active": false,
                    "actions": [{"type": "free_shipping"}]}),
        ),
    )
    .await;
    let (_, codes) = c
        .page(Role::Admin, "/console/promotions?trigger=code")
        .await;
    assert!(codes.contains("Code one") && !codes.contains("Automatic one"));
    let (_, off) = c
        .page(Role::Admin, "/console/promotions?active=false")
        .await;
    assert!(off.contains("Code one") && !off.contains("Automatic one"));
    assert!(off.contains(">Off<"));
    let (s, bad) = c
        .page(Role::Admin, "/console/promotions?active=maybe")
        .await;
    assert_eq!(s, 422, "{bad}");
    assert!(bad.contains("active"), "{bad}");
    let (s, _) = c.page(Role::Admin, "/console/promotions/999999").await;
    assert_eq!(s, 404);

    let (s, preview) = c.page(Role::Admin, "/console/promotions/preview").await;
    assert_eq!(s, 200);
    assert!(preview.contains("data-evaluate=\"/api/v1/promotions/evaluate\""));
    assert!(preview.contains("name=\"lines.0.product_id\""));
    assert!(preview.contains("name=\"codes\""));
    assert!(preview.contains("/console/assets/promotions.js"));
}

#[tokio::test]
async fn only_admin_and_marketing_see_the_promotions_pages() {
    let c = Console::open(&[Role::Marketing, Role::Support, Role::Warehouse]).await;
    let (_, overview) = c.page(Role::Marketing, "/console").await;
    assert!(
        overview.contains("href=\"/console/promotions\""),
        "in the navigation"
    );
    for role in [Role::Support, Role::Warehouse] {
        let (_, overview) = c.page(role, "/console").await;
        assert!(
            !overview.contains("href=\"/console/promotions\""),
            "{role:?}"
        );
        for path in [
            "/console/promotions",
            "/console/promotions/new",
            "/console/promotions/preview",
        ] {
            let (s, html) = c.page(role, path).await;
            refused(s, &html);
        }
    }
}

//! The console (issue 15) as a person uses it, in a real headless Chromium, on the suite's
//! backend: first-run setup from the printed link, sign-in by keyboard alone, every page of
//! the navigation checked (`person::Console::check_page`), a campaign counting up under
//! `allot load issue`, a CSV with a bad row, an order moved to shipped, a role refused a page.
//!
//! Few tests, each walking several pages with one browser: a browser costs about a second and a
//! half of the two cores to start.

mod person;

use std::time::Duration;

use allot_domain::auth::{Email, Password, Role};
use allot_testkit::browser::keys;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, ProcessBackend, TestApp, http};
use person::{Console, PAGE_TIMEOUT, page_name, sign_in, sign_out, tab_to};

const PASSWORD: &str = "a console password of some length";

async fn user(app: &TestApp, email: &str, role: Role) {
    app.services
        .auth
        .create_user(
            Email::parse(email).expect("email"),
            Password::parse(PASSWORD).expect("password"),
            role,
        )
        .await
        .expect("user created");
}

#[tokio::test]
async fn console_an_admin_signs_in_by_keyboard_alone_and_every_page_passes() {
    let app = TestApp::spawn().await;
    user(&app, "ops@example.com", Role::Admin).await;
    user(&app, "support@example.com", Role::Support).await;
    // Something on the pages that list things: a campaign, a product in stock and an order.
    post(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Welcome", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 100}),
    )
    .await;
    pending_order(&app).await;
    post(
        &app,
        "/api/v1/promotions",
        json!({"name": "Welcome 10%", "trigger": "automatic",
               "conditions": {"currency": "EUR"}, "limits": {"budget_minor": 50000},
               "actions": [{"type": "percent_off", "percent": 10}]}),
    )
    .await;
    // Some of its budget redeemed and some held, for its bar and its holds.
    for (customer, price) in [("ada", 120_000), ("bob", 60_000)] {
        let hold = post(
            &app,
            "/api/v1/promotions/holds",
            json!({"currency": "EUR", "customer": {"id": customer},
                   "lines": [{"product_id": 77, "quantity": 1, "unit_price_minor": price}]}),
        )
        .await;
        if customer == "ada" {
            let id = hold["id"].as_i64().expect("hold id");
            post(
                &app,
                &format!("/api/v1/promotions/holds/{id}/redeem"),
                json!({"reference": "shop-order-1"}),
            )
            .await;
        }
    }
    let mut console = Console::open(&app.url()).await;

    // Signed out, the console's address shows its sign-in page, and a keyboard is enough.
    console.goto("/").await;
    console.browser.wait_for("form#sign-in", PAGE_TIMEOUT).await;
    console.check_page("sign-in").await;
    tab_to(&console, "email", 10).await;
    console.browser.press("ops@example.com").await;
    tab_to(&console, "password", 3).await;
    console.browser.press("not the password").await;
    console.expect_console_error("401");
    console.browser.press(keys::ENTER).await;
    console
        .browser
        .wait_until(
            "return Array.from(document.querySelectorAll('[role=alert]')).some(a => a.textContent.trim());",
            "the refused sign-in says why",
            PAGE_TIMEOUT,
        )
        .await;
    let alerts = console.alerts().await;
    assert!(
        alerts.iter().any(|a| a.contains("do not match")),
        "a wrong password is told: {alerts:?}"
    );
    console.check_page("sign-in-refused").await;
    // The email is kept; the focus waits in the password field.
    tab_to(&console, "password", 3).await;
    console.browser.press(PASSWORD).await;
    console.browser.press(keys::ENTER).await;
    console.wait_for_path("/console").await;
    console.check_page("overview").await;

    // Every page the navigation offers an admin, and the first thing each lists, opened.
    let links = console.nav_links().await;
    assert!(
        links.iter().any(|l| l == "/console/users"),
        "an admin is shown the users page: {links:?}"
    );
    for link in &links {
        console.goto(link).await;
        console.check_page(&page_name(link)).await;
        let detail = console
            .browser
            .execute(
                "return Array.from(document.querySelectorAll('main a[href]'))\
                 .filter(a => !a.hasAttribute('download'))\
                 .map(a => new URL(a.href).pathname)\
                 .find(p => p.startsWith(arguments[0] + '/') && /\\/\\d+$/.test(p)) || null;",
                vec![json!(link)],
            )
            .await;
        if let Some(detail) = detail.as_str() {
            console.goto(detail).await;
            console.check_page(&page_name(detail)).await;
        }
    }
}

#[tokio::test]
async fn console_a_warehouse_user_sees_inventory_and_orders_and_is_refused_the_users_page() {
    let app = TestApp::spawn().await;
    user(&app, "stock@example.com", Role::Warehouse).await;
    let mut console = Console::open(&app.url()).await;
    sign_in(&console, "stock@example.com", PASSWORD).await;
    console.check_page("overview-warehouse").await;

    let links = console.nav_links().await;
    for shown in ["/console/inventory", "/console/orders"] {
        assert!(
            links.iter().any(|l| l.starts_with(shown)),
            "a warehouse user is shown {shown}: {links:?}"
        );
    }
    for hidden in ["/console/users", "/console/webhooks"] {
        assert!(
            !links.iter().any(|l| l.starts_with(hidden)),
            "a warehouse user is not shown {hidden}: {links:?}"
        );
    }

    // Typed in by hand, the users page answers 403 with a page saying so (the browser logs the
    // 403 as a failed load: expected here, and only here).
    console.expect_console_error("403");
    console.goto("/console/users").await;
    assert_eq!(console.heading().await, "Not allowed");
    console.check_page("not-allowed").await;

    console.goto("/console").await;
    sign_out(&console).await;
    console.goto("/console/orders").await;
    console.browser.wait_for("form#sign-in", PAGE_TIMEOUT).await;
}

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let r = http()
        .post(format!("{}{path}", app.url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

/// An order of one product in stock, placed over the API; answers its id.
async fn pending_order(app: &TestApp) -> i64 {
    let warehouse = post(
        app,
        "/api/v1/warehouses",
        json!({"code": "W1", "name": "Main"}),
    )
    .await;
    let product = post(
        app,
        "/api/v1/products",
        json!({"sku": "MUG", "name": "Mug", "price": {"amount_minor": 1200, "currency": "EUR"}}),
    )
    .await;
    post(
        app,
        "/api/v1/inventory/adjust",
        json!({"product_id": product["id"], "warehouse_id": warehouse["id"], "mode": "set",
               "quantity": 10, "reason": "count"}),
    )
    .await;
    let order = post(
        app,
        "/api/v1/orders",
        json!({
            "customer": "ada",
            "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                 "postal_code": "75001", "country": "FR"},
            "lines": [{"product_id": product["id"], "quantity": 2}],
        }),
    )
    .await;
    order["id"].as_i64().expect("order id")
}

#[tokio::test]
async fn console_an_operator_uploads_coupons_with_a_bad_row_and_ships_an_order() {
    let app = TestApp::spawn().await;
    user(&app, "ops@example.com", Role::Admin).await;
    let order = pending_order(&app).await;
    let mut console = Console::open(&app.url()).await;
    sign_in(&console, "ops@example.com", PASSWORD).await;

    // A CSV of three coupons whose second row is bad: the page names that row and its field.
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("coupons.csv");
    std::fs::write(
        &csv,
        "code,type,discount_kind,discount_amount,expires_at,max_uses\n\
         WELCOME10,,PERCENTAGE,10,2099-01-01T00:00:00Z,100\n\
         BROKEN,,PERCENTAGE,-5,2099-01-01T00:00:00Z,100\n\
         SPRING5,,FLAT,500,2099-01-01T00:00:00Z,100\n",
    )
    .expect("CSV written");
    console.goto("/console/coupons").await;
    // The API answers the upload 422, which the browser logs as a failed load.
    console.expect_console_error("status of 422");
    console
        .browser
        .find("form#coupon-upload input[name=file]")
        .await
        .send_keys(csv.to_str().expect("UTF-8 path"))
        .await;
    console
        .browser
        .find("form#coupon-upload button[type=submit], form#coupon-upload button:not([type])")
        .await
        .click()
        .await;
    console
        .browser
        .wait_for("#upload-errors li", PAGE_TIMEOUT)
        .await;
    let mut errors = Vec::new();
    for li in console.browser.find_all("#upload-errors li").await {
        errors.push(li.text().await);
    }
    assert_eq!(errors.len(), 1, "one bad row, one error: {errors:?}");
    assert!(
        errors[0].contains("discount_amount") && errors[0].to_lowercase().contains("row"),
        "the error names the row and its field: {errors:?}"
    );
    console.check_page("coupons-upload-errors").await;

    // The order moves to shipped by its buttons, each showing only the allowed next statuses.
    console.goto(&format!("/console/orders/{order}")).await;
    let status = console.browser.find("#order-status").await.text().await;
    assert_eq!(status.trim().to_lowercase(), "pending");
    for next in ["confirmed", "fulfilled"] {
        assert!(
            console
                .browser
                .try_find("button[name=status][value=delivered]")
                .await
                .is_none(),
            "delivered is not offered before the order is fulfilled"
        );
        console
            .browser
            .find(&format!("button[name=status][value={next}]"))
            .await
            .click()
            .await;
        console
            .browser
            .wait_until(
                &format!(
                    "const s = document.querySelector('#order-status'); \
                     return !!s && s.textContent.trim().toLowerCase() === {};",
                    json!(next)
                ),
                &format!("the order shows {next}"),
                PAGE_TIMEOUT,
            )
            .await;
    }
    console.check_page("order-shipped").await;
    let stored: Value = http()
        .get(format!("{}/api/v1/orders/{order}", app.url()))
        .send()
        .await
        .expect("order read")
        .json()
        .await
        .expect("order JSON");
    assert_eq!(stored["status"], "fulfilled", "{stored}");
}

#[tokio::test]
async fn console_marketing_writes_a_promotion_as_json_and_previews_a_cart_line_by_line() {
    let app = TestApp::spawn().await;
    user(&app, "marketing@example.com", Role::Marketing).await;
    let mut console = Console::open(&app.url()).await;
    sign_in(&console, "marketing@example.com", PASSWORD).await;
    console.goto("/console/promotions").await;
    console
        .browser
        .find("a[href=\"/console/promotions/new\"]")
        .await
        .click()
        .await;
    console.wait_for_path("/console/promotions/new").await;
    console.check_page("promotions-new").await;

    // An example fills the form; changed to a percent of 0, it is refused naming the field,
    // and the spec's textarea is marked.
    let example = "button[data-example][data-for=\"promotion-create-spec\"]";
    console.browser.find(example).await.click().await;
    let set_percent = |p: u32| {
        format!(
            "const t = document.getElementById('promotion-create-spec'); \
             t.value = t.value.replace(/\"percent\": \\d+/, '\"percent\": {p}'); \
             return t.value.includes('\"percent\": {p}');"
        )
    };
    let changed = console.browser.execute(&set_percent(0), vec![]).await;
    assert_eq!(changed, json!(true), "the example has a percent");
    console.expect_console_error("status of 422");
    console
        .browser
        .find("form#promotion-create button[type=submit]")
        .await
        .click()
        .await;
    console
        .browser
        .wait_until(
            "const a = document.getElementById('promotion-create-error'); \
             return !!a && a.textContent.includes('percent') && \
               document.getElementById('promotion-create-spec').getAttribute('aria-invalid') === 'true';",
            "the refused spec names its field",
            PAGE_TIMEOUT,
        )
        .await;
    console.check_page("promotions-new-refused").await;

    // Corrected, it is made: its page reads it in words.
    console.browser.execute(&set_percent(10), vec![]).await;
    console
        .browser
        .find("form#promotion-create button[type=submit]")
        .await
        .click()
        .await;
    let id = console
        .browser
        .wait_until(
            "const m = location.pathname.match(/^\\/console\\/promotions\\/(\\d+)$/); \
             return m && document.getElementById('promotion-actions') ? m[1] : null;",
            "the new promotion's page",
            PAGE_TIMEOUT,
        )
        .await;
    assert!(id.as_str().is_some(), "{id}");
    let actions = console
        .browser
        .find("#promotion-actions")
        .await
        .text()
        .await;
    assert!(actions.contains("10% off the order"), "{actions}");
    console.check_page("promotions-created").await;

    // A cart of 3 x 25.00 EUR and a code bound to nothing: 10% off each line, the code refused
    // with its reason.
    console.goto("/console/promotions/preview").await;
    console
        .fill_and_submit(
            "form#promotion-preview",
            &[
                ("lines.0.product_id", "4242"),
                ("lines.0.quantity", "3"),
                ("lines.0.unit_price_minor", "2500"),
                ("currency", "EUR"),
                ("codes", "NOSUCHCODE"),
            ],
        )
        .await;
    console
        .browser
        .wait_until(
            "const r = document.getElementById('preview-result'); return !!r && !r.hidden;",
            "the preview's answer",
            PAGE_TIMEOUT,
        )
        .await;
    let line = console
        .browser
        .find("#preview-lines tbody tr")
        .await
        .text()
        .await;
    assert!(
        line.contains("75.00 EUR") && line.contains("7.50 EUR") && line.contains("67.50 EUR"),
        "the line, its discount and what is left to pay: {line}"
    );
    let refused = console
        .browser
        .find("#preview-refused tbody tr[data-reason]")
        .await
        .text()
        .await;
    assert!(
        refused.contains("NOSUCHCODE") && refused.contains("unknown_code"),
        "{refused}"
    );
    console.check_page("promotions-preview").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_a_campaign_created_in_the_console_counts_up_while_allot_load_issue_runs() {
    let app = TestApp::spawn().await;
    user(&app, "marketing@example.com", Role::Marketing).await;
    let mut console = Console::open(&app.url()).await;
    sign_in(&console, "marketing@example.com", PASSWORD).await;

    console.goto("/console/campaigns").await;
    console
        .fill_and_submit(
            "form#campaign-create",
            &[
                ("name", "Spring rush"),
                ("start_time", "2020-01-01T00:00"),
                ("total_coupons", "1000000"),
            ],
        )
        .await;
    let path = console
        .browser
        .wait_until(
            "const m = location.pathname.match(/^\\/console\\/campaigns\\/(\\d+)$/); \
             return m && document.querySelector('#campaign-issued') ? m[1] : null;",
            "the new campaign's page",
            PAGE_TIMEOUT,
        )
        .await;
    let id = path.as_str().expect("the campaign's id").to_owned();
    console.check_page("campaign").await;

    // The load tool races for the campaign while the page is watched: its counter moves by
    // itself, more than once, while the load runs.
    let mut load = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["load", "issue", "--server", &app.url(), "--campaign", &id])
        .args(["--seconds", "5", "--concurrency", "8", "--connections", "2"])
        .arg("--no-progress")
        .env("ALLOT_API_KEY", ADMIN_KEY.as_str())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("allot load issue starts");
    let issued_js = "const e = document.querySelector('#campaign-issued'); \
                     return e ? Number(e.textContent.replace(/[^0-9]/g, '')) : -1;";
    let mut seen: Vec<i64> = Vec::new();
    while load.try_wait().expect("the load tool").is_none() {
        let shown = console.browser.execute(issued_js, vec![]).await;
        let shown = shown.as_i64().expect("a number");
        if seen.last() != Some(&shown) {
            seen.push(shown);
        }
        // Looked at a few times a second, as a person watching.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = load.wait_with_output().expect("the load tool ends");
    assert!(
        out.status.success(),
        "allot load issue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moving: Vec<i64> = seen.iter().copied().filter(|n| *n > 0).collect();
    assert!(
        moving.len() >= 2 && moving.windows(2).all(|w| w[0] < w[1]),
        "the counter went up by itself, more than once, while the load ran: {seen:?}"
    );

    // Once the load is over, the page settles on what the API says was issued.
    let campaign: Value = http()
        .get(format!("{}/api/v1/campaigns/{id}", app.url()))
        .send()
        .await
        .expect("campaign read")
        .json()
        .await
        .expect("campaign JSON");
    let issued = campaign["issued"].as_i64().expect("issued");
    assert!(issued >= *moving.last().unwrap_or(&0), "{campaign}");
    console
        .browser
        .wait_until(
            &format!(
                "const e = document.querySelector('#campaign-issued'); \
                 return !!e && Number(e.textContent.replace(/[^0-9]/g, '')) === {issued};"
            ),
            &format!("the page shows the {issued} codes issued"),
            PAGE_TIMEOUT,
        )
        .await;
    console.check_page("campaign-after-load").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_the_first_admin_is_made_in_the_browser_from_the_link_the_server_prints() {
    let backend = ProcessBackend::new();
    let server = backend.start();
    let line = server.stdout_line("setup: open ", Duration::from_secs(30));
    let link = line
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("a link in {line:?}"))
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/setup?token=", server.url())),
        "the link opens this server's setup page: {line}"
    );

    let mut console = Console::open(&server.url()).await;
    console.goto(&link).await;
    console.browser.wait_for("form#setup", PAGE_TIMEOUT).await;
    console.check_page("setup").await;

    // A password too short is refused, the field named; nothing is made.
    console.expect_console_error("status of 4");
    console
        .fill_and_submit(
            "form#setup",
            &[
                ("email", "owner@example.com"),
                ("password", "short"),
                ("password_again", "short"),
            ],
        )
        .await;
    console
        .browser
        .wait_until(
            "return Array.from(document.querySelectorAll('[role=alert]')).some(a => a.textContent.includes('password'));",
            "the setup form names the password",
            PAGE_TIMEOUT,
        )
        .await;
    console.assert_no_console_errors("setup-refused").await;

    console
        .fill_and_submit(
            "form#setup",
            &[
                ("email", "owner@example.com"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    // Made, and signed in as it: the console opens, with everything an admin may see.
    console.wait_for_path("/console").await;
    assert_eq!(console.heading().await, "Overview");
    let links = console.nav_links().await;
    assert!(
        links.iter().any(|l| l == "/console/users"),
        "the first user is an admin: {links:?}"
    );
    console.check_page("overview-first-run").await;
    sign_out(&console).await;
    sign_in(&console, "owner@example.com", PASSWORD).await;

    // The link worked once: it offers no second admin.
    sign_out(&console).await;
    console.goto(&link).await;
    console.browser.wait_for("#setup-done", PAGE_TIMEOUT).await;
    assert!(
        console.browser.try_find("form#setup").await.is_none(),
        "the setup link is spent once an admin exists"
    );
    console.check_page("setup-done").await;
}

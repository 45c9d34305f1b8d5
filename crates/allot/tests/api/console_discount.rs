//! The console's discount code page (issue 15): its forms, each a call of the REST API, for
//! the roles that may generate codes, and refused to the others.

use allot_domain::auth::Role;

use crate::console_campaigns::Browser;
use crate::helpers::TestApp;

#[tokio::test]
async fn marketing_gets_the_generate_look_up_and_use_forms() {
    let app = TestApp::spawn().await;
    let marketing = Browser::sign_in(&app, Role::Marketing).await;
    let (status, page) = marketing.get("/console/discount-codes").await;
    assert_eq!(status, 200);
    for needle in [
        r#"id="discount-generate""#,
        r#"data-api-batch="/api/v1/discount-codes/batches""#,
        r#"data-batch-max="2000""#,
        r#"id="discount-progress""#,
        r#"id="discount-download""#,
        r#"id="discount-lookup""#,
        r#"data-api="/api/v1/discount-codes/{code}""#,
        r#"id="discount-use""#,
        r#"data-api="/api/v1/discount-codes/{code}/use""#,
        "/console/assets/discount-codes.js",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    let (status, script) = marketing.get("/console/assets/discount-codes.js").await;
    assert_eq!(status, 200);
    assert!(script.contains("Idempotency-Key"));

    for role in [Role::Warehouse, Role::Support, Role::Customer] {
        let (status, body) = Browser::sign_in(&app, role)
            .await
            .get("/console/discount-codes")
            .await;
        assert_eq!(status, 403, "{role:?}");
        assert!(body.contains("Not allowed"));
    }
    app.stop().await;
}

//! The browser harness itself, on a page of its own: what the console tests rely on it to
//! see (typed text, focus, a CSP violation in the console log, a whole-page screenshot).

use std::time::Duration;

use allot_testkit::Browser;
use allot_testkit::browser::keys;

/// A page with a strict Content-Security-Policy and an inline script it must refuse.
const PAGE: &str = "<!doctype html><html lang=en><head><title>harness</title>\
    <meta http-equiv=Content-Security-Policy content=\"script-src 'none'\"></head>\
    <body><main id=main><h1>Harness</h1><form id=f><label>Name <input name=name></label>\
    <label>Code <input name=code></label></form><p id=out>none</p>\
    <script>document.getElementById('out').textContent = 'ran';</script>\
    <div style='height:2000px'></div></main></body></html>";

#[tokio::test]
async fn the_harness_types_moves_focus_reads_the_console_and_photographs_the_whole_page() {
    let browser = Browser::start().await;
    let url = format!("data:text/html,{}", PAGE.replace('#', "%23"));
    browser.goto(&url).await;
    assert_eq!(browser.title().await, "harness");

    browser.find("input[name=name]").await.click().await;
    browser.press("Ada").await;
    browser.press(keys::TAB).await;
    let focused = browser.active_element().await;
    assert_eq!(focused.attr("name").await.as_deref(), Some("code"));
    assert_eq!(
        browser.find("input[name=name]").await.prop("value").await,
        "Ada"
    );

    browser
        .execute(
            "document.getElementById('out').textContent = 'changed'; return null;",
            vec![],
        )
        .await;
    browser
        .wait_until(
            "return document.getElementById('out').textContent === 'changed';",
            "the script's change shows",
            Duration::from_secs(5),
        )
        .await;

    let errors = browser.new_console_errors().await;
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("Content Security Policy")),
        "the refused inline script is a console error: {errors:?}"
    );
    assert!(
        browser.new_console_errors().await.is_empty(),
        "each error is told once"
    );

    let png = browser.screenshot_full_page().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The IHDR chunk: width then height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(width, allot_testkit::browser::VIEWPORT_WIDTH_PX);
    assert!(height > 2000, "the whole page, not the viewport: {height}");
}

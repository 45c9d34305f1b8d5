//! A person at the console, in a real headless Chromium: the checks every page passes (one
//! `<main id="main">` with one `<h1>`, axe-core with no serious or critical violation, a browser
//! console free of errors: a CSP violation is one), a screenshot of it into docs/console/ when
//! `ALLOT_SCREENSHOTS=1`, and what a person does (fill a form, Tab to a field, sign in and out).

use std::path::PathBuf;
use std::time::Duration;

use allot_testkit::Browser;
use allot_testkit::browser::keys;
use serde_json::{Value, json};

/// How long a page may take to show what the test waits for (a redirect, a live number).
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// The axe-core the tests inject: `ALLOT_AXE_JS`, or where scripts/test-assets.sh puts it.
fn axe_source() -> String {
    let path = std::env::var_os("ALLOT_AXE_JS").map_or_else(
        || workspace_root().join("target/test-assets/axe.min.js"),
        PathBuf::from,
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {} ({e}): run scripts/test-assets.sh, which fetches the \
             pinned version from the npm registry (or set ALLOT_AXE_JS to an axe.min.js)",
            path.display()
        )
    })
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A person at the console: one browser on one server.
pub struct Console {
    pub browser: Browser,
    pub base: String,
    axe: String,
    /// Console errors a test expects (a refused page's 403 is logged as a failed load).
    expected_errors: Vec<String>,
}

impl Console {
    pub async fn open(base: &str) -> Console {
        Console {
            axe: axe_source(),
            browser: Browser::start().await,
            base: base.trim_end_matches('/').to_owned(),
            expected_errors: Vec::new(),
        }
    }

    /// Opens `path` (or a whole URL) on the server.
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.browser.goto(&url).await;
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        let url = self.browser.current_url().await;
        url.strip_prefix(&self.base).unwrap_or(&url).to_owned()
    }

    /// Waits until the page shown is at `path` (a form's redirect has been followed).
    pub async fn wait_for_path(&self, prefix: &str) {
        self.browser
            .wait_until(
                &format!(
                    "return location.pathname.startsWith({}) && document.readyState === 'complete';",
                    json!(prefix)
                ),
                &format!("the page at {prefix}"),
                PAGE_TIMEOUT,
            )
            .await;
    }

    /// Sets each named field of `form` (CSS of the form) and submits it with its submit button.
    pub async fn fill_and_submit(&self, form: &str, fields: &[(&str, &str)]) {
        self.fill(form, fields).await;
        self.browser
            .find(&format!(
                "{form} button[type=submit], {form} input[type=submit], {form} button:not([type])"
            ))
            .await
            .click()
            .await;
    }

    pub async fn fill(&self, form: &str, fields: &[(&str, &str)]) {
        for (name, value) in fields {
            let input = self
                .browser
                .find(&format!("{form} [name=\"{name}\"]"))
                .await;
            let tag = self
                .browser
                .execute(
                    "return arguments[0].tagName + ':' + (arguments[0].type || '');",
                    vec![input.as_arg()],
                )
                .await;
            let picked = tag.as_str().is_some_and(|t| {
                t.starts_with("SELECT") || t.ends_with(":datetime-local") || t.ends_with(":date")
            });
            if picked {
                // A person picks an option or a date; the driver's typing goes segment by
                // segment in the locale's order, so the value is set as the picker would.
                self.browser
                    .execute(
                        "arguments[0].value = arguments[1]; \
                         arguments[0].dispatchEvent(new Event('input', {bubbles: true})); \
                         arguments[0].dispatchEvent(new Event('change', {bubbles: true})); \
                         return arguments[0].value === arguments[1];",
                        vec![input.as_arg(), json!(value)],
                    )
                    .await;
            } else {
                input.clear().await;
                input.send_keys(value).await;
            }
        }
    }

    /// The page's `<h1>`.
    pub async fn heading(&self) -> String {
        self.browser.find("main#main h1").await.text().await
    }

    /// The text of the page's `role="alert"` elements (a form's errors).
    pub async fn alerts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in self.browser.find_all("[role=alert]").await {
            out.push(a.text().await);
        }
        out
    }

    /// The paths the main navigation links to.
    pub async fn nav_links(&self) -> Vec<String> {
        self.browser
            .execute(
                "return Array.from(document.querySelectorAll('nav[aria-label=\"Main\"] a'))\
                 .map(a => new URL(a.href).pathname);",
                vec![],
            )
            .await
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Says a console error matching `part` is expected from here on (once).
    pub fn expect_console_error(&mut self, part: &str) {
        self.expected_errors.push(part.to_owned());
    }

    /// The checks every page passes, then a screenshot named `name` when asked for: one
    /// `<main id="main">` with one `<h1>`, nothing loaded from another origin (the console
    /// works offline), no serious or critical axe-core violation, no error in the browser's
    /// console.
    pub async fn check_page(&mut self, name: &str) {
        let shape = self
            .browser
            .execute(
                "return [document.querySelectorAll('main#main').length, \
                         document.querySelectorAll('main#main h1').length];",
                vec![],
            )
            .await;
        let path = self.path().await;
        assert_eq!(
            shape,
            json!([1, 1]),
            "page {name} ({path}): one <main id=\"main\"> with one <h1>"
        );
        // Offline: everything the page loaded came from this server.
        let foreign = self
            .browser
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name)\
                 .filter(n => !n.startsWith(location.origin + '/'));",
                vec![],
            )
            .await;
        assert_eq!(
            foreign,
            json!([]),
            "page {name} ({path}) loads nothing from elsewhere"
        );
        self.assert_accessible(name).await;
        self.assert_no_console_errors(name).await;
        if std::env::var("ALLOT_SCREENSHOTS").as_deref() == Ok("1") {
            let png = self.browser.screenshot_full_page().await;
            let dir = workspace_root().join("docs/console");
            std::fs::create_dir_all(&dir).expect("docs/console");
            std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
        }
    }

    /// Runs axe-core on the page shown; fails on any serious or critical violation, listing
    /// each with the elements it found it on.
    pub async fn assert_accessible(&self, name: &str) {
        let loaded = self
            .browser
            .execute(&format!("{}\n;return typeof window.axe;", self.axe), vec![])
            .await;
        assert_eq!(loaded, json!("object"), "axe-core loads into the page");
        let result = self
            .browser
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, { resultTypes: ['violations'] })\
                   .then(r => done(r.violations\
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')\
                     .map(v => ({ id: v.id, impact: v.impact, help: v.help,\
                                  nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary) }))))\
                   .catch(e => done({ error: String(e) }));",
                vec![],
            )
            .await;
        if let Some(error) = result.get("error") {
            panic!("axe-core failed on {name}: {error}");
        }
        let violations = result.as_array().cloned().unwrap_or_default();
        assert!(
            violations.is_empty(),
            "axe-core: {} serious or critical violation(s) on page {name} ({}):\n{}",
            violations.len(),
            self.path().await,
            violations
                .iter()
                .map(describe_violation)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Fails on any console error since the last check, except those a test said to expect.
    pub async fn assert_no_console_errors(&mut self, name: &str) {
        let errors = self.browser.new_console_errors().await;
        let mut unexpected = Vec::new();
        for e in errors {
            match self
                .expected_errors
                .iter()
                .position(|x| e.message.contains(x.as_str()))
            {
                Some(i) => {
                    self.expected_errors.remove(i);
                }
                None => unexpected.push(e.message),
            }
        }
        assert!(
            unexpected.is_empty(),
            "browser console errors on page {name} ({}):\n  {}",
            self.path().await,
            unexpected.join("\n  ")
        );
    }
}

fn describe_violation(v: &Value) -> String {
    let nodes = v["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(Value::as_str)
                .map(|s| format!("    at {}", s.replace('\n', " ")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    format!(
        "  [{}] {}: {}\n{nodes}",
        v["impact"].as_str().unwrap_or("?"),
        v["id"].as_str().unwrap_or("?"),
        v["help"].as_str().unwrap_or("?")
    )
}

/// Whether the focused element shows that it has the focus (an outline or a ring), as a
/// keyboard user needs to see.
const FOCUS_VISIBLE_JS: &str = "const e = document.activeElement; const s = getComputedStyle(e); \
    return e.matches(':focus-visible') && \
      ((s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none');";

/// Presses Tab until the field named `name` has the focus (it may have it already, by
/// `autofocus`; at most `tabs_max` presses, as a person would past a skip link and the
/// header), and checks the focus shows.
pub async fn tab_to(console: &Console, name: &str, tabs_max: usize) {
    for pressed in 0..=tabs_max {
        let focused = console.browser.active_element().await;
        if focused.attr("name").await.as_deref() == Some(name) {
            assert_eq!(
                console.browser.execute(FOCUS_VISIBLE_JS, vec![]).await,
                json!(true),
                "the focus on {name} is visible"
            );
            return;
        }
        if pressed < tabs_max {
            console.browser.press(keys::TAB).await;
        }
    }
    panic!("{tabs_max} presses of Tab never reached the field {name}");
}

/// Signs in through `form#sign-in` with the mouse.
pub async fn sign_in(console: &Console, email: &str, password: &str) {
    console.goto("/").await;
    console
        .fill_and_submit("form#sign-in", &[("email", email), ("password", password)])
        .await;
    console.wait_for_path("/console").await;
}

/// Signs out through the header's `form#sign-out`; the sign-in form shows again.
pub async fn sign_out(console: &Console) {
    console
        .browser
        .find("form#sign-out button, form#sign-out input[type=submit]")
        .await
        .click()
        .await;
    console.browser.wait_for("form#sign-in", PAGE_TIMEOUT).await;
}

/// The page's name for its screenshot: `/console/orders/12` is `orders-detail`.
pub fn page_name(path: &str) -> String {
    let parts: Vec<&str> = path
        .trim_start_matches("/console")
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                "detail"
            } else {
                p
            }
        })
        .collect();
    if parts.is_empty() {
        "overview".to_owned()
    } else {
        parts.join("-")
    }
}

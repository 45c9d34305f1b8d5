//! A real headless Chromium for tests, driven over W3C WebDriver: Debian's `chromium` and
//! `chromium-driver`, one chromedriver on a free port and one browser profile of its own per
//! [`Browser`], both gone when it is dropped (the session is closed, then the driver's whole
//! process group is killed, so no browser process outlives its test).
//!
//! The client is written here over reqwest rather than taken from `fantoccini`: fantoccini
//! with rustls brings aws-lc-sys (a long C build), ICU's segmenter and its data, `time` and a
//! second `cookie`, to speak to a local driver over plain HTTP; the tests need a dozen
//! commands, each one JSON request.
//!
//! A missing browser or driver fails the test with a message saying how to install them; it
//! never skips.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The viewport every test page is shown (and photographed) in.
pub const VIEWPORT_WIDTH_PX: u32 = 1280;
pub const VIEWPORT_HEIGHT_PX: u32 = 800;

/// How long the driver may take to answer its status once started.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one WebDriver command may take (a page load, a script) before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a wait looks again at the page.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// WebDriver key codes (W3C WebDriver, "Keyboard actions").
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const SHIFT: &str = "\u{E008}";
}

/// A WebDriver error as the driver answered it (`error` is the W3C error code).
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// One line of the browser's console log (chromedriver's `browser` log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `SEVERE` for errors (a CSP violation, an uncaught exception, a failed load), `WARNING`,
    /// `INFO`, `DEBUG`.
    pub level: String,
    pub message: String,
}

impl LogEntry {
    pub fn is_error(&self) -> bool {
        self.level == "SEVERE"
    }
}

pub struct Browser {
    driver: Child,
    driver_port: u16,
    session: String,
    http: reqwest::Client,
    /// Every console line read so far: the driver hands each line out once.
    log: Mutex<Vec<LogEntry>>,
    _profile: TempDir,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

/// The key under which W3C WebDriver sends an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and a
    /// [`VIEWPORT_WIDTH_PX`] x [`VIEWPORT_HEIGHT_PX`] viewport, its console log recorded.
    pub async fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} not found: the console tests need a real browser; install Debian's \
                 `{package}` (scripts/test-assets.sh does: apt-get install chromium chromium-driver)"
            );
        }
        let profile = tempfile::Builder::new()
            .prefix("allot-chromium-")
            .tempdir()
            .expect("temp dir");
        let driver_port = crate::free_port();
        let quiet = std::env::var_os("TEST_LOG").is_none();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .arg(if quiet {
                "--log-level=OFF"
            } else {
                "--log-level=INFO"
            })
            // Its own process group, so that dropping the browser can kill Chromium's helper
            // processes too, whatever state the driver is in.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .stderr(if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} did not start: {e}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("an HTTP client");
        let mut browser = Browser {
            driver,
            driver_port,
            session: String::new(),
            http,
            log: Mutex::new(Vec::new()),
            _profile: profile,
        };
        browser.wait_for_driver().await;
        let args = [
            "--headless=new".to_owned(),
            // Tests run as root in CI, where Chromium's sandbox refuses to start.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            // Containers give /dev/shm 64 MiB, which Chromium outgrows on a long page.
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-background-networking".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={VIEWPORT_WIDTH_PX},{VIEWPORT_HEIGHT_PX}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
                }
            }
        });
        let created = browser
            .request(reqwest::Method::POST, "/session", Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("Chromium did not start through chromedriver: {e}"));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a new session has an id")
            .to_owned();
        // The window size includes no browser chrome when headless, but the device metrics
        // make the viewport exact whatever Chromium decides.
        browser
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({
                    "width": VIEWPORT_WIDTH_PX,
                    "height": VIEWPORT_HEIGHT_PX,
                    "deviceScaleFactor": 1,
                    "mobile": false,
                }),
            )
            .await;
        browser
    }

    async fn wait_for_driver(&self) {
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            let ready = self
                .http
                .get(format!("http://127.0.0.1:{}/status", self.driver_port))
                .send()
                .await;
            if let Ok(r) = ready
                && let Ok(body) = r.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {} within {DRIVER_START_TIMEOUT:?}",
                self.driver_port
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// One WebDriver command; answers its `value`.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("http://127.0.0.1:{}{path}", self.driver_port);
        let mut request = self.http.request(method.clone(), &url);
        // W3C: a POST always carries a JSON body, even an empty object.
        if method == reqwest::Method::POST {
            request = request.json(&body.unwrap_or_else(|| json!({})));
        }
        let response = request.send().await.map_err(|e| WebDriverError {
            error: "no answer".to_owned(),
            message: format!("{method} {path}: {e}"),
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| WebDriverError {
            error: "unreadable answer".to_owned(),
            message: format!("{method} {path}: {e}"),
        })?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(WebDriverError {
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    async fn session_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        self.request(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn post(&self, path: &str, body: Value, what: &str) -> Value {
        self.session_cmd(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    async fn get(&self, path: &str, what: &str) -> Value {
        self.session_cmd(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post(
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
            cmd,
        )
        .await
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }), &format!("open {url}"))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.get("/url", "the current URL")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn title(&self) -> String {
        self.get("/title", "the title")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css`, if the page has one now.
    pub async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        match self
            .session_cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
        {
            Ok(v) => Some(self.element(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {css}: {e}"),
        }
    }

    /// The element matching `css`; fails the test when the page has none.
    pub async fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!(
                "no element {css} on {} ({})",
                self.current_url().await,
                self.title().await
            ),
        }
    }

    /// Every element matching `css`, in document order.
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
            &format!("find all {css}"),
        )
        .await
        .as_array()
        .map(|a| a.iter().map(|v| self.element(v)).collect())
        .unwrap_or_default()
    }

    /// The element that has the keyboard focus.
    pub async fn active_element(&self) -> Element<'_> {
        let v = self.get("/element/active", "the focused element").await;
        self.element(&v)
    }

    fn element(&self, v: &Value) -> Element<'_> {
        Element {
            browser: self,
            id: v[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("not an element reference: {v}"))
                .to_owned(),
        }
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} appeared within {timeout:?} on {}",
                self.current_url().await
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the script `body` (a function body: `return ...`) answers a truthy value,
    /// and answers that value; `what` names the condition in the failure.
    pub async fn wait_until(&self, body: &str, what: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.execute(body, vec![]).await;
            if is_truthy(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "not within {timeout:?}: {what} (last answer {v}) on {}",
                self.current_url().await
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Runs the function body `body` in the page with `args` (`arguments[i]`); answers what it
    /// returns. Scripts run through the DevTools protocol, so the page's Content-Security-Policy
    /// does not stop them (it does stop the page's own inline scripts).
    pub async fn execute(&self, body: &str, args: Vec<Value>) -> Value {
        self.post(
            "/execute/sync",
            json!({ "script": body, "args": args }),
            "script",
        )
        .await
    }

    /// Runs the function body `body`, which calls `arguments[arguments.length - 1]` with its
    /// answer when done.
    pub async fn execute_async(&self, body: &str, args: Vec<Value>) -> Value {
        self.post(
            "/execute/async",
            json!({ "script": body, "args": args }),
            "async script",
        )
        .await
    }

    /// Presses and releases each key of `keys` in turn (text, or [`keys`] codes) at whatever has
    /// the focus, as a person typing.
    pub async fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            let key = key.to_string();
            actions.push(json!({ "type": "keyDown", "value": key }));
            actions.push(json!({ "type": "keyUp", "value": key }));
        }
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
            "key presses",
        )
        .await;
        let _ = self
            .session_cmd(reqwest::Method::DELETE, "/actions", None)
            .await;
    }

    /// A PNG of the whole page (not only the viewport), [`VIEWPORT_WIDTH_PX`] wide.
    pub async fn screenshot_full_page(&self) -> Vec<u8> {
        let size = self
            .execute(
                "const d = document.documentElement; \
                 return [Math.max(d.scrollWidth, window.innerWidth), \
                         Math.max(d.scrollHeight, document.body ? document.body.scrollHeight : 0, window.innerHeight)];",
                vec![],
            )
            .await;
        let width = size[0].as_f64().unwrap_or(f64::from(VIEWPORT_WIDTH_PX));
        let height = size[1].as_f64().unwrap_or(f64::from(VIEWPORT_HEIGHT_PX));
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await;
        let data = shot["data"].as_str().expect("a screenshot's data");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("a screenshot is base64")
    }

    /// Every console line the browser logged since it started (kept across calls).
    pub async fn console_log(&self) -> Vec<LogEntry> {
        let fresh = self
            .post("/se/log", json!({ "type": "browser" }), "the browser log")
            .await;
        let mut log = self.log.lock().expect("log lock");
        for entry in fresh.as_array().into_iter().flatten() {
            log.push(LogEntry {
                level: entry["level"].as_str().unwrap_or_default().to_owned(),
                message: entry["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        log.clone()
    }

    /// The console's errors since the last call (each error is answered once).
    pub async fn new_console_errors(&self) -> Vec<LogEntry> {
        let before = self.log.lock().expect("log lock").len();
        let all = self.console_log().await;
        all.into_iter()
            .skip(before)
            .filter(|e| e.is_error())
            .collect()
    }

    /// Closes the session (Chromium quits) through a plain blocking request, as `Drop` cannot
    /// wait on the async client.
    fn close_blocking(&self) {
        if self.session.is_empty() {
            return;
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.driver_port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            stream,
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.session, self.driver_port
        );
        // chromedriver keeps the connection open whatever the request asks: read the answer to
        // its announced length rather than to the end of the stream.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            if response_complete(&answer) {
                break;
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.close_blocking();
        // The driver and whatever Chromium processes remain: the whole process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    async fn post(&self, path: &str, body: Value, what: &str) -> Value {
        self.browser
            .post(&format!("/element/{}{path}", self.id), body, what)
            .await
    }

    async fn get(&self, path: &str, what: &str) -> Value {
        self.browser
            .get(&format!("/element/{}{path}", self.id), what)
            .await
    }

    pub async fn click(&self) {
        self.post("/click", json!({}), "click").await;
    }

    /// Types `text` into the element (a file input takes a file's path).
    pub async fn send_keys(&self, text: &str) {
        self.post("/value", json!({ "text": text }), "typing").await;
    }

    pub async fn clear(&self) {
        self.post("/clear", json!({}), "clear").await;
    }

    /// The rendered text, as a person reads it.
    pub async fn text(&self) -> String {
        self.get("/text", "element text")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The attribute as written in the HTML, if present.
    pub async fn attr(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"), "attribute")
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// The DOM property (`value`, `checked`, ...).
    pub async fn prop(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}"), "property").await
    }

    /// The element as a script argument (`arguments[i]`).
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// Whether this is the same element as `other`.
    pub fn is(&self, other: &Element<'_>) -> bool {
        self.id == other.id
    }
}

/// Whether `answer` holds a whole HTTP/1.1 response with a `Content-Length`.
fn response_complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    length.is_none_or(|len| answer.len() >= end + 4 + len)
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

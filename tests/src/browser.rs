//! A real headless Chromium driven through W3C WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by scripts/install-browser). The protocol is plain JSON over
//! HTTP, so this speaks it with reqwest: start chromedriver on a free loopback port, open a
//! session with a fresh profile, and offer the handful of commands the console tests need.
//! Every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser session. Dropping it ends the session and stops chromedriver.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element found on the page.
#[derive(Clone, Debug)]
pub struct Element(String);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("port").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile directory.
    pub async fn start() -> Browser {
        Self::launch(true).await
    }

    /// As [`Browser::start`], with JavaScript turned off for every page (WebDriver's own
    /// commands still work): what the console must be usable with.
    pub async fn start_without_javascript() -> Browser {
        Self::launch(false).await
    }

    async fn launch(javascript: bool) -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "Chromium is not installed: run scripts/install-browser (scripts/test does)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let profile = tempfile::Builder::new()
            .prefix("stagecraft-chromium-")
            .tempdir()
            .expect("profile dir");
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == json!(true) {
                        ready = true;
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1400,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let prefs = if javascript {
            json!({})
        } else {
            json!({"profile.managed_default_content_settings.javascript": 2})
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args, "prefs": prefs}
        }}});
        let r = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session request");
        let v: Value = r.json().await.expect("new session answer");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium session did not start: {v}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        req = req.json(&body.unwrap_or_else(|| json!({})));
        let r = req.send().await.expect("webdriver request");
        let v: Value = r.json().await.expect("webdriver answer");
        v["value"].clone()
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let v = self.cmd(method, path, body).await;
        if let Some(err) = v.get("error") {
            panic!("webdriver {path}: {err} {}", v["message"]);
        }
        v
    }

    pub async fn goto(&self, url: &str) {
        self.ok(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.ok(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn title(&self) -> String {
        self.ok(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.ok(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching `css`, if any (no waiting).
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.get(ELEMENT)
            .and_then(|e| e.as_str())
            .map(|s| Element(s.to_string()))
    }

    /// Waits (bounded: 10 s in 50 ms steps) for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        for _ in 0..200 {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no element matches {css:?} on {}:\n{}",
            self.url().await,
            self.source().await
        );
    }

    /// Clicks `e`. When that loads a new page (a link elsewhere, a form's submit button),
    /// returns once the old page is gone, so that the next `find` cannot match the old
    /// page's element and then read it stale, or read what the old page said.
    pub async fn click(&self, e: &Element) {
        let old = match self.navigates(e).await {
            true => self.try_find("html").await,
            false => None,
        };
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            None,
        )
        .await;
        if let Some(old) = old {
            self.wait_until_replaced(&old).await;
        }
    }

    /// Whether clicking `e` loads another page: a link to another address, or a submit
    /// button (the console's forms are never taken over by scripts).
    async fn navigates(&self, e: &Element) -> bool {
        let tag = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{}/name", e.0),
                None,
            )
            .await;
        let kind = |v: Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
        match kind(tag).as_str() {
            "a" => {
                let href = kind(self.property(e, "href").await);
                let here = self.url().await.to_ascii_lowercase();
                let page = |u: &str| u.split('#').next().unwrap_or_default().to_string();
                !href.is_empty() && !href.starts_with("javascript:") && page(&href) != page(&here)
            }
            "button" => kind(self.property(e, "type").await) == "submit",
            "input" => matches!(
                kind(self.property(e, "type").await).as_str(),
                "submit" | "image"
            ),
            _ => false,
        }
    }

    /// Waits (bounded: 10 s in 50 ms steps) until the page holding `old` has been replaced.
    /// A submission the browser itself holds back (a `required` field left empty) never
    /// replaces it: then this returns after the bound, and the test's next `find` decides.
    async fn wait_until_replaced(&self, old: &Element) {
        for _ in 0..200 {
            let v = self
                .cmd(
                    reqwest::Method::GET,
                    &format!("/element/{}/name", old.0),
                    None,
                )
                .await;
            if v.get("error").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Empties an input or text area.
    pub async fn clear(&self, e: &Element) {
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            None,
        )
        .await;
    }

    /// An element's attribute or property (`value`, `checked`, …).
    pub async fn property(&self, e: &Element, name: &str) -> Value {
        self.ok(
            reqwest::Method::GET,
            &format!("/element/{}/property/{name}", e.0),
            None,
        )
        .await
    }

    /// How many elements match `css` (no waiting).
    pub async fn count(&self, css: &str) -> usize {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array().map_or(0, Vec::len)
    }

    pub async fn text(&self, e: &Element) -> String {
        self.ok(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Picks the `<option>` with `value` inside the select matched by `select_css`.
    pub async fn select(&self, select_css: &str, value: &str) {
        let option = self
            .find(&format!("{select_css} option[value=\"{value}\"]"))
            .await;
        self.click(&option).await;
    }

    /// Waits (bounded) until the page's visible text contains `needle`; returns the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            // The page may be replaced between finding its body and reading it (a form
            // submission still loading): that is "not yet", not a failure.
            if let Some(body) = self.try_find("body").await {
                let v = self
                    .cmd(
                        reqwest::Method::GET,
                        &format!("/element/{}/text", body.0),
                        None,
                    )
                    .await;
                if let Some(text) = v.as_str() {
                    last = text.to_string();
                    if last.contains(needle) {
                        return last;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "page {} never showed {needle:?}; it shows:\n{last}",
            self.url().await
        );
    }

    /// The visible text of the page.
    pub async fn page_text(&self) -> String {
        let body = self.find("body").await;
        self.text(&body).await
    }

    /// Runs `script` in the page with `args` (`arguments[0]`, …) and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.ok(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    pub async fn set_window(&self, width: u32, height: u32) {
        self.ok(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, to: &Path) {
        let v = self.ok(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        std::fs::write(to, png).expect("write screenshot");
    }

    /// A file under a temp dir for a file input (the browser reads it from disk).
    pub fn temp_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        // Best effort: chromedriver is killed next either way, and takes Chromium with it.
        let _ = blocking_delete(&url);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// DELETE without an async runtime (Drop cannot await).
fn blocking_delete(url: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    Ok(())
}

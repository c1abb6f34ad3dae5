//! A small WebDriver client (W3C protocol over HTTP) for the browser tests: Debian's headless
//! Chromium through its chromedriver, both installed by `scripts/ensure-chromium.sh`.

use crate::binary_harness::{free_port, Process};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one headless Chromium session.
pub struct Browser {
    _driver: Process,
    http: reqwest::Client,
    session: String,
    base: String,
    /// Where screenshots go (under target/).
    pub shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs: `make test` installs it (scripts/ensure-chromium.sh)");
        let driver = Process(driver);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", format!("--window-size={width},{height}")],
            },
        }}});
        let answer: Value = http.post(format!("{base}/session")).json(&caps).send().await.expect("new session").json().await.expect("json");
        let session = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        let shots = crate::binary_harness::root().join("target/web-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser { _driver: driver, http, session, base, shots }
    }

    /// A WebDriver command; `Err` holds WebDriver's error.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let answer: Value = request.send().await.expect("chromedriver answers").json().await.expect("json");
        match answer["value"].get("error") {
            Some(_) => Err(answer["value"].clone()),
            None => Ok(answer["value"].clone()),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    async fn element(&self, css: &str) -> String {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    /// Clicks the element `css` as a user would (WebDriver's click: scrolled into view, hit-tested).
    /// The live part of the page may be swapped between finding and clicking: find it again.
    pub async fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.element(css).await;
            match self.try_call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
        panic!("{css} was replaced ten times in a row while clicking it");
    }

    /// Types `text` into the element `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// Waits (bounded) until `script` returns something truthy; returns it.
    pub async fn wait_for(&self, what: &str, limit: Duration, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script, json!([])).await;
            let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
            if truthy {
                return v;
            }
            if start.elapsed() > limit {
                let body = self.js("return document.body.innerText", json!([])).await;
                self.screenshot("failed").await;
                panic!("the page did not show {what} within {limit:?}; it shows:\n{}", body.as_str().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Clicks `button`, then Confirm in the page's dialog.
    pub async fn press_and_confirm(&self, button: &str) {
        self.click(button).await;
        self.wait_for("the confirmation dialog", Duration::from_secs(5), "return document.getElementById('confirm').open").await;
        self.click("#confirm-ok").await;
    }

    /// Saves a screenshot as `target/web-screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).expect("png");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// The browser console's errors since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"}))).await;
        log.as_array()
            .map(|entries| {
                entries.iter().filter(|e| e["level"] == "SEVERE").map(|e| e["message"].as_str().unwrap_or_default().to_string()).collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    /// Ends the session (chromedriver then closes Chromium) before the driver is killed, so no
    /// browser outlives a test, even a failed one.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Some(addr) = self.base.strip_prefix("http://") else { return };
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request =
                format!("DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.session);
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
    }
}

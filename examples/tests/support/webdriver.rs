//! A small WebDriver client: just the commands the dashboard's browser test uses, over the
//! HTTP client the tests already have (W3C WebDriver is JSON over HTTP), and a chromedriver
//! started on a free loopback port and stopped with the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Between two polls of the page.
const POLL: Duration = Duration::from_millis(100);

/// The first program of `names` found on the `PATH`.
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A chromedriver on loopback, killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port and waits until it is ready.
    pub async fn start(program: &Path, wait: Duration) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + wait;
        loop {
            let ready = reqwest::get(format!("{}/status", driver.url))
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready
                && body.await.ok().is_some_and(|b| b["value"]["ready"] == true)
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within {wait:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; its browser is closed when the session is closed or dropped (a test
/// that panics half-way leaves no browser behind).
pub struct Session {
    http: reqwest::Client,
    base: String,
    wait: Duration,
    /// The driver's `host:port` and the session's path, to close it from `drop`.
    driver_addr: String,
    path: String,
    closed: bool,
}

impl Session {
    /// Opens a headless Chromium (`binary`) of `width` × `height`.
    pub async fn new(
        driver: &Driver,
        binary: &Path,
        width: u32,
        height: u32,
        wait: Duration,
    ) -> Session {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let answer: Value = http
            .post(format!("{}/session", driver.url))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Session {
            http,
            base: format!("{}/session/{id}", driver.url),
            wait,
            driver_addr: driver.url.trim_start_matches("http://").to_string(),
            path: format!("/session/{id}"),
            closed: false,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// The page's address now.
    pub async fn current_url(&self) -> String {
        let value = self.command(reqwest::Method::GET, "/url", None).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` in the page (its `arguments` are `args`) and returns its value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Waits until `script` returns true; panics with `what` after the wait.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + self.wait;
        loop {
            if self.run(script, json!([])).await == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let text = self
                    .run(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .await;
                panic!(
                    "{what}: not so within {:?} at {}\npage text:\n{}",
                    self.wait,
                    self.current_url().await,
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The element `css` selects, once it is there.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + self.wait;
        loop {
            let value = self
                .post("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = value[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no element `{css}` within {:?} at {}: {value}",
                self.wait,
                self.current_url().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        let answer = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(answer.is_null(), "clicking `{css}`: {answer}");
    }

    /// Replaces the text of the input `css` selects with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        let answer = self
            .post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
        assert!(answer.is_null(), "typing into `{css}`: {answer}");
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let value = self
            .command(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        base64_decode(value.as_str().expect("a base64 screenshot"))
    }

    /// Ends the session (closes the browser).
    pub async fn close(mut self) {
        self.command(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

impl Drop for Session {
    /// Closes the browser with a plain blocking request (a destructor cannot await), so that a
    /// failing test does not leave Chromium running once the driver is gone.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.closed {
            return;
        }
        let Ok(mut stream) = std::net::TcpStream::connect(&self.driver_addr) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.path, self.driver_addr
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            // Wait for the answer: the driver answers once the browser has quit.
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for sextet in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(
        base64_decode("iVBORw0K"),
        [0x89, b'P', b'N', b'G', b'\r', b'\n']
    );
}

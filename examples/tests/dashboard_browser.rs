//! The dashboard in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`) against the demo host on a free loopback port. It opens
//! the list and filters it, opens an instance and its timeline, raises an event and watches
//! the instance complete, terminates one, and signals an entity and watches its state change;
//! then it takes screenshots of the main views at a laptop's and a phone's width. On a host
//! with a key, it signs in with the form (a wrong key first), checks that scripts cannot read
//! the key's cookie, acts, and signs out.
//!
//! Without Chromium the test installs it (`scripts/install-chromium`); when that fails it says
//! so and passes — except under CI (`CI` set), where it fails. `.ci/run` installs it first.
//! The screenshots go to `$CARGO_TARGET_TMPDIR/dashboard-screenshots/`, and to `docs/` (the
//! README's) with `DURABLE_UPDATE_SCREENSHOTS=1`.

#[path = "support/webdriver.rs"]
mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webdriver::{Driver, Session, find_program};

/// The bound on every wait (the host starting, a page showing what the test expects).
const WAIT: Duration = Duration::from_secs(30);

const LAPTOP: (u32, u32) = (1280, 860);
const PHONE: (u32, u32) = (390, 844);

/// The demo host, killed when dropped.
struct Host {
    child: Child,
    origin: String,
    /// The key it requires, if any.
    key: Option<String>,
}

impl Host {
    fn start(data: &Path, key: Option<&str>) -> Host {
        let mut command = Command::new(env!("CARGO_BIN_EXE_durable-demo"));
        command
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data);
        if let Some(key) = key {
            command.args(["--key", key]);
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("durable-demo starts");
        let out = child.stdout.take().expect("stdout is piped");
        // Killed when dropped from here on, even if it never says where it listens.
        let mut host = Host {
            child,
            origin: String::new(),
            key: key.map(str::to_string),
        };
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        while host.origin.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines_rx
                .recv_timeout(left)
                .expect("durable-demo says where it listens");
            if let Some(origin) = line.strip_prefix("listening on ") {
                host.origin = origin.trim().to_string();
            }
        }
        host
    }

    fn api(&self, path: &str) -> String {
        let mut url = format!("{}/runtime/webhooks/durabletask/{path}", self.origin);
        if let Some(key) = &self.key {
            let key: String = key
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("code={key}"));
        }
        url
    }

    fn page(&self, path: &str) -> String {
        format!("{}/durable/{path}", self.origin)
    }

    async fn post(&self, path: &str, body: Option<&str>) {
        let mut request = reqwest::Client::new().post(self.api(path));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let status = request.send().await.expect("the API answers").status();
        assert!(status.is_success(), "POST {path}: {status}");
    }

    /// Waits until the instance has finished (by the API).
    async fn finished(&self, id: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let body: Value = reqwest::get(self.api(&format!("instances/{id}")))
                .await
                .expect("the API answers")
                .json()
                .await
                .unwrap_or(Value::Null);
            let status = body["runtimeStatus"].as_str().unwrap_or_default();
            if matches!(status, "Completed" | "Failed" | "Terminated") {
                return;
            }
            assert!(Instant::now() < deadline, "{id} did not finish: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: always the test's temporary folder, and `docs/` when asked.
fn screenshot_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")];
    if std::env::var_os("DURABLE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs"));
    }
    dirs
}

async fn shoot(session: &Session, name: &str) {
    let png = session.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    for dir in screenshot_dirs() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("dashboard-{name}.png")), &png).unwrap();
    }
}

/// The status the instance page shows.
fn status_is(status: &str) -> String {
    format!(
        "const s = document.getElementById('status'); return !!s && s.dataset.status === '{status}';"
    )
}

/// Confirms the page's dialog and waits for the toast to say `said`.
async fn confirm_and_expect(session: &Session, said: &str) {
    session
        .wait_until(
            "the confirmation is open",
            "return document.getElementById('confirm').open === true;",
        )
        .await;
    session.click("#confirm-ok").await;
    session
        .wait_until(
            &format!("the page says `{said}`"),
            &format!(
                "const t = document.getElementById('toast'); return !!t && t.dataset.ok === 'true' && t.textContent.includes({});",
                json!(said)
            ),
        )
        .await;
}

/// The driver and the browser; `None` (after saying SKIPPED) when they are missing, unless
/// under CI, where that fails the test.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let found = || {
        let driver = find_program(&["chromedriver"]);
        let browser = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        driver.zip(browser)
    };
    if let Some(tools) = found() {
        return Some(tools);
    }
    // Missing: install them once, as `scripts/with-postgres` installs PostgreSQL.
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-chromium");
        std::process::Command::new(script)
            .status()
            .is_ok_and(|status| status.success())
    });
    if installed && let Some(tools) = found() {
        return Some(tools);
    }
    let message = "the browser test needs `chromium` and `chromedriver`, and \
                   scripts/install-chromium could not install them (Debian: apt-get install \
                   chromium chromium-driver)";
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    println!("SKIPPED: {message}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let Some((driver_program, browser)) = browser_tools() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), None);
    // Something to look at: finished, waiting, failed and parent-and-child instances, and an
    // entity.
    host.post("orchestrators/hello_cities/hello-1", None).await;
    host.post("orchestrators/approval_workflow/approval-1", Some("3600"))
        .await;
    host.post("orchestrators/approval_workflow/approval-2", Some("3600"))
        .await;
    host.post(
        "orchestrators/upload_with_retry/upload-1",
        Some("\"report.pdf\""),
    )
    .await;
    host.post("orchestrators/charge_with_retry/charge-1", Some("1250"))
        .await;
    host.post("orchestrators/sum_of_squares/squares-1", Some("6"))
        .await;
    host.post(
        "orchestrators/deploy_all_regions/deploy-1",
        Some(r#"[{"region":"eu-west","servers":2},{"region":"us-east","servers":3}]"#),
    )
    .await;
    host.post("entities/counter/demo?op=add", Some("5")).await;
    for id in ["hello-1", "upload-1", "charge-1", "squares-1", "deploy-1"] {
        host.finished(id).await;
    }

    let driver = Driver::start(&driver_program, WAIT).await;
    let session = Session::new(&driver, &browser, LAPTOP.0, LAPTOP.1, WAIT).await;

    // The list, newest first, with counts.
    session.goto(&host.page("")).await;
    session.find("#instance-table").await;
    session
        .wait_until(
            "the list shows every instance",
            "return document.querySelectorAll('#instance-table tr[data-id]').length === 9;",
        )
        .await;
    let running = session.text("a[data-status=Running] .n").await;
    assert_eq!(running, "2", "two approvals wait");
    shoot(&session, "instances-laptop").await;

    // Filter by id prefix, with the form.
    session.fill("#f-prefix", "approval-").await;
    session.click("#f-apply").await;
    session
        .wait_until(
            "only the approvals are listed",
            "const rows = [...document.querySelectorAll('#instance-table tr[data-id]')]; \
             return location.search.includes('prefix=approval-') && rows.length === 2 && \
             rows.every(r => r.dataset.id.startsWith('approval-'));",
        )
        .await;

    // One instance and its timeline; a bar opens to its input and result.
    session
        .click("a[href='/durable/instances/approval-1']")
        .await;
    session.find("#raise-form").await;
    session.goto(&host.page("instances/hello-1")).await;
    session
        .wait_until(
            "three activities on the timeline",
            "return document.querySelectorAll('#timeline .tl-row[data-kind=activity]').length === 3;",
        )
        .await;
    session
        .click("#timeline .tl-row[data-kind=activity] summary")
        .await;
    session
        .wait_until(
            "the bar opens to its input and result",
            "const row = document.querySelector('#timeline .tl-row[data-kind=activity]'); \
             return row.open && row.innerText.includes('\"Tokyo\"') && row.innerText.includes('Hello Tokyo!');",
        )
        .await;

    // While the approvals wait: what needs attention, with no threshold.
    session.goto(&host.page("attention?stuck=0")).await;
    session
        .find("#stalled a[href='/durable/instances/approval-1']")
        .await;
    shoot(&session, "attention-laptop").await;

    // Raise an event and watch the instance complete (the page refreshes by itself).
    session.goto(&host.page("instances/approval-1")).await;
    session.fill("#event-name", "ApprovalEvent").await;
    session.fill("#event-body", "true").await;
    session.click("#raise").await;
    confirm_and_expect(&session, "Raised event `ApprovalEvent` on `approval-1`.").await;
    session
        .wait_until("approval-1 completes", &status_is("Completed"))
        .await;
    session
        .wait_until(
            "its output shows",
            "return document.getElementById('output').innerText.includes('approved');",
        )
        .await;

    // Terminate one.
    session.goto(&host.page("instances/approval-2")).await;
    session.click("#act-terminate").await;
    confirm_and_expect(&session, "Asked `approval-2` to terminate.").await;
    session
        .wait_until("approval-2 is terminated", &status_is("Terminated"))
        .await;

    // Signal an entity and watch its state change.
    session.goto(&host.page("entities/counter/demo")).await;
    session
        .wait_until(
            "the counter shows 5",
            "return document.getElementById('state').innerText.trim() === '5';",
        )
        .await;
    session.fill("#op-name", "add").await;
    session.fill("#op-input", "3").await;
    session.click("#signal").await;
    confirm_and_expect(&session, "Signalled `add` to `@counter@demo`.").await;
    session
        .wait_until(
            "the counter shows 8",
            "return document.getElementById('state').innerText.trim() === '8';",
        )
        .await;
    shoot(&session, "entity-laptop").await;

    // The rest of the screenshots: laptop, then phone, then dark.
    // An instance page is long: the same width, a taller window.
    let instance = host.page("instances/charge-1");
    session.resize(LAPTOP.0, 1150).await;
    session.goto(&instance).await;
    session.find("#timeline").await;
    shoot(&session, "instance-laptop").await;
    session.resize(PHONE.0, PHONE.1).await;
    session.goto(&host.page("")).await;
    session.find("#instance-table").await;
    shoot(&session, "instances-phone").await;
    session.goto(&instance).await;
    session.find("#timeline").await;
    shoot(&session, "instance-phone").await;

    session.resize(LAPTOP.0, LAPTOP.1).await;
    session
        .run("localStorage.setItem('durable-theme', 'dark');", json!([]))
        .await;
    session.goto(&host.page("")).await;
    session
        .wait_until(
            "the dark theme is on",
            "return document.documentElement.dataset.theme === 'dark';",
        )
        .await;
    shoot(&session, "instances-dark").await;
    session.resize(LAPTOP.0, 1150).await;
    session.goto(&instance).await;
    session.find("#timeline").await;
    shoot(&session, "instance-dark").await;

    session.close().await;
    drop(driver);
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_the_browser_signs_in_and_then_acts() {
    let Some((driver_program, browser)) = browser_tools() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let key = "s3cret/+";
    let host = Host::start(data.path(), Some(key));
    host.post("orchestrators/approval_workflow/keyed-1", Some("3600"))
        .await;
    let driver = Driver::start(&driver_program, WAIT).await;
    let session = Session::new(&driver, &browser, LAPTOP.0, LAPTOP.1, WAIT).await;

    // Without the key: a sign-in form and no data.
    session.goto(&host.page("")).await;
    session.find("#login-key").await;
    let text = session.text("main").await;
    assert!(
        !text.contains("keyed-1"),
        "no data before signing in: {text}"
    );
    session.fill("#login-key", "not the key").await;
    session.click("form[action='/durable/login'] button").await;
    session
        .wait_until(
            "a wrong key is refused",
            "return document.body.innerText.includes(\"That key is not the host's key\");",
        )
        .await;

    session.fill("#login-key", key).await;
    session.click("form[action='/durable/login'] button").await;
    session
        .wait_until(
            "signed in, the list shows",
            "return !!document.querySelector('#instance-table tr[data-id=\"keyed-1\"]');",
        )
        .await;
    // The key is in a cookie the page's scripts cannot read.
    assert_eq!(session.run("return document.cookie;", json!([])).await, "");

    // Actions carry it.
    session.goto(&host.page("instances/keyed-1")).await;
    session.fill("#event-name", "ApprovalEvent").await;
    session.fill("#event-body", "false").await;
    session.click("#raise").await;
    confirm_and_expect(&session, "Raised event `ApprovalEvent` on `keyed-1`.").await;
    session
        .wait_until("keyed-1 completes", &status_is("Completed"))
        .await;

    // Signing out forgets it.
    session.click("form[action='/durable/logout'] button").await;
    session.find("#login-key").await;
    session.close().await;
}

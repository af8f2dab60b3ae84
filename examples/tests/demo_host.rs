//! The demo host as a user runs it: the real `durable-demo` binary on a free loopback port and
//! a temporary store, driven over HTTP; stopped with signals or killed, and started again.
//!
//! Every wait is bounded (30 s; 60 s for a restarted host to take over a killed one's work),
//! and a host still running when a test ends — or panics — is killed.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// The bound on every wait: for the host to start or stop, for an instance or entity to get
/// where the test expects it.
const WAIT: Duration = Duration::from_secs(30);

/// The bound on a restarted host taking over the work a killed one held. The killed host's
/// partition leases, and the lease on the activity its first turn started, run for 30 s (the
/// default), but the restarted host knows from the file's owner lock that their owner is gone
/// and takes them at once: waiting out a lease would take 20 s or more after the kill.
const TAKEOVER_WAIT: Duration = Duration::from_secs(15);

/// Between two polls.
const POLL: Duration = Duration::from_millis(50);

const BASE_PATH: &str = "/runtime/webhooks/durabletask";

/// A running `durable-demo`, killed when dropped.
struct Host {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    origin: String,
    /// Everything it printed on stdout so far, line by line.
    stdout: Arc<Mutex<Vec<String>>>,
    stdout_reader: Option<JoinHandle<()>>,
    /// Everything it printed on stderr so far (its logs), for failure messages.
    stderr: Arc<Mutex<String>>,
}

impl Host {
    /// Starts the host on a free loopback port with its store in `data`, and waits until it
    /// says where it listens.
    fn start(data: &Path, extra_args: &[&str]) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_durable-demo"))
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra_args)
            .env("RUST_LOG", "warn,durable=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("durable-demo starts");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out_pipe = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let sink = stdout.clone();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = lines_tx.send(line);
            }
        });

        let mut host = Host {
            child,
            origin: String::new(),
            stdout,
            stdout_reader: Some(stdout_reader),
            stderr,
        };
        let deadline = Instant::now() + WAIT;
        while host.origin.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(origin) = line.strip_prefix("listening on ") {
                        host.origin = origin.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "durable-demo did not say where it listens within {WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                    host.stdout(),
                    host.stderr()
                ),
            }
        }
        assert!(
            host.origin.starts_with("http://127.0.0.1:"),
            "it listens on loopback: {}",
            host.origin
        );
        host
    }

    /// The URL of an API path (relative to the base path).
    fn url(&self, path: &str) -> String {
        format!("{}{BASE_PATH}/{path}", self.origin)
    }

    /// The whole banner, up to its last line (which says how to stop the host).
    fn banner(&self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.stdout.lock().unwrap().clone();
            if lines.iter().any(|line| line.starts_with("Ctrl-C")) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "the banner did not end within {WAIT:?}:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(POLL);
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends the signal `name` (`INT`, `TERM`) to the host.
    #[cfg(unix)]
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill -{name} worked");
    }

    /// Waits for the host to exit by itself; returns its exit status and all of its stdout.
    fn wait_for_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "durable-demo did not exit within {WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(POLL);
        };
        // The pipe is closed now: let the reader take the last lines.
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        (status, self.stdout())
    }

    /// Kills the host (SIGKILL on Unix): no shutdown, no chance to clean anything up.
    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POSTs `body` (JSON, or nothing) and returns the response.
async fn post(url: &str, body: Option<Value>) -> reqwest::Response {
    let request = http().post(url);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// Starts orchestrator `name` as instance `id` and checks the `202`.
async fn start(host: &Host, name: &str, id: &str, input: Option<Value>) -> reqwest::Response {
    let response = post(&host.url(&format!("orchestrators/{name}/{id}")), input).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "starting {name}");
    response
}

/// GETs `url` until `done` holds for the status code and body; returns the body.
async fn poll_until(url: &str, what: &str, done: impl Fn(StatusCode, &Value) -> bool) -> Value {
    poll_within(WAIT, url, what, done).await
}

/// [`poll_until`], waiting up to `wait`.
async fn poll_within(
    wait: Duration,
    url: &str,
    what: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> Value {
    let client = http();
    let deadline = Instant::now() + wait;
    loop {
        let last = match client.get(url).send().await {
            Ok(response) => {
                let code = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if done(code, &body) {
                    return body;
                }
                format!("{code} {body}")
            }
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{url} did not reach {what} within {wait:?}; last answer: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls an instance until it has finished (`200`); returns its status body.
async fn finished(status_url: &str) -> Value {
    poll_until(status_url, "200 (finished)", |code, _| {
        code == StatusCode::OK
    })
    .await
}

/// Polls an instance until its custom status is `expected`.
async fn custom_status(host: &Host, id: &str, expected: &str) {
    poll_until(
        &host.url(&format!("instances/{id}")),
        &format!("custom status {expected:?}"),
        |_, body| body["customStatus"] == expected,
    )
    .await;
}

/// Raises `ApprovalEvent` with `decision` on instance `id`.
async fn approve(host: &Host, id: &str, decision: bool) {
    let url = host.url(&format!("instances/{id}/raiseEvent/ApprovalEvent"));
    let response = post(&url, Some(json!(decision))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "raising the event");
}

#[tokio::test]
async fn hello_cities_started_over_http_answers_its_location_with_the_greetings() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &[]);

    let response = post(&host.url("orchestrators/hello_cities"), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&host.origin), "{location}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["statusQueryGetUri"], location);

    let status = finished(&location).await;
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(
        status["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
}

#[tokio::test]
async fn approval_workflow_completes_approved_when_the_event_is_raised() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &[]);

    start(&host, "approval_workflow", "approval-1", Some(json!(3600))).await;
    custom_status(&host, "approval-1", "waiting for approval").await;
    approve(&host, "approval-1", true).await;
    let status = finished(&host.url("instances/approval-1")).await;
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(status["output"], "approved");
}

#[tokio::test]
async fn the_counter_entity_adds_up_signals_sent_over_http() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &[]);

    let counter = host.url("entities/counter/visits");
    for _ in 0..2 {
        let response = post(&format!("{counter}?op=add"), Some(json!(5))).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let state = poll_until(&counter, "10", |code, body| {
        code == StatusCode::OK && *body == json!(10)
    })
    .await;
    assert_eq!(state, json!(10));
}

#[tokio::test]
async fn an_instance_survives_the_host_being_killed() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &[]);
    // Killed straight after the start: possibly in the middle of the instance's first turn.
    start(&host, "approval_workflow", "survivor", Some(json!(3600))).await;
    host.kill();

    let host = Host::start(data.path(), &[]);
    // The kill may have hit the first turn: the new host runs it again.
    poll_within(
        TAKEOVER_WAIT,
        &host.url("instances/survivor"),
        "custom status \"waiting for approval\"",
        |_, body| body["customStatus"] == "waiting for approval",
    )
    .await;
    // Only the host that owns the file's partitions runs the event's turn.
    approve(&host, "survivor", true).await;
    let status = poll_within(
        TAKEOVER_WAIT,
        &host.url("instances/survivor"),
        "200 (finished)",
        |code, _| code == StatusCode::OK,
    )
    .await;
    assert_eq!(status["output"], "approved");
}

#[test]
fn a_damaged_store_is_refused_and_left_as_it_was() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("durable.db");
    drop(durable::store::Sqlite::open(&db).expect("a new store"));
    // The store's writer thread closes the file (and checkpoints it) after the drop.
    let deadline = Instant::now() + WAIT;
    while db.with_file_name("durable.db-wal").exists() {
        assert!(Instant::now() < deadline, "the new store was not closed");
        std::thread::sleep(POLL);
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() >= 8192, "the new store has several pages");
    bytes[4096..8192].fill(0xa5);
    std::fs::write(&db, &bytes).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_durable-demo"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("durable-demo starts");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("durable-demo did not exit within {WAIT:?} on a damaged store");
        }
        std::thread::sleep(POLL);
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&db.display().to_string())
            && stderr.contains("is damaged")
            && stderr.contains("backup"),
        "stderr:\n{stderr}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "the file is unchanged");
    let names: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["durable.db"], "no other file appeared");
}

#[cfg(unix)]
#[tokio::test]
async fn ctrl_c_stops_the_host_cleanly_and_a_waiting_instance_carries_on() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &[]);
    start(&host, "approval_workflow", "patient", Some(json!(3600))).await;
    custom_status(&host, "patient", "waiting for approval").await;

    host.signal("INT");
    let (status, stdout) = host.wait_for_exit();
    assert!(status.success(), "exit status {status}; stdout:\n{stdout}");
    assert!(stdout.contains("shutting down"), "stdout:\n{stdout}");

    let host = Host::start(data.path(), &[]);
    approve(&host, "patient", false).await;
    let status = finished(&host.url("instances/patient")).await;
    assert_eq!(status["output"], "rejected");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_host_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &[]);
    host.signal("TERM");
    let (status, stdout) = host.wait_for_exit();
    assert!(status.success(), "exit status {status}; stdout:\n{stdout}");
    assert!(stdout.contains("shutting down"), "stdout:\n{stdout}");
}

/// One `curl` command of the banner, as a request.
struct Curl {
    post: bool,
    body: Option<String>,
    url: String,
}

impl Curl {
    /// Reads `  curl [-i] [-X POST] [-d BODY] 'URL'`.
    fn parse(line: &str) -> Option<Curl> {
        let rest = line.trim().strip_prefix("curl ")?;
        let (options, url) = rest.split_once('\'')?;
        let url = url.strip_suffix('\'')?.to_string();
        let words: Vec<&str> = options.split_whitespace().collect();
        let body = words
            .iter()
            .position(|w| *w == "-d")
            .map(|at| words[at + 1].to_string());
        Some(Curl {
            post: words.windows(2).any(|w| w == ["-X", "POST"]),
            body,
            url,
        })
    }

    async fn send(&self) -> StatusCode {
        let client = http();
        let request = if self.post {
            client.post(&self.url)
        } else {
            client.get(&self.url)
        };
        let request = match &self.body {
            Some(body) => request.body(body.clone()),
            None => request,
        };
        request.send().await.expect("the request is sent").status()
    }
}

#[tokio::test]
async fn the_banners_commands_work_as_printed_with_a_key() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(data.path(), &["--key", "s3cret/+"]);
    let commands: Vec<Curl> = host
        .banner()
        .iter()
        .filter_map(|line| Curl::parse(line))
        .collect();
    assert!(commands.len() >= 8, "the banner:\n{}", host.stdout());
    assert!(
        commands.iter().all(|c| c.url.contains("code=s3cret%2F%2B")),
        "every command carries the key: {}",
        host.stdout()
    );

    for command in &commands {
        let code = command.send().await;
        // A read may come before the host has applied the signal or finished the instance.
        assert!(
            code.is_success() || (!command.post && code == StatusCode::NOT_FOUND),
            "{} answered {code}",
            command.url
        );
    }
    let keyed = |path: &str| format!("{}?code=s3cret%2F%2B", host.url(path));
    let status = finished(&keyed("instances/hello-1")).await;
    assert_eq!(status["output"].as_array().map(Vec::len), Some(3));
    let status = finished(&keyed("instances/approval-1")).await;
    assert_eq!(status["output"], "approved");
    poll_until(&keyed("entities/counter/demo"), "5", |_, body| {
        *body == json!(5)
    })
    .await;

    // The dashboard's address, as printed, signs in with the key and shows the instances.
    let banner = host.banner();
    let dashboard = banner
        .iter()
        .find_map(|line| line.strip_prefix("dashboard: "))
        .unwrap_or_else(|| panic!("the banner names the dashboard:\n{}", host.stdout()));
    assert_eq!(
        dashboard,
        format!("{}/durable/?code=s3cret%2F%2B", host.origin)
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = no_redirects.get(dashboard).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = no_redirects
        .get(format!("{}/durable/", host.origin))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/durable/instances/approval-1")
    );

    // And without the key, nothing.
    let refused = http()
        .get(host.url("instances"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
}

//! The `durable` command-line tool, run as a user runs it: the real binary against a host
//! started in this process (SQLite store, HTTP API on a free loopback port), and straight on the
//! store's file once the host is gone.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use durable::http::HttpOptions;
use durable::http::api::{EntityListItem, Status};
use durable::prelude::*;
use durable::store::Sqlite;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long any one wait may take before the test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(30);

#[activity]
async fn greet(_ctx: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("Hello {name}!"))
}

#[orchestrator]
async fn hello(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
    ctx.call_activity(greet, name).await
}

#[orchestrator]
async fn approval(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
    ctx.wait_for_event::<bool>("Approval").await
}

/// Set once `flaky` has failed: it fails on its first run only.
static FLAKY_FAILED: AtomicBool = AtomicBool::new(false);

#[activity]
async fn flaky(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    if !FLAKY_FAILED.swap(true, Ordering::SeqCst) {
        return Err(Error::msg("the payment service is down"));
    }
    Ok(n * 2)
}

#[orchestrator]
async fn double_flaky(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    ctx.call_activity(flaky, n).await
}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }
}

/// A host on a fresh SQLite file, serving the HTTP API on a free port.
struct Host {
    runtime: Runtime,
    url: String,
    db: PathBuf,
    _dir: TempDir,
}

impl Host {
    async fn start() -> Host {
        Self::start_with(|http| http).await
    }

    async fn start_with(http: impl FnOnce(HttpOptions) -> HttpOptions) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("durable.db");
        let runtime = Runtime::builder()
            .store(Sqlite::open(&db).unwrap())
            .register(hello)
            .register(greet)
            .register(approval)
            .register(double_flaky)
            .register(flaky)
            .register_entity::<Counter>()
            .http_options(http(HttpOptions::new("127.0.0.1:0".parse().unwrap())))
            .start()
            .await
            .unwrap();
        let url = format!("http://{}", runtime.http_addr().unwrap());
        Host {
            runtime,
            url,
            db,
            _dir: dir,
        }
    }

    /// Runs `durable --host URL ARGS`.
    async fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--host", self.url.as_str()];
        all.extend(args);
        durable(&all, &[]).await
    }

    /// Runs `durable --store FILE ARGS`.
    async fn cli_on_store(&self, args: &[&str]) -> Run {
        let db = self.db.to_str().unwrap();
        let mut all = vec!["--store", db];
        all.extend(args);
        durable(&all, &[]).await
    }

    fn client(&self) -> Client {
        self.runtime.client()
    }

    async fn finished(&self, id: &str) -> InstanceStatus {
        self.client().wait_for_completion(id, WAIT).await.unwrap()
    }

    async fn started(&self, id: &str) {
        self.client().wait_for_start(id, WAIT).await.unwrap();
    }

    /// Polls (bounded) until the instance is in `status`.
    async fn reaches(&self, id: &str, status: RuntimeStatus) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.client().status(id).await.unwrap().unwrap();
            if now.runtime_status == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instance `{id}` stayed {} instead of becoming {status}",
                now.runtime_status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `hello` under `id` and waits for it to complete.
    async fn hello_done(&self, id: &str, name: &str) {
        let id = self
            .client()
            .start(hello, name.to_string())
            .instance_id(id)
            .await
            .unwrap();
        self.finished(&id).await;
    }
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success; returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "durable failed: {self:#?}");
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    /// Asserts failure with `code` and an `error:` line containing `words`.
    fn fails(&self, code: i32, words: &str) {
        assert_eq!(self.code, code, "wrong exit code: {self:#?}");
        assert!(
            self.stderr.starts_with("error: ") && self.stderr.contains(words),
            "stderr should say `{words}`: {self:#?}"
        );
    }
}

/// Runs the `durable` binary with `args` and extra environment `env`, stdin closed; kills it
/// if it runs longer than [`WAIT`].
async fn durable(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_durable"))
            .args(&args)
            .env_remove("DURABLE_HOST")
            .env_remove("DURABLE_KEY")
            .env_remove("DURABLE_STORE")
            .env_remove("DURABLE_TASK_HUB")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                pipe.read_to_string(&mut text).unwrap();
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!(
                    "`durable {}` did not finish within {WAIT:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_and_status_shows_a_summary_json_and_history() {
    let host = Host::start().await;

    let run = host
        .cli(&[
            "start",
            "hello",
            "--id",
            "greet-1",
            "--input",
            "\"Tokyo\"",
            "--wait",
            "30",
        ])
        .await;
    let out = run.ok();
    assert_eq!(out.lines().next(), Some("greet-1"));
    assert!(out.contains("Status:        Completed"), "{out}");
    assert!(out.contains("Output:        \"Hello Tokyo!\""), "{out}");

    let out = host.cli(&["status", "greet-1"]).await;
    let out = out.ok();
    for line in [
        "Instance ID:   greet-1",
        "Name:          hello",
        "Status:        Completed",
        "Input:         \"Tokyo\"",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }

    let status: Status = host.cli(&["status", "greet-1", "--json"]).await.json();
    assert_eq!(status.runtime_status, "Completed");
    assert_eq!(status.output, json!("Hello Tokyo!"));
    assert_eq!(status.input, json!("Tokyo"));
    assert_eq!(status.history_events, None);

    let run = host.cli(&["status", "greet-1", "--history"]).await;
    let out = run.ok();
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("EVENT"))
        .collect();
    assert!(
        table[0].contains("TIMESTAMP") && table[0].contains("RESULT"),
        "{out}"
    );
    let completed = table
        .iter()
        .find(|l| l.starts_with("TaskCompleted"))
        .unwrap();
    assert!(completed.contains("greet") && completed.contains("\"Hello Tokyo!\""));
    assert!(table.iter().any(|l| l.starts_with("ExecutionCompleted")));

    let status: Status = host
        .cli(&["status", "greet-1", "--history", "--json"])
        .await
        .json();
    let history = status.history_events.unwrap();
    assert!(history.iter().any(|e| e["EventType"] == "TaskCompleted"
        && e["FunctionName"] == "greet"
        && e["Result"] == "Hello Tokyo!"));

    // Without --wait, only the (generated) id.
    let out = host.cli(&["start", "hello", "--input", "\"Oslo\""]).await;
    let id = out.ok().trim();
    assert_eq!(id.len(), 32, "{out:?}");
    assert_eq!(
        host.finished(id).await.output::<String>().unwrap(),
        "Hello Oslo!"
    );
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_status_and_follows_every_page() {
    let host = Host::start().await;
    for (id, name) in [("a-1", "Tokyo"), ("a-2", "Seattle"), ("a-3", "London")] {
        host.hello_done(id, name).await;
    }
    host.cli(&["start", "approval", "--id", "b-1"]).await.ok();
    host.started("b-1").await;
    let ids = |statuses: Vec<Status>| -> Vec<String> {
        statuses.into_iter().map(|s| s.instance_id).collect()
    };

    let all: Vec<Status> = host.cli(&["list", "--json"]).await.json();
    assert_eq!(ids(all), ["a-1", "a-2", "a-3", "b-1"]);
    let running: Vec<Status> = host
        .cli(&["list", "--status", "Running", "--json"])
        .await
        .json();
    assert_eq!(ids(running), ["b-1"]);
    let done: Vec<Status> = host
        .cli(&["list", "--status", "completed,Failed", "--json"])
        .await
        .json();
    assert_eq!(ids(done), ["a-1", "a-2", "a-3"]);
    let prefixed: Vec<Status> = host.cli(&["list", "--prefix", "b-", "--json"]).await.json();
    assert_eq!(ids(prefixed), ["b-1"]);

    // One page of one, and how to get the next.
    let run = host.cli(&["list", "--top", "1", "--json"]).await;
    let first: Vec<Status> = run.json();
    assert_eq!(ids(first), ["a-1"]);
    let token = run
        .stderr
        .split("--continuation ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|quoted| quoted.trim_matches('\''))
        .unwrap_or_else(|| panic!("no continuation token in {run:#?}"));
    let second: Vec<Status> = host
        .cli(&["list", "--top", "1", "--continuation", token, "--json"])
        .await
        .json();
    assert_eq!(ids(second), ["a-2"]);

    // Every page, one instance at a time.
    let run = host.cli(&["list", "--top", "1", "--all", "--json"]).await;
    let paged: Vec<Status> = run.json();
    assert_eq!(ids(paged), ["a-1", "a-2", "a-3", "b-1"]);
    assert_eq!(run.stderr, "");

    let run = host.cli(&["list", "--top", "1", "--all"]).await;
    let table: Vec<&str> = run.ok().lines().collect();
    assert_eq!(table.len(), 5, "{table:#?}");
    assert!(table[0].starts_with("INSTANCE ID  NAME"), "{table:#?}");
    assert!(table[0].contains("STATUS") && table[0].contains("CREATED"));
    assert!(table[4].starts_with("b-1") && table[4].contains("approval"));
    assert!(table[4].contains("Running"));

    let none = host.cli(&["list", "--status", "Failed"]).await;
    assert_eq!(none.ok(), "no instances match\n");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_completes_a_waiting_instance() {
    let host = Host::start().await;
    host.cli(&["start", "approval", "--id", "order-42"])
        .await
        .ok();
    host.started("order-42").await;

    let run = host
        .cli(&["raise", "order-42", "Approval", "--data", "true"])
        .await;
    assert_eq!(run.ok(), "raised event `Approval` on instance `order-42`\n");
    let done = host.finished("order-42").await;
    assert!(done.output::<bool>().unwrap());

    host.cli(&["raise", "order-42", "Approval", "--data", "true"])
        .await
        .fails(1, "Completed");
    host.cli(&["raise", "order-43", "Approval"])
        .await
        .fails(3, "no instance with id `order-43`");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_terminate() {
    let host = Host::start().await;
    host.cli(&["start", "approval", "--id", "s-1"]).await.ok();
    host.started("s-1").await;

    let run = host
        .cli(&["suspend", "s-1", "--reason", "maintenance"])
        .await;
    assert_eq!(run.ok(), "asked instance `s-1` to suspend\n");
    host.reaches("s-1", RuntimeStatus::Suspended).await;
    let status: Status = host.cli(&["status", "s-1", "--json"]).await.json();
    assert_eq!(status.runtime_status, "Suspended");

    host.cli(&["resume", "s-1"]).await.ok();
    host.reaches("s-1", RuntimeStatus::Running).await;

    host.cli(&["terminate", "s-1", "--reason", "no longer needed"])
        .await
        .ok();
    let done = host.finished("s-1").await;
    assert_eq!(done.runtime_status, RuntimeStatus::Terminated);
    let status: Status = host.cli(&["status", "s-1", "--json"]).await.json();
    assert_eq!(status.output, json!("no longer needed"));

    host.cli(&["terminate", "s-1"]).await.fails(1, "Terminated");
    host.cli(&["suspend", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_runs_a_failed_instance_again() {
    let host = Host::start().await;
    host.cli(&["start", "double_flaky", "--id", "pay-1", "--input", "21"])
        .await
        .ok();
    assert_eq!(
        host.finished("pay-1").await.runtime_status,
        RuntimeStatus::Failed
    );
    let run = host.cli(&["status", "pay-1"]).await;
    let out = run.ok();
    assert!(out.contains("Status:        Failed"), "{out}");
    assert!(out.contains("Failure:") && out.contains("the payment service is down"));

    host.cli(&["rewind", "pay-1", "--reason", "service restored"])
        .await
        .ok();
    // The rewind is queued: wait until the host has taken it up, then for the end.
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let status = host.finished("pay-1").await;
        if status.runtime_status != RuntimeStatus::Failed {
            break status;
        }
        assert!(Instant::now() < deadline, "the rewind was never taken up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.output::<u32>().unwrap(), 42);

    host.cli(&["rewind", "pay-1"])
        .await
        .fails(1, "only failed instances");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_the_same_or_a_new_id() {
    let host = Host::start().await;
    host.hello_done("r-1", "Lima").await;
    let created = host
        .client()
        .status("r-1")
        .await
        .unwrap()
        .unwrap()
        .execution_id;

    assert_eq!(host.cli(&["restart", "r-1"]).await.ok(), "r-1\n");
    let again = host.finished("r-1").await;
    assert_ne!(
        again.execution_id, created,
        "the instance was started again"
    );
    assert_eq!(again.output::<String>().unwrap(), "Hello Lima!");

    let run = host.cli(&["restart", "r-1", "--new-id"]).await;
    let new_id = run.ok().trim();
    assert_ne!(new_id, "r-1");
    let copy = host.finished(new_id).await;
    assert_eq!(copy.name, "hello");
    assert_eq!(copy.output::<String>().unwrap(), "Hello Lima!");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_id() {
    let host = Host::start().await;
    host.hello_done("p-1", "Quito").await;
    host.cli(&["start", "approval", "--id", "p-2"]).await.ok();
    host.started("p-2").await;

    assert_eq!(
        host.cli(&["purge", "p-1"]).await.ok(),
        "purged instance `p-1`\n"
    );
    host.cli(&["status", "p-1"])
        .await
        .fails(3, "no instance with id `p-1`");
    host.cli(&["purge", "p-1"]).await.fails(3, "p-1");
    host.cli(&["purge", "p-2"])
        .await
        .fails(1, "only finished instances are purged");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_filter_reports_how_many() {
    let host = Host::start().await;
    for (id, name) in [("f-1", "Oslo"), ("f-2", "Rome"), ("f-3", "Bern")] {
        host.hello_done(id, name).await;
    }
    host.cli(&["start", "approval", "--id", "f-4"]).await.ok();
    host.started("f-4").await;

    // Without --yes and no terminal to ask on, nothing happens.
    host.cli(&["purge", "--from", "2000-01-01"])
        .await
        .fails(2, "--yes");
    let future = host
        .cli(&["purge", "--from", "2999-01-01T00:00:00Z", "--yes"])
        .await;
    assert_eq!(future.ok(), "no finished instances match; nothing purged\n");
    let failed_only = host
        .cli(&[
            "purge",
            "--from",
            "2000-01-01",
            "--status",
            "Failed",
            "--yes",
        ])
        .await;
    assert_eq!(
        failed_only.ok(),
        "no finished instances match; nothing purged\n"
    );

    let run = host
        .cli(&[
            "purge",
            "--from",
            "2000-01-01",
            "--status",
            "Completed",
            "--yes",
        ])
        .await;
    assert_eq!(run.ok(), "purged 3 of 3 instances\n");
    assert_eq!(run.stderr, "", "no progress bar without a terminal");
    let left: Vec<Status> = host.cli(&["list", "--json"]).await.json();
    let left: Vec<&str> = left.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(left, ["f-4"]);
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_signalled_read_and_listed() {
    let host = Host::start().await;
    let run = host
        .cli(&["entity", "signal", "counter", "c1", "add", "--input", "5"])
        .await;
    assert_eq!(run.ok(), "signalled `add` to entity `@counter@c1`\n");
    host.cli(&["entity", "signal", "Counter", "c1", "add", "--input", "5"])
        .await
        .ok();
    host.cli(&["entity", "signal", "counter", "c2", "add", "--input", "1"])
        .await
        .ok();
    host.runtime.idle().await;

    let run = host
        .cli(&["entity", "get", "counter", "c1", "--json"])
        .await;
    assert_eq!(run.ok(), "{\"value\":10}\n");
    let state: Value = host.cli(&["entity", "get", "counter", "c1"]).await.json();
    assert_eq!(state, json!({"value": 10}));

    let listed: Vec<EntityListItem> = host
        .cli(&["entity", "list", "--state", "--json"])
        .await
        .json();
    let keys: Vec<(&str, &str, Option<&Value>)> = listed
        .iter()
        .map(|e| {
            (
                e.entity_id.name.as_str(),
                e.entity_id.key.as_str(),
                e.state.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("counter", "c1", Some(&json!({"value": 10}))),
            ("counter", "c2", Some(&json!({"value": 1})))
        ]
    );
    let run = host.cli(&["entity", "list", "counter", "--state"]).await;
    let table: Vec<&str> = run.ok().lines().collect();
    assert!(
        table[0].starts_with("NAME") && table[0].ends_with("STATE"),
        "{table:#?}"
    );
    assert!(table[1].starts_with("counter  c1") && table[1].ends_with("{\"value\":10}"));
    assert_eq!(
        host.cli(&["entity", "list", "nothing"]).await.ok(),
        "no entities\n"
    );

    host.cli(&["entity", "get", "counter", "c9"])
        .await
        .fails(3, "entity `@counter@c9` does not exist");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong_with_their_exit_codes() {
    let host = Host::start().await;
    host.cli(&["status", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    host.cli(&["start", "no_such_flow"])
        .await
        .fails(1, "no_such_flow");
    let run = host.cli(&["start", "hello", "--input", "{bad"]).await;
    run.fails(2, "--input");
    assert!(run.stderr.contains("not valid JSON"), "{run:#?}");
    host.cli(&["list", "--status", "Sleeping"])
        .await
        .fails(2, "--status");
    host.cli(&["list", "--from", "yesterday"])
        .await
        .fails(2, "--from");
    host.cli(&["--store", "x.db", "list"])
        .await
        .fails(2, "not both");
    host.cli(&["status"]).await.fails(2, "<ID>");
    host.cli(&["--task-hub", "other", "list"])
        .await
        .fails(1, "this host serves task hub `default`, not `other`");
    host.runtime.shutdown().await;

    // A port nothing listens on: bind one, then let it go.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let run = durable(&["--host", &closed, "list"], &[]).await;
    run.fails(4, &format!("is a host running at {closed}?"));
    assert!(
        run.stderr
            .contains("cargo run -p durable-examples --bin durable-demo")
    );
    // The same through the environment.
    durable(&["status", "x"], &[("DURABLE_HOST", &closed)])
        .await
        .fails(4, "connection refused");
    durable(&["--store", "/no/such/dir/durable.db", "list"], &[])
        .await
        .fails(4, "no store at `/no/such/dir/durable.db`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_key_wants_it() {
    let host = Host::start_with(|http| http.key("s3cret")).await;
    host.cli(&["list"]).await.fails(1, "requires a key");
    host.cli(&["--key", "wrong", "list"])
        .await
        .fails(1, "refused the key");
    host.cli(&[
        "--key", "s3cret", "start", "hello", "--id", "k-1", "--input", "\"Kyiv\"",
    ])
    .await
    .ok();
    let status: Status = durable(
        &["--host", &host.url, "status", "k-1", "--json"],
        &[("DURABLE_KEY", "s3cret")],
    )
    .await
    .json();
    assert_eq!(status.name, "hello");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_backend_works_without_a_host_and_answers_the_same() {
    let host = Host::start().await;
    host.hello_done("st-1", "Cairo").await;
    host.hello_done("st-2", "Lagos").await;
    host.cli(&["start", "approval", "--id", "st-3"]).await.ok();
    host.started("st-3").await;
    host.cli(&["entity", "signal", "counter", "c1", "add", "--input", "7"])
        .await
        .ok();
    host.runtime.idle().await;
    let over_http: Value = host
        .cli(&["status", "st-1", "--history", "--json"])
        .await
        .json();
    let listed_over_http: Value = host.cli(&["list", "--json"]).await.json();
    host.runtime.shutdown().await;
    host.cli(&["list"]).await.fails(4, "is a host running");

    // The same answers, straight from the file.
    let on_store: Value = host
        .cli_on_store(&["status", "st-1", "--history", "--json"])
        .await
        .json();
    assert_eq!(on_store, over_http);
    let listed: Value = host.cli_on_store(&["list", "--json"]).await.json();
    assert_eq!(listed, listed_over_http);
    let out = host.cli_on_store(&["status", "st-1", "--history"]).await;
    assert!(out.ok().contains("TaskCompleted"), "{out:#?}");
    host.cli_on_store(&["status", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    let state = host
        .cli_on_store(&["entity", "get", "counter", "c1", "--json"])
        .await;
    assert_eq!(state.ok(), "{\"value\":7}\n");

    // Purge, one and by filter; the store named through the environment once.
    assert_eq!(
        host.cli_on_store(&["purge", "st-1"]).await.ok(),
        "purged instance `st-1`\n"
    );
    let db = host.db.to_str().unwrap();
    let run = durable(
        &["purge", "--from", "2000-01-01", "--yes"],
        &[("DURABLE_STORE", db)],
    )
    .await;
    assert_eq!(run.ok(), "purged 1 of 1 instances\n");
    let left: Vec<Status> = host.cli_on_store(&["list", "--json"]).await.json();
    let left: Vec<&str> = left.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(left, ["st-3"]);
    // A flag beats the environment.
    let run = durable(
        &["--store", db, "list", "--json"],
        &[("DURABLE_HOST", "http://127.0.0.1:1")],
    )
    .await;
    assert_eq!(run.json::<Vec<Status>>().len(), 1);
}

/// The store backend on PostgreSQL: a host (no HTTP) runs on the database, and the CLI reads
/// and manages its instances through `--store postgres://…` with the host's task hub.
/// Needs `DURABLE_POSTGRES_URL` (the README's test command provides one).
#[tokio::test]
async fn the_store_backend_works_on_postgresql() {
    let Ok(url) = std::env::var("DURABLE_POSTGRES_URL") else {
        eprintln!("skipped: DURABLE_POSTGRES_URL is not set (run under scripts/with-postgres)");
        return;
    };
    let hub = format!("cli_{}", std::process::id());
    let store = durable::store::Postgres::connect(&url).await.unwrap();
    let runtime = Runtime::builder()
        .store(store)
        .task_hub(&hub)
        .register(hello)
        .register(greet)
        .register(approval)
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let id = client
        .start(hello, "Lima".to_string())
        .instance_id("pg-1")
        .await
        .unwrap();
    client.wait_for_completion(&id, WAIT).await.unwrap();
    let on_pg = |args: &[&str]| {
        let mut all = vec!["--store", url.as_str(), "--task-hub", hub.as_str()];
        all.extend(args);
        let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            durable(&all, &[]).await
        }
    };
    let listed: Vec<Status> = on_pg(&["list", "--json"]).await.json();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id, "pg-1");
    assert_eq!(listed[0].runtime_status, "Completed");
    let status = on_pg(&["status", "pg-1", "--history"]).await;
    assert!(status.ok().contains("TaskCompleted"), "{status:#?}");

    // Manage a running one: raise its event through the store; the host finishes it.
    on_pg(&["start", "approval", "--id", "pg-2"]).await.ok();
    client.wait_for_start("pg-2", WAIT).await.unwrap();
    on_pg(&["raise", "pg-2", "approval", "--data", "true"])
        .await
        .ok();
    let done = client.wait_for_completion("pg-2", WAIT).await.unwrap();
    assert!(done.output::<bool>().unwrap());
    assert_eq!(
        on_pg(&["purge", "--from", "2000-01-01", "--yes"])
            .await
            .ok(),
        "purged 2 of 2 instances\n"
    );
    on_pg(&["status", "pg-1"])
        .await
        .fails(3, "no instance with id `pg-1`");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_export_writes_replayable_files_and_import_loads_them_into_a_store() {
    use durable::history::HistoryFile;

    let host = Host::start().await;
    for (id, name) in [("h-1", "Oslo"), ("h-2", "Rome"), ("h-3", "Bern")] {
        host.hello_done(id, name).await;
    }
    host.cli(&["start", "approval", "--id", "h-4"]).await.ok();
    host.started("h-4").await;
    host.runtime.idle().await;
    let out = tempfile::tempdir().unwrap();
    let path = |name: &str| out.path().join(name).to_str().unwrap().to_string();

    // One instance to stdout, and to a file: the same document, and it replays.
    let printed = host.cli(&["history", "export", "h-1"]).await;
    let file = HistoryFile::from_json(printed.ok()).unwrap();
    assert_eq!((file.format.as_str(), file.version), ("durable-history", 1));
    assert_eq!(file.instance.instance_id, "h-1");
    assert_eq!(file.instance.runtime_status, RuntimeStatus::Completed);
    assert_eq!(durable::testing::replay_check(hello, &file), Ok(()));
    let h1 = path("h-1.json");
    assert_eq!(
        host.cli(&["history", "export", "h-1", "--out", &h1])
            .await
            .ok(),
        format!("exported `h-1` to {h1}\n")
    );
    let written = HistoryFile::from_json(&std::fs::read_to_string(&h1).unwrap()).unwrap();
    assert_eq!(written, file);

    // The latest instances of one orchestrator, one file each.
    let dir = path("latest");
    let run = host
        .cli(&[
            "history",
            "export",
            "--orchestrator",
            "hello",
            "--last",
            "2",
            "--dir",
            &dir,
        ])
        .await;
    assert_eq!(run.ok().lines().count(), 2, "{run:#?}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["h-2.json", "h-3.json"]);
    host.cli(&["history", "export", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    host.cli(&[
        "history",
        "export",
        "--orchestrator",
        "nothing",
        "--last",
        "1",
        "--dir",
        &dir,
    ])
    .await
    .fails(3, "no instances of orchestrator `nothing`");
    host.cli(&["history", "export", "h-1", "--last", "2"])
        .await
        .fails(2, "--last");
    host.cli(&["history", "import", &h1])
        .await
        .fails(2, "writes into a store; give --store");
    let h4 = path("h-4.json");
    host.cli(&["history", "export", "h-4", "--out", &h4])
        .await
        .ok();
    host.runtime.shutdown().await;

    // On the store the host left: the same document.
    let on_store = host.cli_on_store(&["history", "export", "h-1"]).await;
    assert_eq!(HistoryFile::from_json(on_store.ok()).unwrap(), file);

    // Into another store.
    let other = out.path().join("local.db");
    drop(Sqlite::open(&other).unwrap());
    let other = other.to_str().unwrap().to_string();
    let local = |args: &[&str]| {
        let mut all = vec!["--store".to_string(), other.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            durable(&all, &[]).await
        }
    };
    let h2 = format!("{dir}/h-2.json");
    assert_eq!(
        local(&["history", "import", &h1, &h2, &h4]).await.ok(),
        format!("imported `h-1` from {h1}\nimported `h-2` from {h2}\nimported `h-4` from {h4}\n")
    );
    let status: Status = local(&["status", "h-1", "--json"]).await.json();
    assert_eq!(status.runtime_status, "Completed");
    assert_eq!(status.output, json!("Hello Oslo!"));
    let back = local(&["history", "export", "h-1"]).await;
    assert_eq!(HistoryFile::from_json(back.ok()).unwrap(), file);
    local(&["history", "import", &h1]).await.fails(
        1,
        "instance `h-1` already exists in this store; add --replace",
    );
    local(&["history", "import", "--replace", &h1]).await.ok();

    // Bad files: nothing of the batch is imported, and the message names the file.
    let bad = |name: &str, text: &str| {
        let p = path(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let h3 = format!("{dir}/h-3.json");
    let text = std::fs::read_to_string(&h3).unwrap();
    let cases = [
        (bad("text.json", "hello"), "not a JSON document"),
        (
            bad("cut.json", &text[..text.len() / 2]),
            "not a JSON document",
        ),
        (
            bad("other.json", r#"{"format":"something-else","version":1}"#),
            "`format` is \"something-else\", expected \"durable-history\"",
        ),
        (
            bad(
                "newer.json",
                &text.replacen("\"version\": 1", "\"version\": 9", 1),
            ),
            "version 9 is not supported",
        ),
        (path("missing.json"), "cannot read"),
    ];
    for (file, words) in &cases {
        let run = local(&["history", "import", &h3, file]).await;
        run.fails(1, words);
        assert!(run.stderr.contains(file.as_str()), "{run:#?}");
    }
    local(&["status", "h-3"])
        .await
        .fails(3, "no instance with id `h-3`");

    // An imported running instance carries on where production left it.
    let runtime = Runtime::builder()
        .store(Sqlite::open(&other).unwrap())
        .register(approval)
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    client.raise_event("h-4", "Approval", true).await.unwrap();
    let done = client.wait_for_completion("h-4", WAIT).await.unwrap();
    assert!(done.output::<bool>().unwrap(), "{done:?}");
    runtime.shutdown().await;
}

/// `start --version` starts under a version; `list --version` finds instances by it, over the
/// API and straight on the store. This host has no version, so it leaves them (they stay
/// pending) for a host that may run them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_list_by_version() {
    let host = Host::start().await;
    host.cli(&["start", "approval", "--id", "ver-1", "--version", "0.9"])
        .await
        .ok();
    host.cli(&["start", "approval", "--id", "plain-1"])
        .await
        .ok();
    host.started("plain-1").await;
    let status: Status = host.cli(&["status", "ver-1", "--json"]).await.json();
    assert_eq!(status.version.as_deref(), Some("0.9"));
    assert_eq!(status.runtime_status, "Pending");
    let summary = host.cli(&["status", "ver-1"]).await;
    assert!(
        summary.ok().contains("Version:       0.9\n"),
        "{summary:#?}"
    );
    let listed: Vec<Status> = host
        .cli(&["list", "--version", "0.9", "--json"])
        .await
        .json();
    let ids: Vec<&str> = listed.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(ids, ["ver-1"]);
    host.cli(&["start", "approval", "--version", " 0.9"])
        .await
        .fails(1, "white space");
    host.runtime.shutdown().await;

    host.cli_on_store(&["start", "approval", "--id", "ver-2", "--version", "0.9"])
        .await
        .ok();
    let listed: Vec<Status> = host
        .cli_on_store(&["list", "--version", "0.9", "--json"])
        .await
        .json();
    let ids: Vec<&str> = listed.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(ids, ["ver-1", "ver-2"]);
    host.cli_on_store(&["start", "approval", "--version", ""])
        .await
        .fails(1, "empty");
}

//! The harness of the command-line tests: a host started in this process (SQLite store, HTTP
//! API on a free loopback port), the real `durable` binary run against it, and what it printed.
//! Shared by `cli.rs` and `cli_history.rs`; each uses part of it.
#![allow(dead_code, unused_imports)]

pub use std::io::Read;
pub use std::net::TcpListener;
pub use std::path::PathBuf;
pub use std::process::{Command, Stdio};
pub use std::sync::atomic::{AtomicBool, Ordering};
pub use std::time::{Duration, Instant};

pub use durable::http::HttpOptions;
pub use durable::http::api::{EntityListItem, Status};
pub use durable::prelude::*;
pub use durable::store::Sqlite;
pub use serde::de::DeserializeOwned;
pub use serde::{Deserialize, Serialize};
pub use serde_json::{Value, json};
pub use tempfile::TempDir;

/// How long any one wait may take before the test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(30);

#[activity]
pub async fn greet(_ctx: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("Hello {name}!"))
}

#[orchestrator]
pub async fn hello(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
    ctx.call_activity(greet, name).await
}

#[orchestrator]
pub async fn approval(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
    ctx.wait_for_event::<bool>("Approval").await
}

/// Set once `flaky` has failed: it fails on its first run only.
pub static FLAKY_FAILED: AtomicBool = AtomicBool::new(false);

#[activity]
pub async fn flaky(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    if !FLAKY_FAILED.swap(true, Ordering::SeqCst) {
        return Err(Error::msg("the payment service is down"));
    }
    Ok(n * 2)
}

#[orchestrator]
pub async fn double_flaky(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    ctx.call_activity(flaky, n).await
}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    pub value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }
}

/// A host on a fresh SQLite file, serving the HTTP API on a free port.
pub struct Host {
    pub runtime: Runtime,
    pub url: String,
    pub db: PathBuf,
    _dir: TempDir,
}

impl Host {
    pub async fn start() -> Host {
        Self::start_with(|http| http).await
    }

    pub async fn start_with(http: impl FnOnce(HttpOptions) -> HttpOptions) -> Host {
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
    pub async fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--host", self.url.as_str()];
        all.extend(args);
        durable(&all, &[]).await
    }

    /// Runs `durable --store FILE ARGS`.
    pub async fn cli_on_store(&self, args: &[&str]) -> Run {
        let db = self.db.to_str().unwrap();
        let mut all = vec!["--store", db];
        all.extend(args);
        durable(&all, &[]).await
    }

    pub fn client(&self) -> Client {
        self.runtime.client()
    }

    pub async fn finished(&self, id: &str) -> InstanceStatus {
        self.client().wait_for_completion(id, WAIT).await.unwrap()
    }

    pub async fn started(&self, id: &str) {
        self.client().wait_for_start(id, WAIT).await.unwrap();
    }

    /// Polls (bounded) until the instance is in `status`.
    pub async fn reaches(&self, id: &str, status: RuntimeStatus) {
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
    pub async fn hello_done(&self, id: &str, name: &str) {
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
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "durable failed: {self:#?}");
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    /// Asserts failure with `code` and an `error:` line containing `words`.
    pub fn fails(&self, code: i32, words: &str) {
        assert_eq!(self.code, code, "wrong exit code: {self:#?}");
        assert!(
            self.stderr.starts_with("error: ") && self.stderr.contains(words),
            "stderr should say `{words}`: {self:#?}"
        );
    }
}

/// Runs the `durable` binary with `args` and extra environment `env`, stdin closed; kills it
/// if it runs longer than [`WAIT`].
pub async fn durable(args: &[&str], env: &[(&str, &str)]) -> Run {
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

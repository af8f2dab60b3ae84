//! `durable-demo`: the demo host. It registers every example orchestrator, activity and entity
//! of `durable-examples`, runs them on the embedded SQLite store (`--data`, default
//! `.durable-data/`, kept between runs) and serves the HTTP management API and the web
//! dashboard (`/durable/`) until Ctrl-C or SIGTERM. On start it prints the dashboard's address
//! and `curl` commands to paste into another terminal.
//!
//! Instances survive the host: stop it (or kill it) while an instance waits, start it again on
//! the same `--data`, and the instance carries on.
//!
//! `durable-demo scenarios` runs every pattern once instead, reports on each and exits.
//!
//! ```sh
//! cargo run --release -p durable-examples --bin durable-demo
//! cargo run --release -p durable-examples --bin durable-demo -- --listen 127.0.0.1:8080 --key s3cret
//! cargo run --release -p durable-examples --bin durable-demo -- scenarios
//! cargo run --release -p durable-examples --bin durable-demo -- scenarios --only approval --only retry
//! cargo run --release -p durable-examples --bin durable-demo -- scenarios --list
//! ```

mod scenarios;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use durable::http::{BASE_PATH, HttpOptions};
use durable::prelude::*;
use durable_examples::approval;

const ABOUT: &str = "The durable demo host: every example pattern behind the HTTP management API, \
                     on the embedded SQLite store.";

const AFTER_HELP: &str = "Instances and entities are kept in DIR/durable.db: stop the host (or \
                          kill it) and start it again, and unfinished instances carry on. \
                          `durable-demo scenarios` runs every pattern once and reports instead.";

/// Command-line options.
#[derive(Parser, Debug)]
#[command(name = "durable-demo", version, about = ABOUT, after_help = AFTER_HELP)]
struct Args {
    /// The address to serve the HTTP API on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7071")]
    listen: SocketAddr,

    /// The folder to keep the SQLite store in (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".durable-data",
        global = true
    )]
    data: PathBuf,

    /// Require this key on every request (`?code=KEY` or the `x-functions-key` header).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every example pattern once, one after the other, report on each and exit.
    Scenarios(scenarios::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Scenarios(scenario_args)) => {
            scenarios::run_all(scenario_args, &args.data).await
        }
        None => host(args.listen, &args.data, args.key.as_deref()).await,
    }
}

/// Opens (creating it if needed) the SQLite store `data/durable.db`; returns it and its path.
fn open_store(data: &Path) -> Result<(durable::store::Sqlite, PathBuf), String> {
    std::fs::create_dir_all(data)
        .map_err(|err| format!("cannot create {}: {err}", data.display()))?;
    let path = data.join("durable.db");
    let store = durable::store::Sqlite::open(&path).map_err(|err| err.to_string())?;
    Ok((store, path))
}

/// Serves every example on the HTTP API until Ctrl-C or SIGTERM, then shuts down cleanly.
async fn host(listen: SocketAddr, data: &Path, key: Option<&str>) -> ExitCode {
    durable_examples::init_logging_with("warn,durable=info");
    let (store, path) = match open_store(data) {
        Ok(opened) => opened,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Listen for the signals before saying we are up, so that a signal sent as soon as the
    // banner appears stops the host cleanly rather than killing it.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("error: cannot listen for Ctrl-C: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut http = HttpOptions::new(listen);
    if let Some(key) = key {
        http = http.key(key);
    }
    let runtime = match durable_examples::register_all(Runtime::builder())
        .store(store)
        .http_options(http)
        .start()
        .await
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: the host did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let Some(addr) = runtime.http_addr() else {
        eprintln!("error: the host started without its HTTP API");
        runtime.shutdown().await;
        return ExitCode::FAILURE;
    };
    print!("{}", banner(addr, &path, key));

    let signal = signals.recv().await;
    println!("{signal}: shutting down (press Ctrl-C again to stop at once)");
    tokio::spawn(async move {
        let signal = signals.recv().await;
        eprintln!("{signal} again: stopping without waiting");
        std::process::exit(130);
    });
    runtime.shutdown().await;
    println!("stopped; unfinished instances carry on at the next start");
    ExitCode::SUCCESS
}

/// Ctrl-C, and SIGTERM on Unix, registered up front.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(not(unix))]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {
                ctrl_c: tokio::signal::windows::ctrl_c()?,
            })
        }
    }

    /// Waits for the next signal; returns what it was, in words.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "interrupted",
                _ = self.terminate.recv() => "terminated",
            }
        }
        #[cfg(not(unix))]
        {
            self.ctrl_c.recv().await;
            "interrupted"
        }
    }
}

/// What the host prints once it listens on `addr`: where it is, and commands to paste.
fn banner(addr: SocketAddr, store: &Path, key: Option<&str>) -> String {
    // A host on every interface is reached on loopback from this machine.
    let reach = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let url = |path: &str, query: &str| {
        let mut params: Vec<String> = Vec::new();
        if !query.is_empty() {
            params.push(query.to_string());
        }
        if let Some(key) = key {
            params.push(format!("code={}", url_encode(key)));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        format!("'http://{reach}{BASE_PATH}/{path}{query}'")
    };
    let event = approval::APPROVAL_EVENT;
    let lines = [
        format!(
            "durable-demo: every example pattern, on the SQLite store {}",
            store.display()
        ),
        format!("listening on http://{addr}"),
        format!(
            "dashboard: http://{reach}{}/{}",
            durable::http::dashboard::BASE,
            key.map(|key| format!("?code={}", url_encode(key)))
                .unwrap_or_default()
        ),
        String::new(),
        "Try it from another terminal:".to_string(),
        "  # chaining: start hello_cities as instance hello-1, then poll it until it answers 200"
            .to_string(),
        format!(
            "  curl -i -X POST {}",
            url("orchestrators/hello_cities/hello-1", "")
        ),
        format!("  curl -i {}", url("instances/hello-1", "")),
        "  # human interaction: wait up to an hour for a decision, then approve".to_string(),
        format!(
            "  curl -i -X POST -d 3600 {}",
            url("orchestrators/approval_workflow/approval-1", "")
        ),
        format!(
            "  curl -i -X POST -d true {}",
            url(&format!("instances/approval-1/raiseEvent/{event}"), "")
        ),
        format!("  curl -i {}", url("instances/approval-1", "")),
        "  # entities: add 5 to the Counter `demo` (signal), then read it".to_string(),
        format!(
            "  curl -i -X POST -d 5 {}",
            url("entities/counter/demo", "op=add")
        ),
        format!("  curl -i {}", url("entities/counter/demo", "")),
        "  # every instance".to_string(),
        format!("  curl -i {}", url("instances", "")),
        "  # the `durable` command-line tool manages instances and entities too:".to_string(),
        "  cargo run -p durable-fn --features cli --bin durable -- --help".to_string(),
        String::new(),
        "Ctrl-C stops the host; unfinished instances carry on at the next start.".to_string(),
    ];
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// `text` with everything but unreserved URL characters percent-encoded.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! W11: a host process killed with SIGKILL in the middle of a W3-style burst, then restarted.
//!
//! The benchmark re-executes itself as `durable-bench host …` (a hidden subcommand): the host
//! starts the instances (first run only), reports progress on stdout (`started`, `done K`,
//! `finished`) and exits once everything completed and settled. The parent kills the first
//! host once a third of the instances completed, starts a second one, times how long it takes
//! to finish the rest, and then checks every instance's output and history and an
//! exactly-once counter that every instance signals.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use durable::InstanceQuery;
use durable::history::EventKind;
use durable::prelude::*;
use durable::store::{Postgres, Sqlite, Store};

use super::funcs::{BenchCounter, hello_expected, hello_sequence5_counted};
use super::workloads::{WAIT, in_flight, size};
use super::{BenchResult, Env, Options, StoreKind, StoreSpec, builder};

/// How long a host's leases last: a restarted host waits this long for the dead one's work.
pub const LEASE: Duration = Duration::from_secs(2);
const COUNTER_KEY: &str = "w11";

/// The id of W11 instance `i`.
fn instance_id(i: u64) -> String {
    format!("w11-{i}")
}

/// What the hidden `host` subcommand is told.
#[derive(Clone, Debug)]
pub struct HostArgs {
    /// `sqlite`, `sqlite-normal` or `postgres`.
    pub store: StoreKind,
    /// The SQLite file, or the PostgreSQL URL.
    pub target: String,
    /// The PostgreSQL task hub.
    pub hub: Option<String>,
    /// How many instances make up the workload.
    pub n: u64,
    /// Whether this host starts the instances (the first host does).
    pub start: bool,
}

impl HostArgs {
    /// Parses `--store S --target T [--hub H] --n N [--start]`.
    pub fn parse(args: &[String]) -> Result<HostArgs, Error> {
        let mut store = None;
        let mut target = None;
        let mut hub = None;
        let mut n = None;
        let mut start = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::msg(format!("{arg} needs a value")))
            };
            match arg.as_str() {
                "--store" => {
                    store = Some(match value()?.as_str() {
                        "sqlite" => StoreKind::Sqlite,
                        "sqlite-normal" => StoreKind::SqliteNormal,
                        "postgres" => StoreKind::Postgres,
                        other => return Err(Error::msg(format!("host: bad store {other}"))),
                    })
                }
                "--target" => target = Some(value()?),
                "--hub" => hub = Some(value()?),
                "--n" => n = Some(value()?.parse::<u64>().map_err(Error::from)?),
                "--start" => start = true,
                other => return Err(Error::msg(format!("host: unknown argument {other}"))),
            }
        }
        Ok(HostArgs {
            store: store.ok_or_else(|| Error::msg("host: --store is required"))?,
            target: target.ok_or_else(|| Error::msg("host: --target is required"))?,
            hub,
            n: n.ok_or_else(|| Error::msg("host: --n is required"))?,
            start,
        })
    }
}

async fn open(kind: StoreKind, target: &str, hub: Option<&str>) -> Result<Arc<dyn Store>, Error> {
    Ok(match kind {
        StoreKind::Postgres => {
            let pg = Postgres::connect(target).await.map_err(Error::from)?;
            Arc::new(pg.in_task_hub(hub.unwrap_or("default")))
        }
        StoreKind::SqliteNormal => Arc::new(Sqlite::open_with(
            target,
            durable::store::Durability::Normal,
        )?),
        _ => Arc::new(Sqlite::open(target)?),
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The host process: runs the W11 workload until every instance completed.
pub async fn host_main(args: HostArgs) -> Result<(), Error> {
    let store = open(args.store, &args.target, args.hub.as_deref()).await?;
    let rt = builder(store).lease_duration(LEASE).start().await?;
    let client = rt.client();
    let c = &client;
    if args.start {
        in_flight(args.n, |i| async move {
            c.start(hello_sequence5_counted, (i, COUNTER_KEY.to_string()))
                .instance_id(instance_id(i))
                .await
        })
        .await?;
        say("started");
    }
    for i in 0..args.n {
        client.wait_for_completion(&instance_id(i), WAIT).await?;
        say(&format!("done {}", i + 1));
    }
    rt.idle().await;
    rt.shutdown().await;
    say("finished");
    Ok(())
}

struct Host {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(opts: &Options, env: &Env, spec: &StoreSpec, n: u64, start: bool) -> Result<Host, Error> {
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("host")
        .arg("--store")
        .arg(opts.store.name())
        .arg("--n")
        .arg(n.to_string());
    match spec {
        StoreSpec::Sqlite(path) => {
            cmd.arg("--target").arg(path);
        }
        StoreSpec::Postgres { url, hub } => {
            cmd.arg("--target").arg(url).arg("--hub").arg(hub);
        }
        StoreSpec::Memory => return Err(Error::msg("a memory store cannot be shared")),
    }
    if start {
        cmd.arg("--start");
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.dir().join("w11-hosts.log"))
        .map_err(Error::from)?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .map_err(Error::from)?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(Host { child, lines })
}

impl Host {
    /// Waits (blocking, off the async threads) for a line satisfying `stop`, or for the host
    /// to close its stdout. Returns the line.
    async fn until(self, stop: impl Fn(&str) -> bool + Send + 'static) -> (Self, Option<String>) {
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) if stop(&line) => return (self, Some(line)),
                    Ok(_) => {}
                    Err(_) => return (self, None),
                }
            }
        })
        .await
        .expect("the line reader does not panic")
    }
}

fn host_log(env: &Env) -> String {
    let log = std::fs::read_to_string(env.dir().join("w11-hosts.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

async fn count_completed(client: &Client) -> Result<u64, Error> {
    let mut query = InstanceQuery {
        runtime_status: vec![RuntimeStatus::Completed],
        instance_id_prefix: Some("w11-".to_string()),
        page_size: Some(1000),
        ..Default::default()
    };
    let mut count = 0;
    loop {
        let page = client.query(&query).await?;
        count += page.instances.len() as u64;
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => return Ok(count),
        }
    }
}

/// W11: kill -9 the host during a burst of HelloSequence5 instances, restart it, and check.
pub async fn w11(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    if opts.store == StoreKind::Memory {
        return Ok(vec![
            BenchResult::new("W11", "not applicable", 0, 0.0)
                .note("not applicable: nothing survives a process on the memory store"),
        ]);
    }
    let n = size(opts, 1000);
    let (store, spec) = env.fresh("w11")?;
    let client = Client::new(store);

    let t0 = Instant::now();
    let host = spawn(opts, env, &spec, n, true)?;
    let kill_at = (n / 3).max(1);
    let (host, line) = host
        .until(move |l| {
            l.strip_prefix("done ")
                .and_then(|k| k.parse::<u64>().ok())
                .is_some_and(|k| k >= kill_at)
                || l == "finished"
        })
        .await;
    let mut child = host.child;
    let finished_before_kill = child.try_wait().map_err(Error::from)?.is_some();
    child.kill().map_err(Error::from)?;
    let killed = child.wait().map_err(Error::from)?;
    let first_host_secs = t0.elapsed().as_secs_f64();
    if line.is_none() {
        return Err(Error::msg(format!(
            "the first host stopped early ({killed}): {}",
            host_log(env)
        )));
    }
    let done_at_kill = count_completed(&client).await?;

    let t1 = Instant::now();
    let host = spawn(opts, env, &spec, n, false)?;
    let (host, line) = host.until(|l| l == "finished").await;
    let recovery = t1.elapsed().as_secs_f64();
    let mut child = host.child;
    let exit = child.wait().map_err(Error::from)?;
    if line.is_none() || !exit.success() {
        return Err(Error::msg(format!(
            "the restarted host did not finish ({exit}): {}",
            host_log(env)
        )));
    }

    // Verify: every instance completed once, with the right output, and no step twice.
    let mut problems = Vec::new();
    let c = &client;
    let statuses = in_flight(n, |i| async move {
        c.status_with_history(&instance_id(i)).await
    })
    .await?;
    for (i, status) in statuses.into_iter().enumerate() {
        let Some(status) = status else {
            problems.push(format!("{} is missing", instance_id(i as u64)));
            continue;
        };
        if status.output::<u64>().ok() != Some(hello_expected(i as u64)) {
            problems.push(format!(
                "{} ended {} with {:?}",
                status.instance_id, status.runtime_status, status.output
            ));
        }
        let mut scheduled = HashSet::new();
        let mut completed = HashSet::new();
        for event in status.history.iter().flatten() {
            match &event.kind {
                EventKind::TaskScheduled { .. } if !scheduled.insert(event.event_id) => problems
                    .push(format!(
                        "{}: a step was scheduled twice",
                        status.instance_id
                    )),
                EventKind::TaskCompleted {
                    task_scheduled_id, ..
                } if !completed.insert(*task_scheduled_id) => {
                    problems.push(format!("{}: a step completed twice", status.instance_id))
                }
                _ => {}
            }
        }
        if completed.len() != 5 {
            problems.push(format!(
                "{}: {} steps completed, expected 5",
                status.instance_id,
                completed.len()
            ));
        }
    }
    let counter = client.read_entity::<BenchCounter>(COUNTER_KEY).await?;
    let (value, ops) = counter.map_or((0, 0), |c| (c.value, c.ops));
    if value != n || ops != n {
        problems.push(format!(
            "the exactly-once counter is at {value} ({ops} ops), expected {n}"
        ));
    }
    let mut r = BenchResult::new("W11", format!("kill -9 during {n} hello-seq5"), n, recovery)
        .rate(
            (n - done_at_kill.min(n)) as f64,
            "orchestrations/s after restart",
        )
        .with("recovery_s", recovery)
        .with("completed_at_kill", done_at_kill as f64)
        .with("first_host_s", first_host_secs)
        .note(format!("lease {} s", LEASE.as_secs()));
    if finished_before_kill {
        r.add_note("the first host finished before it was killed");
    }
    if let Some(first) = problems.first() {
        r.fail(format!("{} problems, first: {first}", problems.len()));
    }
    Ok(vec![r])
}

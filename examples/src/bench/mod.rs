//! The benchmark program's workloads (W1–W11 of `BENCHMARKS.md`), their stores and their
//! report. The `durable-bench` binary is a thin command line around [`run`].

pub mod funcs;
pub mod host;
pub mod workloads;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use durable::prelude::*;
use durable::store::{Durability, Memory, Postgres, Sqlite, Store};
use durable::{ErrorKind, RuntimeBuilder};
use serde::Serialize;

/// Which store a run uses, and so its durability class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In memory (D0).
    Memory,
    /// SQLite, `synchronous=FULL` (D2).
    Sqlite,
    /// SQLite, `synchronous=NORMAL` (D1).
    SqliteNormal,
    /// PostgreSQL with its defaults (D2), from `DURABLE_POSTGRES_URL`.
    Postgres,
}

impl StoreKind {
    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::SqliteNormal => "sqlite-normal",
            StoreKind::Postgres => "postgres",
        }
    }

    /// The durability class (D0, D1, D2).
    pub fn durability(self) -> &'static str {
        match self {
            StoreKind::Memory => "D0",
            StoreKind::SqliteNormal => "D1",
            StoreKind::Sqlite | StoreKind::Postgres => "D2",
        }
    }

    fn sqlite_durability(self) -> Durability {
        if self == StoreKind::SqliteNormal {
            Durability::Normal
        } else {
            Durability::Full
        }
    }
}

/// The workloads, in the order `all` runs them.
pub const WORKLOADS: [&str; 11] = [
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11",
];

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workloads (ids such as `W3`).
    pub workloads: Vec<String>,
    /// The store.
    pub store: StoreKind,
    /// Replaces each workload's main size(s) with this one size (for smoke runs).
    pub n: Option<u64>,
    /// Runs per variant; medians are reported.
    pub runs: usize,
    /// Print only the JSON lines (no summary table).
    pub json_only: bool,
    /// The path of this program, re-executed as the W11 host.
    pub exe: PathBuf,
    /// The turn slots of each host the workloads start (`max_concurrent_orchestrations`);
    /// `None` keeps the runtime's default.
    pub turn_slots: Option<usize>,
}

impl Options {
    /// A runtime builder on `store` with every benchmark function registered, and the turn
    /// slots asked for (else default limits).
    pub fn builder(&self, store: Arc<dyn Store>) -> RuntimeBuilder {
        let builder = builder(store);
        match self.turn_slots {
            Some(slots) => builder.max_concurrent_orchestrations(slots),
            None => builder,
        }
    }
}

/// One result line.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// The workload id (`W1` … `W11`).
    pub workload: String,
    /// Which variant of the workload.
    pub variant: String,
    /// The store.
    pub store: String,
    /// Its durability class.
    pub durability: String,
    /// The size of the variant (instances, steps, signals, …).
    pub n: u64,
    /// The timed part's wall time, in seconds.
    pub seconds: f64,
    /// The headline rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// The unit of `throughput`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub unit: String,
    /// History events per second, where events are counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_sec: Option<f64>,
    /// Median latency or lateness, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th percentile latency or lateness, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Workload-specific figures (ms per step, µs per replayed event, …).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty", flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Peak resident set of this process so far, in MiB (`VmHWM`).
    pub peak_rss_mb: f64,
    /// Whether the result verified.
    pub ok: bool,
    /// What went wrong, or how to read the figures.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// How many runs the figures are the median of.
    pub runs: usize,
}

impl BenchResult {
    /// A result for `workload`/`variant` of size `n` that took `seconds`; rates are set by the
    /// builder methods.
    pub fn new(workload: &str, variant: impl Into<String>, n: u64, seconds: f64) -> Self {
        BenchResult {
            workload: workload.to_string(),
            variant: variant.into(),
            store: String::new(),
            durability: String::new(),
            n,
            seconds,
            throughput: None,
            unit: String::new(),
            events_per_sec: None,
            p50_ms: None,
            p99_ms: None,
            extra: serde_json::Map::new(),
            peak_rss_mb: 0.0,
            ok: true,
            note: String::new(),
            runs: 1,
        }
    }

    /// Sets the headline rate: `count` per second over `seconds`.
    pub fn rate(mut self, count: f64, unit: &str) -> Self {
        self.throughput = Some(count / self.seconds.max(1e-9));
        self.unit = unit.to_string();
        self
    }

    /// Sets events per second from an event count.
    pub fn events(mut self, events: f64) -> Self {
        self.events_per_sec = Some(events / self.seconds.max(1e-9));
        self
    }

    /// Sets p50/p99 from samples in milliseconds.
    pub fn latencies(mut self, samples_ms: &mut [f64]) -> Self {
        self.p50_ms = percentile(samples_ms, 0.50);
        self.p99_ms = percentile(samples_ms, 0.99);
        self
    }

    /// Adds a workload-specific figure.
    pub fn with(mut self, key: &str, value: f64) -> Self {
        self.extra.insert(key.to_string(), serde_json::json!(value));
        self
    }

    /// Records a verification: when `cond` is false the result is marked not ok with `note`.
    pub fn check(mut self, cond: bool, note: impl FnOnce() -> String) -> Self {
        if !cond {
            self.fail(note());
        }
        self
    }

    /// Marks the result not ok and appends `note`.
    pub fn fail(&mut self, note: impl Into<String>) {
        self.ok = false;
        self.add_note(note);
    }

    /// Appends `note`.
    pub fn add_note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if self.note.split("; ").any(|n| n == note) {
            return;
        }
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(&note);
    }

    /// Adds a note (builder form).
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.add_note(note);
        self
    }
}

/// The value at quantile `q` (nearest rank) of `samples`, which are sorted in place.
pub fn percentile(samples: &mut [f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1])
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Peak resident set size of this process, in MiB, from `/proc/self/status` (0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

/// Where each workload gets a fresh store: a new SQLite file in a temporary folder, a new
/// memory store, or a new task hub of one PostgreSQL database.
pub struct Env {
    /// The store kind.
    pub kind: StoreKind,
    dir: tempfile::TempDir,
    postgres: Option<(Postgres, String)>,
    counter: AtomicU64,
    run_tag: String,
    progress: Progress,
}

impl Env {
    /// Prepares the stores for `kind` (connecting to PostgreSQL when asked).
    pub async fn new(kind: StoreKind) -> Result<Env, Error> {
        let dir = tempfile::Builder::new()
            .prefix("durable-bench-")
            .tempdir()
            .map_err(Error::from)?;
        let postgres = if kind == StoreKind::Postgres {
            let url = std::env::var("DURABLE_POSTGRES_URL").map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "--store postgres needs DURABLE_POSTGRES_URL \
                     (run under scripts/with-postgres)",
                )
            })?;
            let pg = Postgres::connect(&url).await.map_err(Error::from)?;
            Some((pg, url))
        } else {
            None
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Env {
            kind,
            dir,
            postgres,
            counter: AtomicU64::new(0),
            run_tag: format!("b{}x{}", std::process::id(), now.as_millis()),
            progress: Progress::new(),
        })
    }

    /// A fresh, empty store, plus where a separate process can open the same store: a SQLite
    /// file path or a PostgreSQL URL with a task hub.
    pub fn fresh(&self, label: &str) -> Result<(Arc<dyn Store>, StoreSpec), Error> {
        let k = self.counter.fetch_add(1, Ordering::Relaxed);
        match self.kind {
            StoreKind::Memory => Ok((Arc::new(Memory::new()), StoreSpec::Memory)),
            StoreKind::Sqlite | StoreKind::SqliteNormal => {
                let path = self.dir.path().join(format!("{label}-{k}.db"));
                let store = Sqlite::open_with(&path, self.kind.sqlite_durability())?;
                Ok((Arc::new(store), StoreSpec::Sqlite(path)))
            }
            StoreKind::Postgres => {
                let (pg, url) = self.postgres.as_ref().expect("connected in Env::new");
                let hub = format!("{}{}{k}", self.run_tag, label.to_lowercase());
                Ok((
                    Arc::new(pg.in_task_hub(&hub)),
                    StoreSpec::Postgres {
                        url: url.clone(),
                        hub,
                    },
                ))
            }
        }
    }

    /// A folder for this run's files (host logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The progress line (stderr, only when it is a terminal).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

/// How another process opens a store.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// Not shareable.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database and task hub.
    Postgres {
        /// The connection URL.
        url: String,
        /// The task hub.
        hub: String,
    },
}

/// A runtime builder on `store` with every benchmark function registered and default limits.
pub fn builder(store: Arc<dyn Store>) -> RuntimeBuilder {
    funcs::register(Runtime::builder().shared_store(store))
}

/// A one-line progress display on stderr, drawn only when stderr is a terminal.
pub struct Progress {
    on: bool,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Shows `label done/total` (at most ten times a second, and always at the end).
    pub fn update(&self, label: &str, done: u64, total: u64) {
        if !self.on {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !due && done < total {
            return;
        }
        *last = Some(Instant::now());
        let width = 30usize;
        let filled = if total == 0 {
            width
        } else {
            (done as usize * width / total as usize).min(width)
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{label} [{}{}] {done}/{total}",
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        let _ = err.flush();
    }

    /// Shows a plain status message.
    pub fn message(&self, text: &str) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{text}");
            let _ = err.flush();
        }
    }

    /// Clears the line.
    pub fn clear(&self) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Merges the runs of one workload: per variant, the median of every figure; `ok` only when
/// every run verified.
fn merge(runs: Vec<Vec<BenchResult>>) -> Vec<BenchResult> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, Vec<BenchResult>> = Default::default();
    for result in runs.into_iter().flatten() {
        let key = result.variant.clone();
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(result);
    }
    order
        .into_iter()
        .map(|key| {
            let group = groups.remove(&key).unwrap_or_default();
            let mut out = group[0].clone();
            let med = |f: &dyn Fn(&BenchResult) -> Option<f64>| -> Option<f64> {
                let vals: Vec<f64> = group.iter().filter_map(f).collect();
                (!vals.is_empty()).then(|| median(vals))
            };
            out.seconds = med(&|r| Some(r.seconds)).unwrap_or(0.0);
            out.throughput = med(&|r| r.throughput);
            out.events_per_sec = med(&|r| r.events_per_sec);
            out.p50_ms = med(&|r| r.p50_ms);
            out.p99_ms = med(&|r| r.p99_ms);
            for k in out.extra.keys().cloned().collect::<Vec<_>>() {
                if let Some(v) = med(&|r| r.extra.get(&k).and_then(|v| v.as_f64())) {
                    out.extra.insert(k, serde_json::json!(v));
                }
            }
            out.peak_rss_mb = group.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max);
            out.ok = group.iter().all(|r| r.ok);
            for r in &group[1..] {
                for n in r.note.split("; ").filter(|n| !n.is_empty()) {
                    out.add_note(n);
                }
            }
            out.runs = group.len();
            out
        })
        .collect()
}

/// Runs the workloads in `opts`, printing one JSON line per result as each workload finishes
/// and a summary table at the end. Returns every (median) result.
pub async fn run(opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let env = Env::new(opts.store).await?;
    let mut all = Vec::new();
    for workload in &opts.workloads {
        let mut runs = Vec::new();
        for run in 0..opts.runs.max(1) {
            env.progress()
                .message(&format!("{workload} run {}/{}…", run + 1, opts.runs));
            let mut results = match workloads::run_one(workload, &env, opts).await {
                Ok(results) => results,
                Err(e) => {
                    let mut r = BenchResult::new(workload, "error", 0, 0.0);
                    r.fail(format!("the workload failed: {e}"));
                    vec![r]
                }
            };
            for r in &mut results {
                r.store = opts.store.name().to_string();
                r.durability = opts.store.durability().to_string();
                r.peak_rss_mb = peak_rss_mb();
            }
            runs.push(results);
        }
        env.progress().clear();
        for r in merge(runs) {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            all.push(r);
        }
    }
    if !opts.json_only {
        print_summary(&all);
    }
    Ok(all)
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// Prints the results as a table.
pub fn print_summary(results: &[BenchResult]) {
    println!();
    println!(
        "{:<4} {:<36} {:>7} {:>9} {:>11} {:<16} {:>10} {:>9} {:>9} {:>7} {:<3} details",
        "id",
        "variant",
        "n",
        "seconds",
        "throughput",
        "unit",
        "events/s",
        "p50 ms",
        "p99 ms",
        "RSS MB",
        "ok"
    );
    for r in results {
        let extra: Vec<String> = r
            .extra
            .iter()
            .map(|(k, v)| format!("{k}={}", fmt_num(v.as_f64())))
            .collect();
        let mut details = extra.join(" ");
        if !r.note.is_empty() {
            if !details.is_empty() {
                details.push_str(" | ");
            }
            details.push_str(&r.note);
        }
        println!(
            "{:<4} {:<36} {:>7} {:>9.3} {:>11} {:<16} {:>10} {:>9} {:>9} {:>7.1} {:<3} {}",
            r.workload,
            r.variant,
            r.n,
            r.seconds,
            fmt_num(r.throughput),
            r.unit,
            fmt_num(r.events_per_sec),
            fmt_num(r.p50_ms),
            fmt_num(r.p99_ms),
            r.peak_rss_mb,
            if r.ok { "yes" } else { "NO" },
            details
        );
    }
}

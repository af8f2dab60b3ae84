//! `durable-bench`: the benchmark program. Runs the workloads W1–W11 of `BENCHMARKS.md` on one
//! store and prints one JSON object per result line, then a summary table.
//!
//! ```sh
//! cargo run --release -p durable-examples --bin durable-bench -- all --store sqlite
//! cargo run --release -p durable-examples --bin durable-bench -- W3 --store memory --runs 3
//! cargo run --release -p durable-examples --bin durable-bench -- all --store memory --n 5 --json-only
//! scripts/with-postgres cargo run --release -p durable-examples --bin durable-bench -- all --store postgres
//! ```
//!
//! Exits with 0 when every result verified, 1 when one did not, 2 on bad arguments.

use std::process::ExitCode;

use clap::Parser;
use durable_examples::bench::{self, Options, StoreKind, WORKLOADS, host};

const ABOUT: &str = "Runs the durable benchmark workloads (W1-W11 of BENCHMARKS.md) on one store \
                     and prints one JSON object per result, then a summary table.";

/// Command-line options.
#[derive(Parser, Debug)]
#[command(name = "durable-bench", version, about = ABOUT)]
struct Args {
    /// The workloads to run: `all`, or ids such as `W3` (comma-separated or repeated).
    #[arg(value_name = "WORKLOAD", required = true)]
    workloads: Vec<String>,

    /// The store (and so the durability class): memory D0, sqlite-normal D1, sqlite D2,
    /// postgres D2 (needs DURABLE_POSTGRES_URL).
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,

    /// Replaces each workload's size(s) with this one size (e.g. `--n 50` for a smoke run).
    #[arg(long)]
    n: Option<u64>,

    /// Runs per workload; the medians are reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,

    /// Prints only the JSON lines.
    #[arg(long)]
    json_only: bool,

    /// Turns each host runs at once (`max_concurrent_orchestrations`); the runtime's default
    /// when not given.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    turn_slots: Option<u16>,
}

fn main() -> ExitCode {
    durable_examples::init_logging();
    let argv: Vec<String> = std::env::args().collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("durable-bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The hidden subcommand W11 re-executes this program with.
    if argv.get(1).map(String::as_str) == Some("host") {
        let result = host::HostArgs::parse(&argv[2..])
            .and_then(|args| runtime.block_on(host::host_main(args)));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("durable-bench host: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    let mut workloads = Vec::new();
    for w in args.workloads.iter().flat_map(|w| w.split(',')) {
        let w = w.trim().to_uppercase();
        if w == "ALL" {
            workloads.extend(WORKLOADS.iter().map(|s| s.to_string()));
        } else if WORKLOADS.contains(&w.as_str()) {
            workloads.push(w);
        } else if !w.is_empty() {
            eprintln!(
                "durable-bench: unknown workload `{w}` (expected all or one of {})",
                WORKLOADS.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("durable-bench: cannot find this program's path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        workloads,
        store: args.store,
        n: args.n,
        runs: args.runs.max(1),
        json_only: args.json_only,
        exe,
        turn_slots: args.turn_slots.map(usize::from),
    };
    match runtime.block_on(bench::run(&opts)) {
        Ok(results) if results.iter().all(|r| r.ok) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("durable-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

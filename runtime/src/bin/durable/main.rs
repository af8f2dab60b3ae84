//! `durable`: manage orchestration instances and entities from the command line, through a
//! host's HTTP management API or straight on a store.
//!
//! ```sh
//! durable list --status Running
//! durable start hello_cities --wait 30
//! durable status 5f2c09a4 --history
//! durable --store .durable-data/durable.db purge --from 2026-01-01 --yes
//! durable history export order-42 --out order-42.json
//! durable --store local.db history import order-42.json
//! ```
//!
//! The modules: `main` (the command line), `commands` (what each command does), `history`
//! (history export and import), `backend` (HTTP or store), `output` (tables and JSON), `parse`
//! (flag values) and `error`.

mod backend;
mod commands;
mod error;
mod history;
mod output;
mod parse;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::parser::ValueSource;
use clap::{ArgGroup, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use durable::RuntimeStatus;
use reqwest::Url;
use serde_json::Value;

use crate::backend::{HttpBackend, StoreBackend};
use crate::error::{CliError, Exit};

/// Where the CLI talks to when given neither `--host` nor `--store`.
const DEFAULT_HOST: &str = "http://127.0.0.1:7071";

const ABOUT: &str = "Manage durable orchestrations and entities: list, inspect, start, signal, \
                     control and purge them, through a host's HTTP API or straight on a store.";

const AFTER_HELP: &str = "\
Target:
  By default durable talks to the HTTP management API of the host at http://127.0.0.1:7071.
  --host URL (or DURABLE_HOST) names another host; --key KEY (or DURABLE_KEY) sends its key.
  --store SPEC (or DURABLE_STORE) works straight on a store instead, with or without a host
  running: the path of a SQLite store file, or a postgres:// URL. --task-hub NAME picks the
  task hub (default: `default`). A flag beats the environment; --host and --store together
  are refused.

Examples:
  durable list --status Running,Pending
  durable start approval_workflow --id approval-2 --input 3600
  durable status 5f2c09a4e1d94b6f --history
  durable raise order-42 ApprovalEvent --data true
  durable --store .durable-data/durable.db purge --from 2026-01-01 --status Completed --yes
  durable entity signal counter c1 add --input 5
  durable history export order-42 --out order-42.json
  DURABLE_HOST=http://10.0.0.5:7071 DURABLE_KEY=s3cret durable list --all --json

Exit codes:
  0    success
  1    the operation failed (the host or store refused it; the message says why)
  2    usage error: a bad flag or value
  3    not found: no such instance or entity
  4    cannot reach the host or open the store
  130  interrupted (Ctrl-C)";

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "durable",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    max_term_width = 100,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: Command,
}

/// Where the commands act. The ids are distinct from every subcommand's (`entity get NAME
/// KEY` has a `key` of its own), as clap shares one namespace with global arguments.
#[derive(Args, Debug)]
struct Target {
    /// The host's URL (its HTTP management API) [default: http://127.0.0.1:7071]
    #[arg(
        id = "target_host",
        help_heading = "Target",
        long = "host",
        global = true,
        env = "DURABLE_HOST",
        value_name = "URL",
        value_parser = parse::host
    )]
    host: Option<Url>,

    /// The host's API key, sent as the `x-functions-key` header
    #[arg(
        id = "target_key",
        help_heading = "Target",
        long = "key",
        global = true,
        env = "DURABLE_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    key: Option<String>,

    /// Work straight on a store instead of a host: a SQLite file path or a postgres:// URL
    #[arg(
        id = "target_store",
        help_heading = "Target",
        long = "store",
        global = true,
        env = "DURABLE_STORE",
        value_name = "SPEC",
        hide_env_values = true
    )]
    store: Option<String>,

    /// The task hub [default: default]
    #[arg(
        id = "target_task_hub",
        help_heading = "Target",
        long = "task-hub",
        global = true,
        env = "DURABLE_TASK_HUB",
        value_name = "NAME"
    )]
    task_hub: Option<String>,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List instances, oldest first, filtered and paged
    #[command(after_help = "\
Examples:
  durable list
  durable list --status Running,Suspended --prefix order-
  durable list --from 2026-01-01 --to 2026-01-31T12:00:00Z --all --json")]
    List(ListArgs),

    /// Show an instance's status, and with --history what it did
    #[command(after_help = "\
Examples:
  durable status order-42
  durable status order-42 --history
  durable status order-42 --json | jq .output")]
    Status(StatusArgs),

    /// Start an orchestration; prints its instance id
    #[command(after_help = "\
Examples:
  durable start hello_cities
  durable start approval_workflow --id order-42 --input 3600
  durable start process_order --input @order.json --wait 60")]
    Start(StartArgs),

    /// Raise an external event on a running instance
    #[command(after_help = "\
Examples:
  durable raise order-42 ApprovalEvent --data true
  durable raise order-42 Shipped --data '{\"carrier\": \"ups\"}'")]
    Raise(RaiseArgs),

    /// Terminate a pending, running or suspended instance; the reason becomes its output
    Terminate(ControlArgs),

    /// Suspend an instance: it stops processing events (they are kept) until resumed
    Suspend(ControlArgs),

    /// Resume a suspended instance
    Resume(ControlArgs),

    /// Rewind a failed instance: it runs again from where it failed
    Rewind(ControlArgs),

    /// Start an instance's orchestrator again with its original input; prints the id
    Restart(RestartArgs),

    /// Purge finished instances: one by id, or every one matching a filter
    #[command(after_help = "\
Examples:
  durable purge order-42
  durable purge --from 2026-01-01 --to 2026-02-01 --status Completed,Terminated
  durable purge --from 2000-01-01 --yes")]
    Purge(PurgeArgs),

    /// Read, signal and list entities
    #[command(subcommand)]
    Entity(EntityCommand),

    /// Export instances' histories as JSON files, and import them into a store
    #[command(subcommand)]
    History(HistoryCommand),
}

/// `durable history ...`.
#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Write an instance's status and whole history as JSON (format `durable-history`,
    /// version 1), or the latest instances of an orchestrator, one file each
    #[command(after_help = "\
Examples:
  durable history export order-42 > order-42.json
  durable history export order-42 --out tests/histories/order-42.json
  durable history export --orchestrator checkout --last 20 --dir tests/histories

The file replays with durable::testing::replay_check, and imports with `history import`.")]
    Export(HistoryExportArgs),

    /// Load exported histories into a store (--store), to look into a case locally
    #[command(after_help = "\
Examples:
  durable --store local.db history import order-42.json
  durable --store local.db history import --replace tests/histories/*.json

An imported instance has its status and history and nothing queued: no timer, activity or
event runs until you act on it (raise an event, terminate, rewind, purge). An instance that
already exists is refused unless --replace is given; --replace drops its history and queued
work. Every file is checked before any is imported.")]
    Import(HistoryImportArgs),
}

/// `durable history export`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "orchestrator"])))]
pub struct HistoryExportArgs {
    /// The instance id
    #[arg(conflicts_with = "orchestrator")]
    pub id: Option<String>,

    /// Write the file here instead of to standard output
    #[arg(long, value_name = "FILE", requires = "id")]
    pub out: Option<PathBuf>,

    /// Export the most recently created instances of this orchestrator
    #[arg(long, value_name = "NAME", requires_all = ["last", "dir"])]
    pub orchestrator: Option<String>,

    /// ... this many of them
    #[arg(
        long,
        value_name = "N",
        requires = "orchestrator",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub last: Option<u32>,

    /// ... into this directory (created if missing), one ID.json file per instance
    #[arg(long, value_name = "DIR", requires = "orchestrator")]
    pub dir: Option<PathBuf>,
}

/// `durable history import`.
#[derive(Args, Debug)]
pub struct HistoryImportArgs {
    /// Files written by `durable history export`
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Replace an instance that already exists (its history and queued work are dropped)
    #[arg(long)]
    pub replace: bool,
}

/// `durable list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only instances in these statuses (Pending, Running, Completed, ContinuedAsNew, Failed,
    /// Terminated, Suspended)
    #[arg(long, value_name = "STATUS,..", value_delimiter = ',', value_parser = parse::status)]
    pub status: Vec<RuntimeStatus>,

    /// Only ids starting with this
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,

    /// Only instances started under this orchestration version
    #[arg(long = "version", value_name = "V")]
    pub version: Option<String>,

    /// Created at or after this time (RFC 3339, or a date in UTC)
    #[arg(long, value_name = "TIME", value_parser = parse::time)]
    pub from: Option<DateTime<Utc>>,

    /// Created at or before this time
    #[arg(long, value_name = "TIME", value_parser = parse::time)]
    pub to: Option<DateTime<Utc>>,

    /// Instances per page (1 to 1000; the host's default is 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: Option<u16>,

    /// Fetch every page, not only the first
    #[arg(long, conflicts_with = "continuation")]
    pub all: bool,

    /// Start at the page this token names (printed when more pages follow)
    #[arg(long, value_name = "TOKEN")]
    pub continuation: Option<String>,

    /// Print a JSON array of the API's status objects
    #[arg(long)]
    pub json: bool,
}

/// `durable status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The instance id
    pub id: String,

    /// Show the history too (with results)
    #[arg(long)]
    pub history: bool,

    /// Print the API's status object as JSON
    #[arg(long)]
    pub json: bool,
}

/// `durable start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// The orchestrator's registered name
    pub name: String,

    /// The instance id (generated when not given)
    #[arg(long)]
    pub id: Option<String>,

    /// The orchestration version to start it under (the host's version when not given)
    #[arg(long = "version", value_name = "V")]
    pub version: Option<String>,

    /// The input, as JSON (a string needs its quotes: '"text"'), or @FILE
    #[arg(long, value_name = "JSON", value_parser = parse::json)]
    pub input: Option<Value>,

    /// Wait up to this many seconds for the instance to finish, then print its status; exits
    /// 1 unless it completed
    #[arg(long, value_name = "SECS", value_parser = parse::seconds)]
    pub wait: Option<Duration>,

    /// Print JSON: `{"id": ..}`, or with --wait the final status object
    #[arg(long)]
    pub json: bool,
}

/// `durable raise`.
#[derive(Args, Debug)]
pub struct RaiseArgs {
    /// The instance id
    pub id: String,

    /// The event's name
    pub event: String,

    /// The event's data, as JSON, or @FILE [default: null]
    #[arg(long, value_name = "JSON", value_parser = parse::json)]
    pub data: Option<Value>,
}

/// `durable terminate|suspend|resume|rewind`.
#[derive(Args, Debug)]
pub struct ControlArgs {
    /// The instance id
    pub id: String,

    /// Why, recorded in the history
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// `durable restart`.
#[derive(Args, Debug)]
pub struct RestartArgs {
    /// The instance id
    pub id: String,

    /// Start under a new generated id instead of replacing the instance
    #[arg(long)]
    pub new_id: bool,
}

/// `durable purge`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "from"])))]
pub struct PurgeArgs {
    /// The finished instance to purge
    #[arg(conflicts_with = "from")]
    pub id: Option<String>,

    /// Purge the finished instances created at or after this time (RFC 3339, or a date in UTC)
    #[arg(long, value_name = "TIME", value_parser = parse::time)]
    pub from: Option<DateTime<Utc>>,

    /// ... and created at or before this time
    #[arg(long, value_name = "TIME", value_parser = parse::time, requires = "from")]
    pub to: Option<DateTime<Utc>>,

    /// ... and in these statuses [default: Completed,Failed,Terminated]
    #[arg(
        long,
        value_name = "STATUS,..",
        value_delimiter = ',',
        value_parser = parse::finished_status,
        requires = "from"
    )]
    pub status: Vec<RuntimeStatus>,

    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(long, short = 'y', requires = "from")]
    pub yes: bool,
}

/// `durable entity ...`.
#[derive(Subcommand, Debug)]
pub enum EntityCommand {
    /// Print an entity's state as JSON
    #[command(after_help = "Example:\n  durable entity get counter c1")]
    Get(EntityGetArgs),

    /// Signal an operation to an entity (created on first use)
    #[command(after_help = "\
Examples:
  durable entity signal counter c1 add --input 5
  durable entity signal counter c1 delete")]
    Signal(EntitySignalArgs),

    /// List entities that have state
    #[command(after_help = "\
Examples:
  durable entity list
  durable entity list counter --state --json")]
    List(EntityListArgs),
}

/// `durable entity get`.
#[derive(Args, Debug)]
pub struct EntityGetArgs {
    /// The entity's name (case-insensitive)
    pub name: String,

    /// The entity's key
    pub key: String,

    /// Print the state as compact JSON on one line
    #[arg(long)]
    pub json: bool,
}

/// `durable entity signal`.
#[derive(Args, Debug)]
pub struct EntitySignalArgs {
    /// The entity's name (case-insensitive)
    pub name: String,

    /// The entity's key
    pub key: String,

    /// The operation
    pub op: String,

    /// The operation's input, as JSON, or @FILE [default: null]
    #[arg(long, value_name = "JSON", value_parser = parse::json)]
    pub input: Option<Value>,
}

/// `durable entity list`.
#[derive(Args, Debug)]
pub struct EntityListArgs {
    /// Only entities with this name
    pub name: Option<String>,

    /// Show each entity's state
    #[arg(long)]
    pub state: bool,

    /// Entities per page (1 to 1000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: Option<u16>,

    /// Fetch every page, not only the first
    #[arg(long)]
    pub all: bool,

    /// Print a JSON array of the API's entity objects
    #[arg(long)]
    pub json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let run = run(cli, &matches);
    let result = tokio::select! {
        // The command first, so that one watching for Ctrl-C itself reports what it did.
        biased;
        result = run => result,
        _ = tokio::signal::ctrl_c() => Err(CliError::new(Exit::Interrupted, "interrupted")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Opens the target the flags name and runs the command on it.
async fn run(cli: Cli, matches: &ArgMatches) -> Result<(), CliError> {
    let Target {
        host,
        key,
        store,
        task_hub,
    } = cli.target;
    let source = |id: &str| matches.value_source(id);
    let use_store = match (&host, &store) {
        (Some(_), Some(_)) => match (source("target_host"), source("target_store")) {
            (Some(ValueSource::CommandLine), Some(ValueSource::EnvVariable)) => false,
            (Some(ValueSource::EnvVariable), Some(ValueSource::CommandLine)) => true,
            _ => {
                return Err(CliError::usage(
                    "give either --host (DURABLE_HOST) or --store (DURABLE_STORE), not both",
                ));
            }
        },
        (_, store) => store.is_some(),
    };
    if use_store {
        if source("target_key") == Some(ValueSource::CommandLine) {
            return Err(CliError::usage(
                "--key is for hosts; a store is opened directly (--store)",
            ));
        }
        let spec = store.unwrap_or_default();
        let backend = StoreBackend::open(&spec, task_hub.as_deref()).await?;
        commands::run(&backend, cli.command).await
    } else {
        let host = match host {
            Some(host) => host,
            None => parse::host(DEFAULT_HOST).map_err(CliError::usage)?,
        };
        let backend = HttpBackend::new(host, key, task_hub)?;
        commands::run(&backend, cli.command).await
    }
}

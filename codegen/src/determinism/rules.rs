//! What the determinism check forbids: the hazards and their advice, the paths that name
//! them, the bare names taken to be imports, and what a glob import is taken to bring in.

/// What a flagged call does, and so what to write instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hazard {
    /// Reads a clock.
    Clock,
    /// Sleeps or arms a timer outside the history.
    Sleep,
    /// Runs work on another task or thread.
    Spawn,
    /// Draws random numbers.
    Random,
    /// Generates a fresh id.
    Guid,
    /// Reads the process environment.
    Env,
    /// Touches the file system.
    File,
    /// Touches the network.
    Net,
    /// Runs, ends or inspects an operating-system process.
    Process,
    /// Reads standard input.
    Stdin,
    /// A `HashMap`: its iteration order is random.
    HashMap,
    /// A `HashSet`: its iteration order is random.
    HashSet,
}

impl Hazard {
    /// Why the call is not replay-safe, and what to use instead.
    pub(super) fn advice(self) -> &'static str {
        match self {
            Hazard::Clock => {
                "it reads the clock, which gives a different time on replay; use `ctx.current_utc_datetime()`"
            }
            Hazard::Sleep => {
                "its timer is not recorded in the history; use `ctx.sleep(duration)` or `ctx.create_timer(at)`"
            }
            Hazard::Spawn => {
                "work spawned outside the context is not recorded or replayed; fan out through the context with `ctx.call_activity` and `ctx.when_all`"
            }
            Hazard::Random => {
                "it draws different numbers on replay; use `ctx.new_guid()`, or draw the randomness in an activity"
            }
            Hazard::Guid => "it makes a different id on replay; use `ctx.new_guid()`",
            Hazard::Env => {
                "the environment can change between replays; pass configuration as the orchestrator's input, or read it in an activity"
            }
            Hazard::File => "its result is not recorded in the history; do file I/O in an activity",
            Hazard::Net => {
                "its result is not recorded in the history; do network I/O in an activity"
            }
            Hazard::Process => {
                "processes are not recorded in the history, so it runs again (or ends the worker) on every replay; run commands in an activity, and end an orchestration by returning from it"
            }
            Hazard::Stdin => {
                "what it reads is not recorded in the history; pass input as the orchestrator's input or an event (`ctx.wait_for_event`), or read it in an activity"
            }
            Hazard::HashMap => {
                "its iteration order is random and differs on replay, so a loop over it that schedules work diverges (the check cannot tell a lookup from a loop, so it flags every `HashMap`); use `BTreeMap`, or `indexmap::IndexMap` to keep insertion order"
            }
            Hazard::HashSet => {
                "its iteration order is random and differs on replay, so a loop over it that schedules work diverges (the check cannot tell a lookup from a loop, so it flags every `HashSet`); use `BTreeSet`, or `indexmap::IndexSet` to keep insertion order"
            }
        }
    }
}

/// How a rule's segments are compared with a path.
#[derive(Clone, Copy)]
enum Match {
    /// The path ends with the segments. One-segment rules only apply to calls.
    Suffix,
    /// The path starts with the segments and goes on past them.
    Prefix,
}

/// One forbidden path.
struct Rule {
    segments: &'static [&'static str],
    how: Match,
    hazard: Hazard,
}

const fn suffix(segments: &'static [&'static str], hazard: Hazard) -> Rule {
    Rule {
        segments,
        how: Match::Suffix,
        hazard,
    }
}

const fn prefix(segments: &'static [&'static str], hazard: Hazard) -> Rule {
    Rule {
        segments,
        how: Match::Prefix,
        hazard,
    }
}

use Hazard::{Clock, Env, File, Guid, Net, Process, Random, Sleep, Spawn, Stdin};

/// Every forbidden path.
const RULES: &[Rule] = &[
    suffix(&["SystemTime", "now"], Clock),
    suffix(&["Instant", "now"], Clock),
    suffix(&["Utc", "now"], Clock),
    suffix(&["Local", "now"], Clock),
    suffix(&["Utc", "today"], Clock),
    suffix(&["Local", "today"], Clock),
    suffix(&["Timestamp", "now"], Clock),
    suffix(&["Zoned", "now"], Clock),
    suffix(&["OffsetDateTime", "now_utc"], Clock),
    suffix(&["OffsetDateTime", "now_local"], Clock),
    suffix(&["UtcDateTime", "now"], Clock),
    suffix(&["thread", "sleep"], Sleep),
    suffix(&["thread", "sleep_ms"], Sleep),
    suffix(&["time", "sleep"], Sleep),
    suffix(&["time", "sleep_until"], Sleep),
    suffix(&["time", "interval"], Sleep),
    suffix(&["time", "interval_at"], Sleep),
    suffix(&["time", "timeout"], Sleep),
    suffix(&["time", "timeout_at"], Sleep),
    suffix(&["sleep"], Sleep),
    suffix(&["sleep_until"], Sleep),
    suffix(&["tokio", "spawn"], Spawn),
    suffix(&["smol", "spawn"], Spawn),
    suffix(&["task", "spawn"], Spawn),
    suffix(&["task", "spawn_local"], Spawn),
    suffix(&["task", "spawn_blocking"], Spawn),
    suffix(&["thread", "spawn"], Spawn),
    suffix(&["thread", "scope"], Spawn),
    suffix(&["spawn"], Spawn),
    suffix(&["spawn_blocking"], Spawn),
    suffix(&["spawn_local"], Spawn),
    prefix(&["rand"], Random),
    prefix(&["fastrand"], Random),
    prefix(&["getrandom"], Random),
    suffix(&["thread_rng"], Random),
    suffix(&["Uuid", "new_v4"], Guid),
    suffix(&["Uuid", "now_v1"], Guid),
    suffix(&["Uuid", "now_v6"], Guid),
    suffix(&["Uuid", "now_v7"], Guid),
    suffix(&["Uuid", "new_v7"], Guid),
    suffix(&["env", "var"], Env),
    suffix(&["env", "vars"], Env),
    suffix(&["env", "var_os"], Env),
    suffix(&["env", "vars_os"], Env),
    suffix(&["env", "args"], Env),
    suffix(&["env", "args_os"], Env),
    suffix(&["env", "current_dir"], Env),
    prefix(&["std", "fs"], File),
    prefix(&["tokio", "fs"], File),
    prefix(&["async_std", "fs"], File),
    prefix(&["fs"], File),
    suffix(&["File", "open"], File),
    suffix(&["File", "create"], File),
    suffix(&["File", "create_new"], File),
    suffix(&["File", "options"], File),
    suffix(&["OpenOptions", "new"], File),
    prefix(&["std", "net"], Net),
    prefix(&["tokio", "net"], Net),
    prefix(&["reqwest"], Net),
    prefix(&["ureq"], Net),
    suffix(&["TcpStream", "connect"], Net),
    suffix(&["TcpListener", "bind"], Net),
    suffix(&["UdpSocket", "bind"], Net),
    prefix(&["std", "process"], Process),
    prefix(&["tokio", "process"], Process),
    prefix(&["async_process"], Process),
    suffix(&["process", "Command", "new"], Process),
    suffix(&["process", "exit"], Process),
    suffix(&["process", "abort"], Process),
    suffix(&["process", "id"], Process),
    suffix(&["io", "stdin"], Stdin),
];

/// Names that are flagged when called bare, without a path and without a `use` or item in the
/// body that says what they are: the user imported them at module level, where the macro
/// cannot see. Each is distinctive enough that a bare call in an orchestrator is almost
/// certainly the function named here. Names too common to guess at are not listed: `now`,
/// `args`, `read`, `write`, `copy`, `rename`, `metadata`, `exit`, `id`, `get`, `timeout`,
/// `interval`, `Command::new`. (`sleep`, `spawn` and their variants, and `thread_rng`, are
/// one-segment rules in [`RULES`], flagged as calls under any path.)
pub(super) const BARE: &[(&str, &str, Hazard)] = &[
    ("random", "rand::random", Random),
    ("rng", "rand::rng", Random),
    ("random_range", "rand::random_range", Random),
    ("random_bool", "rand::random_bool", Random),
    ("random_ratio", "rand::random_ratio", Random),
    ("random_iter", "rand::random_iter", Random),
    ("getrandom", "getrandom::getrandom", Random),
    ("var", "std::env::var", Env),
    ("var_os", "std::env::var_os", Env),
    ("vars", "std::env::vars", Env),
    ("vars_os", "std::env::vars_os", Env),
    ("current_dir", "std::env::current_dir", Env),
    ("read_to_string", "std::fs::read_to_string", File),
    ("read_dir", "std::fs::read_dir", File),
    ("create_dir", "std::fs::create_dir", File),
    ("create_dir_all", "std::fs::create_dir_all", File),
    ("remove_file", "std::fs::remove_file", File),
    ("remove_dir", "std::fs::remove_dir", File),
    ("remove_dir_all", "std::fs::remove_dir_all", File),
    ("stdin", "std::io::stdin", Stdin),
];

/// What a glob import of a whole-module rule (`use std::fs::*;`) is taken to bring in. A glob
/// hides which names it imports, so a bare name resolves through it only if it is one of
/// these; `helper()` after `use rand::*;` is left alone.
const GLOB_NAMES: &[&str] = &[
    "read",
    "read_to_string",
    "write",
    "read_dir",
    "create_dir",
    "create_dir_all",
    "remove_file",
    "remove_dir",
    "remove_dir_all",
    "rename",
    "copy",
    "metadata",
    "canonicalize",
    "File",
    "OpenOptions",
    "random",
    "rng",
    "thread_rng",
    "random_range",
    "random_bool",
    "Command",
    "exit",
    "abort",
    "id",
    "get",
    "Client",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
];

/// Plain values in `std::net` that do no I/O, so `std::net::Ipv4Addr::LOCALHOST` is fine.
const NET_VALUES: &[&str] = &[
    "IpAddr",
    "Ipv4Addr",
    "Ipv6Addr",
    "SocketAddr",
    "SocketAddrV4",
    "SocketAddrV6",
    "Shutdown",
    "AddrParseError",
    "Ipv6MulticastScope",
];

/// Plain values in `std::process` that start nothing, so `std::process::ExitCode` is fine.
const PROCESS_VALUES: &[&str] = &["ExitCode", "ExitStatus", "Output", "Stdio", "Termination"];

/// The hazard a path names, if any. `call` says whether the path is being called, which is
/// what lets one-segment rules such as `spawn` apply without flagging a variable named `spawn`.
pub(crate) fn classify(segments: &[String], call: bool) -> Option<Hazard> {
    rule_for(segments, call).map(|rule| rule.hazard)
}

/// The first rule a path breaks, if any.
fn rule_for(segments: &[String], call: bool) -> Option<&'static Rule> {
    let plain_value = |module: &str, values: &[&str]| {
        segments.len() > 2
            && segments[0] == "std"
            && segments[1] == module
            && values.contains(&segments[2].as_str())
    };
    let is_net_value = plain_value("net", NET_VALUES);
    let is_process_value = plain_value("process", PROCESS_VALUES);
    RULES.iter().find(|rule| {
        let n = rule.segments.len();
        let hit = match rule.how {
            Match::Suffix => {
                (n > 1 || call) && segments.len() >= n && ends_with(segments, rule.segments)
            }
            Match::Prefix => segments.len() > n && starts_with(segments, rule.segments),
        };
        hit && !(rule.hazard == Net && is_net_value)
            && !(rule.hazard == Process && is_process_value)
    })
}

/// What a bare name is taken to be, if it is one of [`BARE`] and is called.
pub(super) fn bare(segments: &[String], call: bool) -> Option<(&'static str, Hazard)> {
    match segments {
        [name] if call => BARE
            .iter()
            .find(|(bare, _, _)| bare == name)
            .map(|&(_, means, hazard)| (means, hazard)),
        _ => None,
    }
}

/// The hazard a path through a glob import (`glob`, the module, then `segments`) names. A
/// whole-module rule applies only to the names in [`GLOB_NAMES`].
pub(super) fn through_glob(full: &[String], first: &str, call: bool) -> Option<Hazard> {
    let rule = rule_for(full, call)?;
    match rule.how {
        Match::Suffix => Some(rule.hazard),
        Match::Prefix => GLOB_NAMES.contains(&first).then_some(rule.hazard),
    }
}

/// The hazard a collection type in the path stands for, and that segment's index.
pub(super) fn collection(segments: &[String]) -> Option<(usize, Hazard)> {
    segments
        .iter()
        .enumerate()
        .find_map(|(i, s)| match s.as_str() {
            "HashMap" => Some((i, Hazard::HashMap)),
            "HashSet" => Some((i, Hazard::HashSet)),
            _ => None,
        })
}

fn ends_with(segments: &[String], rule: &[&str]) -> bool {
    segments[segments.len() - rule.len()..]
        .iter()
        .zip(rule)
        .all(|(a, b)| a == b)
}

fn starts_with(segments: &[String], rule: &[&str]) -> bool {
    segments.iter().zip(rule).all(|(a, b)| a == b)
}

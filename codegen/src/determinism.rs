//! Flags calls in an orchestrator's body that would make replay diverge: clocks, sleeps,
//! spawned tasks, randomness, fresh ids, the environment, files and the network.
//!
//! An orchestrator is re-run from its history after every event, so each of these would
//! return something different on replay than it did the first time. Paths are matched by
//! their trailing segments (`SystemTime::now` also matches `std::time::SystemTime::now`), in
//! expressions and macro paths, and inside macro arguments by scanning their tokens.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{Block, Expr, ExprCall, ExprPath, Macro};

use crate::ctxt::Ctxt;

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
}

impl Hazard {
    /// Why the call is not replay-safe, and what to use instead.
    fn advice(self) -> &'static str {
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

use Hazard::{Clock, Env, File, Guid, Net, Random, Sleep, Spawn};

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

/// The hazard a path names, if any. `call` says whether the path is being called, which is
/// what lets one-segment rules such as `spawn` apply without flagging a variable named `spawn`.
pub(crate) fn classify(segments: &[String], call: bool) -> Option<Hazard> {
    let is_net_value = segments.len() > 2
        && segments[0] == "std"
        && segments[1] == "net"
        && NET_VALUES.contains(&segments[2].as_str());
    RULES.iter().find_map(|rule| {
        let n = rule.segments.len();
        let hit = match rule.how {
            Match::Suffix => {
                (n > 1 || call) && segments.len() >= n && ends_with(segments, rule.segments)
            }
            Match::Prefix => segments.len() > n && starts_with(segments, rule.segments),
        };
        (hit && !(rule.hazard == Net && is_net_value)).then_some(rule.hazard)
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

/// Checks an orchestrator's body, recording one error per forbidden path.
pub(crate) fn check(cx: &Ctxt, body: &Block) {
    Visitor { cx }.visit_block(body);
}

struct Visitor<'c> {
    cx: &'c Ctxt,
}

impl Visitor<'_> {
    fn report(&self, tokens: impl ToTokens, segments: &[String], hazard: Hazard) {
        self.cx.error_spanned_by(
            tokens,
            format_args!(
                "`{}` is not replay-safe in an orchestrator: {}",
                segments.join("::"),
                hazard.advice(),
            ),
        );
    }

    fn check_path(&self, path: &syn::Path, call: bool) {
        let segments: Vec<String> = path.segments.iter().map(|s| ident_text(&s.ident)).collect();
        if let Some(hazard) = classify(&segments, call) {
            self.report(path, &segments, hazard);
        }
    }

    /// Macro arguments are not parsed by `syn`, so their tokens are scanned for paths.
    fn scan(&self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => {
                    self.scan(group.stream());
                    i += 1;
                }
                TokenTree::Ident(_) if !after_dot(&tokens, i) => {
                    let (end, segments) = path_at(&tokens, i);
                    let call = matches!(
                        tokens.get(end),
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis
                    );
                    if let Some(hazard) = classify(&segments, call) {
                        let span: TokenStream = tokens[i..end].iter().cloned().collect();
                        self.report(span, &segments, hazard);
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_expr_call(&mut self, node: &'ast ExprCall) {
        if let Expr::Path(func) = &*node.func {
            self.check_path(&func.path, true);
            for attr in &node.attrs {
                self.visit_attribute(attr);
            }
            for arg in &node.args {
                self.visit_expr(arg);
            }
        } else {
            visit::visit_expr_call(self, node);
        }
    }

    fn visit_expr_path(&mut self, node: &'ast ExprPath) {
        self.check_path(&node.path, false);
        visit::visit_expr_path(self, node);
    }

    fn visit_macro(&mut self, node: &'ast Macro) {
        self.check_path(&node.path, true);
        self.scan(node.tokens.clone());
    }
}

/// An identifier's text without a raw `r#` prefix.
fn ident_text(ident: &proc_macro2::Ident) -> String {
    let text = ident.to_string();
    match text.strip_prefix("r#") {
        Some(raw) => raw.to_owned(),
        None => text,
    }
}

/// Whether the token at `i` follows a `.`, as a method name or field does.
fn after_dot(tokens: &[TokenTree], i: usize) -> bool {
    i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '.')
}

/// The path that starts at `tokens[start]` (an identifier): its end and its segments.
fn path_at(tokens: &[TokenTree], start: usize) -> (usize, Vec<String>) {
    let mut segments = Vec::new();
    let mut i = start;
    while let Some(TokenTree::Ident(ident)) = tokens.get(i) {
        segments.push(ident_text(ident));
        i += 1;
        let colons = matches!(
            (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(_)))
                if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
        );
        if !colons {
            break;
        }
        i += 2;
    }
    (i, segments)
}

#[cfg(test)]
mod tests;

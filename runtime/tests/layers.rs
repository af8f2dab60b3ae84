//! The runtime's layers, checked from its source: every `crate::…` path a file of `src/` names
//! (outside comments) must lead to its own layer or one below it, so no import runs back up
//! and no cycle joins files of different layers.
//!
//! `cargo test -p durable-fn --test layers -- --nocapture` prints the graph: for each layer, the
//! layers it uses and how often.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers from the bottom up, each with the source paths (relative to `src/`) it holds and
/// the `crate::` module names that lead into it.
const LAYERS: &[(&str, &[&str], &[&str])] = &[
    ("model", &["model/"], &["model"]),
    ("store", &["store/"], &["store"]),
    ("replay", &["replay/"], &["replay"]),
    ("context", &["context/"], &["context"]),
    ("registry", &["registry.rs"], &["registry"]),
    ("client", &["client/"], &["client"]),
    ("http", &["http/"], &["http"]),
    ("host", &["host/"], &["host"]),
    ("testing", &["testing/"], &["testing"]),
    // The crate root and the macros' module re-export every layer; nothing below may use them.
    (
        "root",
        &["lib.rs", "private.rs"],
        &["__private", "prelude", "entity", "history"],
    ),
];

/// Files written against the crate's public API, as a user's would be: the store conformance
/// suite is shipped for other backends' authors and may use any public path.
const PUBLIC_API_USERS: &[&str] = &["store/conformance/"];

fn layer_of_file(rel: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, paths, _)| paths.iter().any(|p| rel.starts_with(p) || rel == *p))
}

fn layer_of_module(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, _, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without a trailing `//` comment (doc comments are whole-line comments).
fn code(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find("//") {
        // A `//` inside a string (a URL) is rare in this code base and never near `crate::`.
        Some(at) if !line[..at].contains('"') => &line[..at],
        _ => line,
    }
}

/// The first segments after each `crate::` on a line: `crate::model::X` gives `model`, a
/// root name like `crate::Client` gives `Client`, `use crate::{a, b}` gives `a` and `b`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        rest = &rest[at + "crate::".len()..];
        // `$crate::` in macros and `durable_crate::` style names are not this crate's paths.
        if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    found.push(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn no_file_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let root = LAYERS.len() - 1;
    let mut edges: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut upward = Vec::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .expect("under src/")
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("bin/")
            || rel.ends_with("/tests.rs")
            || PUBLIC_API_USERS.iter().any(|p| rel.starts_with(p))
        {
            // The CLI is a crate of its own; unit tests (`tests.rs` beside the code) may drive a
            // layer from above; public-API users may use any public path.
            continue;
        }
        let Some(from) = layer_of_file(&rel) else {
            unplaced.insert(rel);
            continue;
        };
        let text = fs::read_to_string(file).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            for name in crate_paths(code(line)) {
                // A name starting upper case (`crate::Client`) is a re-export of the root.
                let to = if name.starts_with(char::is_uppercase) {
                    Some(root)
                } else {
                    layer_of_module(&name)
                };
                let Some(to) = to else {
                    unplaced.insert(format!("crate::{name} (named at {rel}:{})", n + 1));
                    continue;
                };
                if to != from {
                    *edges.entry((from, to)).or_default() += 1;
                }
                if to > from {
                    upward.push(format!(
                        "{rel}:{}: the {} layer uses crate::{name} of the {} layer above it",
                        n + 1,
                        LAYERS[from].0,
                        LAYERS[to].0
                    ));
                }
            }
        }
    }
    println!("layer -> the layers it uses (paths named):");
    for (i, (name, _, _)) in LAYERS.iter().enumerate() {
        let uses: Vec<String> = edges
            .iter()
            .filter(|((from, _), _)| *from == i)
            .map(|((_, to), count)| format!("{} ({count})", LAYERS[*to].0))
            .collect();
        println!("  {name:<9} -> {}", uses.join(", "));
    }
    assert!(
        unplaced.is_empty(),
        "files or modules of src/ that belong to no layer; add them to LAYERS: {unplaced:#?}"
    );
    assert!(
        upward.is_empty(),
        "imports that run back up the layers:\n{}",
        upward.join("\n")
    );
}

/// rustc names a method in its trait-bound errors by its impl block's module when that block
/// is not beside the type (`durable::client::start::<impl durable::Client>::start` instead of
/// `durable::Client::start`). So public methods whose bounds a user can break (generic
/// parameters, `impl Trait` arguments) stay in the impl block in the type's own file; only
/// methods without bounds may move to files of their own.
#[test]
fn bounded_public_methods_stay_beside_their_type() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut misplaced = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("a readable source file");
        let defined: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let l = ["pub ", "pub(crate) ", "pub(super) "]
                    .iter()
                    .find_map(|v| l.strip_prefix(v))
                    .unwrap_or(l);
                let rest = l
                    .strip_prefix("struct ")
                    .or_else(|| l.strip_prefix("enum "))?;
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
            })
            .collect();
        let mut foreign_impl: Option<String> = None;
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if let Some(rest) = line.strip_prefix("impl ") {
                let ty = rest.trim_end_matches(" {").trim();
                let inherent = !rest.contains(" for ") && !ty.starts_with('<');
                foreign_impl = (inherent && !defined.contains(ty)).then(|| ty.to_string());
                continue;
            }
            if *line == "}" {
                foreign_impl = None;
                continue;
            }
            let Some(ty) = &foreign_impl else { continue };
            let trimmed = line.trim_start();
            if !(trimmed.starts_with("pub fn ") || trimmed.starts_with("pub async fn ")) {
                continue;
            }
            let signature: String = lines[n..]
                .iter()
                .take_while(|l| !l.trim_end().ends_with('{') && !l.trim_end().ends_with(';'))
                .chain(lines[n..].iter().find(|l| l.trim_end().ends_with('{')))
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let head = signature.split('(').next().unwrap_or("");
            if head.contains('<') || signature.contains("impl ") {
                let rel = file.strip_prefix(&src).expect("under src/").display();
                misplaced.push(format!("{rel}:{}: `impl {ty}`: {}", n + 1, trimmed));
            }
        }
    }
    assert!(
        misplaced.is_empty(),
        "public methods with bounds in an impl block away from their type (move them beside \
         the type):\n{}",
        misplaced.join("\n")
    );
}

#[test]
fn paths_are_read_as_written() {
    assert_eq!(
        crate_paths("use crate::model::{Error, ErrorKind};"),
        ["model"]
    );
    assert_eq!(
        crate_paths("use crate::{Activity, Registry};"),
        ["Activity", "Registry"]
    );
    assert_eq!(
        crate_paths("x: crate::store::Store, y: crate::Client"),
        ["store", "Client"]
    );
    assert!(crate_paths("$crate::store::conformance::run_all").is_empty());
    assert_eq!(code("/// see [`Client`](crate::Client)"), "");
    assert_eq!(
        code("let a = crate::replay::x(); // crate::host"),
        "let a = crate::replay::x(); "
    );
}

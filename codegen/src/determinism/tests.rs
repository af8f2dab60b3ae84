use super::{Hazard, check, classify};
use crate::ctxt::Ctxt;
use quote::quote;

fn path(text: &str) -> Vec<String> {
    text.split("::").map(str::to_owned).collect()
}

/// The messages reported for an orchestrator body.
fn errors(body: proc_macro2::TokenStream) -> Vec<String> {
    let block: syn::Block = syn::parse2(quote!({ #body })).unwrap();
    let cx = Ctxt::new();
    check(&cx, &block);
    match cx.check() {
        Ok(()) => Vec::new(),
        Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn every_rule_group_matches_its_paths() {
    let cases = [
        ("SystemTime::now", Hazard::Clock),
        ("std::time::SystemTime::now", Hazard::Clock),
        ("std::time::Instant::now", Hazard::Clock),
        ("chrono::Utc::now", Hazard::Clock),
        ("Local::now", Hazard::Clock),
        ("jiff::Timestamp::now", Hazard::Clock),
        ("Zoned::now", Hazard::Clock),
        ("time::OffsetDateTime::now_utc", Hazard::Clock),
        ("std::thread::sleep", Hazard::Sleep),
        ("thread::sleep", Hazard::Sleep),
        ("tokio::time::sleep", Hazard::Sleep),
        ("tokio::time::sleep_until", Hazard::Sleep),
        ("tokio::time::interval", Hazard::Sleep),
        ("tokio::spawn", Hazard::Spawn),
        ("task::spawn", Hazard::Spawn),
        ("tokio::task::spawn_blocking", Hazard::Spawn),
        ("std::thread::spawn", Hazard::Spawn),
        ("thread::spawn", Hazard::Spawn),
        ("rand::random", Hazard::Random),
        ("rand::thread_rng", Hazard::Random),
        ("rand::rngs::OsRng", Hazard::Random),
        ("fastrand::u32", Hazard::Random),
        ("uuid::Uuid::new_v4", Hazard::Guid),
        ("Uuid::now_v7", Hazard::Guid),
        ("Uuid::new_v7", Hazard::Guid),
        ("std::env::var", Hazard::Env),
        ("env::vars", Hazard::Env),
        ("env::var_os", Hazard::Env),
        ("std::fs::read_to_string", Hazard::File),
        ("tokio::fs::write", Hazard::File),
        ("fs::remove_file", Hazard::File),
        ("File::open", Hazard::File),
        ("std::fs::File::create", Hazard::File),
        ("std::net::TcpStream::connect", Hazard::Net),
        ("tokio::net::UdpSocket::bind", Hazard::Net),
        ("TcpStream::connect", Hazard::Net),
        ("reqwest::get", Hazard::Net),
        ("reqwest::Client::new", Hazard::Net),
    ];
    for (text, hazard) in cases {
        assert_eq!(
            classify(&path(text), true),
            Some(hazard),
            "{text} as a call"
        );
        if text.contains("::") {
            assert_eq!(
                classify(&path(text), false),
                Some(hazard),
                "{text} as a value"
            );
        }
    }
}

#[test]
fn one_segment_names_only_match_calls() {
    for name in [
        "sleep",
        "spawn",
        "spawn_blocking",
        "thread_rng",
        "sleep_until",
    ] {
        assert!(classify(&path(name), true).is_some(), "{name}()");
        assert_eq!(
            classify(&path(name), false),
            None,
            "a variable named {name}"
        );
    }
}

#[test]
fn replay_safe_paths_pass() {
    for text in [
        "now",
        "Utc",
        "rand",
        "fs",
        "my::Instant::later",
        "Uuid::new_v5",
        "Uuid::parse_str",
        "std::time::Duration::from_secs",
        "std::net::Ipv4Addr::new",
        "std::net::SocketAddr::from",
        "env::consts::OS",
        "format",
        "operand::random",
        "String::from",
        "Vec::new",
    ] {
        assert_eq!(classify(&path(text), true), None, "{text}");
    }
}

#[test]
fn reports_each_occurrence_with_its_alternative() {
    let found = errors(quote! {
        let a = std::time::SystemTime::now();
        let b = SystemTime::now();
        tokio::spawn(async {});
    });
    assert_eq!(
        found,
        [
            "`std::time::SystemTime::now` is not replay-safe in an orchestrator: it reads the clock, which gives a different time on replay; use `ctx.current_utc_datetime()`",
            "`SystemTime::now` is not replay-safe in an orchestrator: it reads the clock, which gives a different time on replay; use `ctx.current_utc_datetime()`",
            "`tokio::spawn` is not replay-safe in an orchestrator: work spawned outside the context is not recorded or replayed; fan out through the context with `ctx.call_activity` and `ctx.when_all`",
        ]
    );
}

#[test]
fn context_methods_and_locals_are_fine() {
    let found = errors(quote! {
        let now = ctx.current_utc_datetime();
        ctx.sleep(std::time::Duration::from_secs(1)).await;
        let spawn = 3;
        let sleep = spawn + 1;
        let id = ctx.new_guid();
        let x = value.rand;
    });
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn function_values_are_flagged_without_a_call() {
    let found = errors(quote! {
        let ids: Vec<_> = (0..3).map(|_| ()).map(uuid::Uuid::new_v4_from).collect();
        let make = uuid::Uuid::new_v4;
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("`uuid::Uuid::new_v4` "));
}

#[test]
fn closures_and_nested_blocks_are_checked() {
    let found = errors(quote! {
        let f = || std::env::var("HOME");
        async move { thread::sleep(d) }.await;
        if x { loop { fs::read("a"); } }
    });
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn macro_arguments_are_scanned() {
    let found = errors(quote! {
        println!("{:?}", std::time::Instant::now());
        let v = vec![Uuid::new_v4(), rand::random()];
        tracing::info!(at = ?SystemTime::now(), "tick");
        tokio::select! { _ = sleep(d) => {}, x = ctx.sleep(d) => {} }
        format!("{}", other.spawn(1));
    });
    let paths: Vec<&str> = found.iter().map(|e| e.split('`').nth(1).unwrap()).collect();
    assert_eq!(
        paths,
        [
            "std::time::Instant::now",
            "Uuid::new_v4",
            "rand::random",
            "SystemTime::now",
            "sleep",
        ]
    );
}

#[test]
fn forbidden_macro_paths_are_flagged() {
    let found = errors(quote! {
        let x = rand::thread_rng!();
    });
    assert_eq!(found.len(), 1, "{found:?}");
}

/// The path each error names, as written.
fn flagged(body: proc_macro2::TokenStream) -> Vec<String> {
    errors(body)
        .iter()
        .map(|e| e.split('`').nth(1).unwrap().to_owned())
        .collect()
}

#[test]
fn use_aliases_in_the_body_resolve_later_paths() {
    let found = errors(quote! {
        use std::time::Instant as Clock;
        use std::env::var;
        use std::{fs, process::Command as Cmd, time::{self as t}};
        let a = Clock::now();
        let b = var("REGION");
        let c = fs::read("a");
        let d = Cmd::new("ls");
        let e = t::SystemTime::now();
    });
    assert_eq!(
        found,
        [
            "`Clock::now` (that is, `std::time::Instant::now`) is not replay-safe in an orchestrator: it reads the clock, which gives a different time on replay; use `ctx.current_utc_datetime()`",
            "`var` (that is, `std::env::var`) is not replay-safe in an orchestrator: the environment can change between replays; pass configuration as the orchestrator's input, or read it in an activity",
            "`fs::read` is not replay-safe in an orchestrator: its result is not recorded in the history; do file I/O in an activity",
            "`Cmd::new` (that is, `std::process::Command::new`) is not replay-safe in an orchestrator: processes are not recorded in the history, so it runs again (or ends the worker) on every replay; run commands in an activity, and end an orchestration by returning from it",
            "`t::SystemTime::now` is not replay-safe in an orchestrator: it reads the clock, which gives a different time on replay; use `ctx.current_utc_datetime()`",
        ]
    );
}

#[test]
fn use_items_apply_to_their_block_and_chain() {
    let found = flagged(quote! {
        {
            use std::env as e;
            e::var("A");
        }
        // Out of the block above, `e` is not the environment module any more.
        e::var("B");
        use std::time;
        use time::Instant as I;
        let f = || { I::now() };
        tokio::spawn_me();
    });
    assert_eq!(found, ["e::var", "I::now"]);
}

#[test]
fn glob_imports_resolve_the_names_they_bring() {
    let found = flagged(quote! {
        use std::env::*;
        use std::fs::*;
        use rand::*;
        let a = args();
        let b = read("a");
        let c = random::<u8>();
        let d = helper();
        let e = Ok::<(), ()>(());
        let f = String::new();
    });
    assert_eq!(found, ["args", "read", "random"]);
}

#[test]
fn bare_imported_names_are_flagged_when_called() {
    let found = errors(quote! {
        let a = random::<u32>();
        let b = thread_rng();
        let c = rng();
        let d = var("HOME");
        let e = vars();
        let f = read_to_string("a").await?;
        let g = stdin();
        sleep(d).await;
        spawn(async {});
    });
    let paths: Vec<&str> = found.iter().map(|e| e.split('`').nth(1).unwrap()).collect();
    assert_eq!(
        paths,
        [
            "random",
            "thread_rng",
            "rng",
            "var",
            "vars",
            "read_to_string",
            "stdin",
            "sleep",
            "spawn"
        ]
    );
    assert_eq!(
        found[0],
        "`random` is taken to be `rand::random`, which is not replay-safe in an orchestrator: it draws different numbers on replay; use `ctx.new_guid()`, or draw the randomness in an activity (if `random` is a function of yours, call it as `self::random`)"
    );
}

#[test]
fn bare_names_that_the_body_explains_or_that_are_not_calls_pass() {
    let found = flagged(quote! {
        use crate::helpers::random;
        fn rng() -> u32 { 4 }
        let var = 3;
        let x = var + 1;
        let a = random();
        let b = rng();
        let c = self::var("X");
        let d = random_name();
        let e = config.var("X");
        let f = my::read_to_string(x);
        let g = read(x);
        let h = now();
        let i = args();
        tracing::info!(var = x, random = 1, "logged");
        println!("{var}");
    });
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn processes_and_stdin_are_flagged() {
    let found = flagged(quote! {
        let a = std::process::Command::new("ls");
        let b = process::Command::new("ls");
        std::process::exit(1);
        let c = std::process::id();
        let d = tokio::process::Command::new("ls");
        let e = std::io::stdin().read_line(&mut s);
        let f = io::stdin();
        let ok = std::process::ExitCode::SUCCESS;
        let ok = Command::new("mine");
        std::io::stdout().flush();
        eprintln!("fine");
    });
    assert_eq!(
        found,
        [
            "std::process::Command::new",
            "process::Command::new",
            "std::process::exit",
            "std::process::id",
            "tokio::process::Command::new",
            "std::io::stdin",
            "io::stdin",
        ]
    );
}

#[test]
fn hash_maps_and_sets_are_flagged_where_they_are_named() {
    let found = errors(quote! {
        let a: HashMap<String, u32> = HashMap::new();
        let b = std::collections::HashSet::<u32>::with_capacity(3);
        let c = items.iter().collect::<HashMap<_, _>>();
        let d: Vec<hash_map::HashMap<u8, u8>> = Vec::new();
        println!("{:?}", HashSet::<u8>::new());
        use std::collections::HashMap as Map;
        let e = Map::default();
        let ok = BTreeMap::new();
        let ok: indexmap::IndexMap<u8, u8> = Default::default();
    });
    let paths: Vec<&str> = found.iter().map(|e| e.split('`').nth(1).unwrap()).collect();
    assert_eq!(
        paths,
        [
            "HashMap", "HashMap", "HashSet", "HashMap", "HashMap", "HashSet", "Map"
        ]
    );
    assert!(
        found[0].starts_with(
            "`HashMap` is not replay-safe in an orchestrator: its iteration order is random"
        ),
        "{}",
        found[0]
    );
    assert!(found[0].ends_with("use `BTreeMap`, or `indexmap::IndexMap` to keep insertion order"));
    assert!(found[2].ends_with("use `BTreeSet`, or `indexmap::IndexSet` to keep insertion order"));
    assert!(
        found[6].starts_with("`Map` (that is, `std::collections::HashMap`) is not replay-safe")
    );
}

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

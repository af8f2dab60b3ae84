//! Compile-time tests of `#[activity]`, `#[orchestrator]` and `#[entity]`, one driver for all
//! of `ui/`: programs under a `pass` directory (`ui/pass`, `ui/entity/pass`, ...) must compile
//! and run, programs under a `fail` directory must fail with exactly the errors in the
//! `.stderr` beside them.
//!
//! Compiler output changes between releases, so the snapshots are compared only on the
//! toolchain they were blessed with. After an intended change, bless them with
//! `TRYBUILD=overwrite cargo test -p durable-tests --test ui`, then read every changed
//! `.stderr`: each error should point at the user's token and say what to write instead.

#[rustversion::stable(1.95)]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/**/pass/*.rs");
    t.compile_fail("ui/**/fail/*.rs");
}

#[rustversion::not(stable(1.95))]
#[test]
fn ui() {
    println!("skipped: the macro ui snapshots are blessed on Rust 1.95 stable only");
}

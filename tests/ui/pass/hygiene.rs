//! The generated code names everything by absolute path, so user items that shadow prelude
//! names (or `core` and `std` themselves) change nothing, and it adds no warnings.

#![deny(warnings)]

use durable::prelude::*;

struct Result;
struct Option;
struct Ok;
struct Err;
struct Some;
struct None;
struct Box;
struct Vec;
struct String;
struct Clone;
struct Copy;
struct Debug;
struct Default;
struct Deref;
struct Send;
struct Sync;
struct Activity;
struct Orchestrator;
struct Register;
struct Registry;
struct BoxFuture;
struct IntoOutcome;
mod core {}
mod std {}

/// Named like the generated code's import of `durable::__private`, which the user's code never
/// sees.
mod __d {
    pub fn one() -> u8 {
        1
    }
}

/// Shadowing does not reach the user's own signature either way: it names what it means.
#[activity(name = "Greet")]
pub async fn greet(
    _ctx: ActivityContext,
    name: ::std::string::String,
) -> ::core::result::Result<::std::string::String, Error> {
    ::core::result::Result::Ok(::std::format!("hi {name}"))
}

#[orchestrator]
async fn greet_all(
    ctx: OrchestrationContext,
    names: ::std::vec::Vec<::std::string::String>,
) -> ::core::result::Result<::std::vec::Vec<::std::string::String>, Error> {
    let mut out = ::std::vec::Vec::new();
    for name in names {
        out.push(ctx.call_activity(greet, name).await?);
    }
    ::core::result::Result::Ok(out)
}

#[orchestrator]
async fn nothing(_ctx: OrchestrationContext) -> ::core::result::Result<(), Error> {
    ::core::result::Result::Ok(())
}

/// Named like the items in the generated code.
#[activity]
async fn run(__ctx: ActivityContext, x: u8) -> ::core::result::Result<u8, Error> {
    ::core::result::Result::Ok(x)
}

#[activity]
async fn deref(registry: ActivityContext, __input: u8) -> ::core::result::Result<u8, Error> {
    let _ = registry;
    ::core::result::Result::Ok(__input + __d::one())
}

/// Without even the prelude.
#[no_implicit_prelude]
mod strict {
    use ::durable::prelude::*;

    #[activity]
    pub async fn shout(
        _ctx: ActivityContext,
        text: ::std::string::String,
    ) -> ::core::result::Result<::std::string::String, Error> {
        ::core::result::Result::Ok(text.to_uppercase())
    }

    #[orchestrator]
    pub async fn shout_once(
        ctx: OrchestrationContext,
        text: ::std::string::String,
    ) -> ::core::result::Result<::std::string::String, Error> {
        ctx.call_activity(shout, text).await
    }
}

fn main() {
    let _ = (
        Result,
        Option,
        Ok,
        Err,
        Some,
        None,
        Box,
        Vec,
        String,
        Clone,
        Copy,
        Debug,
        Default,
        Deref,
        Send,
        Sync,
        Activity,
        Orchestrator,
        Register,
        Registry,
        BoxFuture,
        IntoOutcome,
    );
    let _ = Runtime::builder()
        .register(greet)
        .register(greet_all)
        .register(nothing)
        .register(run)
        .register(deref)
        .register(strict::shout)
        .register(strict::shout_once);
}

//! The code `#[entity]` generates names everything by absolute path, so user items that shadow
//! prelude names (or `core` and `std` themselves) change nothing, and it adds no warnings.

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
struct Future;
struct Entity;
struct EntityFunction;
struct Dispatched;
struct Task;
struct CallTarget;
struct SignalTarget;
struct ClientSignalTarget;
struct Register;
struct Registry;
struct BoxFuture;
struct BoxFutureOf;
struct IntoOutcome;
mod core {}
mod std {}

/// Named like the generated code's import of `durable::__private`.
mod __d {
    pub fn one() -> i64 {
        1
    }
}

#[derive(::core::default::Default, ::serde::Serialize, ::serde::Deserialize)]
pub struct Counter {
    value: i64,
}

/// Operations named like the generated code's items, methods and locals.
#[entity(name = "Hygienic")]
impl Counter {
    pub fn call(&mut self, input: i64) {
        self.value += input * __d::one();
    }

    pub fn signal(&self, ctx: &EntityContext) -> ::std::string::String {
        ::std::format!("{}={}", ctx.id(), self.value)
    }

    pub fn dispatch(&mut self, __input: i64) -> ::core::result::Result<i64, Error> {
        self.value = __input;
        ::core::result::Result::Ok(self.value)
    }

    pub async fn operation(&mut self, __ctx: EntityContext, output: ::std::vec::Vec<i64>) {
        let _ = __ctx;
        self.value = output.iter().sum();
    }

    pub fn name(&self) {}
}

#[entity]
async fn run(__ctx: EntityContext) -> ::core::result::Result<(), Error> {
    let _ = (__ctx, __d::one());
    ::core::result::Result::Ok(())
}

#[orchestrator]
async fn uses(ctx: OrchestrationContext) -> ::core::result::Result<i64, Error> {
    ctx.call_entity::<Counter>("k").call(1).await?;
    ctx.signal_entity::<Counter>("k").signal();
    let _: ::std::string::String = ctx.call_entity::<Counter>("k").signal().await?;
    ctx.call_entity::<Counter>("k")
        .operation(::std::vec![1, 2])
        .await?;
    ctx.call_entity::<Counter>("k").dispatch(3).await
}

/// Without even the prelude.
#[no_implicit_prelude]
mod strict {
    use ::durable::prelude::*;

    #[derive(::core::default::Default, ::serde::Serialize, ::serde::Deserialize)]
    pub struct Strict {
        value: u8,
    }

    #[entity]
    impl Strict {
        pub fn set(&mut self, value: u8) {
            self.value = value;
        }

        pub async fn get(&self) -> ::core::result::Result<u8, Error> {
            ::core::result::Result::Ok(self.value)
        }
    }

    #[entity]
    pub async fn noop(_ctx: EntityContext) -> ::core::result::Result<(), Error> {
        ::core::result::Result::Ok(())
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
        Future,
        Entity,
        EntityFunction,
        Dispatched,
        Task,
        CallTarget,
        SignalTarget,
        ClientSignalTarget,
        Register,
        Registry,
        BoxFuture,
        BoxFutureOf,
        IntoOutcome,
    );
    let _ = Runtime::builder()
        .register(uses)
        .register(run)
        .register(strict::noop)
        .register_entity::<Counter>()
        .register_entity::<strict::Strict>();
}

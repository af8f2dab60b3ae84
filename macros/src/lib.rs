//! Procedural macros for [`durable`](https://docs.rs/durable): `#[activity]`,
//! `#[orchestrator]` and `#[entity]`.
//!
//! Use them through the facade, `use durable::prelude::*;`. Each turns an `async fn` into a
//! typed *handle*: a unit struct of the same name that carries the function's registered name
//! and its input and output types, so that calling or starting it with the wrong input, or
//! passing an activity where an orchestrator is expected, fails to compile at your token.
//!
//! ```ignore
//! use durable::prelude::*;
//!
//! #[activity]
//! async fn say_hello(ctx: ActivityContext, city: String) -> Result<String, Error> {
//!     Ok(format!("Hello {city}!"))
//! }
//!
//! #[orchestrator(name = "HelloCities")]
//! async fn hello_cities(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
//!     let mut out = Vec::new();
//!     for city in ["Tokyo", "Seattle", "London"] {
//!         out.push(ctx.call_activity(say_hello, city.to_string()).await?);
//!     }
//!     Ok(out)
//! }
//! ```
//!
//! The body stays callable, for unit tests: `say_hello(ctx, "Tokyo".into()).await`.
//!
//! # Arguments
//!
//! All three macros take the same optional arguments, in any order:
//!
//! - `name = "..."` registers the function or entity under another name than its identifier.
//! - `crate = "..."` is the path to the `durable` crate, for code that reaches `durable`
//!   through a re-export (an SDK crate wrapping it) or under another name (a renamed
//!   dependency). The generated code names nothing of `durable`'s but `<path>::__private`, so
//!   the user of such an SDK needs no dependency on `durable` of their own. The path is a
//!   string literal, resolved where the macro is used, like serde's `#[serde(crate = "...")]`:
//!
//! ```ignore
//! // In `my_sdk`: `pub use durable;`
//! use my_sdk::durable::prelude::*;
//!
//! #[activity(crate = "my_sdk::durable", name = "SayHello")]
//! async fn say_hello(ctx: ActivityContext, city: String) -> Result<String, Error> {
//!     Ok(format!("Hello {city}!"))
//! }
//! ```
//!
//! All the work happens in the `durable-codegen` crate; these entry points only hand it the
//! tokens.

use proc_macro::TokenStream;

/// Marks an `async fn` as an activity: the unit of real work (I/O, computation), executed at
/// least once per scheduled call, with its result recorded in the caller's history.
///
/// The function takes `ctx: ActivityContext` first, then at most one owned, serializable input,
/// and returns `Result<T, E>` where `T` is serializable and `E` converts into `durable::Error`.
///
/// `#[activity(name = "SayHello")]` registers it under another name than the function's;
/// `#[activity(crate = "my_sdk::durable")]` names the `durable` crate by that path (see the
/// [crate docs](crate#arguments)).
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    durable_codegen::activity(args.into(), item.into()).into()
}

/// Marks an `async fn` as an orchestrator: deterministic coordination code, replayed from its
/// history after every event.
///
/// The function takes `ctx: OrchestrationContext` first, then at most one owned, serializable
/// input, and returns `Result<T, E>` where `T` is serializable and `E` converts into
/// `durable::Error`. Its body is checked for calls that are not replay-safe (clocks, sleeps,
/// spawned tasks, randomness, fresh ids, the environment, files, the network); each is a
/// compile error naming the context method to use instead.
///
/// `#[orchestrator(name = "HelloCities")]` registers it under another name than the function's;
/// `#[orchestrator(crate = "my_sdk::durable")]` names the `durable` crate by that path (see the
/// [crate docs](crate#arguments)).
#[proc_macro_attribute]
pub fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    durable_codegen::orchestrator(args.into(), item.into()).into()
}

/// Marks a durable entity: addressable state whose operations run one at a time.
///
/// On the inherent `impl` block of a `Default + Serialize + Deserialize` type (class style),
/// every method is an operation: it takes `&mut self` (may change the state) or `&self` (only
/// reads), at most one owned, serializable input, optionally `&EntityContext`, may be `async`,
/// and may return a value or a `Result`. The macro generates the proxies
/// `ctx.call_entity::<Counter>(key).add(1)`, `ctx.signal_entity::<Counter>(key).add(1)` and
/// `client.signal_entity::<Counter>(key).add(1)` go through.
///
/// On an `async fn name(ctx: EntityContext) -> Result<(), Error>` (function style), the
/// function dispatches on `ctx.operation()` itself and is registered like an activity.
///
/// `#[entity(name = "Counter")]` registers it under another name than the type's or function's;
/// `#[entity(crate = "my_sdk::durable")]` names the `durable` crate by that path, in both
/// styles (see the [crate docs](crate#arguments)).
#[proc_macro_attribute]
pub fn entity(args: TokenStream, item: TokenStream) -> TokenStream {
    durable_codegen::entity(args.into(), item.into()).into()
}

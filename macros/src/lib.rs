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
//! All the work happens in the `durable-codegen` crate; these entry points only hand it the
//! tokens.

use proc_macro::TokenStream;

/// Marks an `async fn` as an activity: the unit of real work (I/O, computation), executed at
/// least once per scheduled call, with its result recorded in the caller's history.
///
/// The function takes `ctx: ActivityContext` first, then at most one owned, serializable input,
/// and returns `Result<T, E>` where `T` is serializable and `E` converts into `durable::Error`.
///
/// `#[activity(name = "SayHello")]` registers it under another name than the function's.
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
/// `#[orchestrator(name = "HelloCities")]` registers it under another name than the function's.
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
/// `#[entity(name = "Counter")]` registers it under another name than the type's or function's.
#[proc_macro_attribute]
pub fn entity(args: TokenStream, item: TokenStream) -> TokenStream {
    durable_codegen::entity(args.into(), item.into()).into()
}

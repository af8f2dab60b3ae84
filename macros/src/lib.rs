//! Procedural macros for [`durable`](https://docs.rs/durable-fn) (the `durable-fn` package): `#[activity]`,
//! `#[orchestrator]` and `#[entity]`.
//!
//! Use them through the facade, `use durable::prelude::*;`. Each turns an `async fn` into a
//! typed *handle*: a unit struct of the same name that carries the function's registered name
//! and its input and output types, so that calling or starting it with the wrong input, or
//! passing an activity where an orchestrator is expected, fails to compile at your token.
//!
//! ```
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
//! # fn main() {}
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
//! All the work happens in the `durable-fn-codegen` crate; these entry points only hand it the
//! tokens.

use proc_macro::TokenStream;

/// Marks an `async fn` as an activity: the unit of real work (I/O, computation), executed at
/// least once per scheduled call, with its result recorded in the caller's history.
///
/// The function takes `ctx: ActivityContext` first, then at most one owned, serializable input,
/// and returns `Result<T, E>` where `T` is serializable and `E` converts into `durable::Error`.
///
/// An activity reports a failure by returning `Err`: a message (`Err("out of stock".into())`
/// or `Error::msg(..)`), or any standard error through `?`. The calling orchestration sees it
/// as an error of kind `ActivityFailed` naming the activity and the cause, and may retry it
/// with `call_activity_with_retry`. Use [`ActivityContext::idempotency_key`] to make side
/// effects safe to repeat: an activity runs at least once.
///
/// ```
/// use durable::prelude::*;
///
/// #[activity]
/// async fn charge(ctx: ActivityContext, cents: u64) -> Result<String, Error> {
///     if cents == 0 {
///         return Err(Error::msg("nothing to charge"));
///     }
///     let key = ctx.idempotency_key(); // the same on every delivery of this call
///     Ok(format!("charged {cents} with key {key}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // The body stays callable in unit tests.
/// let receipt = charge(ActivityContext::for_test("order-1"), 1250).await.unwrap();
/// assert!(receipt.starts_with("charged 1250"));
/// # }
/// ```
///
/// `#[activity(name = "SayHello")]` registers it under another name than the function's;
/// `#[activity(crate = "my_sdk::durable")]` names the `durable` crate by that path (see the
/// [crate docs](crate#arguments)).
///
/// [`ActivityContext::idempotency_key`]: https://docs.rs/durable-fn/latest/durable/struct.ActivityContext.html#method.idempotency_key
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    durable_codegen::activity(args.into(), item.into()).into()
}

/// Marks an `async fn` as an orchestrator: deterministic coordination code, replayed from its
/// history after every event.
///
/// The function takes `ctx: OrchestrationContext` first, then at most one owned, serializable
/// input, and returns `Result<T, E>` where `T` is serializable and `E` converts into
/// `durable::Error`.
///
/// ```
/// use std::time::Duration;
/// use durable::prelude::*;
///
/// #[activity]
/// async fn reserve(_ctx: ActivityContext, item: String) -> Result<bool, Error> {
///     Ok(!item.is_empty())
/// }
///
/// #[orchestrator]
/// async fn checkout(ctx: OrchestrationContext, items: Vec<String>) -> Result<u32, Error> {
///     let mut reserved = 0;
///     for item in items {
///         if ctx.call_activity(reserve, item).await? {
///             reserved += 1;
///         }
///     }
///     ctx.sleep(Duration::from_secs(60)).await; // a durable timer, not a thread sleep
///     Ok(reserved)
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let runtime = durable::testing::TestRuntime::start(
///     Runtime::builder().register(checkout).register(reserve),
/// )
/// .await?;
/// let id = runtime.client().start(checkout, vec!["book".into(), "".into()]).await?;
/// runtime.idle().await;
/// runtime.advance(Duration::from_secs(60)).await; // the manual clock: no real wait
/// let status = runtime.client().wait_for_completion(&id, Duration::from_secs(10)).await?;
/// assert_eq!(status.output::<u32>()?, 1);
/// # Ok(()) }
/// ```
///
/// # The determinism check
///
/// The body is checked for what is not replay-safe: clocks, sleeps, spawned tasks,
/// randomness, fresh ids, the environment, files, the network, other processes
/// (`std::process`: `Command`, `exit`, `id`) and reading standard input. Each is a compile
/// error at your token, naming the context method to use instead. Logging stays allowed:
/// `tracing` (whose lines are not repeated while replaying), `println!` and `eprintln!`.
///
/// `HashMap` and `HashSet` named anywhere in the body (a type, `HashMap::new()`,
/// `collect::<HashSet<_>>()`) are errors too: their iteration order is random, so a loop over
/// one that schedules work takes another order on replay. The check cannot tell a lookup from
/// a loop, so it flags every mention; use `BTreeMap`/`BTreeSet`, or `indexmap::IndexMap` to
/// keep insertion order.
///
/// The check reads tokens, not types, so it knows a name only by what the body shows:
///
/// - `use` items written in the body are followed, with `as` aliases, groups and globs:
///   after `use std::time::Instant as Clock;`, `Clock::now()` is a clock read, and after
///   `use std::env::var;`, `var("X")` reads the environment. Items the body defines are
///   yours: a `fn rng()` in the body is not taken to be `rand::rng`.
/// - Names imported at module level are invisible to the macro, so a few distinctive ones are
///   flagged when called bare: `random`, `rng`, `random_range`, `random_bool`,
///   `random_ratio`, `random_iter`, `getrandom`, `var`, `var_os`, `vars`, `vars_os`,
///   `current_dir`, `read_to_string`, `read_dir`, `create_dir`, `create_dir_all`,
///   `remove_file`, `remove_dir`, `remove_dir_all` and `stdin`; if one is a function of yours,
///   call it by its path (`self::random()`). `thread_rng`, `sleep`, `sleep_until`, `spawn`,
///   `spawn_blocking` and `spawn_local` are flagged as calls under any path. Names too common
///   to guess at are not flagged bare: `now`, `args`, `read`, `write`, `copy`, `rename`,
///   `metadata`, `exit`, `id`, `get`, `timeout`, `interval`, `Command::new`.
///
/// What the check cannot see: the body of a helper function defined outside the orchestrator
/// and called from it, an alias made with `use` at module level (`use std::time::Instant as
/// Clock;` outside the function), a type of yours that wraps a `HashMap`, and method calls,
/// trait methods included (`rng.random()` on a generator made elsewhere). The net under
/// it: the runtime compares every replayed step in full with what the history recorded (name
/// and input), so divergence that the compile-time check misses fails the instance with a
/// nondeterminism error naming both sides and the call site.
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
/// ```
/// use durable::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// pub struct Counter {
///     value: i64,
/// }
///
/// #[entity]
/// impl Counter {
///     pub fn add(&mut self, amount: i64) {
///         self.value += amount;
///     }
///     pub fn get(&self) -> i64 {
///         self.value
///     }
/// }
///
/// #[orchestrator]
/// async fn bump(ctx: OrchestrationContext, key: String) -> Result<i64, Error> {
///     ctx.signal_entity::<Counter>(key.clone()).add(1); // one-way
///     ctx.call_entity::<Counter>(key).get().await // two-way: waits for the result
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let runtime = durable::testing::TestRuntime::start(
///     Runtime::builder().register(bump).register_entity::<Counter>(),
/// )
/// .await?;
/// let client = runtime.client();
/// client.signal_entity::<Counter>("game1").add(41).await?;
/// let id = client.start(bump, "game1".to_string()).await?;
/// let status = client.wait_for_completion(&id, std::time::Duration::from_secs(10)).await?;
/// assert_eq!(status.output::<i64>()?, 42);
/// assert_eq!(client.read_entity::<Counter>("game1").await?.map(|c| c.value), Some(42));
/// # Ok(()) }
/// ```
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

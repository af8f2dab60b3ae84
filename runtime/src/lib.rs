//! # durable — durable functions for Rust
//!
//! Write long-running, stateful workflows as plain `async fn`s. Every step is recorded in an
//! append-only history; after a crash, a restart or a wait of days, the orchestrator's code is
//! replayed from that history and carries on where it left off.
//!
//! - `#[orchestrator]` — deterministic coordination code, replayed from history.
//! - `#[activity]` — the real work (I/O, computation), run at least once per scheduled call.
//! - [`Client`] — start, query, raise events to, suspend, resume, terminate and purge instances.
//! - [`Runtime`] — the host that runs them on a [`store`].
//!
//! ```
//! use std::time::Duration;
//! use durable::prelude::*;
//!
//! #[activity]
//! async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
//!     Ok(format!("Hello {city}!"))
//! }
//!
//! #[orchestrator]
//! async fn hello_cities(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
//!     let mut out = Vec::new();
//!     for city in ["Tokyo", "Seattle", "London"] {
//!         out.push(ctx.call_activity(say_hello, city.to_string()).await?);
//!     }
//!     Ok(out)
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! let runtime = Runtime::builder()
//!     .store(durable::store::Memory::new())
//!     .register(hello_cities)
//!     .register(say_hello)
//!     .start()
//!     .await?;
//! let client = runtime.client();
//! let id = client.start(hello_cities, ()).await?;
//! let status = client.wait_for_completion(&id, Duration::from_secs(30)).await?;
//! assert_eq!(status.runtime_status, RuntimeStatus::Completed);
//! let out: Vec<String> = status.output()?;
//! assert_eq!(out, ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod activity;
mod client;
mod clock;
pub mod entity;
mod error;
mod function;
pub mod history;
#[cfg(feature = "http")]
pub mod http;
mod orchestration;
mod registry;
pub mod replay;
mod retry;
mod runtime;
mod status;
pub mod store;
pub mod testing;

pub use activity::ActivityContext;
pub use client::{Client, StartRequest};
pub use clock::{Clock, SystemClock};
pub use durable_macros::{activity, entity, orchestrator};
pub use entity::{
    CleanEntityStorageResult, Entity, EntityContext, EntityFunction, EntityId, EntityMetadata,
    EntityQuery, EntityQueryPage,
};
pub use error::{Error, ErrorKind, FailureDetails};
pub use function::{Activity, Orchestrator, Register};
pub use orchestration::{
    ContinueAsNewFuture, CriticalSection, EventWait, OrchestrationContext, SubOrchestration, Task,
    Timer,
};
pub use registry::Registry;
pub use retry::RetryPolicy;
pub use runtime::{Runtime, RuntimeBuilder};
pub use status::{
    InstanceId, InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus,
};

/// The names most programs need: `use durable::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ActivityContext, Client, EntityContext, EntityId, Error, InstanceId, InstanceStatus,
        OrchestrationContext, RetryPolicy, Runtime, RuntimeStatus, activity, entity, orchestrator,
    };
}

/// Items the macros' generated code refers to. Not a public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

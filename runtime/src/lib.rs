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

// The layers, each using only the ones above it in this list:
mod client; //   start, query and control instances and entities
mod context; //  what user code receives: contexts, entity proxies, the function traits
mod host; //     the worker host: builder, dispatchers, turns, commits, leases
#[cfg(feature = "http")]
pub mod http; // the HTTP management API, a front for the client
mod model; //    plain data: errors, history, status, entity ids, retry policies, the clock
mod registry; // functions by name
mod replay; //   the replay core: actions, task slots and wakers, the executor
pub mod store; // the store trait and its backends (memory, SQLite, PostgreSQL)
pub mod testing; // the test kit: a host on the memory store with a manual clock

pub use model::history;

pub mod entity {
    //! Durable entities: small pieces of addressable state ("virtual actors") that
    //! orchestrations, clients and other entities talk to with messages.
    //!
    //! An entity is identified by an [`EntityId`] (`@name@key`). Its operations run strictly
    //! one at a time; its state is created on first use and removed by the built-in `delete`
    //! operation. The `#[entity]` macro turns an impl block (class style) or a function
    //! (function style) into a dispatch table and typed proxies.

    pub use crate::context::entity::{Entity, EntityContext, EntityFunction};
    // What the generated proxies and dispatch tables call into: public for the macros' code,
    // not for users.
    #[doc(hidden)]
    pub use crate::context::entity::{
        CallTarget, ClientSignalTarget, Dispatched, SignalTarget, decode_input, encode_output,
        unknown_operation,
    };
    pub use crate::model::{
        CleanEntityStorageResult, EntityId, EntityMetadata, EntityName, EntityQuery,
        EntityQueryPage,
    };
}

pub use client::{Client, StartRequest};
pub use context::{
    Activity, ActivityContext, ContinueAsNewFuture, CriticalSection, Entity, EntityContext,
    EntityFunction, EventWait, OrchestrationContext, Orchestrator, SubOrchestration, Task, Timer,
};
pub use durable_macros::{activity, entity, orchestrator};
pub use host::{LeftReason, LeftWork, Runtime, RuntimeBuilder};
pub use model::{
    CleanEntityStorageResult, Clock, EntityId, EntityMetadata, EntityQuery, EntityQueryPage, Error,
    ErrorKind, FailureDetails, InstanceId, InstanceQuery, InstanceStatus, MAX_VERSION_LEN,
    PurgeFilter, QueryPage, RetryPolicy, RuntimeStatus, SystemClock, VersionFailure, VersionMatch,
    compare_versions, validate_version,
};
pub use registry::{Register, Registry};

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

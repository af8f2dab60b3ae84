//! Items the macros' generated code refers to. Not a public API: names here change without
//! notice. Generated code reaches the crate only through this module (`::durable::__private`,
//! or the path given with `#[orchestrator(crate = "...")]`), which it imports once per
//! expansion as `__d`.
//!
//! Items are named through the crate's public paths where they have one, so moving a module
//! inside the crate does not change what the macros see.

pub use crate::context::IntoOutcome;
pub use crate::entity::{
    CallTarget, ClientSignalTarget, Dispatched, SignalTarget, decode_input, unknown_operation,
};
pub use crate::model::{BoxFuture, BoxFutureOf};
pub use crate::{
    Activity, ActivityContext, Entity, EntityContext, EntityFunction, Error, OrchestrationContext,
    Orchestrator, Register, Registry, Task,
};

use std::future::Future;

use serde::Serialize;

/// `Result<T, durable::Error>`, as the generated signatures spell it.
pub type Result<T> = ::core::result::Result<T, Error>;

/// What `Entity::dispatch` returns.
pub type DispatchFuture<'a> = BoxFutureOf<'a, Result<Dispatched>>;

/// What a client signal proxy's methods return: a future that resolves once the signal is
/// durably enqueued.
pub trait SignalFuture<'a>: Future<Output = Result<()>> + Send + 'a {}

impl<'a, F: Future<Output = Result<()>> + Send + 'a> SignalFuture<'a> for F {}

/// Encodes an operation's output (as [`crate::entity::encode_output`] does) into what one arm
/// of `Entity::dispatch` returns. Not that function: this one builds the arm's whole result.
pub fn encode_output<T: Serialize + ?Sized>(
    entity: &str,
    operation: &str,
    output: &T,
    mutated: bool,
) -> Result<Dispatched> {
    Ok(Dispatched {
        output: crate::entity::encode_output(entity, operation, output)?,
        mutated,
    })
}

/// The `Err` an arm of `Entity::dispatch` returns for an operation the entity does not have.
pub fn unknown<T>(entity: &str, operation: &str, known: &[&str]) -> Result<T> {
    Err(unknown_operation(entity, operation, known))
}

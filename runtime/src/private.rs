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
use serde::de::DeserializeOwned;

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

/// An entity operation's input: what the generated code checks once per operation, at the
/// input's type, so that an input that is not serde reads as one error saying what to derive
/// (and not one per use, naming the proxies' internals). The uses' own `Serialize` and
/// `DeserializeOwned` bounds follow from this one, so rustc does not report them again.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the input of an entity operation: it is not serializable",
    label = "this input must be `Serialize` and `Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`; an input is stored as JSON, and an operation may be called from another process"
)]
pub trait OperationInput: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> OperationInput for T {}

/// An entity operation's output, checked like [`OperationInput`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the output of an entity operation: it is not serializable",
    label = "this output must be `Serialize` and `Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`; an output is stored as JSON and decoded by the caller"
)]
pub trait OperationOutput: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> OperationOutput for T {}

/// Checks an operation's input type; generated at each use of it, spanned at the user's type.
/// Every use reports the same error, which rustc shows once.
pub const fn input<T: OperationInput>() {}

/// Checks an operation's output type, as [`input`] does its input.
pub const fn output<T: OperationOutput>() {}

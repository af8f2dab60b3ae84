//! Durable entities: small pieces of addressable state ("virtual actors") that orchestrations,
//! clients and other entities talk to with messages.
//!
//! An entity is identified by an [`EntityId`] (`@name@key`). Its operations run strictly one at
//! a time; its state is created on first use and removed by the built-in `delete` operation.
//! The `#[entity]` macro turns an impl block (class style) or a function (function style) into
//! a dispatch table and typed proxies.

mod context;
mod proxy;

pub use context::EntityContext;
pub(crate) use context::{no_such_entity, signal_message};
pub use proxy::{CallTarget, ClientSignalTarget, SignalTarget};
pub(crate) use proxy::{SignalSender, Sink};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{BoxFutureOf, EntityName, Error, ErrorKind};

impl<E: Entity> EntityName for E {
    const NAME: &'static str = <E as Entity>::NAME;
}

/// What one operation produced: its output as JSON and whether it may have changed the state.
#[derive(Debug)]
pub struct Dispatched {
    /// The operation's output, as JSON (`null` for operations that return nothing).
    pub output: String,
    /// False for `&self` operations: their state is never persisted.
    pub mutated: bool,
}

/// A class-style entity: a `Serialize + DeserializeOwned + Default` type whose `#[entity]` impl
/// block lists its operations. Implemented by the macro; not meant to be implemented by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an entity",
    label = "expected a type with an `#[entity]` impl block",
    note = "add `#[entity]` to an `impl {Self} {{ ... }}` block whose methods are the operations"
)]
pub trait Entity: Serialize + DeserializeOwned + Default + Send + 'static {
    /// The entity's name (lower case; names are case-insensitive).
    const NAME: &'static str;
    /// The operations it accepts, lower case (including the built-in `delete`).
    const OPERATIONS: &'static [&'static str];
    /// The two-way proxy orchestrations get from `call_entity::<Self>(key)`.
    type Call;
    /// The one-way proxy orchestrations and entities get from `signal_entity::<Self>(key)`.
    type Signal;
    /// The one-way proxy clients get from `client.signal_entity::<Self>(key)`.
    type ClientSignal<'a>;

    /// Builds the call proxy.
    fn call_proxy(target: CallTarget) -> Self::Call;
    /// Builds the signal proxy.
    fn signal_proxy(target: SignalTarget) -> Self::Signal;
    /// Builds the client's signal proxy.
    fn client_signal_proxy(target: ClientSignalTarget<'_>) -> Self::ClientSignal<'_>;

    /// Runs operation `operation` (already lower case) with `input` (JSON text) against `self`.
    /// An unknown operation is an `Err` naming the operations there are. `delete` is handled
    /// by the runtime unless the type defines its own.
    fn dispatch<'a>(
        &'a mut self,
        ctx: &'a EntityContext,
        operation: &'a str,
        input: &'a str,
    ) -> BoxFutureOf<'a, Result<Dispatched, Error>>;
}

/// A function-style entity: an `#[entity]` function taking the [`EntityContext`] and
/// dispatching on [`EntityContext::operation`]. Implemented by the macro on the function's
/// handle.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a function-style entity",
    label = "expected a function marked `#[entity]`"
)]
pub trait EntityFunction: Copy + Send + Sync + 'static {
    /// The entity's name (lower case).
    const NAME: &'static str;
    /// Runs one operation.
    fn run(ctx: EntityContext) -> BoxFutureOf<'static, Result<(), Error>>;
}

/// Decodes an operation's input for generated dispatch code, naming the entity and operation
/// when it does not fit.
pub fn decode_input<T: DeserializeOwned>(
    entity: &str,
    operation: &str,
    input: &str,
) -> Result<T, Error> {
    serde_json::from_str(input).map_err(|e| {
        Error::serialization(
            format_args!(
                "the input of operation `{operation}` of entity `{entity}` does not fit its type"
            ),
            e,
        )
    })
}

/// Encodes an operation's output for generated dispatch code.
pub fn encode_output<T: Serialize + ?Sized>(
    entity: &str,
    operation: &str,
    output: &T,
) -> Result<String, Error> {
    Error::to_json(
        output,
        format_args!("the output of operation `{operation}` of entity `{entity}`"),
    )
}

/// The error generated dispatch code returns for an operation the entity does not have.
pub fn unknown_operation(entity: &str, operation: &str, known: &[&str]) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "entity `{entity}` has no operation `{operation}`; its operations are: {}",
            known.join(", ")
        ),
    )
}

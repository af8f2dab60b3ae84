//! Items the macros' generated code refers to. Not a public API: names here change without
//! notice. Generated code reaches the crate only through this module (`::durable::__private`,
//! or the path given with `#[orchestrator(crate = "...")]`).
//!
//! Everything is named through the crate's public paths, so moving a module inside the crate
//! never changes what the macros see.

pub use crate::entity::{
    CallTarget, ClientSignalTarget, Dispatched, Entity, EntityFunction, SignalTarget, decode_input,
    encode_output, unknown_operation,
};
pub use crate::function::{Activity, BoxFuture, BoxFutureOf, IntoOutcome, Orchestrator, Register};
pub use crate::registry::Registry;

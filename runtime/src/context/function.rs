//! The traits behind `#[activity]` and `#[orchestrator]`.
//!
//! The macros turn a function's name into a zero-sized *handle* type that implements
//! [`Activity`] or [`Orchestrator`]. The handle carries the function's registered name and its
//! input and output types, so `ctx.call_activity(say_hello, city)` is checked at compile time.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::activity::ActivityContext;
use super::orchestration::OrchestrationContext;
use crate::model::{BoxFuture, Error};

/// A function marked `#[activity]`: real work (I/O, computation), executed at least once per
/// scheduled call, with its result recorded in the calling orchestration's history.
///
/// Implemented by the handle the macro generates; not meant to be implemented by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an activity",
    label = "expected a function marked `#[activity]` here",
    note = "mark the function with `#[activity]`; orchestrators are started with `call_sub_orchestrator`"
)]
pub trait Activity: Copy + Send + Sync + 'static {
    /// The activity's input type.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The activity's success type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The name the activity is registered and scheduled under.
    const NAME: &'static str;
    /// Runs the activity's body.
    fn run(ctx: ActivityContext, input: Self::Input) -> BoxFuture<Result<Self::Output, Error>>;
}

/// A function marked `#[orchestrator]`: deterministic coordination code, replayed from history.
///
/// Implemented by the handle the macro generates; not meant to be implemented by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an orchestrator",
    label = "expected a function marked `#[orchestrator]` here",
    note = "mark the function with `#[orchestrator]`; activities are called with `call_activity`"
)]
pub trait Orchestrator: Copy + Send + Sync + 'static {
    /// The orchestrator's input type.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The orchestrator's success type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The name the orchestrator is registered and started under.
    const NAME: &'static str;
    /// Runs the orchestrator's body.
    fn run(ctx: OrchestrationContext, input: Self::Input)
    -> BoxFuture<Result<Self::Output, Error>>;
}

/// The result shapes a durable function may return: `Result<T, E>` where `E` converts into
/// [`Error`] (`durable::Error` itself, any `std::error::Error`, or a user type with a `From` impl).
#[diagnostic::on_unimplemented(
    message = "a durable function must return `Result<T, E>`, not `{Self}`",
    label = "write `Result<{Self}, durable::Error>` here",
    note = "`E` may be `durable::Error` or any error type that converts into it"
)]
pub trait IntoOutcome {
    /// The success type.
    type Ok;
    /// Converts into the runtime's result shape.
    fn into_outcome(self) -> Result<Self::Ok, Error>;
}

impl<T, E: Into<Error>> IntoOutcome for Result<T, E> {
    type Ok = T;
    fn into_outcome(self) -> Result<T, Error> {
        self.map_err(Into::into)
    }
}

//! The replay core: pure, synchronous, I/O-free, and private to the crate.
//!
//! An [`Executor`] owns one orchestration's future and the state its context shares. It is fed
//! history events one at a time, in order; after each it polls the orchestrator until it blocks.
//! Replaying old history and running a new turn are the same operation — the only difference is
//! whether `is_replaying` is set and whether scheduling steps are *checked* against the history
//! (replay) or *emitted* as new actions (new turn). So `when_any`, `select!` and `join!` resolve
//! identically on every replay, and a cached executor resumes without replaying at all.
//!
//! - `action.rs`: the steps code asks for, their history events, and how a recorded step is
//!   compared with the code's;
//! - `state.rs`: the state shared with the orchestration context (task slots and wakers, event
//!   waiters and buffers, pending steps);
//! - `executor.rs`: the executor, handed the orchestrator to run by the host;
//! - `inspect.rs`: what the host and the test kit read from an executor.

mod action;
mod executor;
mod inspect;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use action::Action;
pub(crate) use executor::{Executor, Outcome, StartFn, TurnOutput, panic_message};
pub(crate) use inspect::ExecutionInfo;
pub(crate) use state::{ContinueAsNew, CriticalState, Shared, TaskResult};

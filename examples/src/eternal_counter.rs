//! **Eternal orchestration**: a loop that runs for as long as it needs to without its history
//! growing.
//!
//! An orchestrator that looped with a plain `loop { … }` would append a timer and its firing to
//! its history on every pass, and every replay would walk through all of them. Instead,
//! `eternal_counter` does one pass — wait on a durable timer, then count one up — and calls
//! `ctx.continue_as_new(next_state)`. That ends the current execution and starts a fresh one of
//! the same instance with the new state as its input and an **empty history**. The instance id
//! stays the same, so clients keep following it; only the latest pass is ever replayed.
//!
//! This counter stops at a limit so that it can be tested; a real eternal orchestration
//! (a periodic clean-up, a heartbeat, an aggregator) would simply never return.
//!
//! ```text
//! count < limit ──► durable timer ──► continue_as_new(count + 1) ──┐
//!      ▲                                                           │ (fresh, empty history)
//!      └───────────────────────────────────────────────────────────┘
//! count == limit ──► return count
//! ```

use std::time::Duration;

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// The counter's whole state, carried from one execution to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterState {
    /// The count so far (start at 0).
    pub count: u64,
    /// Stop, returning the count, once it reaches this.
    pub limit: u64,
    /// The wait before each increment, in milliseconds.
    pub interval_ms: u64,
}

impl CounterState {
    /// A counter at 0 that counts to `limit`, one step every `interval_ms`.
    pub fn new(limit: u64, interval_ms: u64) -> Self {
        CounterState {
            count: 0,
            limit,
            interval_ms,
        }
    }
}

/// Counts from `state.count` up to `state.limit`, one step per execution with a durable timer
/// before each, and returns the final count.
#[orchestrator]
pub async fn eternal_counter(ctx: OrchestrationContext, state: CounterState) -> Result<u64, Error> {
    ctx.set_custom_status(state.count);
    if state.count < state.limit {
        ctx.sleep(Duration::from_millis(state.interval_ms)).await;
        let next = CounterState {
            count: state.count + 1,
            ..state
        };
        // Ends this execution here; the next one starts from `next` with an empty history.
        return ctx.continue_as_new(next).await;
    }
    Ok(state.count)
}

/// Registers [`eternal_counter`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register(eternal_counter)
}

//! The orchestrators, activities and entity the benchmark workloads run.

use std::time::Duration;

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bank;

/// The no-op activity: returns its input unchanged.
#[activity]
pub async fn noop(_ctx: ActivityContext, x: u64) -> Result<u64, Error> {
    Ok(x)
}

/// HelloSequence5: five sequential no-op activities (10 events). Returns `5 * seed + 10`.
#[orchestrator]
pub async fn hello_sequence5(ctx: OrchestrationContext, seed: u64) -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..5 {
        sum += ctx.call_activity(noop, seed + i).await?;
    }
    Ok(sum)
}

/// The expected output of [`hello_sequence5`] for `seed`.
pub fn hello_expected(seed: u64) -> u64 {
    5 * seed + 10
}

/// HelloSequence5 that also signals the counter entity `key` once at the end, so that a crash
/// test can check that each instance's turn was applied exactly once.
#[orchestrator]
pub async fn hello_sequence5_counted(
    ctx: OrchestrationContext,
    input: (u64, String),
) -> Result<u64, Error> {
    let (seed, key) = input;
    let mut sum = 0;
    for i in 0..5 {
        sum += ctx.call_activity(noop, seed + i).await?;
    }
    ctx.signal_entity::<BenchCounter>(key).add(1);
    Ok(sum)
}

/// A chain of `len` sequential no-op activities; returns the sum `0 + 1 + … + len-1`.
#[orchestrator]
pub async fn chain(ctx: OrchestrationContext, len: u64) -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..len {
        sum += ctx.call_activity(noop, i).await?;
    }
    Ok(sum)
}

/// Fans out `width` no-op activities at once and sums their results.
#[orchestrator]
pub async fn fan_out(ctx: OrchestrationContext, width: u64) -> Result<u64, Error> {
    let calls = (0..width).map(|i| ctx.call_activity(noop, i));
    Ok(ctx.when_all(calls).await?.into_iter().sum())
}

/// The sum `0 + 1 + … + n-1`, the output of [`chain`] and [`fan_out`].
pub fn triangle(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// A counter entity for the entity workloads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchCounter {
    /// The sum of every amount added.
    pub value: u64,
    /// How many `add` operations were applied.
    pub ops: u64,
}

#[entity]
impl BenchCounter {
    /// Adds `amount`.
    pub fn add(&mut self, amount: u64) {
        self.value += amount;
        self.ops += 1;
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.value
    }
}

/// Calls counter `key` two-way `calls` times in sequence (`add(1)`), then reads it back.
#[orchestrator]
pub async fn entity_caller(ctx: OrchestrationContext, input: (String, u64)) -> Result<u64, Error> {
    let (key, calls) = input;
    for _ in 0..calls {
        ctx.call_entity::<BenchCounter>(key.clone()).add(1).await?;
    }
    ctx.call_entity::<BenchCounter>(key).get().await
}

/// Waits for `count` external events named `e` one after the other and sums their payloads.
#[orchestrator]
pub async fn event_sink(ctx: OrchestrationContext, count: u64) -> Result<u64, Error> {
    let mut sum = 0;
    for _ in 0..count {
        sum += ctx.wait_for_event::<u64>("e").await?;
    }
    Ok(sum)
}

/// Waits on one durable timer due at `due_ms` (Unix milliseconds) and returns how late the turn
/// that saw it fire started, in microseconds of the system clock.
#[orchestrator]
pub async fn timer_once(ctx: OrchestrationContext, due_ms: i64) -> Result<i64, Error> {
    let due = chrono::DateTime::from_timestamp_millis(due_ms)
        .ok_or_else(|| Error::msg("due time out of range"))?;
    ctx.create_timer(due).await;
    Ok((ctx.current_utc_datetime() - due)
        .num_microseconds()
        .unwrap_or(i64::MAX))
}

/// Runs `count` sequential timers of `ms` milliseconds each; returns each one's lateness in
/// microseconds.
#[orchestrator]
pub async fn timer_sequence(
    ctx: OrchestrationContext,
    input: (u64, u64),
) -> Result<Vec<i64>, Error> {
    let (count, ms) = input;
    let mut lateness = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let due = ctx.current_utc_datetime() + Duration::from_millis(ms);
        ctx.create_timer(due).await;
        lateness.push(
            (ctx.current_utc_datetime() - due)
                .num_microseconds()
                .unwrap_or(i64::MAX),
        );
    }
    Ok(lateness)
}

/// The state an [`eternal`] orchestration carries across `continue_as_new`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct EternalState {
    /// Iterations done so far.
    pub done: u64,
    /// Stop after this many.
    pub limit: u64,
    /// Continue as new after this many iterations.
    pub every: u64,
}

/// An eternal loop: one no-op activity per iteration, `continue_as_new` every `every`
/// iterations; returns the number of iterations once `limit` is reached.
#[orchestrator]
pub async fn eternal(ctx: OrchestrationContext, state: EternalState) -> Result<u64, Error> {
    let mut done = state.done;
    let stop = (state.done + state.every).min(state.limit);
    while done < stop {
        done += ctx.call_activity(noop, 1).await?;
    }
    if done >= state.limit {
        return Ok(done);
    }
    ctx.continue_as_new(EternalState { done, ..state }).await
}

/// What [`replay_subject`] does.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ReplaySubject {
    /// Activity calls to make first (2 history events each), in parallel batches.
    pub calls: u64,
    /// Then wait for this many `step` events, one turn each.
    pub probes: u64,
}

/// Builds a long history out of parallel batches of no-op activities, sets its custom status
/// to 0, then handles `probes` `step` events one turn at a time (custom status = steps seen).
/// Returns the number of activity calls made.
#[orchestrator]
pub async fn replay_subject(ctx: OrchestrationContext, cfg: ReplaySubject) -> Result<u64, Error> {
    let mut made = 0;
    while made < cfg.calls {
        let batch = (cfg.calls - made).min(500);
        let calls = (0..batch).map(|i| ctx.call_activity(noop, i));
        ctx.when_all(calls).await?;
        made += batch;
    }
    ctx.set_custom_status(0u64);
    for step in 1..=cfg.probes {
        let _: u64 = ctx.wait_for_event("step").await?;
        ctx.set_custom_status(step);
    }
    Ok(made)
}

/// Registers everything the benchmark runs, including the bank example's accounts.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    let builder = builder
        .register(noop)
        .register(hello_sequence5)
        .register(hello_sequence5_counted)
        .register(chain)
        .register(fan_out)
        .register_entity::<BenchCounter>()
        .register(entity_caller)
        .register(event_sink)
        .register(timer_once)
        .register(timer_sequence)
        .register(eternal)
        .register(replay_subject);
    bank::register(builder)
}

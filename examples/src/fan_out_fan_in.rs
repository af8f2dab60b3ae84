//! **Fan-out/fan-in**: split a job into independent pieces, run them in parallel, and combine
//! the results once every piece is done.
//!
//! `sum_of_squares` first asks the `list_work_items` activity what there is to do, then
//! schedules one `square` activity per item *before* awaiting any of them, so they all run at
//! once (up to the host's activity concurrency). `ctx.when_all` waits for the whole batch and
//! hands back the results in the order the calls were made; the orchestrator then sums them.
//!
//! Every result is recorded in history as it arrives, so a crash half-way through the batch
//! only re-runs the pieces that had not finished.
//!
//! ```text
//!                      ┌─► square(1) ─┐
//! list_work_items(n) ──┼─► square(2) ─┼──► sum
//!                      └─► square(n) ─┘
//! ```

use durable::RuntimeBuilder;
use durable::prelude::*;

/// Returns the work items of a batch: the numbers `1..=count`.
#[activity]
pub async fn list_work_items(_ctx: ActivityContext, count: u32) -> Result<Vec<u64>, Error> {
    Ok((1..=u64::from(count)).collect())
}

/// Processes one work item: squares it. Fails on numbers whose square does not fit a `u64`.
#[activity]
pub async fn square(_ctx: ActivityContext, n: u64) -> Result<u64, Error> {
    n.checked_mul(n)
        .ok_or_else(|| Error::msg(format!("{n} squared does not fit in a u64")))
}

/// Squares the numbers `1..=count` in parallel, one activity each, and returns the sum of the
/// squares (`count * (count + 1) * (2 * count + 1) / 6`).
#[orchestrator]
pub async fn sum_of_squares(ctx: OrchestrationContext, count: u32) -> Result<u64, Error> {
    let items = ctx.call_activity(list_work_items, count).await?;
    ctx.set_custom_status(format!("squaring {} items", items.len()));

    // Fan out: every call is scheduled here, none is awaited yet.
    let calls = items.into_iter().map(|n| ctx.call_activity(square, n));
    // Fan in: wait for all of them.
    let squares = ctx.when_all(calls).await?;

    ctx.set_custom_status("done");
    Ok(squares.iter().sum())
}

/// The sum [`sum_of_squares`] must return for `count`, by the closed formula.
pub fn expected_sum(count: u32) -> u64 {
    let n = u64::from(count);
    n * (n + 1) * (2 * n + 1) / 6
}

/// Registers [`sum_of_squares`], [`list_work_items`] and [`square`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register(sum_of_squares)
        .register(list_work_items)
        .register(square)
}

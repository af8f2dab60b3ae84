//! **Retries**: let the runtime try a failing activity again, on a schedule you choose.
//!
//! `ctx.call_activity_with_retry(activity, input, policy)` calls the activity and, when it
//! fails, waits and calls it again, up to `policy.max_attempts()` attempts in all. The waits are
//! durable timers, so a retry schedule of minutes or hours costs nothing while it waits and
//! survives restarts; each attempt and its failure are recorded in history.
//!
//! Two orchestrators show both ends:
//!
//! - `upload_with_retry` calls `upload_report`, which fails twice with a transient error and
//!   succeeds on the third attempt. The orchestrator never sees the first two failures.
//! - `charge_with_retry` calls `charge_card`, which always fails. After the last attempt the
//!   retry gives up and hands the final error — which names the activity and its message — to
//!   the orchestrator, which adds context and fails the instance with it.
//!
//! ## Why a process-wide counter?
//!
//! To fail "twice, then succeed", the flaky activity must know which attempt it is on. Every
//! retry is a brand-new scheduled call (with its own task id and idempotency key), and
//! [`ActivityContext::delivery`] counts re-deliveries of *one* call after a crash, not retries.
//! So the example keeps a small counter in a `static`, keyed by the calling instance's id and
//! the activity's name. That keeps it deterministic: each instance has its own key, so
//! instances — and tests running side by side — never disturb each other, and the key is
//! removed once the attempt succeeds. Real activities don't need this: their failures come from
//! the outside world.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable::RuntimeBuilder;
use durable::prelude::*;

/// How many attempts each retrying call makes at most, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// The wait before the first retry; each later wait doubles it.
pub const FIRST_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How many times [`upload_report`] fails before it succeeds.
pub const UPLOAD_FAILURES: u32 = 2;

/// The policy both orchestrators use: [`MAX_ATTEMPTS`] attempts, waiting
/// [`FIRST_RETRY_INTERVAL`], then twice that.
pub fn policy() -> RetryPolicy {
    RetryPolicy::new(MAX_ATTEMPTS, FIRST_RETRY_INTERVAL).backoff_coefficient(2.0)
}

/// Attempts seen so far, per `instance id/activity name`.
static ATTEMPTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

fn attempt_key(ctx: &ActivityContext) -> String {
    format!("{}/{}", ctx.instance_id(), ctx.name())
}

/// Counts one more attempt of this activity for this instance and returns its number (1 for
/// the first).
fn next_attempt(ctx: &ActivityContext) -> u32 {
    let mut attempts = ATTEMPTS.lock().unwrap_or_else(|p| p.into_inner());
    let n = attempts.entry(attempt_key(ctx)).or_insert(0);
    *n += 1;
    *n
}

fn forget_attempts(ctx: &ActivityContext) {
    let mut attempts = ATTEMPTS.lock().unwrap_or_else(|p| p.into_inner());
    attempts.remove(&attempt_key(ctx));
}

/// Uploads a report (simulated): the storage service is busy for the first
/// [`UPLOAD_FAILURES`] attempts of each instance, then the upload goes through.
#[activity]
pub async fn upload_report(ctx: ActivityContext, file: String) -> Result<String, Error> {
    let attempt = next_attempt(&ctx);
    if attempt <= UPLOAD_FAILURES {
        return Err(Error::msg(format!(
            "storage service busy, try again later (attempt {attempt})"
        )));
    }
    forget_attempts(&ctx);
    Ok(format!("uploaded {file} on attempt {attempt}"))
}

/// Charges a card (simulated): the payment gateway is always down.
#[activity]
pub async fn charge_card(ctx: ActivityContext, amount_cents: u64) -> Result<String, Error> {
    let attempt = next_attempt(&ctx);
    if attempt >= MAX_ATTEMPTS {
        forget_attempts(&ctx);
    }
    Err(Error::msg(format!(
        "payment gateway unavailable, could not charge {amount_cents} cents (attempt {attempt})"
    )))
}

/// Uploads `file` with [`policy`]; succeeds on the third attempt.
#[orchestrator]
pub async fn upload_with_retry(ctx: OrchestrationContext, file: String) -> Result<String, Error> {
    ctx.call_activity_with_retry(upload_report, file, policy())
        .await
}

/// Charges `amount_cents` with [`policy`]; every attempt fails, so the instance ends `Failed`
/// with the last attempt's error, prefixed with how many attempts were made.
#[orchestrator]
pub async fn charge_with_retry(
    ctx: OrchestrationContext,
    amount_cents: u64,
) -> Result<String, Error> {
    ctx.call_activity_with_retry(charge_card, amount_cents, policy())
        .await
        .map_err(|err| Error::msg(format!("gave up after {MAX_ATTEMPTS} attempts: {err}")))
}

/// Registers both orchestrators and both activities.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register(upload_with_retry)
        .register(charge_with_retry)
        .register(upload_report)
        .register(charge_card)
}

//! Shared helpers for durable's behaviour tests.

/// The README's code blocks, compiled as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
mod readme {}

use std::future::Future;
use std::time::Duration;

use durable::testing::TestRuntime;
use durable::{Error, InstanceStatus, Runtime, RuntimeBuilder};

/// Generous real-time bound for waits; tests drive orchestration time with the manual clock,
/// so this is only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs `scenario` twice: once with the instance cache (instances resume without replay) and
/// once evicting after every turn (every turn replays the whole history). Both must behave the
/// same. A scenario returns `()` or `Result<(), Error>`; a failure names the mode.
pub async fn in_both_modes<F, Fut>(
    configure: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
    scenario: F,
) where
    F: Fn(TestRuntime) -> Fut,
    Fut: Future,
    Fut::Output: ScenarioResult,
{
    for always_replay in [false, true] {
        // Shown with the test's output when an assertion fails.
        println!("--- always_replay({always_replay})");
        let builder = configure(Runtime::builder().always_replay(always_replay));
        let runtime = TestRuntime::start(builder)
            .await
            .expect("the test runtime starts");
        if let Err(err) = scenario(runtime).await.into_result() {
            panic!("always_replay({always_replay}): {err:?}");
        }
    }
}

/// What a scenario may return: `()`, or a `Result` whose `Err` fails the test.
pub trait ScenarioResult {
    /// The scenario's result.
    fn into_result(self) -> Result<(), Error>;
}

impl ScenarioResult for () {
    fn into_result(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ScenarioResult for Result<(), Error> {
    fn into_result(self) -> Result<(), Error> {
        self
    }
}

/// Waits for an instance to finish and returns its status.
pub async fn finished(runtime: &TestRuntime, id: &str) -> InstanceStatus {
    runtime
        .client()
        .wait_for_completion(id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("instance {id} did not finish: {e}"))
}

/// The failure message of a failed instance.
pub fn failure_message(status: &InstanceStatus) -> String {
    assert_eq!(
        status.runtime_status,
        durable::RuntimeStatus::Failed,
        "expected a failed instance, got {status:?}"
    );
    status
        .failure
        .as_ref()
        .map(|f| f.message.clone())
        .unwrap_or_default()
}

/// Shorthand for an application error.
pub fn fail<T>(message: &str) -> Result<T, Error> {
    Err(Error::msg(message))
}

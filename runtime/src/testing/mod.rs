//! A test kit: a runtime on the memory store with a manual clock, so a test can start a
//! 72-hour approval wait, advance the clock, and see the escalation at once.
//!
//! ```
//! use std::time::Duration;
//! use durable::prelude::*;
//! use durable::testing::TestRuntime;
//!
//! #[orchestrator]
//! async fn reminder(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
//!     ctx.sleep(Duration::from_secs(72 * 3600)).await;
//!     Ok("reminded".to_string())
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! let test = TestRuntime::start(Runtime::builder().register(reminder)).await?;
//! let id = test.client().start(reminder, ()).await?;
//! test.advance(Duration::from_secs(72 * 3600)).await;
//! let status = test.client().wait_for_completion(&id, Duration::from_secs(5)).await?;
//! assert_eq!(status.output::<String>()?, "reminded");
//! # Ok(()) }
//! ```
//!
//! Beyond that:
//!
//! - **Mocks.** [`TestRuntime::builder`] mocks activities and sub-orchestrators by their
//!   handles, before the runtime starts, so an orchestrator is tested with none of the real
//!   activity code registered; each mock records its calls ([`Calls`]).
//! - **Steps.** [`TestRuntime::steps`] lists what an instance did, in order, as [`Step`]s to
//!   compare or match.
//! - **Replay checks.** [`replay_check`] replays an exported history (see
//!   [`HistoryFile`](crate::history::HistoryFile)) against the current code, in process, and
//!   reports the first step where the code no longer matches.
//!
//! ```
//! use std::time::Duration;
//! use durable::prelude::*;
//! use durable::testing::{Step, TestRuntime};
//! use serde_json::json;
//!
//! #[activity]
//! async fn charge(_ctx: ActivityContext, cents: u64) -> Result<String, Error> {
//!     unimplemented!("talks to the payment provider")
//! }
//!
//! #[orchestrator]
//! async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
//!     ctx.sleep(Duration::from_secs(60)).await;
//!     ctx.call_activity(charge, cents).await
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! let mut test = TestRuntime::builder(Runtime::builder().register(checkout));
//! let charges = test.mock_activity(charge, |cents: u64| Ok(format!("receipt-{cents}")));
//! let test = test.start().await?;
//!
//! let id = test.client().start(checkout, 1250).await?;
//! test.advance(Duration::from_secs(60)).await;
//! let status = test.client().wait_for_completion(&id, Duration::from_secs(5)).await?;
//! assert_eq!(status.output::<String>()?, "receipt-1250");
//! assert_eq!(charges.count(), 1);
//! assert_eq!(charges.inputs(), [1250]);
//!
//! let steps = test.steps(&id).await?;
//! assert!(matches!(steps[0], Step::Timer { fired: true, .. }));
//! assert_eq!(
//!     steps[1],
//!     Step::Activity {
//!         name: "charge".into(),
//!         input: json!(1250),
//!         result: Some(Ok(json!("receipt-1250"))),
//!     }
//! );
//! # Ok(()) }
//! ```

mod mocks;
mod replay_check;
mod steps;

pub use mocks::{Calls, TestRuntimeBuilder};
pub use replay_check::{ReplayDivergence, ReplayHistory, ReplayTarget, replay_check};
pub use steps::{Step, StepResult};

use std::ops::Deref;
use std::time::Duration;

use crate::host::{Runtime, RuntimeBuilder};
pub use crate::model::ManualClock;
use crate::model::{Error, ErrorKind};
use crate::store::Memory;

/// A [`Runtime`] on a fresh [`Memory`] store (unless the builder already has a store) and a
/// [`ManualClock`]. Derefs to the runtime.
pub struct TestRuntime {
    runtime: Runtime,
    clock: ManualClock,
}

impl TestRuntime {
    /// Starts `builder` with a manual clock, on a fresh memory store unless it has a store.
    pub async fn start(builder: RuntimeBuilder) -> Result<Self, Error> {
        Self::start_with_clock(builder, ManualClock::new()).await
    }

    /// Starts `builder` with a memory store and the given manual clock.
    pub async fn start_with_clock(
        builder: RuntimeBuilder,
        clock: ManualClock,
    ) -> Result<Self, Error> {
        let builder = if builder.store.is_none() {
            builder.store(Memory::new())
        } else {
            builder
        };
        let runtime = builder.clock(clock.clone()).start().await?;
        Ok(TestRuntime { runtime, clock })
    }

    /// A builder that sets up mocks (see [`TestRuntimeBuilder::mock_activity`]) before
    /// starting `builder` as [`TestRuntime::start`] does. Mocks are installed when the
    /// runtime starts and stay for its life.
    pub fn builder(builder: RuntimeBuilder) -> TestRuntimeBuilder {
        TestRuntimeBuilder::new(builder)
    }

    /// The steps instance `id` has taken in its current execution, in order (see [`Step`]).
    pub async fn steps(&self, id: &str) -> Result<Vec<Step>, Error> {
        let status = self
            .runtime
            .client()
            .status_with_history(id)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InstanceNotFound,
                    format!("no instance with id `{id}`"),
                )
            })?;
        Ok(Step::from_history(status.history.as_deref().unwrap_or(&[])))
    }

    /// The manual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Lets all work due now settle, then moves the clock forward by `by`.
    pub async fn advance(&self, by: Duration) {
        self.runtime.idle().await;
        self.clock.advance(by);
    }
}

impl Deref for TestRuntime {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

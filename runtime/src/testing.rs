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

use std::ops::Deref;
use std::time::Duration;

use crate::host::{Runtime, RuntimeBuilder};
use crate::model::Error;
pub use crate::model::ManualClock;
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

//! Changing orchestrator code safely: the instance's version.

use std::cmp::Ordering;

use super::OrchestrationContext;
use crate::model::compare_versions;

impl OrchestrationContext {
    /// The version this instance started under: the version given when it was started, or
    /// else the starting client's default (a host's client uses the host's
    /// [`version`](crate::RuntimeBuilder::version)). `None` when it has none. It never changes
    /// during the instance's life, and `continue_as_new` keeps it, so code may branch on it:
    ///
    /// ```
    /// use durable::prelude::*;
    ///
    /// #[activity]
    /// async fn charge(_ctx: ActivityContext, cents: u64) -> Result<u64, Error> {
    ///     Ok(cents)
    /// }
    ///
    /// #[orchestrator]
    /// async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<u64, Error> {
    ///     if ctx.version_at_least("2.0") {
    ///         // Instances started under 2.0 or later add the fee.
    ///         ctx.call_activity(charge, cents + 30).await
    ///     } else {
    ///         ctx.call_activity(charge, cents).await
    ///     }
    /// }
    /// # fn main() {}
    /// ```
    pub fn version(&self) -> Option<String> {
        self.shared.lock().version.clone()
    }

    /// Whether this instance's version is `version` or newer, compared as
    /// [`compare_versions`](crate::compare_versions) does (an instance without a version is
    /// older than every version).
    pub fn version_at_least(&self, version: &str) -> bool {
        compare_versions(self.shared.lock().version.as_deref(), Some(version)) != Ordering::Less
    }
}

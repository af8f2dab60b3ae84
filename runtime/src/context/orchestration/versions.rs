//! Changing orchestrator code safely: the instance's version, and patch points.

use std::cmp::Ordering;

use super::OrchestrationContext;
use crate::model::{Error, ErrorKind, compare_versions};

/// The longest patch id accepted, in characters.
const MAX_PATCH_ID_LEN: usize = 100;

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

    /// Marks a change to the code at this point, without a new version: `true` when this
    /// execution takes the new branch, `false` when it must take the old one.
    ///
    /// - Code reaching the point for the first time (not replaying) gets `true`, and a
    ///   `Patched` marker is recorded in the history.
    /// - Replaying a history that recorded the marker gets `true`.
    /// - Replaying a history that passed this point on code without the patch (no marker) gets
    ///   `false`, so the old branch schedules the same steps as before and the replay matches.
    ///
    /// The first answer for an id holds for the rest of the execution. Once no running
    /// instance can take the old branch any more, replace the call with
    /// [`deprecate_patch`](Self::deprecate_patch) and delete the old branch; later still,
    /// delete that call too.
    ///
    /// ```
    /// use durable::prelude::*;
    ///
    /// #[activity]
    /// async fn send_letter(_ctx: ActivityContext, to: String) -> Result<(), Error> { Ok(()) }
    /// #[activity]
    /// async fn send_email(_ctx: ActivityContext, to: String) -> Result<(), Error> { Ok(()) }
    ///
    /// #[orchestrator]
    /// async fn notify(ctx: OrchestrationContext, to: String) -> Result<(), Error> {
    ///     if ctx.patched("email-instead-of-letter") {
    ///         ctx.call_activity(send_email, to).await
    ///     } else {
    ///         ctx.call_activity(send_letter, to).await // instances already past this point
    ///     }
    /// }
    /// # fn main() {}
    /// ```
    ///
    /// An empty id, or one longer than 100 characters, fails the instance with an error of
    /// kind [`ErrorKind::InvalidArgument`].
    pub fn patched(&self, patch_id: &str) -> bool {
        let mut st = self.shared.lock();
        if let Err(e) = check_patch_id(patch_id) {
            st.violation.get_or_insert(e);
            return false;
        }
        st.patched(patch_id)
    }

    /// The last stage of a patch: the old branch is gone, but hosts still running code with
    /// [`patched(patch_id)`](Self::patched) may replay instances this code runs. Records the
    /// marker when the code first reaches this point, so those hosts take the new branch;
    /// never requires the marker on replay.
    pub fn deprecate_patch(&self, patch_id: &str) {
        let mut st = self.shared.lock();
        if let Err(e) = check_patch_id(patch_id) {
            st.violation.get_or_insert(e);
            return;
        }
        st.deprecate_patch(patch_id);
    }
}

fn check_patch_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.chars().count() > MAX_PATCH_ID_LEN {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "patch id `{}` must be 1 to {MAX_PATCH_ID_LEN} characters; name the change, \
                 e.g. `ctx.patched(\"email-instead-of-letter\")`",
                id.escape_debug()
            ),
        ));
    }
    Ok(())
}

//! Controlling instances: events, terminate, suspend, resume, rewind, restart, purge and
//! query.

use super::Client;
use super::start::StartOptions;
use crate::model::history::{EventKind, HistoryEvent};
use crate::model::{
    Error, ErrorKind, InstanceId, InstanceQuery, PurgeFilter, QueryPage, RuntimeStatus,
};
use crate::store::{OrchestrationMessage, StoreError};

impl Client {
    pub(super) async fn send(
        &self,
        instance_id: &str,
        kind: EventKind,
        verb: &str,
    ) -> Result<(), Error> {
        let status = self.existing(instance_id).await?;
        if status.runtime_status.is_terminal() {
            return Err(Error::new(
                ErrorKind::InstanceNotRunning,
                format!(
                    "cannot {verb} instance `{instance_id}`: it is {}",
                    status.runtime_status
                ),
            ));
        }
        self.enqueue(instance_id, kind).await
    }

    async fn enqueue(&self, instance_id: &str, kind: EventKind) -> Result<(), Error> {
        self.store
            .enqueue(OrchestrationMessage {
                instance_id: instance_id.to_string(),
                execution_id: None,
                event: HistoryEvent::new(self.clock.now(), kind),
                visible_at: None,
            })
            .await
            .map_err(StoreError::into_error)
    }

    /// Suspends an instance: it stops processing events (they are kept) until resumed.
    pub async fn suspend(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        self.send(
            instance_id,
            EventKind::ExecutionSuspended {
                reason: Some(reason.to_string()),
            },
            "suspend",
        )
        .await
    }

    /// Resumes a suspended instance; the events that arrived meanwhile are then processed.
    pub async fn resume(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        self.send(
            instance_id,
            EventKind::ExecutionResumed {
                reason: Some(reason.to_string()),
            },
            "resume",
        )
        .await
    }

    /// Rewinds a failed instance: it runs again from where it failed, keeping everything it
    /// did before the failure.
    ///
    /// The instance is put back to Running with its execution id, input and history, less the
    /// failures that ended it: the activities that failed are run again, and failed
    /// sub-orchestrations are rewound too (recursively). The orchestrator then replays its
    /// history, so completed steps are not repeated, and carries on; the history records an
    /// `ExecutionRewound` event. Activities and timers whose results were dropped while the
    /// instance was failed are run or armed again, so an activity may run once more (activities
    /// run at least once). A failure the code handled (for example one a retry policy retried)
    /// is kept, and code that fails by itself fails again the same way.
    ///
    /// Only a Failed instance can be rewound: [`ErrorKind::InstanceNotFound`] when there is no
    /// such instance, [`ErrorKind::InstanceNotRunning`] when it is in any other state.
    ///
    /// The request is queued, like an event: the instance stays Failed until a host takes it
    /// up, so [`wait_for_completion`](Self::wait_for_completion) called at once may still see
    /// the failure. Wait until the status is no longer Failed first.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use durable::prelude::*;
    ///
    /// static BROKEN: AtomicBool = AtomicBool::new(true);
    ///
    /// #[activity]
    /// async fn charge(_ctx: ActivityContext, cents: u64) -> Result<u64, Error> {
    ///     if BROKEN.load(Ordering::SeqCst) {
    ///         return Err(Error::msg("the payment service is down"));
    ///     }
    ///     Ok(cents)
    /// }
    ///
    /// #[orchestrator]
    /// async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<u64, Error> {
    ///     ctx.call_activity(charge, cents).await
    /// }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// let runtime = Runtime::builder()
    ///     .store(durable::store::Memory::new())
    ///     .register(checkout)
    ///     .register(charge)
    ///     .start()
    ///     .await?;
    /// let client = runtime.client();
    /// let id = client.start(checkout, 250).await?;
    /// let failed = client.wait_for_completion(&id, Duration::from_secs(10)).await?;
    /// assert_eq!(failed.runtime_status, RuntimeStatus::Failed);
    ///
    /// BROKEN.store(false, Ordering::SeqCst); // the service is back
    /// client.rewind(&id, "payment service restored").await?;
    /// runtime.idle().await; // the host takes the rewind up and runs the activity again
    /// let status = client.wait_for_completion(&id, Duration::from_secs(10)).await?;
    /// assert_eq!(status.output::<u64>()?, 250);
    /// # runtime.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn rewind(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        let status = self.existing(instance_id).await?;
        if status.runtime_status != RuntimeStatus::Failed {
            return Err(Error::new(
                ErrorKind::InstanceNotRunning,
                format!(
                    "cannot rewind instance `{instance_id}`: it is {}; only failed instances \
                     can be rewound",
                    status.runtime_status
                ),
            ));
        }
        // Entity answers that arrived after the failure were dropped, and the locks it held
        // were released: replaying such an instance would wait on answers that never come, or
        // believe it holds locks it does not. Refuse rather than leave it stuck.
        let history = self
            .store
            .history(instance_id)
            .await
            .map_err(StoreError::into_error)?;
        if history.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::EntityOperationCalled { .. } | EventKind::EntityLockRequested { .. }
            )
        }) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "cannot rewind instance `{instance_id}`: it called or locked entities, and a \
                     rewind cannot restore their answers or locks; restart it instead"
                ),
            ));
        }
        self.enqueue(
            instance_id,
            EventKind::ExecutionRewound {
                reason: Some(reason.to_string()),
            },
        )
        .await
    }

    /// Starts the instance's orchestrator again with its original input: under the same id
    /// (replacing it), or under a new id when `new_instance_id` is set. Returns the id. The
    /// restarted instance runs today's code, so it starts under this client's
    /// [default version](Client::default_version), not the version it had.
    pub async fn restart(
        &self,
        instance_id: &str,
        new_instance_id: bool,
    ) -> Result<InstanceId, Error> {
        let status = self.existing(instance_id).await?;
        let id = if new_instance_id {
            None
        } else {
            Some(instance_id.to_string())
        };
        self.start_instance(
            status.name,
            status.input.unwrap_or_else(|| "null".to_string()),
            StartOptions {
                instance_id: id,
                replace: true,
                ..StartOptions::default()
            },
            // Checked against the code the host has now, which may have changed since.
            false,
        )
        .await
    }

    /// Removes every trace of a finished instance. `Ok(false)` when there is no such instance;
    /// an error when it has not finished (terminate it first).
    pub async fn purge(&self, instance_id: &str) -> Result<bool, Error> {
        let Some(status) = self.status(instance_id).await? else {
            return Ok(false);
        };
        if !status.runtime_status.is_terminal() {
            return Err(Error::new(
                ErrorKind::InstanceNotRunning,
                format!(
                    "cannot purge instance `{instance_id}`: it is {}; only finished instances \
                     are purged",
                    status.runtime_status
                ),
            ));
        }
        self.store
            .purge(instance_id)
            .await
            .map_err(StoreError::into_error)
    }

    /// Purges every finished instance matching the filter; returns how many.
    pub async fn purge_where(&self, filter: &PurgeFilter) -> Result<u64, Error> {
        self.store
            .purge_where(filter)
            .await
            .map_err(StoreError::into_error)
    }

    /// One page of the instances matching a query.
    pub async fn query(&self, query: &InstanceQuery) -> Result<QueryPage, Error> {
        self.store
            .query(query)
            .await
            .map_err(StoreError::into_error)
    }
}

//! The client: start, query, signal and manage orchestration instances.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{Clock, Error, ErrorKind, InstanceStatus, RuntimeStatus, SystemClock};
use crate::registry::Registry;
use crate::store::{Store, StoreError};

mod control;
mod entities;
mod start;

pub use start::StartRequest;

/// Starts, queries and manages orchestration instances. Cheap to clone.
///
/// Get one from a running host with [`Runtime::client`](crate::Runtime::client), or build a
/// standalone one on a store with [`Client::new`].
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Option<Arc<Registry>>,
}

/// How often waits re-read the status when the store cannot signal changes from other
/// processes.
const FALLBACK_POLL: Duration = Duration::from_millis(500);

impl Client {
    /// A client on a store, using the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Client {
            store,
            clock: Arc::new(SystemClock),
            registry: None,
        }
    }

    pub(crate) fn with_parts(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        Client {
            store,
            clock,
            registry,
        }
    }

    /// The store this client works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The instance's status, or `None` when there is no such instance.
    pub async fn status(&self, instance_id: &str) -> Result<Option<InstanceStatus>, Error> {
        self.store
            .instance(instance_id)
            .await
            .map_err(StoreError::into_error)
    }

    /// The instance's status with its history.
    pub async fn status_with_history(
        &self,
        instance_id: &str,
    ) -> Result<Option<InstanceStatus>, Error> {
        let Some(mut status) = self.status(instance_id).await? else {
            return Ok(None);
        };
        status.history = Some(
            self.store
                .history(instance_id)
                .await
                .map_err(StoreError::into_error)?,
        );
        Ok(Some(status))
    }

    async fn existing(&self, instance_id: &str) -> Result<InstanceStatus, Error> {
        self.status(instance_id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::InstanceNotFound,
                format!("no instance with id `{instance_id}`"),
            )
        })
    }

    /// Waits (up to `timeout` of real time) until the instance has started running.
    pub async fn wait_for_start(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceStatus, Error> {
        self.wait_until(instance_id, timeout, "start", |s| {
            s.runtime_status != RuntimeStatus::Pending
        })
        .await
    }

    /// Waits (up to `timeout` of real time) until the instance has completed, failed or been
    /// terminated, and returns its final status.
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceStatus, Error> {
        self.wait_until(instance_id, timeout, "complete", |s| {
            s.runtime_status.is_terminal()
        })
        .await
    }

    async fn wait_until(
        &self,
        instance_id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&InstanceStatus) -> bool,
    ) -> Result<InstanceStatus, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let signal = &self.store.signal().instances;
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let status = self.existing(instance_id).await?;
            if done(&status) {
                return Ok(status);
            }
            let poll = self.store.poll_interval().unwrap_or(FALLBACK_POLL);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(poll) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "instance `{instance_id}` did not {what} within {timeout:?} \
                             (it is {})",
                            status.runtime_status
                        ),
                    ));
                }
            }
        }
    }
}

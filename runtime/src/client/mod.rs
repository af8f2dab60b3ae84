//! The client: start, query, signal and manage orchestration instances.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::context::entity::{ClientSignalTarget, Entity};
use crate::context::function::Orchestrator;
use crate::model::history::EventKind;
use crate::model::{EntityId, EntityRecord};

use crate::model::{Clock, Error, ErrorKind, InstanceStatus, RuntimeStatus, SystemClock};
use crate::registry::Registry;
use crate::store::{StatusTold, Store, StoreError};

mod control;
mod entities;
mod start;

pub use start::StartRequest;

/// Starts, queries and manages orchestration instances. Cheap to clone.
///
/// Get one from a running host with [`Runtime::client`](crate::Runtime::client), or build a
/// standalone one on a store with [`Client::new`].
///
/// ```
/// use std::time::Duration;
/// use durable::prelude::*;
/// use durable::InstanceQuery;
///
/// #[orchestrator]
/// async fn approval(ctx: OrchestrationContext, who: String) -> Result<String, Error> {
///     let approved: bool = ctx.wait_for_event("Approval").await?;
///     Ok(format!("{who}: {}", if approved { "approved" } else { "rejected" }))
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let runtime = Runtime::builder()
///     .store(durable::store::Memory::new())
///     .register(approval)
///     .start()
///     .await?;
/// let client = runtime.client();
/// let id = client
///     .start(approval, "ann".to_string())
///     .instance_id("approval-1") // else a random id
///     .await?;
/// client.raise_event(&id, "Approval", true).await?; // any Serialize payload
/// let status = client.wait_for_completion(&id, Duration::from_secs(10)).await?;
/// assert_eq!(status.output::<String>()?, "ann: approved");
///
/// // Query by status, creation time and id prefix, a page at a time.
/// let page = client
///     .query(&InstanceQuery {
///         runtime_status: vec![RuntimeStatus::Completed],
///         instance_id_prefix: Some("approval-".into()),
///         ..Default::default()
///     })
///     .await?;
/// assert_eq!(page.instances.len(), 1);
/// client.purge(&id).await?; // its history and status are gone
/// # runtime.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Option<Arc<Registry>>,
    default_version: Option<String>,
    /// Ids of the instances and executions it starts (its host's, when it has one).
    ids: Arc<crate::model::Ids>,
    /// The host that starts its instances, when it has one (see [`Starter`]).
    starter: Option<Arc<dyn Starter>>,
}

/// Where a client a host handed out starts instances: the host writes a start together with
/// the instance's first turn when it can run that turn at once.
#[async_trait::async_trait]
pub(crate) trait Starter: Send + Sync {
    /// Creates `instance`, refused as [`Store::create_instance`] refuses.
    async fn start(&self, instance: crate::store::NewInstance) -> Result<(), StoreError>;
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
            default_version: None,
            ids: Arc::new(crate::model::Ids::random()),
            starter: None,
        }
    }

    pub(crate) fn with_parts(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        registry: Option<Arc<Registry>>,
        default_version: Option<String>,
        ids: Arc<crate::model::Ids>,
        starter: Option<Arc<dyn Starter>>,
    ) -> Self {
        Client {
            store,
            clock,
            registry,
            default_version,
            ids,
            starter,
        }
    }

    /// This client with a default version: instances it starts without
    /// [`StartRequest::version`] start under `version`. A host's client starts with the host's
    /// [`version`](crate::RuntimeBuilder::version) as its default; a client from
    /// [`Client::new`] has none. The version is checked (see
    /// [`validate_version`](crate::validate_version)) when an instance is started.
    pub fn with_default_version(mut self, version: impl Into<String>) -> Self {
        self.default_version = Some(version.into());
        self
    }

    /// The version instances started by this client get when the start names none.
    pub fn default_version(&self) -> Option<&str> {
        self.default_version.as_deref()
    }

    /// The time on this client's clock (the host's clock, for a host's client).
    #[cfg(feature = "dashboard")]
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
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
        let started = |s: RuntimeStatus| s != RuntimeStatus::Pending;
        self.wait_until(instance_id, timeout, "start", started)
            .await
    }

    /// Waits (up to `timeout` of real time) until the instance has completed, failed or been
    /// terminated, and returns its final status.
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceStatus, Error> {
        let ended = |s: RuntimeStatus| s.is_terminal();
        self.wait_until(instance_id, timeout, "complete", ended)
            .await
    }

    /// Waits until the instance's runtime status is one `done` takes. The status is read at
    /// the start, at every change of the instance that may have brought it there, and at the
    /// store's poll interval (for changes another process made); a turn of the instance that
    /// wrote a status `done` refuses is not read again.
    async fn wait_until(
        &self,
        instance_id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(RuntimeStatus) -> bool,
    ) -> Result<InstanceStatus, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let poll = self.store.poll_interval().unwrap_or(FALLBACK_POLL);
        // Woken at this instance's changes, not at every commit of any instance.
        let watch = self.store.signal().watch(instance_id);
        loop {
            let mut notified = std::pin::pin!(watch.notified());
            notified.as_mut().enable();
            // What changed before this read is in it.
            let _ = watch.told();
            let status = self.existing(instance_id).await?;
            if done(status.runtime_status) {
                return Ok(status);
            }
            let poll_at = tokio::time::Instant::now() + poll;
            loop {
                // Biased, as the host's: the same wake-ups take the same branch in every run.
                tokio::select! {
                    biased;
                    _ = notified.as_mut() => {}
                    _ = tokio::time::sleep_until(poll_at) => break,
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
                notified.set(watch.notified());
                notified.as_mut().enable();
                match watch.told() {
                    StatusTold::Nothing => {}
                    StatusTold::Status(wrote) if !done(wrote) => {}
                    StatusTold::Status(_) | StatusTold::Unknown => break,
                }
            }
        }
    }

    /// Starts an orchestration. Await the returned request to start it with a generated id, or
    /// configure it first with `.instance_id(..)`, `.start_at(..)`, `.version(..)` or
    /// `.replace_existing()`.
    ///
    /// Starting an id that is pending or running is refused with
    /// [`ErrorKind::InstanceAlreadyExists`] unless `.replace_existing()` is set.
    pub fn start<O: Orchestrator>(&self, orchestrator: O, input: O::Input) -> StartRequest<'_, O> {
        let _ = orchestrator;
        let input = Error::to_json(
            &input,
            format_args!("the input of orchestrator `{}`", O::NAME),
        );
        StartRequest {
            client: self,
            name: O::NAME.to_string(),
            input,
            instance_id: None,
            start_at: None,
            version: None,
            replace: false,
            typed: true,
            _marker: PhantomData,
        }
    }

    /// Starts an orchestration by registered name with an untyped input (for tools and the HTTP
    /// API). When this client belongs to a host, an unregistered name is refused at once.
    pub fn start_by_name(&self, name: &str, input: impl Serialize) -> StartRequest<'_, ()> {
        let input = Error::to_json(&input, "the input");
        StartRequest {
            client: self,
            name: name.to_string(),
            input,
            instance_id: None,
            start_at: None,
            version: None,
            replace: false,
            typed: false,
            _marker: PhantomData,
        }
    }

    /// Raises the external event `name` on an instance. An error when the instance does not
    /// exist or has finished.
    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        payload: impl Serialize,
    ) -> Result<(), Error> {
        let input = Error::to_json(&payload, "the event payload")?;
        self.send(
            instance_id,
            EventKind::EventRaised {
                name: name.to_string(),
                input,
            },
            "raise an event on",
        )
        .await
    }

    /// Terminates a pending, running or suspended instance; `reason` becomes its output.
    pub async fn terminate(&self, instance_id: &str, reason: impl Serialize) -> Result<(), Error> {
        let reason = Error::to_json(&reason, "the reason")?;
        self.send(
            instance_id,
            EventKind::ExecutionTerminated {
                reason: Some(reason),
            },
            "terminate",
        )
        .await
    }

    /// A one-way proxy to the class-style entity `E` with this key: each operation method
    /// resolves once the signal is durably enqueued.
    pub fn signal_entity<E: Entity>(&self, key: impl Into<String>) -> E::ClientSignal<'_> {
        E::client_signal_proxy(ClientSignalTarget {
            client: self,
            id: EntityId::of::<E>(key),
            at: None,
        })
    }

    /// Like [`signal_entity`](Self::signal_entity), delivered at `at`.
    pub fn signal_entity_at<E: Entity>(
        &self,
        key: impl Into<String>,
        at: DateTime<Utc>,
    ) -> E::ClientSignal<'_> {
        E::client_signal_proxy(ClientSignalTarget {
            client: self,
            id: EntityId::of::<E>(key),
            at: Some(at),
        })
    }

    /// Signals an operation by entity id and operation name (any entity style).
    pub async fn signal_entity_by_id(
        &self,
        id: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), Error> {
        let input = Error::to_json(&input, format_args!("the input of operation `{operation}`"))?;
        self.signal_entity_raw(id, operation, input, None).await
    }

    /// The last committed state of the class-style entity `E` with this key; `None` when it
    /// does not exist (never created, or deleted).
    pub async fn read_entity<E: Entity>(&self, key: impl Into<String>) -> Result<Option<E>, Error> {
        self.read_entity_state(&EntityId::of::<E>(key)).await
    }

    /// The last committed state of any entity, as a `T`.
    pub async fn read_entity_state<T: serde::de::DeserializeOwned>(
        &self,
        id: &EntityId,
    ) -> Result<Option<T>, Error> {
        let Some(status) = self.status(&id.to_string()).await? else {
            return Ok(None);
        };
        let record = EntityRecord::from_status(&status)?;
        record
            .state
            .map(|json| {
                serde_json::from_str(&json).map_err(|e| {
                    Error::serialization(
                        format_args!("the state of entity `{id}` does not fit the type"),
                        e,
                    )
                })
            })
            .transpose()
    }
}

//! The client: start, query, signal and manage orchestration instances.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::entity::{
    CleanEntityStorageResult, ClientSignalTarget, Entity, EntityId, EntityMetadata, EntityQuery,
    EntityQueryPage, EntityRecord, signal_message,
};
use crate::error::{Error, ErrorKind};
use crate::function::Orchestrator;
use crate::history::{EventKind, HistoryEvent};
use crate::registry::Registry;
use crate::status::{
    InstanceId, InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus,
};
use crate::store::{NewInstance, OrchestrationMessage, Store};

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

    /// Starts an orchestration. Await the returned request to start it with a generated id, or
    /// configure it first with `.instance_id(..)`, `.start_at(..)` or `.replace_existing()`.
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
            replace: false,
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
            replace: false,
            _marker: PhantomData,
        }
    }

    async fn start_instance(
        &self,
        name: String,
        input: String,
        instance_id: Option<String>,
        start_at: Option<DateTime<Utc>>,
        replace: bool,
    ) -> Result<InstanceId, Error> {
        if let Some(registry) = &self.registry
            && registry.orchestrator(&name).is_none()
        {
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!("no orchestrator named `{name}` is registered"),
            ));
        }
        let id = match instance_id {
            Some(id) => validate_id(id)?,
            None => InstanceId::random(),
        };
        self.store
            .create_instance(NewInstance {
                instance_id: id.to_string(),
                name,
                input,
                execution_id: uuid::Uuid::new_v4().simple().to_string(),
                parent: None,
                created_at: self.clock.now(),
                start_at,
                replace_running: replace,
            })
            .await
            .map_err(Error::store)?;
        Ok(id)
    }

    /// The instance's status, or `None` when there is no such instance.
    pub async fn status(&self, instance_id: &str) -> Result<Option<InstanceStatus>, Error> {
        self.store.instance(instance_id).await.map_err(Error::store)
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
                .map_err(Error::store)?,
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

    async fn send(&self, instance_id: &str, kind: EventKind, verb: &str) -> Result<(), Error> {
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
            .map_err(Error::store)
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
            .map_err(Error::store)?;
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
    /// (replacing it), or under a new id when `new_instance_id` is set. Returns the id.
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
            id,
            None,
            true,
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
        self.store.purge(instance_id).await.map_err(Error::store)
    }

    /// Purges every finished instance matching the filter; returns how many.
    pub async fn purge_where(&self, filter: &PurgeFilter) -> Result<u64, Error> {
        self.store.purge_where(filter).await.map_err(Error::store)
    }

    /// One page of the instances matching a query.
    pub async fn query(&self, query: &InstanceQuery) -> Result<QueryPage, Error> {
        self.store.query(query).await.map_err(Error::store)
    }
}

impl Client {
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

    pub(crate) async fn signal_entity_raw(
        &self,
        id: &EntityId,
        operation: &str,
        input: String,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        if let Some(registry) = &self.registry
            && registry.entity(id.name()).is_none()
        {
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!("no entity named `{}` is registered", id.name()),
            ));
        }
        let message = signal_message(id, &operation.to_lowercase(), input, at, self.clock.now());
        self.store.enqueue(message).await.map_err(Error::store)
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

    /// What is known of one entity: its state, lock holder and backlog.
    pub async fn entity_metadata(
        &self,
        id: &EntityId,
        include_state: bool,
    ) -> Result<Option<EntityMetadata>, Error> {
        match self.status(&id.to_string()).await? {
            Some(status) => EntityMetadata::from_status(&status, include_state),
            None => Ok(None),
        }
    }

    /// One page of the entities matching a query, ordered by creation time then id.
    pub async fn list_entities(&self, query: &EntityQuery) -> Result<EntityQueryPage, Error> {
        let prefix = format!(
            "@{}",
            query.name_prefix.as_deref().unwrap_or("").to_lowercase()
        );
        let page = self
            .query(&InstanceQuery {
                instance_id_prefix: Some(prefix),
                page_size: query.page_size,
                continuation_token: query.continuation_token.clone(),
                ..Default::default()
            })
            .await?;
        let mut entities = Vec::new();
        for status in &page.instances {
            if let Some(meta) = EntityMetadata::from_status(status, query.include_state)?
                && (query.include_stateless || meta.has_state)
            {
                entities.push(meta);
            }
        }
        Ok(EntityQueryPage {
            entities,
            continuation_token: page.continuation_token,
        })
    }

    /// Cleans entity storage: removes entities left with no state, no lock and nothing
    /// pending (when `remove_empty`), and releases locks held by orchestrations that no longer
    /// run (when `release_orphaned_locks`).
    pub async fn clean_entity_storage(
        &self,
        remove_empty: bool,
        release_orphaned_locks: bool,
    ) -> Result<CleanEntityStorageResult, Error> {
        let mut result = CleanEntityStorageResult::default();
        let mut query = InstanceQuery {
            instance_id_prefix: Some("@".to_string()),
            ..Default::default()
        };
        loop {
            let page = self.query(&query).await?;
            for status in &page.instances {
                let record = EntityRecord::from_status(status)?;
                if release_orphaned_locks && let Some(holder) = &record.locked_by {
                    let running = self.status(&holder.instance_id).await?.is_some_and(|s| {
                        !s.runtime_status.is_terminal() && s.execution_id == holder.execution_id
                    });
                    if !running {
                        self.store
                            .enqueue(OrchestrationMessage {
                                instance_id: status.instance_id.clone(),
                                execution_id: None,
                                event: HistoryEvent::new(
                                    self.clock.now(),
                                    EventKind::EntityUnlockSent {
                                        lock_set: vec![status.instance_id.clone()],
                                        caller: Some(holder.clone()),
                                    },
                                ),
                                visible_at: None,
                            })
                            .await
                            .map_err(Error::store)?;
                        result.orphaned_locks_released += 1;
                    }
                }
                if remove_empty
                    && record.is_empty()
                    && self
                        .store
                        .remove_entity(&status.instance_id, status.last_updated_at)
                        .await
                        .map_err(Error::store)?
                {
                    result.empty_entities_removed += 1;
                }
            }
            match page.continuation_token {
                Some(token) => query.continuation_token = Some(token),
                None => return Ok(result),
            }
        }
    }
}

fn validate_id(id: String) -> Result<InstanceId, Error> {
    if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control()) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "an instance id must be 1 to 256 characters, none of them control characters",
        ));
    }
    if id.starts_with('@') {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "instance id `{id}` starts with `@`, which marks entities (`@name@key`); \
                 choose an id that does not"
            ),
        ));
    }
    Ok(InstanceId::new(id))
}

/// A request to start an orchestration; `.await` it to start.
#[must_use = "the orchestration is only started when the request is awaited"]
pub struct StartRequest<'a, O> {
    client: &'a Client,
    name: String,
    input: Result<String, Error>,
    instance_id: Option<String>,
    start_at: Option<DateTime<Utc>>,
    replace: bool,
    _marker: PhantomData<fn() -> O>,
}

impl<O> StartRequest<'_, O> {
    /// Uses this instance id instead of a generated one.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Starts no earlier than `at` (the instance is Pending until then).
    pub fn start_at(mut self, at: DateTime<Utc>) -> Self {
        self.start_at = Some(at);
        self
    }

    /// Replaces an instance with the same id even when it is pending or running.
    pub fn replace_existing(mut self) -> Self {
        self.replace = true;
        self
    }
}

impl<'a, O> IntoFuture for StartRequest<'a, O> {
    type Output = Result<InstanceId, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let input = self.input?;
            self.client
                .start_instance(
                    self.name,
                    input,
                    self.instance_id,
                    self.start_at,
                    self.replace,
                )
                .await
        })
    }
}

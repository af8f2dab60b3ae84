//! The worker host: dispatchers that fetch work from the store, run turns and activities, and
//! commit the results.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::activity::ActivityContext;
use crate::client::Client;
use crate::clock::{Clock, SystemClock, real_sleep};
use crate::entity::{Entity, EntityExecutor, EntityId, EntityRecord};
use crate::error::{Error, ErrorKind, FailureDetails};
use crate::function::Register;
use crate::history::{self, EntityCaller, EventKind, HistoryEvent, ParentInstance};
use crate::registry::Registry;
use crate::replay::{Action, Executor, Outcome, TurnOutput, panic_message};
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{
    ActivityTask, ActivityWorkItem, Fetched, HistoryWrite, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Store, StoreError, TurnCommit,
};

/// Configures and starts a [`Runtime`].
#[must_use = "call .start().await to run the host"]
pub struct RuntimeBuilder {
    pub(crate) store: Option<Arc<dyn Store>>,
    registry: Registry,
    clock: Arc<dyn Clock>,
    config: Config,
    task_hub: Option<String>,
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpOptions>,
}

#[derive(Clone)]
struct Config {
    max_activities: usize,
    max_orchestrations: usize,
    always_replay: bool,
    cache_capacity: usize,
    lease: Duration,
    max_dequeue: u32,
    shutdown_grace: Duration,
}

impl RuntimeBuilder {
    /// The store to keep instances in (required).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store shared with other hosts or clients in this process.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Registers an `#[orchestrator]` or `#[activity]` function.
    pub fn register(mut self, function: impl Register) -> Self {
        function.register(&mut self.registry);
        self
    }

    /// Registers a class-style entity (a type with an `#[entity]` impl block).
    pub fn register_entity<E: Entity>(mut self) -> Self {
        self.registry.add_entity::<E>();
        self
    }

    /// At most this many activities run at once (default 64).
    pub fn max_concurrent_activities(mut self, n: usize) -> Self {
        self.config.max_activities = n.max(1);
        self
    }

    /// At most this many orchestration turns run at once (default 8).
    pub fn max_concurrent_orchestrations(mut self, n: usize) -> Self {
        self.config.max_orchestrations = n.max(1);
        self
    }

    /// Works in this task hub of the store (instances of other hubs are invisible).
    pub fn task_hub(mut self, name: impl Into<String>) -> Self {
        self.task_hub = Some(name.into());
        self
    }

    /// The clock for orchestration time and timers (tests pass a
    /// [`ManualClock`](crate::testing::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Evicts every instance after each turn, so every turn replays its whole history. Slower;
    /// used to prove that replay reaches the same state as cached execution.
    pub fn always_replay(mut self, on: bool) -> Self {
        self.config.always_replay = on;
        self
    }

    /// How many instances stay cached in memory between turns (default 10,000).
    pub fn instance_cache_capacity(mut self, n: usize) -> Self {
        self.config.cache_capacity = n;
        self
    }

    /// How long a fetched work item stays leased to this host without renewal (default 30 s).
    ///
    /// Work held by a host that dies is taken over (by another host, or by this one restarted)
    /// within one lease. Work still in progress keeps its lease: a running activity's lease is
    /// renewed every third of the lease, however long the activity runs, and so is an
    /// orchestration turn's when the turn takes longer than that. A shorter lease means a
    /// faster takeover and more renewal writes; it should stay well above the store's write
    /// latency.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// After this many failed attempts to process a message, it is parked with its error
    /// instead of being retried forever (default 10).
    pub fn max_dequeue_count(mut self, n: u32) -> Self {
        self.config.max_dequeue = n.max(1);
        self
    }

    /// How long `shutdown` waits for running activities before abandoning them (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Serves the HTTP management API ([`crate::http`]) on `addr` while the host runs; use a
    /// loopback address such as `127.0.0.1:7071` (port 0 picks a free port; see
    /// [`Runtime::http_addr`]).
    #[cfg(feature = "http")]
    pub fn http(mut self, addr: std::net::SocketAddr) -> Self {
        self.http = Some(crate::http::HttpOptions::new(addr));
        self
    }

    /// Serves the HTTP management API with these options (a key, a body limit).
    #[cfg(feature = "http")]
    pub fn http_options(mut self, options: crate::http::HttpOptions) -> Self {
        self.http = Some(options);
        self
    }

    /// Starts the dispatchers. Fails when no store was given or a name was registered twice.
    pub async fn start(self) -> Result<Runtime, Error> {
        let store = self.store.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "no store: call `.store(durable::store::Memory::new())` or another store first",
            )
        })?;
        if let Some(dup) = self.registry.duplicates().first() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{dup} is registered twice; each name may be registered once"),
            ));
        }
        let store = match self.task_hub {
            Some(hub) => store.with_task_hub(&hub),
            None => store,
        };
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            leases_released: watch::channel(false).0,
            leases: Arc::new(LeaseKeeper::default()),
            store,
            registry: Arc::new(self.registry),
            clock: self.clock,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            activity_slots: Arc::new(Semaphore::new(self.config.max_activities)),
            config: self.config,
        });
        let mut tasks = Vec::new();
        for _ in 0..inner.config.max_orchestrations {
            tasks.push(tokio::spawn(
                inner.clone().orchestration_worker(shutdown.subscribe()),
            ));
        }
        tasks.push(tokio::spawn(
            inner.clone().activity_dispatcher(shutdown.subscribe()),
        ));
        // Not one of `tasks`: it keeps renewing through shutdown's grace period, and stops
        // when the leases are released.
        tokio::spawn(inner.clone().keep_leases());
        #[cfg(feature = "http")]
        let http = match self.http {
            None => None,
            Some(options) => {
                let client = Client::with_parts(
                    inner.store.clone(),
                    inner.clock.clone(),
                    Some(inner.registry.clone()),
                );
                match crate::http::HttpServer::start(client, options).await {
                    Ok(server) => Some(server),
                    Err(e) => {
                        shutdown.send_replace(true);
                        for task in tasks {
                            let _ = task.await;
                        }
                        return Err(e);
                    }
                }
            }
        };
        Ok(Runtime {
            inner,
            shutdown,
            tasks: Mutex::new(tasks),
            #[cfg(feature = "http")]
            http_addr: http.as_ref().map(|s| s.addr()),
            #[cfg(feature = "http")]
            http: Mutex::new(http),
        })
    }
}

/// A running host: dispatchers for orchestrations and activities on one store.
///
/// ```
/// use std::time::Duration;
/// use durable::prelude::*;
///
/// #[activity]
/// async fn double(_ctx: ActivityContext, n: i64) -> Result<i64, Error> {
///     Ok(n * 2)
/// }
///
/// #[orchestrator]
/// async fn twice(ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
///     let once = ctx.call_activity(double, n).await?;
///     ctx.call_activity(double, once).await
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let runtime = Runtime::builder()
///     .store(durable::store::Memory::new())
///     .register(twice)
///     .register(double)
///     .start()
///     .await?;
/// let client = runtime.client();
/// let id = client.start(twice, 5).await?;
/// let status = client.wait_for_completion(&id, Duration::from_secs(10)).await?;
/// assert_eq!(status.output::<i64>()?, 20);
/// runtime.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Runtime {
    inner: Arc<Inner>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    #[cfg(feature = "http")]
    http_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "http")]
    http: Mutex<Option<crate::http::HttpServer>>,
}

impl Runtime {
    /// A builder with the system clock and default limits.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            store: None,
            registry: Registry::default(),
            clock: Arc::new(SystemClock),
            config: Config {
                max_activities: 64,
                max_orchestrations: 8,
                always_replay: false,
                cache_capacity: 10_000,
                lease: Duration::from_secs(30),
                max_dequeue: 10,
                shutdown_grace: Duration::from_secs(30),
            },
            task_hub: None,
            #[cfg(feature = "http")]
            http: None,
        }
    }

    /// Where the HTTP management API listens, when the host serves it.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_addr
    }

    /// A client on this host's store and task hub.
    pub fn client(&self) -> Client {
        Client::with_parts(
            self.inner.store.clone(),
            self.inner.clock.clone(),
            Some(self.inner.registry.clone()),
        )
    }

    /// The store this host runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock this host runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Waits until no work is visible or in progress (at the current clock time): everything
    /// due has settled. Tests that step a manual clock call it before advancing; demos use it
    /// to wait for a burst of signals to be applied.
    pub async fn idle(&self) {
        let store = &self.inner.store;
        loop {
            let changed = store.signal().instances.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if store.is_idle(self.inner.clock.now()).await.unwrap_or(false) {
                return;
            }
            tokio::select! {
                _ = changed => {}
                _ = real_sleep(Duration::from_millis(2)) => {}
            }
        }
    }

    /// Stops fetching work, lets running turns finish, waits up to the shutdown grace period
    /// for running activities, then stops. Unfinished work stays in the store and resumes when
    /// a host starts again.
    pub async fn shutdown(&self) {
        #[cfg(feature = "http")]
        {
            let server = self.http.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(mut server) = server {
                server.shutdown().await;
            }
        }
        self.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        let slots = self.inner.config.max_activities as u32;
        let drained = tokio::time::timeout(
            self.inner.config.shutdown_grace,
            self.inner.activity_slots.acquire_many(slots),
        )
        .await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown: activities still running after the grace period; their leases are \
                 no longer renewed, so their work is taken over once the leases run out"
            );
        }
        self.inner.leases_released.send_replace(true);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        // Work still running in the background no longer holds its leases: a dropped host is
        // as good as gone, and others take its work over once the leases run out.
        self.inner.leases_released.send_replace(true);
    }
}

struct Inner {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, Executor>>,
    /// The last processing error per instance, reported when its messages are parked.
    failures: Mutex<HashMap<String, String>>,
    activity_slots: Arc<Semaphore>,
    /// Raised once the host has stopped (shut down, or dropped): leases are no longer renewed.
    leases_released: watch::Sender<bool>,
    /// The leases held on work in progress.
    leases: Arc<LeaseKeeper>,
    config: Config,
}

/// A safety net for missed wake-ups; the hot path never waits on it.
const SAFETY_POLL: Duration = Duration::from_secs(1);

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(10))).min(Duration::from_secs(30))
}

impl Inner {
    async fn orchestration_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut errors = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.store.signal().orchestrations.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self
                .store
                .fetch_orchestration(self.clock.now(), self.config.lease)
                .await
            {
                Ok(Fetched::Item(item)) => {
                    errors = 0;
                    // There may be more: pass the wake-up on to another idle dispatcher.
                    self.store.signal().orchestration_work();
                    self.process(item).await;
                }
                Ok(Fetched::Empty { next_visible }) => {
                    errors = 0;
                    let clock = self.clock.clone();
                    let due = async move {
                        match next_visible {
                            Some(at) => clock.sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    let poll = self.store.poll_interval().unwrap_or(SAFETY_POLL);
                    tokio::select! {
                        _ = notified => {}
                        _ = due => {}
                        _ = real_sleep(poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    errors += 1;
                    tracing::warn!(error = %err, "fetching orchestration work failed");
                    tokio::select! {
                        _ = real_sleep(backoff(errors)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    async fn process(&self, item: OrchestrationWorkItem) {
        let item = Arc::new(item);
        let id = item.instance_id.clone();
        if item.dequeue_count > self.config.max_dequeue {
            let error = self
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id)
                .unwrap_or_else(|| "processing kept failing".to_string());
            let reason = format!(
                "parked after {} failed attempts to process it: {error}",
                item.dequeue_count - 1
            );
            tracing::error!(instance_id = %id, %reason, "parking poison messages");
            if let Err(e) = self
                .store
                .park_orchestration(&item, &reason, self.clock.now())
                .await
            {
                tracing::warn!(instance_id = %id, error = %e, "parking failed");
            }
            return;
        }
        // Turns normally take milliseconds; one that runs long (a long history read and replay,
        // slow entity operations) keeps its lease through the lease keeper.
        let held = self.leases.hold(Leased::Orchestration(item.clone()));
        let outcome = AssertUnwindSafe(self.run_turn(&item)).catch_unwind().await;
        drop(held);
        let error = match outcome {
            Ok(Ok(())) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                return;
            }
            Ok(Err(TurnError::LeaseLost)) => {
                tracing::debug!(instance_id = %id, "lease lost; the turn was discarded");
                self.evict(&id);
                return;
            }
            Ok(Err(TurnError::Store(e))) => e.to_string(),
            Err(panic) => format!("the runtime panicked: {}", panic_message(&*panic)),
        };
        tracing::warn!(instance_id = %id, %error, "processing a turn failed; will retry");
        self.evict(&id);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), error);
        if let Err(e) = self
            .store
            .abandon_orchestration(&item, backoff(item.dequeue_count))
            .await
        {
            tracing::warn!(instance_id = %id, error = %e, "abandoning the work item failed");
        }
    }

    /// Renews every lease held longer than a [`renewal_period`], checking twice per period
    /// (so a lease is renewed at most 1.5 periods, half a lease, after it was last taken),
    /// until the host stops. A lost lease is reported and forgotten; the work runs on, and
    /// its commit will be refused.
    async fn keep_leases(self: Arc<Self>) {
        let mut released = self.leases_released.subscribe();
        let period = renewal_period(self.config.lease);
        loop {
            tokio::select! {
                _ = real_sleep(period / 2) => {}
                _ = released.wait_for(|released| *released) => return,
            }
            for (key, item) in self.leases.due(period) {
                let at = std::time::Instant::now();
                match item.renew(&*self.store, self.config.lease).await {
                    Ok(()) => self.leases.renewed(key, at, false),
                    Err(error) => {
                        item.report(&error);
                        if matches!(error, StoreError::LeaseLost) {
                            self.leases.renewed(key, at, true);
                        }
                        // Another error: tried again at the next check.
                    }
                }
            }
        }
    }

    fn evict(&self, instance_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance_id);
    }

    async fn run_turn(&self, item: &OrchestrationWorkItem) -> Result<(), TurnError> {
        let now = self.clock.now();
        let status = &item.instance;
        let consumed: Vec<u64> = item.messages.iter().map(|m| m.seq).collect();
        if EntityId::is_entity_instance(&item.instance_id) {
            return self.run_entity_batch(item, consumed, now).await;
        }
        if status.runtime_status == RuntimeStatus::Failed
            && let Some(at) = item
                .messages
                .iter()
                .position(|m| matches!(m.message.event.kind, EventKind::ExecutionRewound { .. }))
        {
            return self.rewind(item, at, now).await;
        }
        if status.runtime_status.is_terminal() {
            // Late messages for a finished instance: acknowledged and dropped.
            return self.commit(item, unchanged(status, consumed)).await;
        }
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&item.instance_id)
            .filter(|e| {
                e.history_len() == item.history_len && e.execution_id() == status.execution_id
            });
        let mut executor = match cached {
            Some(executor) => executor,
            None => {
                let history = self.store.history(&item.instance_id).await?;
                let mut executor = Executor::new(&item.instance_id, self.registry.clone());
                executor.replay(&history);
                executor
            }
        };
        let started = item.history_len > 0;
        let events: Vec<HistoryEvent> = item
            .messages
            .iter()
            .map(|m| &m.message)
            .filter(|m| match &m.event.kind {
                EventKind::ExecutionStarted { execution_id, .. } => {
                    !started && *execution_id == status.execution_id
                }
                kind if kind.is_response() => {
                    m.execution_id.as_deref() == Some(status.execution_id.as_str())
                }
                _ => true,
            })
            .map(|m| m.event.clone())
            .collect();
        let out = executor.run_turn(now, events);
        let info = executor.info();
        let held_locks = out.outcome.as_ref().and(executor.held_locks());
        let mut commit = self.build_commit(item, &info, out, consumed, now);
        if let Some((critical_section, lock_set)) = held_locks {
            // The execution ended holding (or acquiring) locks: release them.
            let caller = EntityCaller {
                instance_id: item.instance_id.clone(),
                execution_id: info.execution_id.clone(),
                task_scheduled_id: critical_section,
            };
            commit
                .messages
                .extend(unlock_messages(&lock_set, &caller, now));
        }
        self.commit(item, commit).await?;
        if executor.outcome().is_none() && !self.config.always_replay {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= self.config.cache_capacity
                && let Some(victim) = cache.keys().next().cloned()
            {
                cache.remove(&victim);
            }
            if self.config.cache_capacity > 0 {
                cache.insert(item.instance_id.clone(), executor);
            }
        }
        Ok(())
    }

    /// The first half of a rewind (see [`Client::rewind`]): puts the failed instance back to
    /// Running with its history rewritten, and queues again what the rewritten history waits
    /// for. The messages before the request (`item.messages[at]`) are late ones for the failed
    /// instance and are dropped; the request and the messages after it stay queued, so the next
    /// turn delivers them to the resumed execution, which records the request and carries on.
    async fn rewind(
        &self,
        item: &OrchestrationWorkItem,
        at: usize,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), TurnError> {
        let id = &item.instance_id;
        let status = &item.instance;
        let EventKind::ExecutionRewound { reason } = &item.messages[at].message.event.kind else {
            unreachable!("`at` is the position of an ExecutionRewound message");
        };
        let old = self.store.history(id).await?;
        let mut children = HashMap::new();
        for child in history::unsettled_children(&old) {
            if let Some(s) = self.store.instance(&child).await?
                && s.parent_instance_id.as_deref() == Some(id.as_str())
            {
                children.insert(child, s);
            }
        }
        let child_failed = |child: &str| {
            children
                .get(child)
                .is_some_and(|s| s.runtime_status == RuntimeStatus::Failed)
        };
        let rewound = history::rewind(&old, child_failed);
        let execution_id = &status.execution_id;
        let mut activities = Vec::new();
        let mut messages = Vec::new();
        for step in rewound.open_steps {
            let to_self = |kind| OrchestrationMessage {
                instance_id: id.clone(),
                execution_id: Some(execution_id.clone()),
                event: HistoryEvent::new(now, kind),
                visible_at: None,
            };
            match step.kind {
                EventKind::TaskScheduled { name, input } => activities.push(ActivityTask {
                    instance_id: id.clone(),
                    execution_id: execution_id.clone(),
                    task_id: step.event_id,
                    name,
                    input,
                }),
                EventKind::TimerCreated { fire_at } => {
                    messages.push(timer_message(id, execution_id, step.event_id, fire_at, now))
                }
                EventKind::SubOrchestrationInstanceCreated {
                    instance_id: child, ..
                } => {
                    let Some(child) = children.get(&child) else {
                        continue; // still running (it reports itself), or gone
                    };
                    let task_scheduled_id = step.event_id;
                    messages.push(match child.runtime_status {
                        RuntimeStatus::Failed => OrchestrationMessage {
                            instance_id: child.instance_id.clone(),
                            execution_id: None,
                            event: HistoryEvent::new(
                                now,
                                EventKind::ExecutionRewound {
                                    reason: reason.clone(),
                                },
                            ),
                            visible_at: None,
                        },
                        // Its result was dropped while this instance was failed: again.
                        RuntimeStatus::Completed => {
                            to_self(EventKind::SubOrchestrationInstanceCompleted {
                                task_scheduled_id,
                                result: child.output.clone().unwrap_or_else(|| "null".into()),
                            })
                        }
                        RuntimeStatus::Terminated => {
                            to_self(EventKind::SubOrchestrationInstanceFailed {
                                task_scheduled_id,
                                failure: terminated_failure(child.output.as_deref()),
                            })
                        }
                        _ => continue,
                    });
                }
                _ => {}
            }
        }
        let commit = TurnCommit {
            consumed: item.messages[..at].iter().map(|m| m.seq).collect(),
            history: HistoryWrite::Replace(rewound.history),
            status: InstanceStatus {
                runtime_status: RuntimeStatus::Running,
                output: None,
                failure: None,
                last_updated_at: now,
                history: None,
                ..status.clone()
            },
            activities,
            messages,
            new_instances: Vec::new(),
        };
        self.evict(id);
        self.commit(item, commit).await
    }

    /// Runs a batch of messages against an entity and commits its new record together with
    /// everything the batch sends.
    async fn run_entity_batch(
        &self,
        item: &OrchestrationWorkItem,
        consumed: Vec<u64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), TurnError> {
        let Ok(id) = item.instance_id.parse::<EntityId>() else {
            tracing::warn!(instance_id = %item.instance_id, "dropped messages for a malformed entity id");
            return self.commit(item, unchanged(&item.instance, consumed)).await;
        };
        let record = EntityRecord::from_status(&item.instance)
            .map_err(|e| TurnError::Store(StoreError::Backend(e.to_string())))?;
        let events = item
            .messages
            .iter()
            .map(|m| m.message.event.clone())
            .collect();
        let mut executor = EntityExecutor::new(&self.registry, id.clone(), record, now);
        executor.process(events).await;
        let (record, messages, new_instances) = executor.into_parts();
        let status = InstanceStatus {
            instance_id: item.instance_id.clone(),
            name: id.name().to_string(),
            execution_id: String::new(),
            runtime_status: RuntimeStatus::Running,
            input: None,
            output: Some(record.to_json()),
            custom_status: None,
            failure: None,
            created_at: item.instance.created_at,
            last_updated_at: now,
            parent_instance_id: None,
            history: None,
        };
        let commit = TurnCommit {
            consumed,
            history: HistoryWrite::Append(Vec::new()),
            status,
            activities: Vec::new(),
            messages,
            new_instances,
        };
        self.commit(item, commit).await
    }

    async fn commit(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
    ) -> Result<(), TurnError> {
        self.store
            .commit_turn(item, commit)
            .await
            .map_err(|e| match e {
                StoreError::LeaseLost => TurnError::LeaseLost,
                other => TurnError::Store(other),
            })
    }

    fn build_commit(
        &self,
        item: &OrchestrationWorkItem,
        info: &crate::replay::ExecutionInfo,
        out: TurnOutput,
        consumed: Vec<u64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> TurnCommit {
        let instance_id = &item.instance_id;
        let execution_id = info.execution_id.clone();
        let mut activities = Vec::new();
        let mut messages = Vec::new();
        let mut new_instances = Vec::new();
        let keep_actions = !matches!(
            out.outcome,
            Some(Outcome::Failed(_) | Outcome::Terminated(_))
        );
        let caller = |id: i64| EntityCaller {
            instance_id: instance_id.clone(),
            execution_id: execution_id.clone(),
            task_scheduled_id: id,
        };
        for action in out.actions {
            // A failed or terminated execution starts nothing new, but still releases locks.
            if !keep_actions && !matches!(action, Action::UnlockEntities { .. }) {
                continue;
            }
            match action {
                Action::CallEntity {
                    id,
                    entity,
                    operation,
                    input,
                } => messages.push(OrchestrationMessage {
                    instance_id: entity.clone(),
                    execution_id: None,
                    event: HistoryEvent::new(
                        now,
                        EventKind::EntityOperationCalled {
                            entity_id: entity,
                            operation,
                            input,
                            caller: Some(caller(id)),
                        },
                    ),
                    visible_at: None,
                }),
                Action::SignalEntity {
                    entity,
                    operation,
                    input,
                    at,
                    ..
                } => messages.push(OrchestrationMessage {
                    instance_id: entity.clone(),
                    execution_id: None,
                    event: HistoryEvent::new(
                        now,
                        EventKind::EntityOperationSignaled {
                            entity_id: entity,
                            operation,
                            input,
                        },
                    ),
                    visible_at: at,
                }),
                Action::LockEntities { id, lock_set } => messages.push(OrchestrationMessage {
                    instance_id: lock_set[0].clone(),
                    execution_id: None,
                    event: HistoryEvent::new(
                        now,
                        EventKind::EntityLockRequested {
                            lock_set,
                            position: 0,
                            caller: Some(caller(id)),
                        },
                    ),
                    visible_at: None,
                }),
                Action::UnlockEntities {
                    critical_section,
                    lock_set,
                    ..
                } => messages.extend(unlock_messages(&lock_set, &caller(critical_section), now)),
                Action::ScheduleActivity { id, name, input } => activities.push(ActivityTask {
                    instance_id: instance_id.clone(),
                    execution_id: execution_id.clone(),
                    task_id: id,
                    name,
                    input,
                }),
                Action::CreateTimer { id, fire_at } => {
                    messages.push(timer_message(instance_id, &execution_id, id, fire_at, now))
                }
                Action::StartSubOrchestration {
                    id,
                    name,
                    instance_id: child,
                    input,
                } => new_instances.push(NewInstance {
                    instance_id: child,
                    name,
                    input,
                    execution_id: uuid::Uuid::new_v4().simple().to_string(),
                    parent: Some(ParentInstance {
                        name: info.name.clone(),
                        instance_id: instance_id.clone(),
                        execution_id: execution_id.clone(),
                        task_scheduled_id: id,
                    }),
                    created_at: now,
                    start_at: None,
                    replace_running: false,
                }),
                Action::SendEvent {
                    instance_id: target,
                    name,
                    input,
                    ..
                } => messages.push(OrchestrationMessage {
                    instance_id: target,
                    execution_id: None,
                    event: HistoryEvent::new(now, EventKind::EventRaised { name, input }),
                    visible_at: None,
                }),
            }
        }
        let mut status = InstanceStatus {
            instance_id: instance_id.clone(),
            name: info.name.clone(),
            execution_id: execution_id.clone(),
            runtime_status: if out.suspended {
                RuntimeStatus::Suspended
            } else {
                RuntimeStatus::Running
            },
            input: item.instance.input.clone(),
            output: None,
            custom_status: out.custom_status,
            failure: None,
            created_at: item.instance.created_at,
            last_updated_at: now,
            parent_instance_id: info.parent.as_ref().map(|p| p.instance_id.clone()),
            history: None,
        };
        if info.name.is_empty() {
            status.name = item.instance.name.clone();
        }
        let mut history = HistoryWrite::Append(out.new_history);
        let mut to_parent = None;
        match out.outcome {
            None => {}
            Some(Outcome::Completed(output)) => {
                status.runtime_status = RuntimeStatus::Completed;
                to_parent = Some(EventKind::SubOrchestrationInstanceCompleted {
                    task_scheduled_id: 0,
                    result: output.clone(),
                });
                status.output = Some(output);
            }
            Some(Outcome::Failed(failure)) => {
                status.runtime_status = RuntimeStatus::Failed;
                to_parent = Some(EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id: 0,
                    failure: failure.clone(),
                });
                status.failure = Some(failure);
            }
            Some(Outcome::Terminated(reason)) => {
                status.runtime_status = RuntimeStatus::Terminated;
                to_parent = Some(EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id: 0,
                    failure: terminated_failure(reason.as_deref()),
                });
                status.output = reason;
            }
            Some(Outcome::ContinuedAsNew { input, carried }) => {
                let next_execution = uuid::Uuid::new_v4().simple().to_string();
                status.runtime_status = RuntimeStatus::ContinuedAsNew;
                status.input = Some(input.clone());
                status.execution_id = next_execution.clone();
                history = HistoryWrite::Reset;
                messages.push(OrchestrationMessage {
                    instance_id: instance_id.clone(),
                    execution_id: None,
                    event: HistoryEvent::new(
                        now,
                        EventKind::ExecutionStarted {
                            name: info.name.clone(),
                            input,
                            execution_id: next_execution,
                            parent: info.parent.clone(),
                        },
                    ),
                    visible_at: None,
                });
                for event in carried {
                    messages.push(OrchestrationMessage {
                        instance_id: instance_id.clone(),
                        execution_id: None,
                        event,
                        visible_at: None,
                    });
                }
            }
        }
        if let (Some(parent), Some(mut kind)) = (&info.parent, to_parent) {
            match &mut kind {
                EventKind::SubOrchestrationInstanceCompleted {
                    task_scheduled_id, ..
                }
                | EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id, ..
                } => *task_scheduled_id = parent.task_scheduled_id,
                _ => {}
            }
            messages.push(OrchestrationMessage {
                instance_id: parent.instance_id.clone(),
                execution_id: Some(parent.execution_id.clone()),
                event: HistoryEvent::new(now, kind),
                visible_at: None,
            });
        }
        TurnCommit {
            consumed,
            history,
            status,
            activities,
            messages,
            new_instances,
        }
    }

    async fn activity_dispatcher(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut errors = 0u32;
        loop {
            let permit = tokio::select! {
                permit = self.activity_slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            if *shutdown.borrow() {
                return;
            }
            let notified = self.store.signal().activities.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.store.fetch_activity(self.config.lease).await {
                Ok(Some(item)) => {
                    errors = 0;
                    let inner = self.clone();
                    tokio::spawn(async move {
                        inner.run_activity(Arc::new(item)).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    errors = 0;
                    drop(permit);
                    let poll = self.store.poll_interval().unwrap_or(SAFETY_POLL);
                    tokio::select! {
                        _ = notified => {}
                        _ = real_sleep(poll) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                Err(err) => {
                    drop(permit);
                    errors += 1;
                    tracing::warn!(error = %err, "fetching activity work failed");
                    tokio::select! {
                        _ = real_sleep(backoff(errors)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    async fn run_activity(&self, item: Arc<ActivityWorkItem>) {
        let task = &item.task;
        if item.dequeue_count > self.config.max_dequeue {
            let reason = format!(
                "parked after {} deliveries without completing (the host may have crashed \
                 while running it)",
                item.dequeue_count - 1
            );
            if let Err(e) = self
                .store
                .park_activity(&item, &reason, self.clock.now())
                .await
            {
                tracing::warn!(error = %e, "parking an activity failed");
            }
            return;
        }
        let ctx = ActivityContext {
            instance_id: task.instance_id.clone(),
            execution_id: task.execution_id.clone(),
            name: task.name.clone(),
            task_id: task.task_id,
            attempt: item.dequeue_count,
        };
        // The lease keeper renews the lease while the activity runs, however long it takes.
        let held = self.leases.hold(Leased::Activity(item.clone()));
        let result = match self.registry.activity(&task.name) {
            None => Err(Error::new(
                ErrorKind::UnknownFunction,
                format!(
                    "no activity named `{}` is registered on this host",
                    task.name
                ),
            )),
            Some(f) => {
                let input = task.input.clone();
                match std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx, input))) {
                    Err(panic) => Err(activity_panic(&task.name, &*panic)),
                    Ok(future) => match AssertUnwindSafe(future).catch_unwind().await {
                        Ok(result) => result,
                        Err(panic) => Err(activity_panic(&task.name, &*panic)),
                    },
                }
            }
        };
        drop(held);
        let kind = match result {
            Ok(output) => EventKind::TaskCompleted {
                task_scheduled_id: task.task_id,
                result: output,
            },
            Err(err) => EventKind::TaskFailed {
                task_scheduled_id: task.task_id,
                failure: err.to_failure(),
            },
        };
        let response = OrchestrationMessage {
            instance_id: task.instance_id.clone(),
            execution_id: Some(task.execution_id.clone()),
            event: HistoryEvent::new(self.clock.now(), kind),
            visible_at: None,
        };
        match self.store.complete_activity(&item, response).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost) => {
                tracing::debug!(activity = %task.name, "activity lease lost; result dropped")
            }
            Err(e) => {
                tracing::warn!(activity = %task.name, error = %e, "recording an activity result failed");
                let _ = self
                    .store
                    .abandon_activity(&item, backoff(item.dequeue_count))
                    .await;
            }
        }
    }
}

/// How often a held lease is renewed: three times per lease, so that one slow or failed
/// renewal does not lose it.
fn renewal_period(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(1))
}

/// A work item whose lease the [`LeaseKeeper`] renews.
#[derive(Clone)]
enum Leased {
    Activity(Arc<ActivityWorkItem>),
    Orchestration(Arc<OrchestrationWorkItem>),
}

impl Leased {
    async fn renew(&self, store: &dyn Store, lease: Duration) -> Result<(), StoreError> {
        match self {
            Leased::Activity(item) => store.renew_activity_lease(item, lease).await,
            Leased::Orchestration(item) => store.renew_orchestration_lease(item, lease).await,
        }
    }

    fn report(&self, error: &StoreError) {
        match (self, error) {
            (Leased::Activity(item), StoreError::LeaseLost) => tracing::warn!(
                activity = %item.task.name,
                instance_id = %item.task.instance_id,
                "the activity's lease was lost while it ran (it was taken over); it runs on, \
                 but its result will be refused"
            ),
            (Leased::Orchestration(item), StoreError::LeaseLost) => tracing::warn!(
                instance_id = %item.instance_id,
                "the lease on the instance was lost while its turn ran (it was taken over); \
                 the turn will be discarded"
            ),
            (Leased::Activity(item), error) => tracing::warn!(
                activity = %item.task.name,
                instance_id = %item.task.instance_id,
                %error,
                "renewing an activity's lease failed; will try again"
            ),
            (Leased::Orchestration(item), error) => tracing::warn!(
                instance_id = %item.instance_id,
                %error,
                "renewing an instance's lease failed; will try again"
            ),
        }
    }
}

/// The leases this host holds on work in progress, renewed by one task of its own
/// ([`Inner::keep_leases`]) so that work running longer than its lease is not taken over.
/// Holding a lease is a map insert; nothing is spawned per work item.
#[derive(Default)]
struct LeaseKeeper {
    held: Mutex<HashMap<u64, Held>>,
    next: std::sync::atomic::AtomicU64,
}

struct Held {
    item: Leased,
    /// When the lease was last taken or renewed (real time, which leases are measured in).
    renewed: std::time::Instant,
}

impl LeaseKeeper {
    /// Keeps `item`'s lease renewed until the returned guard is dropped.
    fn hold(self: &Arc<Self>, item: Leased) -> HeldLease {
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let held = Held {
            item,
            renewed: std::time::Instant::now(),
        };
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, held);
        HeldLease {
            keeper: self.clone(),
            key,
        }
    }

    /// The leases not renewed for `age` or longer.
    fn due(&self, age: Duration) -> Vec<(u64, Leased)> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() >= age)
            .map(|(key, h)| (*key, h.item.clone()))
            .collect()
    }

    /// Records a renewal (if the work still runs), or forgets a lost lease.
    fn renewed(&self, key: u64, at: std::time::Instant, lost: bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if lost {
            held.remove(&key);
        } else if let Some(h) = held.get_mut(&key) {
            h.renewed = at;
        }
    }
}

/// Work in progress whose lease the keeper renews; dropping it stops the renewals.
struct HeldLease {
    keeper: Arc<LeaseKeeper>,
    key: u64,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.keeper
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

fn unlock_messages(
    lock_set: &[String],
    caller: &EntityCaller,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<OrchestrationMessage> {
    lock_set
        .iter()
        .map(|entity| OrchestrationMessage {
            instance_id: entity.clone(),
            execution_id: None,
            event: HistoryEvent::new(
                now,
                EventKind::EntityUnlockSent {
                    lock_set: lock_set.to_vec(),
                    caller: Some(caller.clone()),
                },
            ),
            visible_at: None,
        })
        .collect()
}

/// The message that fires an instance's timer at `fire_at`.
fn timer_message(
    instance_id: &str,
    execution_id: &str,
    timer_id: i64,
    fire_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: instance_id.to_string(),
        execution_id: Some(execution_id.to_string()),
        event: HistoryEvent::new(now, EventKind::TimerFired { timer_id, fire_at }),
        visible_at: Some(fire_at),
    }
}

/// How a terminated sub-orchestration fails its parent's call.
fn terminated_failure(reason: Option<&str>) -> FailureDetails {
    FailureDetails {
        error_type: "Terminated".into(),
        message: format!(
            "the instance was terminated{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
        cause: None,
    }
}

fn activity_panic(name: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    Error::new(
        ErrorKind::Panic,
        format!("activity `{name}` panicked: {}", panic_message(panic)),
    )
}

fn unchanged(status: &InstanceStatus, consumed: Vec<u64>) -> TurnCommit {
    TurnCommit {
        consumed,
        history: HistoryWrite::Append(Vec::new()),
        status: status.clone(),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    }
}

enum TurnError {
    LeaseLost,
    Store(StoreError),
}

impl From<StoreError> for TurnError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost => TurnError::LeaseLost,
            other => TurnError::Store(other),
        }
    }
}

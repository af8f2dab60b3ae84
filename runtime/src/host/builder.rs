//! The builder: a store, the functions to run, and the host's settings; `start` spawns the
//! dispatchers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::Inner;
use super::Runtime;
use super::leases::LeaseKeeper;
use crate::context::Entity;
use crate::model::{Clock, Error, ErrorKind, Ids, VersionFailure, VersionMatch, validate_version};
use crate::registry::{Register, Registry};
use crate::store::Store;

/// Configures and starts a [`Runtime`]: the store, the functions it runs, and its limits.
///
/// ```
/// use std::time::Duration;
/// use durable::prelude::*;
///
/// #[activity]
/// async fn greet(_ctx: ActivityContext, name: String) -> Result<String, Error> {
///     Ok(format!("Hello {name}!"))
/// }
///
/// #[orchestrator]
/// async fn welcome(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
///     ctx.call_activity(greet, name).await
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let dir = tempfile::tempdir()?;
/// let runtime = Runtime::builder()
///     .store(durable::store::Sqlite::open(dir.path().join("app.db"))?) // or Memory, Postgres
///     .register(welcome)
///     .register(greet)
///     .task_hub("shop") // instances of other hubs in the same database are not seen
///     .max_concurrent_activities(32)
///     .lease_duration(Duration::from_secs(30))
///     .start()
///     .await?;
/// let id = runtime.client().start(welcome, "Ada".to_string()).await?;
/// # runtime.client().wait_for_completion(&id, Duration::from_secs(10)).await?;
/// runtime.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "call .start().await to run the host"]
pub struct RuntimeBuilder {
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) registry: Registry,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: Config,
    pub(super) task_hub: Option<String>,
    pub(super) id_seed: Option<u64>,
    /// Turns at once, when set (else the store's, see [`Store::turns_in_flight`]).
    pub(super) max_orchestrations: Option<usize>,
    #[cfg(feature = "http")]
    pub(super) http: Option<crate::http::HttpOptions>,
}

#[derive(Clone)]
pub(super) struct Config {
    pub(super) max_activities: usize,
    pub(super) max_orchestrations: usize,
    pub(super) always_replay: bool,
    pub(super) cache_capacity: usize,
    pub(super) lease: Duration,
    pub(super) max_dequeue: u32,
    pub(super) shutdown_grace: Duration,
    pub(super) partitions: u32,
    pub(super) version: Option<String>,
    pub(super) version_match: VersionMatch,
    pub(super) version_failure: VersionFailure,
}

impl Config {
    /// How many activities turns may hold for this host beyond its free slots, each waiting
    /// here for one: as many as there are activity slots, or turn slots if those are more
    /// (one for each turn in flight).
    pub(super) fn waiting_places(&self) -> usize {
        self.max_activities.max(self.max_orchestrations)
    }
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

    /// At most this many activities run at once (default 64). A turn that schedules more
    /// than there are free slots keeps some on this host, leased to it, to run as slots free
    /// up: as many as this limit, or as [`max_concurrent_orchestrations`] if that is more (one
    /// for each turn in flight). The rest go to the store's queue, for any host.
    ///
    /// [`max_concurrent_orchestrations`]: RuntimeBuilder::max_concurrent_orchestrations
    pub fn max_concurrent_activities(mut self, n: usize) -> Self {
        self.config.max_activities = n.max(1);
        self
    }

    /// At most this many orchestration turns run at once, each counted until its commit is
    /// written. The default is the store's ([`Store::turns_in_flight`]): 1,024 on SQLite and
    /// PostgreSQL, 256 on the memory store. A turn is mostly a wait for its commit, and turns
    /// committed together share one write, so more turns in flight make larger groups, and
    /// the next turns are computed while the last ones are written. The limit bounds the
    /// memory and CPU they take at once; a host that must run fewer sets it lower. Timers
    /// that come due together start this many turns at once, the rest as commits free slots.
    ///
    /// [`Store::turns_in_flight`]: crate::store::Store::turns_in_flight
    pub fn max_concurrent_orchestrations(mut self, n: usize) -> Self {
        self.max_orchestrations = Some(n.max(1));
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

    /// How many partitions a task hub is created with (default 12; between 1 and 1,024). Only a
    /// hub's first host sets it: the count is stored with the hub and never changes.
    ///
    /// Instances and entities map to partitions by their id; a host owns a share of them
    /// through one lease per partition, and fetches only their work. Hosts sharing a
    /// PostgreSQL database split the partitions evenly, so the count bounds how many hosts
    /// can share the work; a SQLite file is owned by one host as a whole.
    pub fn partitions(mut self, count: u32) -> Self {
        self.config.partitions = count;
        self
    }

    /// How long `shutdown` waits for running activities before abandoning them (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// The version of the orchestrator code this host runs (none by default). Instances
    /// started by this host's client, and sub-orchestrations its orchestrators start, are
    /// recorded with it; [`version_match`](Self::version_match) decides which instances the
    /// host runs. Versions compare as [`compare_versions`](crate::compare_versions) says:
    /// use dotted numbers such as `2.0` (a lone `2` compares as text). An empty or over-long
    /// version makes [`start`](Self::start) fail.
    ///
    /// ```
    /// use durable::prelude::*;
    /// use durable::{VersionFailure, VersionMatch};
    ///
    /// #[orchestrator]
    /// async fn work(ctx: OrchestrationContext, _input: ()) -> Result<Option<String>, Error> {
    ///     Ok(ctx.version())
    /// }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// let runtime = Runtime::builder()
    ///     .store(durable::store::Memory::new())
    ///     .register(work)
    ///     .version("2.0")
    ///     .version_match(VersionMatch::CurrentOrOlder) // the default
    ///     .version_failure(VersionFailure::Leave) // the default
    ///     .start()
    ///     .await?;
    /// let id = runtime.client().start(work, ()).await?;
    /// let status = runtime
    ///     .client()
    ///     .wait_for_completion(&id, std::time::Duration::from_secs(10))
    ///     .await?;
    /// assert_eq!(status.version.as_deref(), Some("2.0"));
    /// assert_eq!(status.output::<Option<String>>()?.as_deref(), Some("2.0"));
    /// # runtime.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.config.version = Some(version.into());
        self
    }

    /// Which instances this host runs, by their version compared with the host's (default
    /// [`VersionMatch::CurrentOrOlder`]). The check is made on every work item the host
    /// fetches, before it runs anything.
    pub fn version_match(mut self, strategy: VersionMatch) -> Self {
        self.config.version_match = strategy;
        self
    }

    /// What this host does with an instance its version match does not allow (default
    /// [`VersionFailure::Leave`]: leave it for a host that may run it).
    pub fn version_failure(mut self, strategy: VersionFailure) -> Self {
        self.config.version_failure = strategy;
        self
    }

    /// Draws this host's ids (its owner id, new executions' ids, and the ids its
    /// [`client`](Runtime::client) gives the instances it starts) from `seed` instead of at
    /// random, so that a simulation replays the same run from the same seed. Two hosts on one
    /// store need different seeds.
    #[doc(hidden)]
    pub fn id_seed(mut self, seed: u64) -> Self {
        self.id_seed = Some(seed);
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
    pub async fn start(mut self) -> Result<Runtime, Error> {
        let store = self.store.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "no store: call `.store(durable::store::Memory::new())` or another store first",
            )
        })?;
        if let Some(version) = &self.config.version {
            validate_version(version).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("the host's version: {}", e.message()),
                )
            })?;
        }
        if let Some(dup) = self.registry.duplicates().first() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{dup} is registered twice; each name may be registered once"),
            ));
        }
        if !(1..=1024).contains(&self.config.partitions) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "`.partitions({})`: a task hub has between 1 and 1024 partitions",
                    self.config.partitions
                ),
            ));
        }
        let store = match self.task_hub {
            Some(hub) => store.with_task_hub(&hub),
            None => store,
        };
        self.config.max_orchestrations = self
            .max_orchestrations
            .unwrap_or_else(|| store.turns_in_flight())
            .max(1);
        let (shutdown, _) = watch::channel(false);
        let ids = Arc::new(match self.id_seed {
            Some(seed) => Ids::seeded(seed),
            None => Ids::random(),
        });
        let inner = Arc::new(Inner {
            leases_released: watch::channel(false).0,
            leases: Arc::new(LeaseKeeper::default()),
            store,
            registry: Arc::new(self.registry),
            clock: self.clock,
            cache: Mutex::new(HashMap::new()),
            busy: Default::default(),
            failures: Mutex::new(HashMap::new()),
            left: Mutex::new(Default::default()),
            activity_slots: Arc::new(Semaphore::new(self.config.max_activities)),
            activity_backlog: Arc::new(Semaphore::new(self.config.waiting_places())),
            turn_slots: Arc::new(Semaphore::new(self.config.max_orchestrations)),
            stopping: Default::default(),
            stop_waiting: Default::default(),
            ownership: super::partitions::Ownership::new(&ids),
            watchers: Default::default(),
            ready: Default::default(),
            recheck: Default::default(),
            own_reads: Default::default(),
            following: Default::default(),
            handed: Default::default(),
            records: Default::default(),
            timers: Default::default(),
            timer_set: Default::default(),
            config: self.config,
            tasks: Default::default(),
            ids,
        });
        // The first rounds before any dispatcher starts: a host that can own work does from
        // its first fetch (the second round takes its share once the first has seen the table).
        inner.claim_round().await;
        inner.claim_round().await;
        let group = inner.tasks.clone();
        // Each long-lived task starts again if it panics (a bug in the host, logged).
        let keeper = inner.clone();
        group.spawn_restarting("partition keeper", move || keeper.clone().keep_partitions());
        let mut tasks = Vec::new();
        let reads = inner.store.reads_owned_work();
        for _ in 0..inner.config.max_orchestrations {
            let (inner, stop) = (inner.clone(), shutdown.subscribe());
            let worker = if reads {
                group.spawn_restarting("orchestration dispatcher", move || {
                    inner.clone().read_worker(stop.clone())
                })
            } else {
                group.spawn_restarting("orchestration dispatcher", move || {
                    inner.clone().orchestration_worker(stop.clone())
                })
            };
            tasks.push(worker);
        }
        if inner.fires_timers() {
            let (timers, stop) = (inner.clone(), shutdown.subscribe());
            tasks.push(group.spawn_restarting("timer keeper", move || {
                timers.clone().timer_keeper(stop.clone())
            }));
        }
        let (activities, stop) = (inner.clone(), shutdown.subscribe());
        tasks.push(group.spawn_restarting("activity dispatcher", move || {
            activities.clone().activity_dispatcher(stop.clone())
        }));
        // Not one of `tasks`: it keeps renewing through shutdown's grace period, and stops
        // when the leases are released.
        let keeper = inner.clone();
        group.spawn_restarting("lease keeper", move || keeper.clone().keep_leases());
        #[cfg(feature = "http")]
        let http = match self.http {
            None => None,
            Some(options) => {
                let client = inner.client();
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

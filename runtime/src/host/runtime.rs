//! The handle of a running host: its client, idleness, shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::RuntimeBuilder;
use super::{Config, Inner};
use crate::client::Client;
use crate::model::{Clock, SystemClock, real_sleep};
use crate::registry::Registry;
use crate::store::Store;

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
    pub(super) inner: Arc<Inner>,
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
    #[cfg(feature = "http")]
    pub(super) http_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "http")]
    pub(super) http: Mutex<Option<crate::http::HttpServer>>,
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
                // Set at start: the builder's limit, else the store's.
                max_orchestrations: 256,
                always_replay: false,
                cache_capacity: 10_000,
                lease: Duration::from_secs(30),
                max_dequeue: 10,
                shutdown_grace: Duration::from_secs(30),
                partitions: 12,
                version: None,
                version_match: Default::default(),
                version_failure: Default::default(),
            },
            task_hub: None,
            id_seed: None,
            max_orchestrations: None,
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
        self.inner.client()
    }

    /// The work this host fetched and left for another host, because it has no orchestrator
    /// or entity of that name registered, or because the instance's version is one its
    /// [version match](RuntimeBuilder::version_match) does not allow. The instances stay as
    /// they are (their custom status untouched) until a host that may run them does; this
    /// host logs a warning once per instance for a version, once per name for missing code.
    /// An instance leaves the list when this host runs it after all (one restarted under an
    /// allowed version).
    pub fn left_work(&self) -> Vec<super::LeftWork> {
        self.inner.left_work()
    }

    /// The store this host runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The partitions of the task hub this host owns now, in order (it fetches only their
    /// work). Empty while another host owns a SQLite file, or before a PostgreSQL host got
    /// its share.
    pub fn partitions(&self) -> Vec<u32> {
        match &*self.inner.ownership.owned() {
            crate::store::Owned::Partitions { leases, .. } => {
                leases.iter().map(|l| l.partition).collect()
            }
            crate::store::Owned::Everything => Vec::new(),
        }
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
                biased;
                _ = changed => {}
                _ = real_sleep(Duration::from_millis(2)) => {}
            }
        }
    }

    /// Stops fetching work, lets running turns finish, gives the activities that were waiting
    /// here for a slot back to the store's queue (for any host, at once), waits up to the
    /// shutdown grace period for running activities, then stops. Unfinished work stays in the
    /// store and resumes when a host starts again.
    pub async fn shutdown(&self) {
        #[cfg(feature = "http")]
        {
            let server = self.http.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(mut server) = server {
                server.shutdown().await;
            }
        }
        self.shutdown.send_replace(true);
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.stop_waiting.notify_waiters();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        let slots = self.inner.config.max_activities as u32;
        let turns = self.inner.config.max_orchestrations as u32;
        let places = self.inner.config.waiting_places() as u32;
        // Activities that were waiting for a slot, given back to the store's queue; running
        // activities; then the turns their results started.
        let drained = tokio::time::timeout(self.inner.config.shutdown_grace, async {
            let waiting = self.inner.activity_backlog.acquire_many(places).await;
            let activities = self.inner.activity_slots.acquire_many(slots).await;
            let turns = self.inner.turn_slots.acquire_many(turns).await;
            (waiting, activities, turns)
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown: activities still running after the grace period; their leases are \
                 no longer renewed, so their work is taken over once the leases run out"
            );
        }
        self.inner.leases_released.send_replace(true);
        self.inner.release_partitions().await;
    }
}

impl Runtime {
    /// Ends every task of this host at once, at whatever await point each one is, as if the
    /// process died there: nothing is released or renewed any more, and what was not
    /// committed is lost. Other hosts take the work over once its leases run out. For
    /// simulations; a host is stopped with [`shutdown`](Self::shutdown).
    #[doc(hidden)]
    pub fn crash(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        // Aborted first, in the order they were spawned: the watch channel would wake them in
        // an order of its own choosing, which a simulation could not replay.
        self.inner.tasks.abort_all();
        self.shutdown.send_replace(true);
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Stops polling this host's tasks, as in a long stall of its process: its leases run
    /// out and other hosts may take its work over while it holds turns in the middle. For
    /// simulations.
    #[doc(hidden)]
    pub fn pause(&self) {
        self.inner.tasks.pause();
    }

    /// Polls this host's tasks again after [`pause`](Self::pause).
    #[doc(hidden)]
    pub fn resume(&self) {
        self.inner.tasks.resume();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        // Work still running in the background no longer holds its leases: a dropped host is
        // as good as gone, and others take its work over once the leases run out.
        self.inner.leases_released.send_replace(true);
    }
}

//! The worker host: dispatchers that fetch work from the store, run turns and activities, and
//! commit the results.
//!
//! - `builder.rs`, `runtime.rs`: configuring and starting a host, and the handle it returns;
//! - `orchestrations.rs`: the orchestration dispatchers, the executor cache, one turn;
//! - `commit.rs`: a turn's commit, built from what the replay core produced;
//! - `rewind.rs`: putting a failed instance back to running;
//! - `scheduled.rs`: messages sent to an instance before its scheduled start, kept for it;
//! - `entities.rs`: entity batches;
//! - `handover.rs`: work a commit gives this host's instances, read by that commit;
//! - `following.rs`: work read for an instance whose own commit is in flight, run after it;
//! - `activities.rs`: the activity dispatcher, and running an activity;
//! - `results.rs`: an activity's result and the turn it unblocks, committed together;
//! - `leases.rs`: renewing the leases of work still in progress;
//! - `partitions.rs`: owning a share of the hub's partitions, renewed in the background;
//! - `ready.rs`: the dispatchers on a store that hands out owned work by reading it;
//! - `timers.rs`: timers this host's turns set, fired from memory when due;
//! - `busy.rs`: the instances with a turn running here, and those whose work was read ahead;
//! - `tasks.rs`: the host's task group, which a crash ends as a whole;
//! - `versions.rs`: which fetched work the host runs (its version, its code), and what it
//!   leaves for another host.
//!
//! Every `select!` here is `biased`: when several branches are ready the first one wins, the
//! same in every run (tokio picks at random otherwise), so a seeded simulation replays.

mod activities;
mod builder;
mod busy;
mod commit;
mod entities;
mod following;
mod handover;
mod idle;
mod leases;
mod orchestrations;
mod partitions;
mod ready;
mod results;
mod rewind;
mod runtime;
mod scheduled;
mod starts;
mod tasks;
mod timers;
mod versions;

use builder::Config;
pub use builder::RuntimeBuilder;
use orchestrations::TurnError;
pub use runtime::Runtime;
pub use versions::{LeftReason, LeftWork};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::model::{Clock, Ids};
use crate::registry::Registry;
use crate::store::Store;
use leases::LeaseKeeper;

struct Inner {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, orchestrations::Cached>>,
    /// Instances with a turn running on this host, each with the activity results that came
    /// in meanwhile (they go into the next turn together); and those whose work was read ahead.
    busy: Mutex<busy::Busy>,
    /// The last processing error per instance, reported when its messages are parked.
    failures: Mutex<HashMap<String, String>>,
    /// The work this host left for other hosts (see `versions.rs`).
    left: Mutex<versions::Left>,
    activity_slots: Arc<Semaphore>,
    /// One per activity a turn held for this host while every activity slot was taken (as
    /// many as there are activity slots or turn slots, whichever is more): it waits here for a
    /// slot, its lease kept, instead of going through the store's queue.
    activity_backlog: Arc<Semaphore>,
    /// One per orchestration turn running (`max_concurrent_orchestrations`), whether a
    /// dispatcher fetched it or a finished activity's result started it.
    turn_slots: Arc<Semaphore>,
    /// Set once shutdown begins: finished activities no longer start turns.
    stopping: std::sync::atomic::AtomicBool,
    /// Notified when shutdown begins: results waiting for a turn slot go to the store.
    stop_waiting: tokio::sync::Notify,
    /// Raised once the host has stopped (shut down, or dropped): leases are no longer renewed.
    leases_released: watch::Sender<bool>,
    /// The leases held on work in progress.
    leases: Arc<LeaseKeeper>,
    /// The partitions this host owns.
    ownership: partitions::Ownership,
    /// The idle dispatchers that wait for the next visible message and poll (see `idle.rs`).
    watchers: Mutex<idle::Watchers>,
    /// Instances of owned partitions found ready, on a store read without leases.
    ready: tokio::sync::Mutex<ready::ReadyQueue>,
    /// Instances found ready while busy here: looked at again when their turn ends.
    recheck: Mutex<std::collections::HashSet<String>>,
    /// Entity records as this host's last batch of each wrote them, with their JSON (see
    /// `entities.rs`).
    records: Mutex<HashMap<String, (String, crate::model::EntityRecord)>>,
    /// Work an instance's own commit read for it, to run next while it is still busy here
    /// (see `handover.rs`).
    own_reads: Mutex<HashMap<String, crate::store::OrchestrationWorkItem>>,
    /// Instances whose commit is in flight, and work read for them meanwhile (see
    /// `following.rs`).
    following: Mutex<following::Following>,
    /// Work read by the commits that gave it, its instances busy here (see `handover.rs`).
    handed: Mutex<std::collections::VecDeque<crate::store::OrchestrationWorkItem>>,
    /// The timers this host's turns set, and the work read ahead for them (see `timers.rs`).
    timers: Mutex<timers::Timers>,
    /// Notified when a timer is kept or work is read ahead for one.
    timer_set: tokio::sync::Notify,
    config: Config,
    /// Every task this host spawns (see `tasks.rs`).
    tasks: Arc<tasks::TaskGroup>,
    /// Execution ids and this host's owner id.
    ids: Arc<Ids>,
}

/// A safety net for missed wake-ups; the hot path never waits on it.
const SAFETY_POLL: Duration = Duration::from_secs(1);

impl Inner {
    fn watchers(&self) -> std::sync::MutexGuard<'_, idle::Watchers> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client on this host's store whose starts go through the host (see `starts.rs`).
    fn client(self: &Arc<Self>) -> crate::client::Client {
        crate::client::Client::with_parts(
            self.store.clone(),
            self.clock.clone(),
            Some(self.registry.clone()),
            self.config.version.clone(),
            self.ids.clone(),
            Some(Arc::new(starts::HostStarter {
                host: Arc::downgrade(self),
                store: self.store.clone(),
            })),
        )
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(10))).min(Duration::from_secs(30))
}

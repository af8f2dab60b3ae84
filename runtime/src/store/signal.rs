//! The wake-ups a store raises on its own writes.

use std::sync::Mutex;

use tokio::sync::Notify;

/// The most instance ids [`WorkSignal::work_for`] keeps for a host that does not take them:
/// beyond it they are dropped, and the host finds their work by looking, as it finds work
/// other processes queue.
const READY_KEPT: usize = 4096;

/// Notifications a store raises so that dispatchers and waiting clients wake without polling.
#[derive(Debug, Default)]
pub struct WorkSignal {
    /// Raised when orchestration messages are queued.
    pub orchestrations: Notify,
    /// Raised when activities are queued.
    pub activities: Notify,
    /// Raised when an instance's status changes.
    pub instances: Notify,
    /// Instances this process's writes gave work visible at once, not yet taken.
    ready: Mutex<Vec<String>>,
}

impl WorkSignal {
    /// New orchestration work: wakes one idle dispatcher. A dispatcher that takes work wakes
    /// the next, so a burst of work reaches as many dispatchers as it needs without waking
    /// all of them for every write.
    pub fn orchestration_work(&self) {
        self.orchestrations.notify_one();
    }

    /// New orchestration work visible now for these instances: kept for a host to take
    /// ([`WorkSignal::take_ready`]) without looking for it in the store, and one idle
    /// dispatcher woken. Only a hint: work not taken this way is found by looking.
    pub fn work_for(&self, instance_ids: impl IntoIterator<Item = String>) {
        self.keep_ready(instance_ids);
        self.orchestration_work();
    }

    /// Keeps instances given work for a host to take, as [`WorkSignal::work_for`] does,
    /// without waking a dispatcher (for a store that wakes them itself).
    pub fn keep_ready(&self, instance_ids: impl IntoIterator<Item = String>) {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        ready.extend(instance_ids);
        if ready.len() > READY_KEPT {
            ready.clear();
        }
    }

    /// The instances given work since the last call (see [`WorkSignal::work_for`]).
    pub fn take_ready(&self) -> Vec<String> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// New activity work: wakes the idle activity dispatcher.
    pub fn activity_work(&self) {
        self.activities.notify_one();
    }

    /// An instance's status changed: wakes every client waiting on a status.
    pub fn instance_changed(&self) {
        self.instances.notify_waiters();
    }

    /// After a turn's commit: wakes an orchestration dispatcher when `orchestrations` (the
    /// turn sent messages or started instances, or it released a lease on its instance, whose
    /// messages that came in meanwhile were passed over; a turn of work read without a lease
    /// needs none for its own instance, which the host that ran it looks at again), the
    /// activity dispatcher when the turn queued activities for any host, and every client
    /// waiting on a status.
    /// The instances the turn gave work visible at once (`ready`, see
    /// [`TurnCommit::gives_work_to`](crate::store::TurnCommit::gives_work_to)) are kept for
    /// the host as [`WorkSignal::work_for`] keeps them.
    pub fn turn_committed(
        &self,
        ready: Vec<String>,
        orchestrations: bool,
        queued_activities: bool,
    ) {
        if !ready.is_empty() {
            self.work_for(ready);
        } else if orchestrations {
            self.orchestration_work();
        }
        if queued_activities {
            self.activity_work();
        }
        self.instance_changed();
    }

    /// All of the above, after a write that may have done all three.
    pub fn all(&self) {
        self.orchestration_work();
        self.activity_work();
        self.instance_changed();
    }
}

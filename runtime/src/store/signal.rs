//! The wake-ups a store raises on its own writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::model::RuntimeStatus;

/// The most instance ids [`WorkSignal::work_for`] keeps for a host that does not take them:
/// beyond it they are dropped, and the host finds their work by looking, as it finds work
/// other processes queue.
const READY_KEPT: usize = 4096;

/// What a turn's commit tells a [`WorkSignal`] once it is applied: the instances it gives
/// work, those whose statuses it changes, whether it sends messages and queues activities.
/// Taken from the commit before it is written (the write consumes it).
pub(crate) struct TurnWakes {
    ready: Vec<String>,
    /// The instances whose statuses the turn changes, its own first.
    changed: Vec<String>,
    /// The runtime status the turn wrote for its instance.
    wrote: RuntimeStatus,
    orchestrations: bool,
    queued_activities: bool,
}

impl TurnWakes {
    /// The wake-ups of `commit`, a turn of `instance_id`.
    pub(crate) fn of(commit: &crate::store::TurnCommit, instance_id: &str) -> TurnWakes {
        TurnWakes {
            ready: commit.gives_work_to(),
            changed: commit.changes_status_of(instance_id),
            wrote: commit.status.runtime_status,
            orchestrations: commit.sends_messages(),
            queued_activities: !commit.activities.is_empty(),
        }
    }

    /// Wakes the orchestration dispatchers even when nothing was sent (a turn that held a
    /// lease: what came in for its instance meanwhile is new work).
    pub(crate) fn waking_orchestrations(mut self, wake: bool) -> TurnWakes {
        self.orchestrations |= wake;
        self
    }

    /// Leaves out of the ready instances those whose work the commit read for this host.
    pub(crate) fn read<'a>(&mut self, read: impl IntoIterator<Item = &'a str>) {
        let read: Vec<&str> = read.into_iter().collect();
        self.ready.retain(|id| !read.contains(&id.as_str()));
    }
}

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
    /// The instances someone waits on (see [`WorkSignal::watch`]), each with its wake-up and
    /// how many wait on it.
    watched: Mutex<HashMap<String, (Arc<Watched>, usize)>>,
}

/// One watched instance: its wake-up, and what its changes told of its runtime status.
#[derive(Debug, Default)]
struct Watched {
    notify: Notify,
    told: Mutex<Told>,
}

/// The changes of a watched instance so far: how many, the last of them that may have
/// changed its runtime status in a way not told, and the runtime status the last one wrote.
#[derive(Debug, Default)]
struct Told {
    changes: u64,
    last_unknown: u64,
    status: Option<RuntimeStatus>,
}

/// What the changes of an instance since a watch last looked told of its runtime status
/// ([`InstanceWatch::told`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusTold {
    /// No change since.
    Nothing,
    /// Every change since was a turn of the instance's own; the last one wrote this runtime
    /// status.
    Status(RuntimeStatus),
    /// A change since may have changed anything: read the status.
    Unknown,
}

/// A wait on one instance's status changes, from [`WorkSignal::watch`]; ends when dropped.
#[derive(Debug)]
pub struct InstanceWatch<'a> {
    signal: &'a WorkSignal,
    instance_id: String,
    watched: Arc<Watched>,
    /// The changes this watch has looked at ([`InstanceWatch::told`]).
    seen: AtomicU64,
}

impl InstanceWatch<'_> {
    /// Completes at the next change of the instance's status, or at a change the store cannot
    /// tell the instance of. Enable it before reading the status, as with [`Notify`].
    pub fn notified(&self) -> Notified<'_> {
        self.watched.notify.notified()
    }

    /// What the changes of the instance since the last call (or since the watch began) told
    /// of its runtime status. A client waiting for the instance to end need not read a
    /// status that a turn of its own wrote as still running.
    pub fn told(&self) -> StatusTold {
        let told = self.watched.told.lock().unwrap_or_else(|p| p.into_inner());
        let seen = self.seen.swap(told.changes, Ordering::AcqRel);
        match told.status {
            _ if told.changes == seen => StatusTold::Nothing,
            Some(status) if told.last_unknown <= seen => StatusTold::Status(status),
            _ => StatusTold::Unknown,
        }
    }
}

impl Drop for InstanceWatch<'_> {
    fn drop(&mut self) {
        let mut watched = self
            .signal
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((_, count)) = watched.get_mut(&self.instance_id) {
            *count -= 1;
            if *count == 0 {
                watched.remove(&self.instance_id);
            }
        }
    }
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
        let watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        for (watched, _) in watched.values() {
            watched.changed(None);
        }
    }

    /// The statuses of these instances changed (and of no other): wakes the clients waiting
    /// on any status ([`WorkSignal::instances`]) and those watching one of them.
    pub fn instances_changed<'a>(&self, instance_ids: impl IntoIterator<Item = &'a String>) {
        self.changed_telling(instance_ids, |_| None);
    }

    /// [`WorkSignal::instances_changed`] after a turn of `changed[0]` that wrote the runtime
    /// status `wrote` for it: a client waiting on it learns which.
    fn instances_changed_by_turn(&self, changed: &[String], wrote: RuntimeStatus) {
        let own = changed.first();
        self.changed_telling(changed, |id| (Some(id) == own).then_some(wrote));
    }

    /// Wakes the clients waiting on any status, and tells those watching one of these
    /// instances the runtime status `told` gives for it (`None`: not known).
    fn changed_telling<'a>(
        &self,
        instance_ids: impl IntoIterator<Item = &'a String>,
        told: impl Fn(&String) -> Option<RuntimeStatus>,
    ) {
        self.instances.notify_waiters();
        let watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        if watched.is_empty() {
            return;
        }
        for id in instance_ids {
            if let Some((watched, _)) = watched.get(id) {
                watched.changed(told(id));
            }
        }
    }

    /// Starts watching one instance's status: the watch wakes when a change of it is told
    /// ([`WorkSignal::instances_changed`]), or a change of any instance
    /// ([`WorkSignal::instance_changed`]), not at other instances' changes. A client waiting
    /// for one instance among many running reads it again at its own changes only.
    pub fn watch(&self, instance_id: &str) -> InstanceWatch<'_> {
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        let (entry, count) = watched
            .entry(instance_id.to_string())
            .or_insert_with(|| (Arc::new(Watched::default()), 0));
        *count += 1;
        let seen = entry.told.lock().unwrap_or_else(|p| p.into_inner()).changes;
        InstanceWatch {
            signal: self,
            instance_id: instance_id.to_string(),
            watched: entry.clone(),
            seen: AtomicU64::new(seen),
        }
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
        self.wake_after_turn(ready, orchestrations, queued_activities);
        self.instance_changed();
    }

    /// [`WorkSignal::turn_committed_for`] with what a commit said before it was written.
    pub(crate) fn turn_applied(&self, wakes: TurnWakes) {
        self.wake_after_turn(wakes.ready, wakes.orchestrations, wakes.queued_activities);
        self.instances_changed_by_turn(&wakes.changed, wakes.wrote);
    }

    /// [`WorkSignal::turn_committed`] for a commit that changed the statuses of `changed`
    /// only (see [`TurnCommit::changes_status_of`](crate::store::TurnCommit::changes_status_of)):
    /// clients watching other instances sleep on.
    pub fn turn_committed_for(
        &self,
        changed: &[String],
        ready: Vec<String>,
        orchestrations: bool,
        queued_activities: bool,
    ) {
        self.wake_after_turn(ready, orchestrations, queued_activities);
        self.instances_changed(changed);
    }

    fn wake_after_turn(&self, ready: Vec<String>, orchestrations: bool, queued_activities: bool) {
        if !ready.is_empty() {
            self.work_for(ready);
        } else if orchestrations {
            self.orchestration_work();
        }
        if queued_activities {
            self.activity_work();
        }
    }

    /// All of the above, after a write that may have done all three.
    pub fn all(&self) {
        self.orchestration_work();
        self.activity_work();
        self.instance_changed();
    }
}

impl Watched {
    /// Records a change, with the runtime status it wrote when known, and wakes the watches.
    fn changed(&self, wrote: Option<RuntimeStatus>) {
        {
            let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
            told.changes += 1;
            if wrote.is_none() {
                told.last_unknown = told.changes;
            }
            told.status = wrote;
        }
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each watch of an instance learns what its turns wrote, from the changes since it last
    /// looked; a change not told of makes the status unknown until looked at.
    #[test]
    fn every_watch_is_told_what_the_turns_since_it_looked_wrote() {
        let signal = WorkSignal::default();
        let id = "o".to_string();
        let (first, second) = (signal.watch(&id), signal.watch(&id));
        let turn = |status| signal.instances_changed_by_turn(std::slice::from_ref(&id), status);
        assert_eq!(first.told(), StatusTold::Nothing);
        turn(RuntimeStatus::Running);
        turn(RuntimeStatus::Completed);
        assert_eq!(first.told(), StatusTold::Status(RuntimeStatus::Completed));
        assert_eq!(first.told(), StatusTold::Nothing);
        assert_eq!(second.told(), StatusTold::Status(RuntimeStatus::Completed));
        signal.instances_changed([&id]);
        turn(RuntimeStatus::Running);
        assert_eq!(
            first.told(),
            StatusTold::Unknown,
            "a change not told of came between"
        );
        let turn_of_other = ["p".to_string(), id.clone()];
        signal.instances_changed_by_turn(&turn_of_other, RuntimeStatus::Completed);
        assert_eq!(
            second.told(),
            StatusTold::Unknown,
            "a turn of another instance"
        );
    }
}

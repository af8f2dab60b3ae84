//! The wake-ups a store raises on its own writes.

use tokio::sync::Notify;

/// Notifications a store raises so that dispatchers and waiting clients wake without polling.
#[derive(Debug, Default)]
pub struct WorkSignal {
    /// Raised when orchestration messages are queued.
    pub orchestrations: Notify,
    /// Raised when activities are queued.
    pub activities: Notify,
    /// Raised when an instance's status changes.
    pub instances: Notify,
}

impl WorkSignal {
    /// New orchestration work: wakes one idle dispatcher. A dispatcher that takes work wakes
    /// the next, so a burst of work reaches as many dispatchers as it needs without waking
    /// all of them for every write.
    pub fn orchestration_work(&self) {
        self.orchestrations.notify_one();
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
    pub fn turn_committed(&self, orchestrations: bool, queued_activities: bool) {
        if orchestrations {
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

//! A simulated host's wake-ups: relayed from the shared store's signal, some of them lost
//! while faults are on.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use durable::store::{Store, WorkSignal};

use super::faults::Faults;

/// How often a host polls for work when wake-ups may be lost (at most: a store that polls more
/// often keeps its interval). As often as a SQLite store polls; at 250 ms the simulator's
/// seeds take about half as long again.
pub(super) const LOST_WAKE_POLL: Duration = Duration::from_millis(500);

/// A host's own wake-ups: a task relays the inner store's to them, dropping some while faults
/// are on. A host takes a wake-up only from this signal, so a dropped one is lost to it, as a
/// notification a database drops is lost to a listener. The task ends when the store is
/// dropped.
pub(super) struct Wakes {
    pub(super) signal: Arc<WorkSignal>,
    relay: tokio::task::AbortHandle,
}

/// Which of a signal's notifications a wake-up is.
#[derive(Clone, Copy, Debug)]
enum Wake {
    Orchestrations,
    Activities,
    Instances,
}

impl Wakes {
    pub(super) fn relay(inner: &Arc<dyn Store>, faults: &Faults, host: &str) -> Wakes {
        let signal = Arc::new(WorkSignal::default());
        let (inner, faults, host, to) = (
            inner.clone(),
            faults.clone(),
            host.to_string(),
            signal.clone(),
        );
        let relay = tokio::spawn(async move {
            let from = inner.signal();
            // Each wait is in place before the last wake-up is passed on, so none raised
            // meanwhile is missed (`notify_waiters` only reaches waits that exist).
            let mut orchestrations = pin!(from.orchestrations.notified());
            let mut activities = pin!(from.activities.notified());
            let mut instances = pin!(from.instances.notified());
            loop {
                // Biased: the same seed relays in the same order.
                let wake = tokio::select! {
                    biased;
                    () = &mut orchestrations => {
                        orchestrations.set(from.orchestrations.notified());
                        Wake::Orchestrations
                    }
                    () = &mut activities => {
                        activities.set(from.activities.notified());
                        Wake::Activities
                    }
                    () = &mut instances => {
                        instances.set(from.instances.notified());
                        Wake::Instances
                    }
                };
                if faults.draw(faults.rates.wake_lost) {
                    faults.lock().wakes_lost += 1;
                    faults.count(format!("wake-up lost: {wake:?}"));
                    faults.record(format!("{host} wake-up lost: {wake:?}"));
                    continue;
                }
                match wake {
                    Wake::Orchestrations => to.orchestration_work(),
                    Wake::Activities => to.activity_work(),
                    Wake::Instances => to.instance_changed(),
                }
            }
        });
        Wakes {
            signal,
            relay: relay.abort_handle(),
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

//! Lease renewal: one keeper per host renews the leases of work still in progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Inner;
use crate::model::real_sleep;
use crate::store::{ActivityWorkItem, OrchestrationWorkItem, Store, StoreError};

impl Inner {
    /// Renews every lease held longer than a [`renewal_period`], checking twice per period
    /// (so a lease is renewed at most 1.5 periods, half a lease, after it was last taken),
    /// until the host stops. A lost lease is reported and forgotten; the work runs on, and
    /// its commit will be refused.
    pub(super) async fn keep_leases(self: Arc<Self>) {
        let mut released = self.leases_released.subscribe();
        let period = renewal_period(self.config.lease);
        loop {
            tokio::select! {
                biased;
                _ = released.wait_for(|released| *released) => return,
                _ = real_sleep(period / 2) => {}
            }
            for (key, item) in self.leases.due(period) {
                let at = tokio::time::Instant::now();
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
}

/// How often a held lease is renewed: three times per lease, so that one slow or failed
/// renewal does not lose it.
pub(super) fn renewal_period(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(1))
}

/// A work item whose lease the [`LeaseKeeper`] renews.
#[derive(Clone)]
pub(super) enum Leased {
    Activity(Arc<ActivityWorkItem>),
    Orchestration(Arc<OrchestrationWorkItem>),
}

impl Leased {
    pub(super) async fn renew(&self, store: &dyn Store, lease: Duration) -> Result<(), StoreError> {
        match self {
            Leased::Activity(item) => store.renew_activity_lease(item, lease).await,
            Leased::Orchestration(item) => store.renew_orchestration_lease(item, lease).await,
        }
    }

    pub(super) fn report(&self, error: &StoreError) {
        match (self, error) {
            (Leased::Activity(item), StoreError::LeaseLost) => tracing::warn!(
                activity = ?item.task.name,
                instance_id = ?item.task.instance_id,
                "the activity's lease was lost while it ran (it was taken over); it runs on, \
                 but its result will be refused"
            ),
            (Leased::Orchestration(item), StoreError::LeaseLost) => tracing::warn!(
                instance_id = ?item.instance_id,
                "the lease on the instance was lost while its turn ran (it was taken over); \
                 the turn will be discarded"
            ),
            (Leased::Activity(item), error) => tracing::warn!(
                activity = ?item.task.name,
                instance_id = ?item.task.instance_id,
                error = ?error.to_string(),
                "renewing an activity's lease failed; will try again"
            ),
            (Leased::Orchestration(item), error) => tracing::warn!(
                instance_id = ?item.instance_id,
                error = ?error.to_string(),
                "renewing an instance's lease failed; will try again"
            ),
        }
    }
}

/// The leases this host holds on work in progress, renewed by one task of its own
/// ([`Inner::keep_leases`]) so that work running longer than its lease is not taken over.
/// Holding a lease is a map insert; nothing is spawned per work item.
#[derive(Default)]
pub(super) struct LeaseKeeper {
    /// In the order they were taken, so renewals go out in the same order every run.
    held: Mutex<BTreeMap<u64, Held>>,
    next: std::sync::atomic::AtomicU64,
}

pub(super) struct Held {
    item: Leased,
    /// When the lease was last taken or renewed (on tokio's clock, which the host's sleeps use
    /// too: paused time in a simulation drives both).
    renewed: tokio::time::Instant,
}

impl LeaseKeeper {
    /// Keeps `item`'s lease renewed until the returned guard is dropped.
    pub(super) fn hold(self: &Arc<Self>, item: Leased) -> HeldLease {
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let held = Held {
            item,
            renewed: tokio::time::Instant::now(),
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
    pub(super) fn due(&self, age: Duration) -> Vec<(u64, Leased)> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() >= age)
            .map(|(key, h)| (*key, h.item.clone()))
            .collect()
    }

    /// Records a renewal (if the work still runs), or forgets a lost lease.
    pub(super) fn renewed(&self, key: u64, at: tokio::time::Instant, lost: bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if lost {
            held.remove(&key);
        } else if let Some(h) = held.get_mut(&key) {
            h.renewed = at;
        }
    }
}

/// Work in progress whose lease the keeper renews; dropping it stops the renewals.
pub(super) struct HeldLease {
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

//! Work a turn gives this host's own instances, read by the turn's commit and run next
//! without a read of its own (on a store that [reads with the commit]).
//!
//! Before the commit, the instances it gives work visible at once, of partitions this host
//! owns and with no turn running here, are marked busy: no other turn of them runs until
//! their work, read in the commit's transaction, has run. A dispatcher takes that work before
//! anything else ([`Inner::take_handed`]). An instance the commit found no work for, or whose
//! commit failed, is let go the usual way.
//!
//! The committing instance itself is read too when work came in for it while its turn ran
//! (it was found ready while busy here): its next turn then runs on what the commit read,
//! once this one is done ([`Inner::take_own_read`]), instead of on a read of its own.
//!
//! [reads with the commit]: crate::store::Store::reads_with_commit

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;

use super::Inner;
use crate::store::{
    ActivityTask, ActivityWorkItem, OrchestrationWorkItem, PartitionLease, StoreError, TurnCommit,
};

/// What a commit read for the instances it gave work (see [`Inner::hand_over`]).
#[derive(Default)]
pub(super) struct Handover {
    claimed: Vec<(String, PartitionLease)>,
    items: Vec<OrchestrationWorkItem>,
}

impl Inner {
    /// Commits a turn of `item` (as `Store::commit_turn_holding`) and hands the work it gives
    /// this host's idle instances to the dispatchers.
    pub(super) async fn commit_handing_over(
        self: &Arc<Self>,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ActivityWorkItem>, Handover), StoreError> {
        let claimed = self.claim_receivers(&commit, &item.instance_id);
        let own = self.claim_own(&item.instance_id);
        if claimed.is_empty() && own.is_none() {
            let held = self
                .store
                .commit_turn_holding(item, commit, run_here, lease)
                .await?;
            return Ok((held, Handover::default()));
        }
        let reads = claimed.iter().cloned().chain(own.clone()).collect();
        let committed = AssertUnwindSafe(
            self.store
                .commit_turn_reading(item, commit, run_here, lease, reads, now),
        )
        .catch_unwind()
        .await;
        let failure = match committed {
            Ok(Ok((held, mut items))) => {
                if let Some(i) = items
                    .iter()
                    .position(|read| read.instance_id == item.instance_id)
                {
                    let mine = items.swap_remove(i);
                    self.own_reads
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(mine.instance_id.clone(), mine);
                }
                return Ok((held, Handover { claimed, items }));
            }
            Ok(Err(e)) => Ok(e),
            Err(panic) => Err(panic),
        };
        // Not read: looked at again after this turn, as before.
        if let Some((id, _)) = own {
            self.recheck
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
        }
        // Let go of the instances, and of what came in for them meanwhile, before the failure
        // (or the panic, which the turn's caller handles) goes on. The commit may have been
        // applied all the same, without telling of the work it gave them: look at them again.
        let ids: Vec<String> = claimed.iter().map(|(id, _)| id.clone()).collect();
        let none = Handover {
            claimed,
            items: Vec::new(),
        };
        self.hand_over(none).await;
        self.store.signal().work_for(ids);
        match failure {
            Ok(e) => Err(e),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The instances `commit` gives work visible at once that this host runs next: of owned
    /// partitions, and idle here (now marked busy). None on a store that does not read with
    /// the commit (or hands out owned work by leases, whose dispatchers take none of this), or
    /// once the host stops.
    fn claim_receivers(&self, commit: &TurnCommit, own: &str) -> Vec<(String, PartitionLease)> {
        if !self.reads_with_commits() {
            return Vec::new();
        }
        commit
            .gives_work_to()
            .into_iter()
            .filter(|id| id != own)
            .filter_map(|id| {
                let fence = self.ownership.fence(&id)?;
                self.mark_busy(&id).then_some((id, fence))
            })
            .collect()
    }

    /// The committing instance itself, when work came in for it while its turn ran (it was
    /// found ready while busy here): then its commit reads that work too.
    fn claim_own(&self, own: &str) -> Option<(String, PartitionLease)> {
        if !self.reads_with_commits() {
            return None;
        }
        let fence = self.ownership.fence(own)?;
        self.recheck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(own)
            .then(|| (own.to_string(), fence))
    }

    /// Whether commits read the work they give this host's instances: on a store that reads
    /// with the commit and hands out owned work by reading it, until the host stops.
    fn reads_with_commits(&self) -> bool {
        self.store.reads_with_commit()
            && self.store.reads_owned_work()
            && !self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The work the instance's own last commit read for it, to run next while it is still
    /// busy here.
    pub(super) fn take_own_read(&self, id: &str) -> Option<OrchestrationWorkItem> {
        self.own_reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Queues the work read for the claimed instances for the dispatchers, waking one for
    /// each, and lets go of the instances it has none for. Called once the committing turn's
    /// execution is kept, so that a response to it finds it.
    pub(super) async fn hand_over(self: &Arc<Self>, handover: Handover) {
        let Handover { claimed, items } = handover;
        let unclaimed: Vec<String> = claimed
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !items.iter().any(|item| item.instance_id == *id))
            .collect();
        self.hand_to_dispatchers(items);
        for id in unclaimed {
            self.drain(&id, Vec::new()).await;
        }
    }

    /// Queues work read for instances already busy here for the dispatchers, waking one for
    /// each.
    pub(super) fn hand_to_dispatchers(&self, items: Vec<OrchestrationWorkItem>) {
        if items.is_empty() {
            return;
        }
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        for item in items {
            handed.push_back(item);
            self.store.signal().orchestration_work();
        }
    }

    /// The next work handed over by a commit, its instance already busy here.
    pub(super) fn take_handed(&self) -> Option<OrchestrationWorkItem> {
        self.handed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Whether handed-over work is waiting.
    pub(super) fn has_handed(&self) -> bool {
        !self
            .handed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

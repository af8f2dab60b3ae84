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

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::FutureExt;

use super::Inner;
use super::following::FollowingRead;
use crate::store::{
    ActivityTask, ActivityWorkItem, HandOver, OrchestrationWorkItem, PartitionLease, StoreError,
    TurnCommit,
};

/// The instances a commit claimed that it handed no work (see [`Inner::hand_over`]).
#[derive(Default)]
pub(super) struct Handover {
    unclaimed: Vec<String>,
}

/// What a commit handed over: the instances whose work went to the dispatchers, and the
/// committing instance's own work.
type Handed = (Vec<String>, Option<OrchestrationWorkItem>);

impl Inner {
    /// Commits a turn of `item` (as `Store::commit_turn_holding`) and hands the work it gives
    /// this host's idle instances to the dispatchers: as soon as the store read it, which may
    /// be before the commit is durable (see `Store::commit_turn_handing`). Their turns are
    /// then computed while it becomes durable, and their writes are refused should it fail
    /// (see [`Inner::discarded`]).
    pub(super) async fn commit_handing_over(
        self: &Arc<Self>,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ActivityWorkItem>, Handover), StoreError> {
        let _in_flight = self.committing(&item.instance_id, &commit.consumed);
        let (claimed, following) = self.claim_receivers(&commit, &item.instance_id);
        let own = self.claim_own(&item.instance_id);
        if claimed.is_empty() && following.is_empty() && own.is_none() {
            let held = self
                .store
                .commit_turn_holding(item, commit, run_here, lease)
                .await?;
            return Ok((held, Handover::default()));
        }
        let reads = claimed
            .iter()
            .cloned()
            .chain(following.iter().map(|(id, fence, _)| (id.clone(), *fence)))
            .chain(own.clone())
            .collect();
        let mut following: HashMap<String, FollowingRead> = following
            .into_iter()
            .map(|(id, _, read)| (id, read))
            .collect();
        let handed: Arc<Mutex<Option<Handed>>> = Arc::default();
        let hand: HandOver = {
            let host = Arc::downgrade(self);
            let own = item.instance_id.clone();
            let handed = handed.clone();
            Box::new(move |items| {
                let (mine, others): (Vec<_>, Vec<_>) =
                    items.into_iter().partition(|read| read.instance_id == own);
                // Work for instances whose commit is in flight waits for their turn's end;
                // the senders of those it found nothing for are dropped here.
                let others: Vec<_> = others
                    .into_iter()
                    .filter_map(|read| match following.remove(&read.instance_id) {
                        Some(sender) => {
                            let _ = sender.send(read);
                            None
                        }
                        None => Some(read),
                    })
                    .collect();
                drop(following);
                let ids = others.iter().map(|read| read.instance_id.clone()).collect();
                if let Some(host) = host.upgrade() {
                    host.hand_to_dispatchers(others);
                }
                *handed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((ids, mine.into_iter().next()));
            })
        };
        let committed = AssertUnwindSafe(
            self.store
                .commit_turn_handing(item, commit, run_here, lease, reads, now, hand),
        )
        .catch_unwind()
        .await;
        let (delivered, mine) = handed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let unclaimed: Vec<String> = claimed
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !delivered.contains(id))
            .collect();
        let failure = match committed {
            Ok(Ok(held)) => {
                if let Some(mine) = mine {
                    self.own_reads
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(mine.instance_id.clone(), mine);
                }
                return Ok((held, Handover { unclaimed }));
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
        // Those whose work was handed over run on it: their writes go through if the commit
        // was applied, and are refused if it was not.
        let none = Handover {
            unclaimed: unclaimed.clone(),
        };
        self.hand_over(none).await;
        self.store.signal().work_for(unclaimed);
        match failure {
            Ok(e) => Err(e),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether `item` was read in a commit that was not applied: its turn, refused, is
    /// dropped without counting as a failed attempt, and its instance looked at again once
    /// this turn is done (see [`OrchestrationWorkItem::read_in`]).
    pub(super) fn discarded(&self, item: &OrchestrationWorkItem) -> bool {
        if item.check_read_in().is_ok() {
            return false;
        }
        tracing::debug!(instance_id = ?item.instance_id, "the commit this work was read in failed; its turn is dropped");
        self.evict(&item.instance_id);
        self.recheck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(item.instance_id.clone());
        true
    }

    /// The instances `commit` gives work visible at once that this host runs next, of owned
    /// partitions: those idle here (now marked busy), and those whose own commit is in flight
    /// (see `following.rs`), each with where its work goes. None on a store that does not
    /// read with the commit (or hands out owned work by leases, whose dispatchers take none
    /// of this), or once the host stops.
    #[allow(clippy::type_complexity)]
    fn claim_receivers(
        &self,
        commit: &TurnCommit,
        own: &str,
    ) -> (
        Vec<(String, PartitionLease)>,
        Vec<(String, PartitionLease, FollowingRead)>,
    ) {
        let (mut idle, mut following) = (Vec::new(), Vec::new());
        if !self.reads_with_commits() {
            return (idle, following);
        }
        for id in commit.gives_work_to() {
            if id == own {
                continue;
            }
            let Some(fence) = self.ownership.fence(&id) else {
                continue;
            };
            if self.mark_busy(&id) {
                idle.push((id, fence));
            } else if let Some(read) = self.claim_following(&id) {
                following.push((id, fence, read));
            }
        }
        (idle, following)
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

    /// Lets go of the instances a commit claimed but handed no work. Called once the
    /// committing turn's execution is kept.
    pub(super) async fn hand_over(self: &Arc<Self>, handover: Handover) {
        for id in handover.unclaimed {
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

//! Partition ownership: one task per host claims its share of the hub's partitions and renews
//! them, every third of a lease, in one store write; dispatchers fetch only from what it owns,
//! and every commit carries the partition's epoch.
//!
//! On a store with one owner at a time (a SQLite file) the host takes every partition or
//! waits; elsewhere each live host aims at an even share: with `n` hosts (sorted by id) and
//! `count` partitions, host `i` holds `count / n`, one more when `i < count % n`. A host above
//! its share releases the excess, one below takes free or expired partitions, so a host that
//! joins gets its share within two rounds and a dead host's partitions move once its lease
//! runs out.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Inner;
use super::leases::renewal_period;
use crate::model::real_sleep;
use crate::store::{Owned, PartitionClaim, PartitionLease, PartitionTable, partition_of};

/// What this host owns, as the dispatchers read it.
pub(super) struct Ownership {
    /// This host's id in the partition table (unique per process run).
    pub(super) owner: String,
    owned: RwLock<Arc<Owned>>,
    /// The last table seen, to choose the next claim from.
    table: std::sync::Mutex<PartitionTable>,
    /// Whether waiting for another owner was already reported.
    reported_wait: std::sync::atomic::AtomicBool,
    /// Raised when a commit under one of this host's fences was refused: the keeper checks the
    /// table at once instead of at its next round.
    suspect: tokio::sync::Notify,
}

impl Ownership {
    pub(super) fn new(ids: &crate::model::Ids) -> Self {
        let run = ids.next();
        // A seeded host's id is the same in every process, so a simulation replays anywhere.
        let owner = if ids.is_seeded() {
            format!("host-{}", &run[..12])
        } else {
            format!("host-{}-{}", std::process::id(), &run[..12])
        };
        Ownership {
            owned: RwLock::new(Arc::new(Owned::Partitions {
                count: 0,
                leases: Vec::new(),
                host: owner.clone(),
            })),
            owner,
            table: Default::default(),
            reported_wait: Default::default(),
            suspect: Default::default(),
        }
    }

    /// The partitions owned now.
    pub(super) fn owned(&self) -> Arc<Owned> {
        self.owned.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The fence for work on `instance_id`, when this host owns its partition.
    pub(super) fn fence(&self, instance_id: &str) -> Option<PartitionLease> {
        self.owned().fence(instance_id).flatten()
    }

    /// A commit of work read under `fence` was refused: the partition may have changed hands
    /// (or the work was taken meanwhile). Its work is not read again until the keeper, woken
    /// now, has renewed the partition (then it is back) or found it lost. Without this, a host
    /// that lost a partition would read and commit its work in a loop until its next round.
    pub(super) fn refused(&self, fence: PartitionLease) {
        let mut owned = self.owned.write().unwrap_or_else(|p| p.into_inner());
        if let Owned::Partitions {
            count,
            leases,
            host,
        } = &**owned
            && leases.contains(&fence)
        {
            *owned = Arc::new(Owned::Partitions {
                count: *count,
                leases: leases.iter().filter(|l| **l != fence).copied().collect(),
                host: host.clone(),
            });
        }
        drop(owned);
        self.suspect.notify_one();
    }
}

impl Inner {
    /// One round: renew what is held, take or release toward this host's share.
    pub(super) async fn claim_round(&self) {
        let own = &self.ownership;
        let (keep, take, release, all_or_nothing) = {
            let table = own.table.lock().unwrap_or_else(|p| p.into_inner());
            plan(
                &table,
                &own.owner,
                self.store.single_owner(),
                self.config.partitions,
            )
        };
        let claim = PartitionClaim {
            owner: own.owner.clone(),
            count_if_new: self.config.partitions,
            keep,
            take,
            release,
            lease: self.config.lease,
            all_or_nothing,
        };
        match self.store.claim_partitions(claim).await {
            Ok(table) => {
                let coming = self.coming_due_in(self.gained(&table)).await;
                self.adopt(table, coming);
            }
            Err(error) => tracing::warn!(
                error = ?error.to_string(),
                "renewing this host's partitions failed; will try again"
            ),
        }
    }

    /// The partitions `table` gives this host that it does not own yet, if any.
    fn gained(&self, table: &PartitionTable) -> Option<Owned> {
        let before = self.ownership.owned();
        let gained: Vec<PartitionLease> = table
            .held
            .iter()
            .filter(|lease| match &*before {
                Owned::Partitions { leases, .. } => {
                    !leases.iter().any(|had| had.partition == lease.partition)
                }
                Owned::Everything => false,
            })
            .copied()
            .collect();
        (!gained.is_empty()).then(|| Owned::Partitions {
            count: table.count,
            leases: gained,
            host: self.ownership.owner.clone(),
        })
    }

    /// Takes the table a claim returned as what this host owns, with the messages coming due
    /// in the partitions it gained (kept before the dispatchers look at them).
    fn adopt(&self, table: PartitionTable, coming: Vec<(DateTime<Utc>, String)>) {
        let own = &self.ownership;
        let before = own.owned();
        let now = Owned::Partitions {
            count: table.count,
            leases: table.held.clone(),
            host: own.owner.clone(),
        };
        if *before != now {
            let had: BTreeSet<u32> = match &*before {
                Owned::Partitions { leases, .. } => leases.iter().map(|l| l.partition).collect(),
                Owned::Everything => BTreeSet::new(),
            };
            let has: BTreeSet<u32> = table.held.iter().map(|l| l.partition).collect();
            let lost: BTreeSet<u32> = had.difference(&has).copied().collect();
            if !lost.is_empty() {
                // Instances of partitions handed over may move on elsewhere.
                let count = table.count;
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|id, _| !lost.contains(&partition_of(id, count)));
            }
            tracing::info!(
                host = ?own.owner,
                owned = has.len(),
                of = table.count,
                hosts = table.hosts.len(),
                "this host's partitions changed"
            );
            *own.owned.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(now);
            self.keep_coming_due(coming);
            self.store.signal().orchestration_work();
            self.store.signal().activity_work();
        }
        if table.held.is_empty() && self.store.single_owner() {
            let holder = table.partitions.iter().find_map(|p| p.owner.clone());
            if let Some(holder) = holder
                && !own
                    .reported_wait
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    task_hub = ?self.store.task_hub(),
                    holder = ?holder,
                    "another host owns this task hub's store; this host runs no work until \
                     that host stops or its lease runs out, then takes over"
                );
            }
        }
        *own.table.lock().unwrap_or_else(|p| p.into_inner()) = table;
    }

    /// Renews and balances partitions every third of a lease until the host stops; a host that
    /// shuts down releases them (and its heartbeat) so others take over at once, one that is
    /// dropped just stops renewing.
    pub(super) async fn keep_partitions(self: Arc<Self>) {
        let mut released = self.leases_released.subscribe();
        let period = renewal_period(self.config.lease);
        loop {
            // Quicker rounds while this host is below its share.
            let wait = if self.below_share() {
                period / 4
            } else {
                period
            };
            tokio::select! {
                biased;
                _ = released.wait_for(|released| *released) => return,
                _ = self.ownership.suspect.notified() => {}
                _ = real_sleep(wait) => {}
            }
            self.claim_round().await;
        }
    }

    fn below_share(&self) -> bool {
        let table = self
            .ownership
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (_, take, _, _) = plan(
            &table,
            &self.ownership.owner,
            self.store.single_owner(),
            self.config.partitions,
        );
        !take.is_empty()
    }

    /// Gives every partition back (an orderly stop): the next owner need not wait a lease.
    pub(super) async fn release_partitions(&self) {
        let held = match &*self.ownership.owned() {
            Owned::Partitions { leases, .. } => leases.clone(),
            Owned::Everything => Vec::new(),
        };
        let claim = PartitionClaim {
            owner: self.ownership.owner.clone(),
            count_if_new: self.config.partitions,
            keep: Vec::new(),
            take: Vec::new(),
            release: held,
            lease: Duration::ZERO,
            all_or_nothing: false,
        };
        if let Err(error) = self.store.claim_partitions(claim).await {
            tracing::warn!(
                error = ?error.to_string(),
                "releasing this host's partitions failed; others take them over when the \
                 lease runs out"
            );
        }
    }
}

/// What to renew, take and release next, from the last table seen.
fn plan(
    table: &PartitionTable,
    me: &str,
    single_owner: bool,
    count_if_new: u32,
) -> (Vec<PartitionLease>, Vec<u32>, Vec<PartitionLease>, bool) {
    let keep = table.held.clone();
    let count = if table.count == 0 {
        count_if_new
    } else {
        table.count
    };
    let free: Vec<u32> = (0..count)
        .filter(|p| {
            table
                .partitions
                .iter()
                .find(|s| s.partition == *p)
                .is_none_or(|s| s.owner.is_none() || s.expired)
        })
        .filter(|p| !keep.iter().any(|l| l.partition == *p))
        .collect();
    if single_owner {
        return (keep, free, Vec::new(), true);
    }
    let mut hosts: Vec<&str> = table.hosts.iter().map(String::as_str).collect();
    if !hosts.contains(&me) {
        hosts.push(me);
        hosts.sort_unstable();
    }
    let n = hosts.len() as u32;
    let i = hosts.iter().position(|h| *h == me).unwrap_or(0) as u32;
    let share = (count / n + u32::from(i < count % n)) as usize;
    if keep.len() > share {
        let mut held = keep.clone();
        let release = held.split_off(share);
        return (held, Vec::new(), release, false);
    }
    let take = free.into_iter().take(share - keep.len()).collect();
    (keep, take, Vec::new(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PartitionState;

    fn table(count: u32, owners: &[Option<&str>], hosts: &[&str], me: &str) -> PartitionTable {
        let partitions: Vec<PartitionState> = (0..count)
            .map(|p| PartitionState {
                partition: p,
                owner: owners[p as usize].map(str::to_string),
                epoch: 1,
                expired: false,
            })
            .collect();
        let held = partitions
            .iter()
            .filter(|p| p.owner.as_deref() == Some(me))
            .map(|p| PartitionLease {
                partition: p.partition,
                epoch: p.epoch,
            })
            .collect();
        PartitionTable {
            count,
            partitions,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            held,
        }
    }

    #[test]
    fn a_lone_host_takes_every_partition() {
        let (keep, take, release, _) = plan(&PartitionTable::default(), "a", false, 4);
        assert!(keep.is_empty() && release.is_empty());
        assert_eq!(take, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_host_above_its_share_releases_the_excess_when_another_joins() {
        let t = table(4, &[Some("a"); 4], &["a", "b"], "a");
        let (keep, take, release, _) = plan(&t, "a", false, 4);
        assert_eq!(keep.len(), 2);
        assert!(take.is_empty());
        assert_eq!(
            release.iter().map(|l| l.partition).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn a_joining_host_takes_free_partitions_up_to_its_share_only() {
        let t = table(
            5,
            &[Some("a"), Some("a"), None, None, None],
            &["a", "b"],
            "b",
        );
        let (_, take, _, _) = plan(&t, "b", false, 5);
        // b is the second of two hosts: 5 / 2 = 2, and no extra (1 < 5 % 2 is false).
        assert_eq!(take, vec![2, 3]);
    }

    #[test]
    fn a_single_owner_store_takes_all_or_nothing() {
        let t = table(3, &[Some("a"), None, None], &["a", "b"], "b");
        let (keep, take, release, all) = plan(&t, "b", true, 3);
        assert!(all && keep.is_empty() && release.is_empty());
        assert_eq!(take, vec![1, 2]);
    }

    #[test]
    fn a_refused_fence_stops_reads_of_its_partition_and_wakes_the_keeper() {
        use futures::FutureExt;

        let own = Ownership::new(&crate::model::Ids::seeded(7));
        let lease = |partition, epoch| PartitionLease { partition, epoch };
        *own.owned.write().unwrap() = Arc::new(Owned::Partitions {
            count: 2,
            leases: vec![lease(0, 3), lease(1, 1)],
            host: own.owner.clone(),
        });
        let leases = |own: &Ownership| match &*own.owned() {
            Owned::Partitions { leases, .. } => leases.clone(),
            Owned::Everything => panic!("a host owns partitions"),
        };

        // A fence of an epoch the host no longer holds leaves its current lease alone.
        own.refused(lease(0, 2));
        assert_eq!(leases(&own), vec![lease(0, 3), lease(1, 1)]);
        assert!(
            own.suspect.notified().now_or_never().is_some(),
            "the keeper is woken"
        );

        own.refused(lease(0, 3));
        assert_eq!(leases(&own), vec![lease(1, 1)], "partition 0 is not read");
        assert!(
            own.suspect.notified().now_or_never().is_some(),
            "the keeper is woken"
        );
        assert!(
            own.suspect.notified().now_or_never().is_none(),
            "one wake-up per refusal"
        );
    }
}

//! Partition ownership as every store applies it: one [`PartitionClaim`] against the hub's
//! partition rows, read and written back in one transaction by the store.

use super::{PartitionClaim, PartitionLease, PartitionState, PartitionTable};

/// One partition's row: its owner, epoch and when the owner's lease runs out (milliseconds on
/// the store's lease clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionRow {
    pub partition: u32,
    pub owner: Option<String>,
    pub epoch: u64,
    pub expires_ms: i64,
    /// Whether the claim changed it (to be written back).
    pub changed: bool,
}

impl PartitionRow {
    /// A free partition at epoch 0.
    pub fn new(partition: u32) -> Self {
        PartitionRow {
            partition,
            owner: None,
            epoch: 0,
            expires_ms: 0,
            changed: true,
        }
    }

    fn live_owner(&self, now_ms: i64) -> Option<&str> {
        self.owner.as_deref().filter(|_| self.expires_ms > now_ms)
    }
}

/// A host's heartbeat: live until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostRow {
    pub host: String,
    pub expires_ms: i64,
}

/// Applies `claim` to `rows` (every partition of the hub, in order) and `hosts` at `now_ms`:
/// releases, renews, takes, and records the claimant's heartbeat. Returns the table as it
/// stands after.
pub(crate) fn apply_claim(
    rows: &mut [PartitionRow],
    hosts: &mut Vec<HostRow>,
    claim: &PartitionClaim,
    now_ms: i64,
) -> PartitionTable {
    let lease_ms = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX / 4);
    let me = claim.owner.as_str();
    let row = |rows: &mut [PartitionRow], p: u32| -> Option<usize> {
        rows.iter().position(|r| r.partition == p)
    };
    for lease in &claim.release {
        if let Some(i) = row(rows, lease.partition)
            && rows[i].owner.as_deref() == Some(me)
            && rows[i].epoch == lease.epoch
        {
            rows[i].owner = None;
            rows[i].expires_ms = 0;
            rows[i].changed = true;
        }
    }
    for lease in &claim.keep {
        if let Some(i) = row(rows, lease.partition)
            && rows[i].owner.as_deref() == Some(me)
            && rows[i].epoch == lease.epoch
        {
            rows[i].expires_ms = now_ms.saturating_add(lease_ms);
            rows[i].changed = true;
        }
    }
    let takeable = |r: &PartitionRow| r.live_owner(now_ms).is_none_or(|o| o == me);
    // All or nothing: only when no other live host holds any partition at all.
    let all_free = rows.iter().all(takeable);
    if !claim.all_or_nothing || all_free {
        for p in &claim.take {
            let Some(i) = row(rows, *p) else { continue };
            let r = &mut rows[i];
            if r.owner.as_deref() == Some(me) && r.expires_ms > now_ms {
                continue; // already held: renewed above or kept as is
            }
            if r.live_owner(now_ms).is_none() {
                r.owner = Some(me.to_string());
                r.epoch += 1;
                r.expires_ms = now_ms.saturating_add(lease_ms);
                r.changed = true;
            }
        }
    }
    hosts.retain(|h| h.expires_ms > now_ms && h.host != me);
    if lease_ms > 0 {
        hosts.push(HostRow {
            host: me.to_string(),
            expires_ms: now_ms.saturating_add(lease_ms),
        });
    }
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    table(rows, hosts, me, now_ms)
}

/// The table as the claimant `me` sees it at `now_ms`.
pub(crate) fn table(
    rows: &[PartitionRow],
    hosts: &[HostRow],
    me: &str,
    now_ms: i64,
) -> PartitionTable {
    let mut partitions: Vec<PartitionState> = rows
        .iter()
        .map(|r| PartitionState {
            partition: r.partition,
            owner: r.owner.clone(),
            epoch: r.epoch,
            expired: r.owner.is_some() && r.expires_ms <= now_ms,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    let held = rows
        .iter()
        .filter(|r| r.live_owner(now_ms) == Some(me))
        .map(|r| PartitionLease {
            partition: r.partition,
            epoch: r.epoch,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    PartitionTable {
        count: rows.len() as u32,
        partitions,
        hosts: hosts
            .iter()
            .filter(|h| h.expires_ms > now_ms)
            .map(|h| h.host.clone())
            .collect(),
        held,
    }
}

/// Whether `fence` still holds: the partition's epoch has not moved on.
pub(crate) fn fence_holds(rows_epoch: Option<u64>, fence: &PartitionLease) -> bool {
    rows_epoch == Some(fence.epoch)
}

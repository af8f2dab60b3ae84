//! The orchestration queue of the memory store: leasing an instance's work, reading the work of
//! owned partitions without a lease, and setting work aside (abandoned, left for another host)
//! or parking it.

use std::time::Duration;

// Tokio's clock, so that paused time (a simulation) drives leases and retry delays.
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use super::Memory;
use super::hub::{Entry, Hub, Stored};
use crate::store::{
    Fetched, LockToken, OrchestrationWorkItem, Owned, ParkedMessage, PartitionLease, QueuedMessage,
    ReadyInstances, StoreError,
};

pub(super) async fn fetch_orchestration(
    store: &Memory,
    now: DateTime<Utc>,
    lease: Duration,
    owned: &Owned,
) -> Result<Fetched<OrchestrationWorkItem>, StoreError> {
    let real_now = Instant::now();
    let mut guard = store.hub();
    let hub = &mut *guard;
    hub.expire_leases(real_now);
    let host = owned.host();
    // Of the partitions owned; work a host left is anyone's, except that host's while it
    // waits out its back-off.
    let fence_of = |id: &str, entry: &Entry| -> Option<Option<PartitionLease>> {
        if entry.left_waiting_for(host, real_now) {
            return None;
        }
        owned.fence(id).or(entry.left.is_some().then_some(None))
    };
    let first = hub.visible_instances(now, real_now, 1, |id, entry| {
        entry.lock.is_none() && fence_of(id, entry).is_some()
    });
    let found = first.into_iter().next().and_then(|id| {
        let fence = fence_of(&id, hub.instances.get(&id)?)?;
        let mut item = hub.lease_instance(&id, now, real_now, lease)?;
        item.fence = fence;
        Some(item)
    });
    Ok(match found {
        Some(item) => Fetched::Item(item),
        None => Fetched::Empty {
            next_visible: hub.next_timer(),
        },
    })
}

pub(super) async fn fetch_left_orchestration(
    store: &Memory,
    now: DateTime<Utc>,
    lease: Duration,
    owned: &Owned,
) -> Result<Option<OrchestrationWorkItem>, StoreError> {
    if matches!(owned, Owned::Everything) {
        return Ok(None);
    }
    let real_now = Instant::now();
    let mut guard = store.hub();
    let hub = &mut *guard;
    hub.expire_leases(real_now);
    let host = owned.host();
    let left = hub.visible_instances(now, real_now, 1, |id, entry| {
        entry.lock.is_none()
            && owned.fence(id).is_none()
            && entry.left.is_some()
            && !entry.left_waiting_for(host, real_now)
    });
    Ok(left
        .into_iter()
        .next()
        .and_then(|id| hub.lease_instance(&id, now, real_now, lease)))
}

pub(super) async fn ready_instances(
    store: &Memory,
    now: DateTime<Utc>,
    owned: &Owned,
    limit: usize,
) -> Result<ReadyInstances, StoreError> {
    let real_now = Instant::now();
    let mut guard = store.hub();
    let hub = &mut *guard;
    hub.expire_leases(real_now);
    let host = owned.host();
    let instance_ids = hub.visible_instances(now, real_now, limit, |id, entry| {
        entry.lock.is_none() && !entry.left_waiting_for(host, real_now) && owned.fence(id).is_some()
    });
    Ok(ReadyInstances {
        instance_ids,
        next_visible: hub.next_timer(),
    })
}

pub(super) async fn read_orchestration(
    store: &Memory,
    instance_id: &str,
    now: DateTime<Utc>,
    fence: PartitionLease,
) -> Result<Option<OrchestrationWorkItem>, StoreError> {
    Ok(read_work(&store.hub(), instance_id, now, fence))
}

/// The instance's work visible at `now`, as [`read_orchestration`] reads it.
pub(super) fn read_work(
    hub: &Hub,
    instance_id: &str,
    now: DateTime<Utc>,
    fence: PartitionLease,
) -> Option<OrchestrationWorkItem> {
    let real_now = Instant::now();
    if hub.leased(instance_id, real_now) {
        // Another host holds it (work left for it).
        return None;
    }
    let entry = hub.instances.get(instance_id)?;
    let visible: Vec<&Stored> = entry
        .messages
        .iter()
        .filter(|m| m.visible(now, real_now))
        .collect();
    if visible.is_empty() {
        return None;
    }
    Some(OrchestrationWorkItem {
        instance_id: instance_id.to_string(),
        instance: entry.status.clone(),
        history_len: entry.history.len(),
        // This read is one more delivery (counted in the store only if it is abandoned).
        dequeue_count: visible
            .iter()
            .map(|m| m.dequeue_count + 1)
            .max()
            .unwrap_or(1),
        messages: visible
            .into_iter()
            .map(|m| QueuedMessage {
                seq: m.seq,
                message: m.message.clone(),
            })
            .collect(),
        lock: LockToken(String::new()),
        fence: Some(fence),
        read_in: None,
    })
}

pub(super) async fn abandon_orchestration(
    store: &Memory,
    item: &OrchestrationWorkItem,
    retry_after: Duration,
) -> Result<(), StoreError> {
    {
        let mut hub = store.hub();
        hub.check_lock(item)?;
        let not_before = Instant::now() + retry_after;
        // A read counted no delivery: the abandon does.
        let counted = u32::from(item.lock.0.is_empty());
        let entry = hub.instances.get_mut(&item.instance_id).expect("checked");
        for m in entry.messages.iter_mut() {
            if item.messages.iter().any(|q| q.seq == m.seq) {
                m.not_before = Some(not_before);
                m.dequeue_count += counted;
            }
        }
        hub.unlock(&item.instance_id);
    }
    store.wake_later(retry_after);
    Ok(())
}

pub(super) async fn release_orchestration(
    store: &Memory,
    item: &OrchestrationWorkItem,
    retry_after: Duration,
    by: &str,
) -> Result<(), StoreError> {
    let mut hub = store.hub();
    hub.check_lock(item)?;
    let now = Instant::now();
    let not_before = now + retry_after.min(crate::store::LEFT_PAUSE);
    // A leased fetch counted a delivery, which is taken back; a read counted none.
    let uncounted = u32::from(!item.lock.0.is_empty());
    let entry = hub.instances.get_mut(&item.instance_id).expect("checked");
    for m in entry.messages.iter_mut() {
        if item.messages.iter().any(|q| q.seq == m.seq) {
            m.not_before = Some(not_before);
            m.dequeue_count = m.dequeue_count.saturating_sub(uncounted);
        }
    }
    // Left for another host: any host but `by` may fetch it, whoever owns its partition.
    entry.lock = None;
    entry.left = Some((by.to_string(), now + retry_after));
    hub.leases.remove(&item.instance_id);
    Ok(())
}

pub(super) async fn park_orchestration(
    store: &Memory,
    item: &OrchestrationWorkItem,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut hub = store.hub();
    hub.check_lock(item)?;
    let entry = hub.instances.get_mut(&item.instance_id).expect("checked");
    let mut parked = Vec::new();
    entry.messages.retain(|m| {
        let take = item.messages.iter().any(|q| q.seq == m.seq);
        if take {
            parked.push(ParkedMessage {
                instance_id: item.instance_id.clone(),
                message: format!("{:?}", m.message.event),
                error: error.to_string(),
                parked_at: now,
            });
        }
        !take
    });
    hub.parked.extend(parked);
    hub.unlock(&item.instance_id);
    Ok(())
}

//! What the memory store keeps per task hub: instances, histories, queues, leases and parked
//! messages, and the bookkeeping that delivers a message or expires a lease.

use std::cmp::Reverse;
// Ordered maps where the store iterates: expired leases go back in the same order every run.
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

// Tokio's clock, so that paused time (a simulation) drives leases and retry delays.
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use crate::model::EntityId;
use crate::model::InstanceStatus;
use crate::model::history::HistoryEvent;
use crate::store::ownership::{HostRow, PartitionRow};
use crate::store::{
    ActivityTask, ActivityWorkItem, HistoryWrite, LockToken, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, ParkedMessage, PartitionLease, QueuedMessage, StoreError, TurnCommit,
    WorkSignal,
};

pub(super) struct Shared {
    pub(super) hubs: Mutex<HashMap<String, Hub>>,
    pub(super) signal: WorkSignal,
    /// Where the lease clock starts.
    pub(super) started: Instant,
}

pub(super) struct Stored {
    pub(super) seq: u64,
    pub(super) message: OrchestrationMessage,
    pub(super) dequeue_count: u32,
    pub(super) not_before: Option<Instant>,
}

impl Stored {
    pub(super) fn visible(&self, now: DateTime<Utc>, real_now: Instant) -> bool {
        self.message.visible_at.is_none_or(|t| t <= now)
            && self.not_before.is_none_or(|t| t <= real_now)
    }
}

pub(super) struct Entry {
    pub(super) status: InstanceStatus,
    pub(super) history: Vec<HistoryEvent>,
    pub(super) messages: Vec<Stored>,
    pub(super) lock: Option<String>,
    /// Left by a host that may not run it (that host, and until when it waits): any other
    /// host may fetch it.
    pub(super) left: Option<(String, Instant)>,
}

impl Entry {
    /// Whether `host` left this instance's work and still waits before it may take it back.
    pub(super) fn left_waiting_for(&self, host: Option<&str>, real_now: Instant) -> bool {
        self.left
            .as_ref()
            .is_some_and(|(by, until)| Some(by.as_str()) == host && *until > real_now)
    }
}

pub(super) struct QueuedActivity {
    pub(super) task: ActivityTask,
    pub(super) dequeue_count: u32,
    pub(super) not_before: Option<Instant>,
}

pub(super) struct LeasedActivity {
    pub(super) activity: QueuedActivity,
    pub(super) deadline: Instant,
}

#[derive(Default)]
pub(super) struct Hub {
    pub(super) instances: HashMap<String, Entry>,
    /// Messages that are due (sent for now, or timers whose time came), by sequence number,
    /// and their instance: the order work is found in. An entry whose message is gone
    /// (consumed, parked, its instance replaced or purged) is dropped when it is come across.
    pub(super) due: BTreeMap<u64, String>,
    /// Messages that become visible at a time: (time, seq, instance).
    pub(super) timers: BinaryHeap<Reverse<(DateTime<Utc>, u64, String)>>,
    /// Leased instances and when their lease expires.
    pub(super) leases: BTreeMap<String, Instant>,
    pub(super) activities: VecDeque<QueuedActivity>,
    /// Leased activities, by their lease token.
    pub(super) leased_activities: BTreeMap<String, LeasedActivity>,
    pub(super) parked: Vec<ParkedMessage>,
    pub(super) next_seq: u64,
    /// Who owns which partition, and the hosts' heartbeats.
    pub(super) partitions: Vec<PartitionRow>,
    pub(super) hosts: Vec<HostRow>,
}

impl Hub {
    pub(super) fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(super) fn deliver(&mut self, message: OrchestrationMessage) {
        let seq = self.seq();
        if EntityId::is_entity_instance(&message.instance_id)
            && !self.instances.contains_key(&message.instance_id)
        {
            // Entities are created on first use.
            let status =
                crate::store::new_entity_status(&message.instance_id, message.event.timestamp);
            self.instances.insert(
                message.instance_id.clone(),
                Entry {
                    status,
                    history: Vec::new(),
                    messages: Vec::new(),
                    lock: None,
                    left: None,
                },
            );
        }
        let Some(entry) = self.instances.get_mut(&message.instance_id) else {
            tracing::warn!(
                instance_id = ?message.instance_id,
                event = ?message.event.kind.name(),
                "dropped a message for an instance that does not exist"
            );
            return;
        };
        match message.visible_at {
            Some(at) => self
                .timers
                .push(Reverse((at, seq, message.instance_id.clone()))),
            None => {
                self.due.insert(seq, message.instance_id.clone());
            }
        }
        entry.messages.push(Stored {
            seq,
            message,
            dequeue_count: 0,
            not_before: None,
        });
    }

    pub(super) fn create(&mut self, instance: NewInstance) -> Result<(), StoreError> {
        let start = instance.start_message();
        self.insert_new(instance)?;
        self.deliver(start);
        Ok(())
    }

    /// Writes a new instance, replacing a finished one with its id (or a running one, with
    /// `replace_running`); its start message is the caller's to queue.
    pub(super) fn insert_new(&mut self, instance: NewInstance) -> Result<(), StoreError> {
        if let Some(existing) = self.instances.get(&instance.instance_id)
            && !existing.status.runtime_status.is_terminal()
            && !instance.replace_running
        {
            return Err(StoreError::InstanceAlreadyExists(instance.instance_id));
        }
        self.leases.remove(&instance.instance_id);
        self.instances.insert(
            instance.instance_id.clone(),
            Entry {
                status: instance.initial_status(),
                history: Vec::new(),
                messages: Vec::new(),
                lock: None,
                left: None,
            },
        );
        Ok(())
    }

    /// Leases `id` for `lease` with its messages visible at `now`, unless it is leased
    /// already or has none visible.
    pub(super) fn lease_instance(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        real_now: Instant,
        lease: Duration,
    ) -> Option<OrchestrationWorkItem> {
        let lock = super::token(self.next_seq + 1);
        let entry = self.instances.get_mut(id)?;
        if entry.lock.is_some() {
            return None;
        }
        let mut dequeue_count = 0;
        let mut messages = Vec::new();
        for stored in entry.messages.iter_mut() {
            if stored.visible(now, real_now) {
                stored.dequeue_count += 1;
                dequeue_count = dequeue_count.max(stored.dequeue_count);
                messages.push(QueuedMessage {
                    seq: stored.seq,
                    message: stored.message.clone(),
                });
            }
        }
        if messages.is_empty() {
            return None;
        }
        self.next_seq += 1;
        entry.lock = Some(lock.clone());
        let item = OrchestrationWorkItem {
            instance_id: id.to_string(),
            instance: entry.status.clone(),
            history_len: entry.history.len(),
            messages,
            lock: LockToken(lock),
            dequeue_count,
            fence: None,
            read_in: None,
        };
        self.leases.insert(id.to_string(), real_now + lease);
        Some(item)
    }

    /// Fails with `LeaseLost` unless every message `consumed` names is still queued for `id`:
    /// otherwise another turn took them, or the instance was replaced, and this turn is stale.
    pub(super) fn check_consumed(&self, id: &str, consumed: &[u64]) -> Result<(), StoreError> {
        let entry = self.instances.get(id).ok_or(StoreError::LeaseLost)?;
        if consumed
            .iter()
            .all(|seq| entry.messages.iter().any(|m| m.seq == *seq))
        {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    /// Applies a turn's changes to `id` (which exists: its lease was checked, or it was read).
    pub(super) fn apply(&mut self, id: &str, commit: TurnCommit) {
        let Some(entry) = self.instances.get_mut(id) else {
            return;
        };
        entry.messages.retain(|m| !commit.consumed.contains(&m.seq));
        entry.left = None;
        match commit.history {
            HistoryWrite::Append(events) => entry.history.extend(events),
            HistoryWrite::Reset => entry.history.clear(),
            HistoryWrite::Replace(events) => entry.history = events,
        }
        let created_at = entry.status.created_at;
        let version = entry.status.version.take();
        entry.status = InstanceStatus {
            created_at,
            // Set when the instance was created, as in the other stores.
            version,
            history: None,
            ..commit.status
        };
        for task in commit.activities {
            self.activities.push_back(QueuedActivity {
                task,
                dequeue_count: 0,
                not_before: None,
            });
        }
        // Children first, so that messages the turn sends them find them.
        for child in commit.new_instances {
            let conflict = child.conflict_response();
            if let Err(StoreError::InstanceAlreadyExists(_)) = self.create(child)
                && let Some(response) = conflict
            {
                self.deliver(response);
            }
        }
        for message in commit.messages {
            self.deliver(message);
        }
    }

    /// Whether the activity is still leased under `item`'s token.
    pub(super) fn holds(&self, item: &ActivityWorkItem) -> bool {
        self.leased_activities.contains_key(&item.lock.0)
    }

    /// Fails with `LeaseLost` unless `item` is still held: by its lease, or, for an item read
    /// without one (an empty token), by its partition's lease while no other host leased the
    /// instance.
    pub(super) fn check_lock(&self, item: &OrchestrationWorkItem) -> Result<(), StoreError> {
        let read = item.lock.0.is_empty();
        match self.instances.get(&item.instance_id) {
            Some(_) if read => {
                if item.fence.is_none() || self.leased(&item.instance_id, Instant::now()) {
                    return Err(StoreError::LeaseLost);
                }
            }
            Some(entry) if entry.lock.as_deref() == Some(item.lock.0.as_str()) => {}
            _ => return Err(StoreError::LeaseLost),
        }
        match &item.fence {
            Some(fence) if !self.fence_holds(fence) => Err(StoreError::LeaseLost),
            _ => Ok(()),
        }
    }

    /// Whether the partition `fence` names is still at its epoch.
    pub(super) fn fence_holds(&self, fence: &PartitionLease) -> bool {
        let epoch = self
            .partitions
            .iter()
            .find(|r| r.partition == fence.partition)
            .map(|r| r.epoch);
        crate::store::ownership::fence_holds(epoch, fence)
    }

    pub(super) fn unlock(&mut self, instance_id: &str) {
        self.leases.remove(instance_id);
        if let Some(entry) = self.instances.get_mut(instance_id) {
            entry.lock = None;
        }
    }

    /// Whether `id` is leased and its lease has not run out.
    pub(super) fn leased(&self, id: &str, real_now: Instant) -> bool {
        self.instances.get(id).is_some_and(|e| e.lock.is_some())
            && self
                .leases
                .get(id)
                .is_some_and(|deadline| *deadline > real_now)
    }

    /// When the next timer is due.
    pub(super) fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Moves the timers due at `now` to the due messages.
    pub(super) fn timers_due(&mut self, now: DateTime<Utc>) {
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, seq, id)) = self.timers.pop().expect("peeked");
            self.due.insert(seq, id);
        }
    }

    /// The instances with messages visible at `now` that `eligible` accepts, by their oldest
    /// visible message, at most `limit`.
    pub(super) fn visible_instances(
        &mut self,
        now: DateTime<Utc>,
        real_now: Instant,
        limit: usize,
        eligible: impl Fn(&str, &Entry) -> bool,
    ) -> Vec<String> {
        self.timers_due(now);
        let mut gone = Vec::new();
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for (seq, id) in &self.due {
            if found.len() >= limit {
                break;
            }
            let Some(entry) = self.instances.get(id) else {
                gone.push(*seq);
                continue;
            };
            let Some(message) = entry.messages.iter().find(|m| m.seq == *seq) else {
                gone.push(*seq);
                continue;
            };
            if message.visible(now, real_now) && seen.insert(id.as_str()) && eligible(id, entry) {
                found.push(id.clone());
            }
        }
        for seq in gone {
            self.due.remove(&seq);
        }
        found
    }

    pub(super) fn expire_leases(&mut self, real_now: Instant) {
        let expired: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, deadline)| **deadline <= real_now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.unlock(&id);
        }
        let expired: Vec<String> = self
            .leased_activities
            .iter()
            .filter(|(_, l)| l.deadline <= real_now)
            .map(|(token, _)| token.clone())
            .collect();
        for token in expired {
            if let Some(leased) = self.leased_activities.remove(&token) {
                self.activities.push_front(leased.activity);
            }
        }
    }
}

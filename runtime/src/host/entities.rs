//! Runs a batch of messages against one entity: operations one at a time, in order, each
//! rolled back on failure; lock requests and releases for critical sections.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;

use super::orchestrations::unchanged;
use super::{Inner, TurnError};
use crate::context::entity::{EntityContext, no_such_entity};
use crate::model::history::{EntityCaller, EventKind, HistoryEvent};
use crate::model::{
    Deferred, EntityId, EntityRecord, Error, ErrorKind, Ids, InstanceStatus, RuntimeStatus,
};
use crate::registry::Registry;
use crate::replay::panic_message;
use crate::store::{
    HistoryWrite, NewInstance, OrchestrationMessage, OrchestrationWorkItem, StoreError, TurnCommit,
};

/// One entity's batch: its record, and what the batch sends when it commits.
pub(crate) struct EntityExecutor<'a> {
    registry: &'a Registry,
    id: EntityId,
    record: EntityRecord,
    now: DateTime<Utc>,
    /// Where the ids of orchestrations the operations start come from.
    ids: &'a Arc<Ids>,
    messages: Vec<OrchestrationMessage>,
    new_instances: Vec<NewInstance>,
}

pub(super) enum Handled {
    Done,
    Unlocked,
}

impl<'a> EntityExecutor<'a> {
    pub fn new(
        registry: &'a Registry,
        id: EntityId,
        record: EntityRecord,
        now: DateTime<Utc>,
        ids: &'a Arc<Ids>,
    ) -> Self {
        EntityExecutor {
            registry,
            id,
            record,
            now,
            ids,
            messages: Vec::new(),
            new_instances: Vec::new(),
        }
    }

    /// Processes the messages in order. Messages deferred by a lock run, in their order, as
    /// soon as the lock is released; the lock goes to the request [`next_grant`] picks.
    pub async fn process(&mut self, events: Vec<HistoryEvent>) {
        let mut pending: VecDeque<Deferred> = events.into_iter().map(Deferred::new).collect();
        while let Some(event) = pending.pop_front() {
            if let Handled::Unlocked = self.handle(event).await {
                let mut deferred = std::mem::take(&mut self.record.queue);
                self.record.passed_over = next_grant(&mut deferred, self.record.passed_over);
                for deferred in deferred.into_iter().rev() {
                    pending.push_front(deferred);
                }
            }
        }
    }

    /// The record to store and the messages and instances to create.
    pub fn into_parts(self) -> (EntityRecord, Vec<OrchestrationMessage>, Vec<NewInstance>) {
        (self.record, self.messages, self.new_instances)
    }

    /// Handles one message; one the lock defers goes to the record's queue as it came (with
    /// its JSON, when it was deferred before).
    pub(super) async fn handle(&mut self, message: Deferred) -> Handled {
        match &message.event().kind {
            EventKind::EntityOperationCalled { caller, .. } => {
                let from = caller.as_ref().map(|c| c.instance_id.clone());
                if self.deferred_by_lock(from.as_deref()) {
                    self.record.queue.push(message);
                } else {
                    self.run_operation(message.into_event()).await;
                }
            }
            EventKind::EntityOperationSignaled { .. } => {
                if self.deferred_by_lock(None) {
                    self.record.queue.push(message);
                } else {
                    self.run_operation(message.into_event()).await;
                }
            }
            EventKind::EntityLockRequested {
                lock_set,
                position,
                caller: Some(caller),
            } => {
                if let Some(i) = self.record.released.iter().position(|r| r == caller) {
                    // Released before the request got here: do not lock, but pass it on.
                    self.record.released.remove(i);
                    self.pass_lock(lock_set, *position, caller);
                } else if self.record.locked_by.is_some() {
                    self.record.queue.push(message);
                } else {
                    self.record.locked_by = Some(caller.clone());
                    self.pass_lock(lock_set, *position, caller);
                }
            }
            EventKind::EntityUnlockSent {
                caller: Some(caller),
                ..
            } => {
                if self.record.locked_by.as_ref() == Some(caller) {
                    self.record.locked_by = None;
                    return Handled::Unlocked;
                }
                let queued_request = self.record.queue.iter().position(|e| {
                    matches!(&e.event().kind, EventKind::EntityLockRequested { caller: Some(c), .. } if c == caller)
                });
                match queued_request {
                    // Its lock request is still waiting here: withdraw it and pass it on, so
                    // the rest of the lock set learns of the release too.
                    Some(i) => {
                        let request = self.record.queue.remove(i);
                        if let EventKind::EntityLockRequested {
                            lock_set, position, ..
                        } = &request.event().kind
                        {
                            self.pass_lock(lock_set, *position, caller);
                        }
                    }
                    None => {
                        if !self.record.released.contains(caller) {
                            self.record.released.push(caller.clone());
                        }
                    }
                }
            }
            other => {
                tracing::warn!(entity = ?self.id.to_string(), event = ?other.name(), "ignored a message an entity cannot process");
            }
        }
        Handled::Done
    }

    /// Whether an operation from `from` must wait: the entity is locked by someone else.
    pub(super) fn deferred_by_lock(&self, from: Option<&str>) -> bool {
        match &self.record.locked_by {
            None => false,
            Some(holder) => from != Some(holder.instance_id.as_str()),
        }
    }

    pub(super) fn pass_lock(
        &mut self,
        lock_set: &[String],
        position: usize,
        caller: &EntityCaller,
    ) {
        let (instance_id, execution_id, kind) = match lock_set.get(position + 1) {
            Some(next) => (
                next.clone(),
                None,
                EventKind::EntityLockRequested {
                    lock_set: lock_set.to_vec(),
                    position: position + 1,
                    caller: Some(caller.clone()),
                },
            ),
            None => (
                caller.instance_id.clone(),
                Some(caller.execution_id.clone()),
                EventKind::EntityLockGranted {
                    task_scheduled_id: caller.task_scheduled_id,
                },
            ),
        };
        self.messages.push(OrchestrationMessage {
            instance_id,
            execution_id,
            event: HistoryEvent::new(self.now, kind),
            visible_at: None,
        });
    }

    pub(super) async fn run_operation(&mut self, event: HistoryEvent) {
        let (operation, input, caller) = match event.kind {
            EventKind::EntityOperationCalled {
                operation,
                input,
                caller,
                ..
            } => (operation, input, caller),
            EventKind::EntityOperationSignaled {
                operation, input, ..
            } => (operation, input, None),
            _ => return,
        };
        let operation = operation.to_lowercase();
        let ctx = EntityContext::new(
            self.id.clone(),
            operation.clone(),
            input,
            self.record.state.clone(),
            self.now,
            self.ids.clone(),
        );
        let result = match self.registry.entity(self.id.name()) {
            None => Err(no_such_entity(&self.id)),
            Some(f) => match std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx.clone()))) {
                Err(panic) => Err(self.panicked(&operation, &*panic)),
                Ok(future) => match AssertUnwindSafe(future).catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Err(self.panicked(&operation, &*panic)),
                },
            },
        };
        let result = match (result, ctx.take_violation()) {
            (Ok(_), Some(violation)) => Err(violation),
            (result, _) => result,
        };
        let response = match result {
            Ok(dispatched) => {
                let mut effects = ctx.lock();
                if dispatched.mutated {
                    self.record.state = effects.state.take();
                }
                self.messages.append(&mut effects.messages);
                self.new_instances.append(&mut effects.new_instances);
                Ok(dispatched.output)
            }
            // A failed operation's state change and messages are discarded with its context.
            Err(err) => {
                if caller.is_none() {
                    tracing::warn!(entity = ?self.id.to_string(), ?operation, error = ?err.to_string(), "a signalled entity operation failed");
                }
                Err(err.to_failure())
            }
        };
        if let Some(caller) = caller {
            let kind = match response {
                Ok(result) => EventKind::EntityOperationCompleted {
                    task_scheduled_id: caller.task_scheduled_id,
                    result,
                },
                Err(failure) => EventKind::EntityOperationFailed {
                    task_scheduled_id: caller.task_scheduled_id,
                    failure,
                },
            };
            self.messages.push(OrchestrationMessage {
                instance_id: caller.instance_id,
                execution_id: Some(caller.execution_id),
                event: HistoryEvent::new(self.now, kind),
                visible_at: None,
            });
        }
    }

    pub(super) fn panicked(&self, operation: &str, panic: &(dyn std::any::Any + Send)) -> Error {
        Error::new(
            ErrorKind::Panic,
            format!(
                "operation `{operation}` of entity `{}` panicked: {}",
                self.id,
                panic_message(panic)
            ),
        )
    }
}

/// How many times in a row the oldest waiting lock request may be passed over for a later
/// one from a critical section that already holds locks (see [`next_grant`]).
pub(crate) const MAX_PASSED_OVER: u32 = 8;

/// Orders the requests deferred by a lock, just released, so that the next one granted comes
/// first among the lock requests: the oldest, unless a later request comes from a critical
/// section that already holds locks on other entities (it is not the first of its lock set)
/// while the oldest holds none. That one goes first, as long as the oldest has not been passed
/// over [`MAX_PASSED_OVER`] times in a row already. Returns how many times in a row the oldest
/// waiting request has now been passed over.
///
/// Locks are taken one entity after the other in a global order, so a critical section waiting
/// here for its second lock keeps its first one locked meanwhile, and every request queued
/// there waits too: granted in arrival order under load, most locks were held by sections
/// waiting for another, and a thousand transfers over a hundred accounts moved a fifth as fast
/// as with this order. Any order keeps sections free of deadlocks (they still lock in the
/// global order); the bound keeps every request from waiting forever. Nothing else moves:
/// operations keep their order, and those ahead of the first lock request run before it, as
/// they did.
fn next_grant(queue: &mut Vec<Deferred>, passed_over: u32) -> u32 {
    let position_of = |e: &Deferred| match &e.event().kind {
        EventKind::EntityLockRequested { position, .. } => Some(*position),
        _ => None,
    };
    let Some(oldest) = queue.iter().position(|e| position_of(e).is_some()) else {
        return 0;
    };
    if position_of(&queue[oldest]) != Some(0) || passed_over >= MAX_PASSED_OVER {
        return 0;
    }
    let holding = queue[oldest + 1..]
        .iter()
        .position(|e| position_of(e).is_some_and(|p| p > 0));
    match holding {
        Some(offset) => {
            let request = queue.remove(oldest + 1 + offset);
            queue.insert(oldest, request);
            passed_over + 1
        }
        None => 0,
    }
}

impl Inner {
    /// Runs a batch of messages against an entity and commits its new record together with
    /// everything the batch sends.
    pub(super) async fn run_entity_batch(
        self: &Arc<Self>,
        item: &OrchestrationWorkItem,
        consumed: Vec<u64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), TurnError> {
        let Ok(id) = item.instance_id.parse::<EntityId>() else {
            tracing::warn!(instance_id = ?item.instance_id, "dropped messages for a malformed entity id");
            return self.commit(item, unchanged(&item.instance, consumed)).await;
        };
        let record = match self.cached_record(item) {
            Some(record) => record,
            None => EntityRecord::from_status(&item.instance)
                .map_err(|e| TurnError::Store(StoreError::Backend(e.to_string())))?,
        };
        let events = item
            .messages
            .iter()
            .map(|m| m.message.event.clone())
            .collect();
        let mut executor = EntityExecutor::new(&self.registry, id.clone(), record, now, &self.ids);
        executor.process(events).await;
        let (mut record, messages, mut new_instances) = executor.into_parts();
        for started in &mut new_instances {
            // An orchestration an entity starts runs under this host's version.
            started.version = self.config.version.clone();
        }
        let json = record.write_json();
        let status = InstanceStatus {
            instance_id: item.instance_id.clone(),
            name: id.name().to_string(),
            execution_id: String::new(),
            runtime_status: RuntimeStatus::Running,
            input: None,
            output: Some(json.clone()),
            custom_status: None,
            failure: None,
            created_at: item.instance.created_at,
            last_updated_at: now,
            parent_instance_id: None,
            version: None,
            history: None,
        };
        let commit = TurnCommit {
            consumed,
            history: HistoryWrite::Append(Vec::new()),
            status,
            activities: Vec::new(),
            messages,
            new_instances,
        };
        let (_, handover) = self
            .commit_handing_over(item, commit, Vec::new(), std::time::Duration::ZERO, now)
            .await?;
        self.keep_record(&item.instance_id, json, record);
        self.hand_over(handover).await;
        Ok(())
    }

    /// The entity's record as this host's last batch of it wrote it, when the work item's
    /// status still holds exactly that: its next batch does not parse it again (a record with
    /// many deferred requests is long).
    fn cached_record(&self, item: &OrchestrationWorkItem) -> Option<EntityRecord> {
        let (json, record) = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&item.instance_id)?;
        (item.instance.output.as_deref() == Some(json.as_str())).then_some(record)
    }

    /// Keeps a committed record with its JSON (see [`Inner::cached_record`]), as the instance
    /// cache keeps executions.
    fn keep_record(&self, instance_id: &str, json: String, record: EntityRecord) {
        if self.config.always_replay || self.config.cache_capacity == 0 {
            return;
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= self.config.cache_capacity
            && let Some(victim) = records.keys().next().cloned()
        {
            records.remove(&victim);
        }
        records.insert(instance_id.to_string(), (json, record));
    }
}

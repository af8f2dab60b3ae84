//! The orchestration dispatchers: fetch a work item, run its turn on a cached or replayed
//! executor, commit; retry or park what keeps failing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::commit::{build_commit, unlock_messages};
use super::leases::Leased;
use super::scheduled::waits_for_start;
use super::versions::Admission;
use super::{Inner, SAFETY_POLL, backoff};
use crate::context::OrchestrationContext;
use crate::model::history::{EntityCaller, EventKind, HistoryEvent};
use crate::model::{EntityId, Error, InstanceStatus, RuntimeStatus, real_sleep};
use crate::replay::{Executor, StartFn, panic_message};
use crate::store::{
    ActivityTask, ActivityWorkItem, Fetched, HistoryWrite, OrchestrationWorkItem, StoreError,
    TurnCommit,
};

impl Inner {
    /// The code of orchestrator `name` as the replay core runs it: on a context over the
    /// executor's state. `None` when this host has no orchestrator of that name.
    pub(super) fn orchestrator(&self, name: &str) -> Option<StartFn> {
        let f = self.registry.orchestrator(name)?.clone();
        Some(Arc::new(move |shared, input| {
            f(OrchestrationContext::new(shared), input)
        }))
    }

    pub(super) async fn orchestration_worker(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        self.dispatcher(shutdown, |inner| async move {
            let owned = inner.ownership.owned();
            match inner
                .store
                .fetch_orchestration(inner.clock.now(), inner.config.lease, &owned)
                .await
            {
                Ok(Fetched::Item(item)) => {
                    // There may be more: pass the wake-up on to another idle dispatcher.
                    inner.store.signal().orchestration_work();
                    inner.process(item).await;
                    Round::Worked
                }
                Ok(Fetched::Empty { next_visible }) => Round::Empty(next_visible),
                Err(err) => Round::Failed(err),
            }
        })
        .await
    }

    /// An orchestration dispatcher: runs `round` with a turn slot, again and again until the
    /// host stops; after a round that found nothing it waits for a wake-up, the next visible
    /// message or the poll interval, and after a failure it backs off.
    pub(super) async fn dispatcher<F, Fut>(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        round: F,
    ) where
        F: Fn(Arc<Self>) -> Fut,
        Fut: std::future::Future<Output = Round>,
    {
        let mut errors = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.store.signal().orchestrations.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // A turn slot is held while a turn runs, not while waiting for work: turns started
            // by finished activities share the same limit.
            let slot = tokio::select! {
                biased;
                slot = self.turn_slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            let outcome = round(self.clone()).await;
            drop(slot);
            match outcome {
                Round::Worked => errors = 0,
                Round::Empty(next_visible) => {
                    errors = 0;
                    // A time the timer keeper acts at needs no watcher (see `timers.rs`).
                    let next_visible = next_visible.filter(|at| !self.timer_covers(*at));
                    // One idle dispatcher waits for the next visible message and polls; the
                    // others wait for a wake-up (see `idle.rs`).
                    if !self.watchers().join(next_visible) {
                        tokio::select! {
                            biased;
                            _ = notified => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                    let clock = self.clock.clone();
                    let due = async move {
                        match next_visible {
                            Some(at) => clock.sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    let poll = self.store.poll_interval().unwrap_or(SAFETY_POLL);
                    let woken = tokio::select! {
                        biased;
                        _ = notified => true,
                        _ = due => false,
                        _ = real_sleep(poll) => false,
                        _ = shutdown.changed() => false,
                    };
                    self.watchers().leave(next_visible);
                    if woken && next_visible.is_some() {
                        // Off to other work: another idle dispatcher takes the watch over.
                        self.store.signal().orchestration_work();
                    }
                }
                Round::LookIn(after) => {
                    errors = 0;
                    let woken = tokio::select! {
                        biased;
                        _ = notified => true,
                        _ = real_sleep(after) => false,
                        _ = shutdown.changed() => false,
                    };
                    if woken {
                        // Off to other work: the look it waited to take is anyone's again.
                        self.ready.lock().await.look_waiter = None;
                    }
                }
                Round::Failed(err) => {
                    errors += 1;
                    tracing::warn!(error = ?err.to_string(), "looking for orchestration work failed");
                    tokio::select! {
                        biased;
                        _ = real_sleep(backoff(errors)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Processes a fetched work item; results of the instance's activities that finish
    /// meanwhile wait for it and go into the next turn together.
    pub(super) async fn process(self: &Arc<Self>, item: OrchestrationWorkItem) {
        let id = item.instance_id.clone();
        let registered = self.mark_busy(&id);
        self.process_item(item).await;
        if registered {
            self.drain(&id, Vec::new()).await;
        }
    }

    pub(super) async fn process_item(self: &Arc<Self>, item: OrchestrationWorkItem) {
        let item = Arc::new(item);
        let id = item.instance_id.clone();
        // Before parking: work this host may not run is never its failure to count.
        let refusal = match self.admit(&item) {
            Admission::Run => None,
            Admission::Leave(reason) => {
                self.evict(&id);
                self.leave(&item, reason).await;
                return;
            }
            Admission::Fail(error) => Some(error),
        };
        if item.dequeue_count > self.config.max_dequeue {
            let error = self
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id)
                .unwrap_or_else(|| "processing kept failing".to_string());
            let reason = format!(
                "parked after {} failed attempts to process it: {error}",
                item.dequeue_count - 1
            );
            tracing::error!(instance_id = ?id, reason = ?reason.to_string(), "parking poison messages");
            if let Err(e) = self
                .store
                .park_orchestration(&item, &reason, self.clock.now())
                .await
            {
                tracing::warn!(instance_id = ?id, error = ?e.to_string(), "parking failed");
            }
            return;
        }
        // Turns normally take milliseconds; one that runs long (a long history read and replay,
        // slow entity operations) keeps its lease through the lease keeper.
        // An item read without a lease is held by its partition's lease instead.
        let held = (!item.lock.0.is_empty())
            .then(|| self.leases.hold(Leased::Orchestration(item.clone())));
        let outcome = AssertUnwindSafe(self.run_turn(&item, refusal))
            .catch_unwind()
            .await;
        drop(held);
        let error = match outcome {
            Ok(Ok(())) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                self.ran(&id);
                return;
            }
            Ok(Err(TurnError::LeaseLost)) => {
                tracing::debug!(instance_id = ?id, "lease lost; the turn was discarded");
                self.evict(&id);
                if let (true, Some(fence)) = (item.lock.0.is_empty(), item.fence) {
                    // Read under its partition's lease, which may be gone.
                    self.ownership.refused(fence);
                }
                return;
            }
            Ok(Err(_)) if self.discarded(&item) => return,
            Ok(Err(TurnError::Store(e))) => e.to_string(),
            Err(panic) => format!("the runtime panicked: {}", panic_message(&*panic)),
        };
        tracing::warn!(instance_id = ?id, ?error, "processing a turn failed; will retry");
        self.evict(&id);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), error);
        if let Err(e) = self
            .store
            .abandon_orchestration(&item, backoff(item.dequeue_count))
            .await
        {
            tracing::warn!(instance_id = ?id, error = ?e.to_string(), "abandoning the work item failed");
        }
    }

    /// Marks `id` busy on this host; false when a turn of it already runs here.
    pub(super) fn mark_busy(&self, id: &str) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if busy.contains_key(id) {
            return false;
        }
        busy.insert(id.to_string(), Vec::new());
        true
    }

    pub(super) fn evict(&self, instance_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance_id);
    }

    /// Runs a fetched work item's turn and commits it. With a `refusal`, the instance's code
    /// is not run: its execution fails with that error (a version this host may not run).
    pub(super) async fn run_turn(
        self: &Arc<Self>,
        item: &OrchestrationWorkItem,
        refusal: Option<Error>,
    ) -> Result<(), TurnError> {
        let now = self.clock.now();
        let status = &item.instance;
        let consumed: Vec<u64> = item.messages.iter().map(|m| m.seq).collect();
        if EntityId::is_entity_instance(&item.instance_id) {
            return self.run_entity_batch(item, consumed, now).await;
        }
        if status.runtime_status == RuntimeStatus::Failed
            && let Some(at) = item
                .messages
                .iter()
                .position(|m| matches!(m.message.event.kind, EventKind::ExecutionRewound { .. }))
        {
            return self.rewind(item, at, now).await;
        }
        if status.runtime_status.is_terminal() {
            // Late messages for a finished instance: acknowledged and dropped.
            return self.commit(item, unchanged(status, consumed)).await;
        }
        if waits_for_start(item) {
            // Sent before a scheduled start: kept for the execution that starts then.
            return self.wait_for_start(item, now).await;
        }
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&item.instance_id)
            .filter(|c| {
                refusal.is_none()
                    && c.executor.history_len() == item.history_len
                    && c.executor.execution_id() == status.execution_id
            });
        let code = match refusal {
            None => self.orchestrator(&status.name),
            Some(error) => Some(refused(error)),
        };
        let mut executor = match cached {
            Some(cached) => cached.executor,
            None => {
                let mut executor = Executor::new(&item.instance_id, code);
                // A new instance has no history to read.
                if item.history_len > 0 {
                    executor.replay(&self.store.history(&item.instance_id).await?);
                }
                executor
            }
        };
        let started = item.history_len > 0;
        let events: Vec<HistoryEvent> = item
            .messages
            .iter()
            .map(|m| &m.message)
            .filter(|m| match &m.event.kind {
                EventKind::ExecutionStarted { execution_id, .. } => {
                    !started && *execution_id == status.execution_id
                }
                kind if kind.is_response() => {
                    m.execution_id.as_deref() == Some(status.execution_id.as_str())
                }
                _ => true,
            })
            .map(|m| m.event.clone())
            .collect();
        let turn = self.turn(item, &mut executor, events, consumed, now);
        let (held, handover) = self
            .commit_handing_over(item, turn.commit, turn.run_here, self.config.lease, now)
            .await?;
        self.keep(executor, turn.status);
        self.keep_timers(&item.instance_id, turn.timers, now);
        // Cached first: a result or a response that comes back at once finds the executor.
        self.start_held(held, turn.slots);
        self.hand_over(handover).await;
        Ok(())
    }

    /// Runs a turn of `events` on `executor` and builds its commit. The activities this host
    /// can start now are taken out to run here as soon as the turn is durable, leased to it by
    /// the commit itself (each with its slot), and so are some more, to wait here for one (see
    /// `Config::waiting_places`); the rest wait in the queue for any host.
    pub(super) fn turn(
        &self,
        item: &OrchestrationWorkItem,
        executor: &mut Executor,
        events: Vec<HistoryEvent>,
        consumed: Vec<u64>,
        now: DateTime<Utc>,
    ) -> Turn {
        let out = executor.run_turn(now, events);
        let info = executor.info();
        let held_locks = out.outcome.as_ref().and(executor.held_locks());
        let mut commit = build_commit(item, &info, out, consumed, now, &self.ids);
        for child in &mut commit.new_instances {
            // A sub-orchestration starts under the version of the host that starts it.
            child.version = self.config.version.clone();
        }
        if let Some((critical_section, lock_set)) = held_locks {
            // The execution ended holding (or acquiring) locks: release them.
            let caller = EntityCaller {
                instance_id: item.instance_id.clone(),
                execution_id: info.execution_id.clone(),
                task_scheduled_id: critical_section,
            };
            commit
                .messages
                .extend(unlock_messages(&lock_set, &caller, now));
        }
        let mut run_here = Vec::new();
        let mut slots = Vec::new();
        commit.activities.retain(|task| {
            if self.registry.activity(&task.name).is_none() {
                return true;
            }
            // A free slot; else a place to wait for one here (as many as there are activity
            // slots or turn slots at most); else the store's queue, for any host.
            let reserved = match self.activity_slots.clone().try_acquire_owned() {
                Ok(slot) => Reserved::Slot(slot),
                Err(_) => match self.activity_backlog.clone().try_acquire_owned() {
                    Ok(place) => Reserved::Waiting(place),
                    Err(_) => return true,
                },
            };
            slots.push(reserved);
            run_here.push(task.clone());
            false
        });
        let status = InstanceStatus {
            created_at: item.instance.created_at,
            ..commit.status.clone()
        };
        let timers = super::timers::timers_set(&commit, &item.instance_id, now);
        Turn {
            commit,
            run_here,
            slots,
            status,
            timers,
        }
    }

    /// Keeps a running execution in the cache after its turn committed, with the status that
    /// turn wrote.
    pub(super) fn keep(&self, executor: Executor, status: InstanceStatus) {
        if executor.outcome().is_some() || self.config.always_replay {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.config.cache_capacity
            && let Some(victim) = cache.keys().next().cloned()
        {
            cache.remove(&victim);
        }
        if self.config.cache_capacity > 0 {
            cache.insert(status.instance_id.clone(), Cached { executor, status });
        }
    }

    /// Starts the activities a commit held for this host.
    pub(super) fn start_held(self: &Arc<Self>, held: Vec<ActivityWorkItem>, slots: Vec<Reserved>) {
        for (activity, reserved) in held.into_iter().zip(slots) {
            match reserved {
                Reserved::Slot(slot) => self.spawn_activity(activity, slot),
                Reserved::Waiting(place) => self.spawn_waiting_activity(activity, place),
            }
        }
    }

    pub(super) async fn commit(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
    ) -> Result<(), TurnError> {
        self.store
            .commit_turn(item, commit)
            .await
            .map_err(|e| match e {
                StoreError::LeaseLost => TurnError::LeaseLost,
                other => TurnError::Store(other),
            })
    }
}

/// Code that fails at once with `error`: an execution this host refuses to run fails with it.
fn refused(error: Error) -> StartFn {
    Arc::new(move |_shared, _input| {
        let error = error.clone();
        Box::pin(async move { Err(error) })
    })
}

pub(super) fn unchanged(status: &InstanceStatus, consumed: Vec<u64>) -> TurnCommit {
    TurnCommit {
        consumed,
        history: HistoryWrite::Append(Vec::new()),
        status: status.clone(),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    }
}

/// What one round of a dispatcher did.
pub(super) enum Round {
    /// It ran a turn (or found work and dealt with it).
    Worked,
    /// It found nothing; the next message becomes visible then.
    Empty(Option<DateTime<Utc>>),
    /// It found nothing, and the store is not to be looked at again before this long.
    LookIn(std::time::Duration),
    /// Looking for work failed.
    Failed(StoreError),
}

/// What an activity a turn holds for this host runs with: a slot, or a place to wait for one.
pub(super) enum Reserved {
    Slot(OwnedSemaphorePermit),
    Waiting(OwnedSemaphorePermit),
}

/// A turn's commit, with the activities this host runs itself and the status it writes.
pub(super) struct Turn {
    pub(super) commit: TurnCommit,
    pub(super) run_here: Vec<ActivityTask>,
    pub(super) slots: Vec<Reserved>,
    pub(super) status: InstanceStatus,
    /// When the timers the turn sets on its own instance are due (see `timers.rs`).
    pub(super) timers: Vec<DateTime<Utc>>,
}

/// A running execution kept between turns, with the status its last turn wrote.
pub(super) struct Cached {
    pub(super) executor: Executor,
    pub(super) status: InstanceStatus,
}

pub(super) enum TurnError {
    LeaseLost,
    Store(StoreError),
}

impl From<StoreError> for TurnError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost => TurnError::LeaseLost,
            other => TurnError::Store(other),
        }
    }
}

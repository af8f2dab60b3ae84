//! A finished activity's result and the turn it unblocks, committed in one write.
//!
//! The turn runs on the cached execution (or one replayed from a read of the history) without
//! a lease on the instance; the store applies it only if no other turn was committed meanwhile
//! ([`Store::complete_activities_and_commit`](crate::store::Store)), and otherwise queues the
//! results for the dispatchers. Results that come in while a turn of the same instance runs on
//! this host wait for it and go into the next turn together.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::{Inner, backoff};
use crate::model::EntityId;
use crate::replay::Executor;
use crate::store::{
    ActivityWorkItem, InstanceVersion, LockToken, OrchestrationMessage, OrchestrationWorkItem,
    ResultsCommit, StoreError,
};

/// A finished activity and its result message.
pub(super) struct Finished {
    pub(super) item: Arc<ActivityWorkItem>,
    pub(super) response: OrchestrationMessage,
}

/// Why a result turn was not committed here: its results are queued instead.
enum NotHere {
    /// The instance cannot take the results in a turn of this kind (finished, an entity, a
    /// response for another execution, gone): the dispatchers handle them as messages.
    Unsuited,
    Store(StoreError),
}

impl From<StoreError> for NotHere {
    fn from(e: StoreError) -> Self {
        NotHere::Store(e)
    }
}

impl Inner {
    /// Takes a finished activity's result to its instance: adds it to the next turn when one
    /// of the instance's turns is running or waiting here, or else runs the turn it unblocks
    /// once a turn slot is free (the instance meanwhile busy here, so that other results join
    /// it). Only when the host stops are results queued in the store for the dispatchers,
    /// which costs a write, a read and a turn of its own.
    pub(super) async fn deliver_result(self: &Arc<Self>, finished: Finished) {
        let id = finished.response.instance_id.clone();
        let slot = {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(waiting) = busy.get_mut(&id) {
                waiting.push(finished);
                return;
            }
            if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
                Err(finished)
            } else {
                let slot = self.turn_slots.clone().try_acquire_owned().ok();
                busy.insert(id.clone(), vec![finished]);
                Ok(slot)
            }
        };
        let slot = match slot {
            Ok(Some(slot)) => Some(slot),
            Ok(None) => self.wait_for_turn_slot().await,
            Err(finished) => return self.queue_results(vec![finished]).await,
        };
        match slot {
            Some(slot) => {
                let results = self.waiting_results(&id);
                self.drain(&id, results).await;
                drop(slot);
            }
            None => {
                // The host is stopping: the results (with any that joined them) go to the
                // store, and the instance is free for whoever runs it next.
                let results = {
                    let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                    busy.remove(&id).unwrap_or_default()
                };
                self.queue_results(results).await;
                if self
                    .recheck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
                {
                    self.store.signal().work_for([id]);
                }
            }
        }
    }

    /// A turn slot, waited for as the dispatchers wait (first come, first served); `None`
    /// once the host is stopping.
    async fn wait_for_turn_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.wait_for_slot(&self.turn_slots).await
    }

    /// A permit of `slots`, first come, first served; `None` once the host is stopping.
    pub(super) async fn wait_for_slot(
        &self,
        slots: &Arc<tokio::sync::Semaphore>,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let stop = self.stop_waiting.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let slot = tokio::select! {
            biased;
            _ = stop => return None,
            slot = slots.clone().acquire_owned() => slot.ok()?,
        };
        if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        Some(slot)
    }

    /// The results waiting in `id`'s busy entry, taken out.
    fn waiting_results(&self, id: &str) -> Vec<Finished> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.get_mut(id).map(std::mem::take).unwrap_or_default()
    }

    /// Runs turns of `id` with `results` and with whatever results come in meanwhile, then on
    /// the work its own last commit read for it, until nothing is waiting; then `id` is no
    /// longer busy on this host.
    pub(super) async fn drain(self: &Arc<Self>, id: &str, mut results: Vec<Finished>) {
        loop {
            // First, before any other turn changes the instance: work a later commit read for
            // it while its commit was in flight (see `following.rs`).
            if let Some(item) = self.take_following(id).await {
                self.process_boxed(item).await;
                continue;
            }
            if !results.is_empty() {
                self.result_turn(id, std::mem::take(&mut results)).await;
            }
            let next = {
                let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                match busy.get_mut(id) {
                    Some(waiting) if !waiting.is_empty() => {
                        results = std::mem::take(waiting);
                        continue;
                    }
                    _ => {
                        let next = self.take_own_read(id);
                        if next.is_none() {
                            busy.remove(id);
                            self.timer_turn_done(id, self.clock.now());
                        }
                        next
                    }
                }
            };
            let Some(next) = next else {
                // Found ready while busy: its messages may still be waiting.
                if self
                    .recheck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id)
                {
                    self.store.signal().work_for([id.to_string()]);
                }
                return;
            };
            self.process_boxed(next).await;
        }
    }

    /// [`Inner::process_item`], boxed: a turn run from [`Inner::drain`] may hand work over,
    /// which drains other instances.
    fn process_boxed(
        self: &Arc<Self>,
        item: OrchestrationWorkItem,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.process_item(item))
    }

    async fn result_turn(self: &Arc<Self>, id: &str, results: Vec<Finished>) {
        let outcome = AssertUnwindSafe(self.try_result_turn(id, &results))
            .catch_unwind()
            .await;
        let reason = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(NotHere::Unsuited)) => None,
            Ok(Err(NotHere::Store(e))) => Some(e.to_string()),
            Err(panic) => Some(format!(
                "the runtime panicked: {}",
                crate::replay::panic_message(&*panic)
            )),
        };
        if let Some(reason) = reason {
            tracing::debug!(instance_id = ?id, ?reason, "a result turn was not committed; its results are queued");
        }
        self.evict(id);
        self.queue_results(results).await;
    }

    async fn try_result_turn(
        self: &Arc<Self>,
        id: &str,
        results: &[Finished],
    ) -> Result<(), NotHere> {
        if EntityId::is_entity_instance(id) {
            return Err(NotHere::Unsuited);
        }
        // Only the owner of the instance's partition runs its turns.
        let Some(fence) = self.ownership.fence(id) else {
            return Err(NotHere::Unsuited);
        };
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let (mut executor, status) = match cached {
            Some(cached) => (cached.executor, cached.status),
            None => {
                let Some(status) = self.store.instance(id).await? else {
                    return Err(NotHere::Unsuited);
                };
                // Only what this host may run: else the results wait in the queue for a host
                // that may.
                if status.runtime_status.is_terminal()
                    || !self.may_run(&status.name, status.version.as_deref())
                {
                    return Err(NotHere::Unsuited);
                }
                let history = self.store.history(id).await?;
                let mut executor = Executor::new(id, self.orchestrator(&status.name));
                executor.replay(&history);
                (executor, status)
            }
        };
        if results
            .iter()
            .any(|f| f.response.execution_id.as_deref() != Some(status.execution_id.as_str()))
            || executor.execution_id() != status.execution_id
        {
            return Err(NotHere::Unsuited);
        }
        let expected = InstanceVersion {
            instance_id: id.to_string(),
            execution_id: status.execution_id.clone(),
            history_len: executor.history_len(),
            last_updated_at: status.last_updated_at,
            fence: Some(fence),
        };
        let item = OrchestrationWorkItem {
            instance_id: id.to_string(),
            instance: status,
            history_len: expected.history_len,
            messages: Vec::new(),
            lock: LockToken(String::new()),
            dequeue_count: 1,
            fence: Some(fence),
            read_in: None,
        };
        let events = results.iter().map(|f| f.response.event.clone()).collect();
        let now = self.clock.now();
        let turn = self.turn(&item, &mut executor, events, Vec::new(), now);
        let finished = results
            .iter()
            .map(|f| ((*f.item).clone(), f.response.clone()))
            .collect();
        let done = self
            .store
            .complete_activities_and_commit(
                finished,
                expected,
                turn.commit,
                turn.run_here,
                self.config.lease,
            )
            .await;
        match done {
            Ok(ResultsCommit::Committed(held)) => {
                self.keep(executor, turn.status);
                self.keep_timers(id, turn.timers, now);
                self.start_held(held, turn.slots);
                Ok(())
            }
            // Another turn got there first: the results are queued, and the execution kept
            // here is out of date.
            Ok(ResultsCommit::Queued) => Ok(()),
            Err(e) => Err(NotHere::Store(e)),
        }
    }

    /// Queues results as messages, for the dispatchers (one write each).
    async fn queue_results(&self, results: Vec<Finished>) {
        for Finished { item, response } in results {
            let task = &item.task;
            match self.store.complete_activity(&item, response).await {
                Ok(()) => {}
                Err(StoreError::LeaseLost) => {
                    tracing::debug!(activity = ?task.name, "activity lease lost; result dropped")
                }
                Err(e) => {
                    tracing::warn!(activity = ?task.name, error = ?e.to_string(), "recording an activity result failed");
                    let _ = self
                        .store
                        .abandon_activity(&item, backoff(item.dequeue_count))
                        .await;
                }
            }
        }
    }
}

//! The activity dispatcher: fetch activity work within the concurrency limit, run it, report
//! its result to the orchestration that scheduled it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::leases::Leased;
use super::results::Finished;
use super::{Inner, SAFETY_POLL, backoff};
use crate::context::ActivityContext;
use crate::model::history::{EventKind, HistoryEvent};
use crate::model::{Error, ErrorKind, real_sleep};
use crate::replay::panic_message;
use crate::store::{ActivityWorkItem, OrchestrationMessage};

impl Inner {
    pub(super) async fn activity_dispatcher(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut errors = 0u32;
        loop {
            let permit = tokio::select! {
                biased;
                permit = self.activity_slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            if *shutdown.borrow() {
                return;
            }
            let notified = self.store.signal().activities.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // As many activities as there are free slots, in one fetch.
            let mut permits = vec![permit];
            while let Ok(more) = self.activity_slots.clone().try_acquire_owned() {
                permits.push(more);
            }
            // A host waiting for a store one host owns at a time runs nothing, activities
            // included: when it takes the store over, every lease in it is a dead host's.
            let waiting = self.store.single_owner() && self.ownership.owned().is_empty();
            let fetched = if waiting {
                Ok(Vec::new())
            } else {
                self.store
                    .fetch_activities(self.config.lease, permits.len())
                    .await
            };
            match fetched {
                Ok(mut items) if !items.is_empty() => {
                    errors = 0;
                    let extra = items.split_off(items.len().min(permits.len()));
                    // Unused slots go back when the rest of `permits` drops.
                    for (item, permit) in items.into_iter().zip(permits) {
                        self.spawn_activity(item, permit);
                    }
                    if !extra.is_empty() && !self.run_extra(extra, &mut shutdown).await {
                        return;
                    }
                }
                Ok(_) => {
                    errors = 0;
                    drop(permits);
                    let poll = self.store.poll_interval().unwrap_or(SAFETY_POLL);
                    tokio::select! {
                        biased;
                        _ = notified => {}
                        _ = real_sleep(poll) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                Err(err) => {
                    drop(permits);
                    errors += 1;
                    tracing::warn!(error = ?err.to_string(), "fetching activity work failed");
                    tokio::select! {
                        biased;
                        _ = real_sleep(backoff(errors)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Runs activities a store leased beyond the slots it was asked for (a store at fault),
    /// each once a slot is free, their leases kept meanwhile: the host never runs more
    /// activities than its limit, and goes on fetching. False when the host stops first (the
    /// leases then run out, and the activities are fetched again).
    async fn run_extra(
        self: &Arc<Self>,
        extra: Vec<ActivityWorkItem>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tracing::error!(
            extra = extra.len(),
            "the store leased more activities than asked for; they wait for free slots"
        );
        let held: Vec<_> = extra
            .iter()
            .map(|item| self.leases.hold(Leased::Activity(Arc::new(item.clone()))))
            .collect();
        for item in extra {
            let permit = tokio::select! {
                biased;
                permit = self.activity_slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return false,
                },
                _ = shutdown.changed() => return false,
            };
            self.spawn_activity(item, permit);
        }
        drop(held);
        true
    }

    /// Runs an activity a commit held for this host once a slot is free, in a task of its own
    /// (the same task then runs it); its lease is kept meanwhile, and `place` (its place among
    /// those waiting) is given back once it has a slot. If the host stops first, the activity
    /// is not run here: it goes back to the store's queue.
    pub(super) fn spawn_waiting_activity(
        self: &Arc<Self>,
        item: ActivityWorkItem,
        place: OwnedSemaphorePermit,
    ) {
        let inner = self.clone();
        self.tasks.spawn(Box::pin(async move {
            let held = inner.leases.hold(Leased::Activity(Arc::new(item.clone())));
            let slot = inner.wait_for_slot(&inner.activity_slots).await;
            drop(held);
            match slot {
                Some(slot) => {
                    drop(place);
                    inner.run_with_slot(item, slot).await;
                }
                // The host is stopping, and the activity never ran: it goes back to the
                // store's queue at once, for any host, rather than once its lease runs out.
                // Shutdown waits for the place to be given back.
                None => {
                    if let Err(error) = inner.store.abandon_activity(&item, Duration::ZERO).await {
                        tracing::warn!(
                            instance_id = ?item.task.instance_id,
                            error = ?error.to_string(),
                            "shutdown: releasing an activity that was waiting for a slot \
                             failed; it is taken over once its lease runs out"
                        );
                    }
                    drop(place);
                }
            }
        }));
    }

    /// Runs an activity leased to this host in a task of its own, holding `slot` while it
    /// runs; then takes its result to its instance.
    pub(super) fn spawn_activity(
        self: &Arc<Self>,
        item: ActivityWorkItem,
        slot: OwnedSemaphorePermit,
    ) {
        self.tasks.spawn(self.clone().run_with_slot(item, slot));
    }

    /// Runs an activity holding `slot`, then takes its result to its instance. Boxed: a
    /// result may run the turn it unblocks, which may start activities.
    fn run_with_slot(
        self: Arc<Self>,
        item: ActivityWorkItem,
        slot: OwnedSemaphorePermit,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let item = Arc::new(item);
            let response = self.run_activity(&item).await;
            drop(slot);
            if let Some(response) = response {
                self.deliver_result(Finished { item, response }).await;
            }
        })
    }

    /// Runs an activity; its result message (`None` when it was parked instead).
    async fn run_activity(&self, item: &Arc<ActivityWorkItem>) -> Option<OrchestrationMessage> {
        let task = &item.task;
        if item.dequeue_count > self.config.max_dequeue {
            let reason = format!(
                "parked after {} deliveries without completing (the host may have crashed \
                 while running it)",
                item.dequeue_count - 1
            );
            if let Err(e) = self
                .store
                .park_activity(item, &reason, self.clock.now())
                .await
            {
                tracing::warn!(error = ?e.to_string(), "parking an activity failed");
            }
            return None;
        }
        let ctx = ActivityContext {
            instance_id: task.instance_id.clone(),
            execution_id: task.execution_id.clone(),
            name: task.name.clone(),
            task_id: task.task_id,
            attempt: item.dequeue_count,
        };
        // The lease keeper renews the lease while the activity runs, however long it takes.
        let held = self.leases.hold(Leased::Activity(item.clone()));
        let result = match self.registry.activity(&task.name) {
            None => Err(Error::new(
                ErrorKind::UnknownFunction,
                format!(
                    "no activity named `{}` is registered on this host",
                    task.name
                ),
            )),
            Some(f) => {
                let input = task.input.clone();
                match std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx, input))) {
                    Err(panic) => Err(activity_panic(&task.name, &*panic)),
                    Ok(future) => match AssertUnwindSafe(future).catch_unwind().await {
                        Ok(result) => result,
                        Err(panic) => Err(activity_panic(&task.name, &*panic)),
                    },
                }
            }
        };
        drop(held);
        let kind = match result {
            Ok(output) => EventKind::TaskCompleted {
                task_scheduled_id: task.task_id,
                result: output,
            },
            Err(err) => EventKind::TaskFailed {
                task_scheduled_id: task.task_id,
                failure: err.to_failure(),
            },
        };
        Some(OrchestrationMessage {
            instance_id: task.instance_id.clone(),
            execution_id: Some(task.execution_id.clone()),
            event: HistoryEvent::new(self.clock.now(), kind),
            visible_at: None,
        })
    }
}

pub(super) fn activity_panic(name: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    Error::new(
        ErrorKind::Panic,
        format!("activity `{name}` panicked: {}", panic_message(panic)),
    )
}

//! Starts from this host's own clients, committed together with their first turn.
//!
//! A client a host hands out ([`Runtime::client`](crate::Runtime::client), the HTTP API's)
//! starts instances through the host: when the host owns the new instance's partition, may run
//! its orchestrator and version, and the start is due now, it runs the first turn at once and
//! the store writes the instance and that turn in one commit
//! ([`Store::create_with_turn`](crate::store::Store::create_with_turn)). The start is
//! acknowledged once that commit is durable, as a plain create is, and costs no read of the
//! start message and no write of its own; the activities the turn schedules start right after.
//! Anything else is created as before, for the dispatchers.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::Inner;
use super::versions::Admission;
use crate::client::Starter;
use crate::model::EntityId;
use crate::replay::Executor;
use crate::store::{
    LockToken, NewInstance, OrchestrationWorkItem, QueuedMessage, Store, StoreError,
};

/// The host behind a client it handed out; a client that outlives its host creates instances
/// in the store.
pub(super) struct HostStarter {
    pub(super) host: Weak<Inner>,
    pub(super) store: Arc<dyn Store>,
}

#[async_trait::async_trait]
impl Starter for HostStarter {
    async fn start(&self, instance: NewInstance) -> Result<(), StoreError> {
        match self.host.upgrade() {
            Some(inner) => inner.start(instance).await,
            None => self.store.create_instance(instance).await,
        }
    }
}

impl Inner {
    /// Creates `instance`, with its first turn when this host can run that turn now.
    async fn start(self: &Arc<Self>, instance: NewInstance) -> Result<(), StoreError> {
        let now = self.clock.now();
        let id = instance.instance_id.clone();
        let suited = self.store.starts_with_turn()
            && !self.stopping.load(Ordering::Acquire)
            && !instance.replace_running
            && instance.parent.is_none()
            && instance.start_at.is_none_or(|at| at <= now)
            && !EntityId::is_entity_instance(&id);
        let Some(fence) = self.ownership.fence(&id).filter(|_| suited) else {
            return self.store.create_instance(instance).await;
        };
        // A start waits for a turn slot as a dispatcher does: starts beyond the host's
        // concurrency queue here instead of in the store.
        let Ok(slot) = self.turn_slots.clone().acquire_owned().await else {
            return self.store.create_instance(instance).await;
        };
        if !self.mark_busy(&id) {
            // A turn of an instance with this id runs here: the store decides.
            return self.store.create_instance(instance).await;
        }
        let item = OrchestrationWorkItem {
            instance_id: id.clone(),
            instance: instance.initial_status(),
            history_len: 0,
            messages: vec![QueuedMessage {
                seq: 0,
                message: instance.start_message(),
            }],
            lock: LockToken(String::new()),
            dequeue_count: 1,
            fence: Some(fence),
            read_in: None,
        };
        let result = match self.admit(&item) {
            Admission::Run => self.start_here(instance, item).await,
            // Another host's work, or an execution that fails at once: the dispatchers
            // handle it as they handle every other start.
            Admission::Leave(_) | Admission::Fail(_) => self.store.create_instance(instance).await,
        };
        drop(slot);
        // Results of the activities the turn started may already be waiting.
        self.drain(&id, Vec::new()).await;
        result
    }

    /// Runs `item`'s first turn and commits it with the instance.
    async fn start_here(
        self: &Arc<Self>,
        instance: NewInstance,
        item: OrchestrationWorkItem,
    ) -> Result<(), StoreError> {
        let fence = item.fence.expect("a start run here is fenced");
        let now = self.clock.now();
        let events = vec![item.messages[0].message.event.clone()];
        let computed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let code = self.orchestrator(&item.instance.name);
            let mut executor = Executor::new(&item.instance_id, code);
            let turn = self.turn(&item, &mut executor, events, Vec::new(), now);
            (executor, turn)
        }));
        let Ok((executor, turn)) = computed else {
            // The dispatchers run the turn again, and count and report its failure.
            return self.store.create_instance(instance).await;
        };
        match self
            .store
            .create_with_turn(
                instance.clone(),
                fence,
                turn.commit,
                turn.run_here,
                self.config.lease,
            )
            .await
        {
            Ok(Some(held)) => {
                self.keep(executor, turn.status);
                self.keep_timers(&item.instance_id, turn.timers, now);
                self.start_held(held, turn.slots);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(StoreError::LeaseLost) => {
                // The partition changed hands: its new owner runs the turn.
                self.ownership.refused(fence);
                self.store.create_instance(instance).await
            }
            Err(e) => Err(e),
        }
    }
}

//! Dispatching on a store that hands out the work of owned partitions by reading it
//! ([`Store::reads_owned_work`]): no lease per instance. The host keeps the instances found
//! ready in memory and takes them one by one; its busy map is what keeps two turns of one
//! instance apart, and the partition's epoch is what keeps any other host out.
//!
//! [`Store::reads_owned_work`]: crate::store::Store::reads_owned_work

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{Inner, SAFETY_POLL, backoff};
use crate::model::real_sleep;

/// How many ready instances one read takes.
const READ_AHEAD: usize = 256;

/// The instances found ready and not yet taken.
#[derive(Default)]
pub(super) struct ReadyQueue {
    ids: VecDeque<String>,
}

enum Next {
    /// An instance this dispatcher now holds in the busy map.
    Instance(String),
    /// Nothing ready; the next message becomes visible then.
    Empty(Option<DateTime<Utc>>),
}

impl Inner {
    pub(super) async fn read_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut errors = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.store.signal().orchestrations.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let slot = tokio::select! {
                biased;
                slot = self.turn_slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            match self.next_ready().await {
                Ok(Next::Instance(id)) => {
                    errors = 0;
                    // There may be more: pass the wake-up on to another idle dispatcher.
                    self.store.signal().orchestration_work();
                    self.run_ready(&id).await;
                    drop(slot);
                }
                Ok(Next::Empty(next_visible)) => {
                    drop(slot);
                    errors = 0;
                    let clock = self.clock.clone();
                    let due = async move {
                        match next_visible {
                            Some(at) => clock.sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    let poll = self.store.poll_interval().unwrap_or(SAFETY_POLL);
                    tokio::select! {
                        biased;
                        _ = notified => {}
                        _ = due => {}
                        _ = real_sleep(poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    drop(slot);
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

    /// The next ready instance, marked busy; reads more from the store when none is left.
    /// Instances busy here are left out and marked to be looked at again when their turn ends.
    async fn next_ready(&self) -> Result<Next, crate::store::StoreError> {
        let mut queue = self.ready.lock().await;
        if let Some(id) = self.take_first(&mut queue.ids) {
            return Ok(Next::Instance(id));
        }
        let owned = self.ownership.owned();
        if owned.is_empty() {
            return Ok(Next::Empty(None));
        }
        let found = self
            .store
            .ready_instances(self.clock.now(), &owned, READ_AHEAD)
            .await?;
        queue.ids.extend(found.instance_ids);
        Ok(match self.take_first(&mut queue.ids) {
            Some(id) => Next::Instance(id),
            None => Next::Empty(found.next_visible),
        })
    }

    /// Pops instances until one is free, and marks it busy.
    fn take_first(&self, ids: &mut VecDeque<String>) -> Option<String> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(id) = ids.pop_front() {
            if busy.contains_key(&id) {
                self.recheck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id);
                continue;
            }
            busy.insert(id.clone(), Vec::new());
            return Some(id);
        }
        None
    }

    /// Reads the busy instance's work and runs its turn, then frees it (running the turns of
    /// results that came in meanwhile first).
    async fn run_ready(self: &Arc<Self>, id: &str) {
        let read = match self.ownership.fence(id) {
            Some(fence) => {
                self.store
                    .read_orchestration(id, self.clock.now(), fence)
                    .await
            }
            // The partition changed hands since the instance was found ready.
            None => Ok(None),
        };
        match read {
            Ok(Some(item)) => self.process_item(item).await,
            // Its messages were taken by a turn that ran meanwhile.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(instance_id = ?id, error = ?e.to_string(), "reading an instance's work failed; will retry");
                self.recheck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string());
            }
        }
        self.drain(id, Vec::new()).await;
    }
}

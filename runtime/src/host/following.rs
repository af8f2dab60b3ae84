//! Work a commit reads for an instance whose own commit is still in flight here, to run once
//! that instance's turn is done.
//!
//! On a store that hands the work a commit reads over before the commit is durable
//! ([`Store::hands_over_early`]), a receiver's turn often commits its reply while the
//! sender's commit is still becoming durable: the sender is busy then, and the reply would
//! wait for a look at the store once the sender's turn ends. Instead, the reply's commit reads
//! the sender's work too, when the sender's commit is already on its way to the store, and the
//! sender runs it as soon as its turn is done ([`Inner::take_following`]).
//!
//! Such a read is good only if it came after the sender's commit was applied. The store
//! applies writes in the order they were sent, and a read normally comes after; should it
//! have come first all the same, it holds the messages that commit consumed, and is dropped
//! (the instance is looked at again instead).
//!
//! [`Store::hands_over_early`]: crate::store::Store::hands_over_early

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::Inner;
use crate::store::OrchestrationWorkItem;

/// The instances whose commit is in flight, and the work read for them meanwhile.
#[derive(Default)]
pub(super) struct Following {
    /// Instances whose commit was sent and has not returned, with the messages it consumes.
    committing: HashMap<String, Vec<u64>>,
    /// Work a later commit reads for such an instance (at most one at a time), with the
    /// messages the instance's commit consumed: a read holding any came before that commit.
    coming: HashMap<String, (oneshot::Receiver<OrchestrationWorkItem>, Vec<u64>)>,
}

/// Where a commit sends the work it read for an instance whose commit is in flight.
pub(super) type FollowingRead = oneshot::Sender<OrchestrationWorkItem>;

/// Notes an instance's commit as in flight until dropped (see [`Inner::committing`]).
pub(super) struct InFlight<'a> {
    host: &'a Inner,
    id: Option<String>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.host.following().committing.remove(&id);
        }
    }
}

impl Inner {
    fn following(&self) -> std::sync::MutexGuard<'_, Following> {
        self.following.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes `id`'s commit, consuming `consumed`, as in flight until the guard is dropped:
    /// meanwhile a commit that gives `id` work may read it for `id`'s next turn.
    pub(super) fn committing(&self, id: &str, consumed: &[u64]) -> InFlight<'_> {
        if !self.store.hands_over_early() || consumed.is_empty() {
            // Without consumed messages a read that came too early could not be told apart.
            return InFlight {
                host: self,
                id: None,
            };
        }
        self.following()
            .committing
            .insert(id.to_string(), consumed.to_vec());
        InFlight {
            host: self,
            id: Some(id.to_string()),
        }
    }

    /// Claims the read of `id`'s work by a commit about to be sent, when `id`'s own commit is
    /// in flight and no other commit claimed it: the commit sends what it reads to the
    /// returned sender (dropping it when it reads nothing).
    pub(super) fn claim_following(&self, id: &str) -> Option<FollowingRead> {
        let mut following = self.following();
        let consumed = following.committing.get(id)?.clone();
        if following.coming.contains_key(id) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        following.coming.insert(id.to_string(), (rx, consumed));
        Some(tx)
    }

    /// The work a later commit read for `id` while `id`'s commit was in flight, once that
    /// commit has read it (or failed to), if it was read after `id`'s commit: then it holds
    /// all of `id`'s visible work, and any read of `id`'s own commit is dropped. A read that
    /// came too early is dropped, and `id` looked at again once idle.
    pub(super) async fn take_following(&self, id: &str) -> Option<OrchestrationWorkItem> {
        let (read, consumed) = self.following().coming.remove(id)?;
        let item = read.await.ok()?;
        if item
            .messages
            .iter()
            .any(|message| consumed.contains(&message.seq))
        {
            self.recheck
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string());
            return None;
        }
        self.take_own_read(id);
        Some(item)
    }
}

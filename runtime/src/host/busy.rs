//! The instances with a turn running on this host, and the instances whose work was read
//! ahead for a timer (see `timers.rs`): a copy read ahead is good only while no turn of its
//! instance has started since the read, and every turn starts here, by marking its instance
//! busy.

use std::collections::HashMap;

use super::results::Finished;

/// The instances busy on this host, each with the activity results that came in while its
/// turn ran (they go into the next turn together).
#[derive(Default)]
pub(super) struct Busy {
    turns: HashMap<String, Vec<Finished>>,
    /// Instances whose work is being read ahead, or was: whether no turn of theirs has started
    /// since the read began.
    watched: HashMap<String, bool>,
}

impl Busy {
    /// Whether a turn of `id` runs here.
    pub(super) fn contains_key(&self, id: &str) -> bool {
        self.turns.contains_key(id)
    }

    /// The results waiting for `id`'s next turn, while it is busy.
    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Vec<Finished>> {
        self.turns.get_mut(id)
    }

    /// Marks `id` busy, with the results its next turn takes: a turn of it starts.
    pub(super) fn insert(&mut self, id: String, waiting: Vec<Finished>) {
        if let Some(untouched) = self.watched.get_mut(&id) {
            *untouched = false;
        }
        self.turns.insert(id, waiting);
    }

    /// `id` is no longer busy: its turns ended. Returns the results that were still waiting.
    pub(super) fn remove(&mut self, id: &str) -> Option<Vec<Finished>> {
        self.turns.remove(id)
    }

    /// Notes that `id`'s work is read ahead from now on; false (and nothing noted) when a turn
    /// of it runs now, which may change that work before it ends. Noted twice, the first note
    /// stands: a turn between the two spoils both reads.
    pub(super) fn watch(&mut self, id: &str) -> bool {
        if self.turns.contains_key(id) {
            return false;
        }
        self.watched.entry(id.to_string()).or_insert(true);
        true
    }

    /// Forgets the note on `id` (its read found nothing, or failed).
    pub(super) fn unwatch(&mut self, id: &str) {
        self.watched.remove(id);
    }

    /// Marks `id` busy if no turn of it has started since its work was read ahead (and none
    /// runs): then the work read is still what the instance stands at. The note is gone
    /// either way.
    pub(super) fn take_watched(&mut self, id: &str) -> bool {
        let untouched = self.watched.remove(id) == Some(true) && !self.turns.contains_key(id);
        if untouched {
            self.turns.insert(id.to_string(), Vec::new());
        }
        untouched
    }
}

//! Which idle dispatchers wait for the next message to become visible and poll the store.
//!
//! A host runs as many dispatchers as turns at once (hundreds by default). Were every idle one
//! to wait for the next visible message, each timer coming due would wake them all, and all
//! but one would find nothing. Instead one idle dispatcher watches that time and polls: the
//! watcher. Another watches too only when it knows of an earlier time (a timer its own turn
//! just set). The rest wait for a wake-up, which is given to one of them at a time.

use chrono::{DateTime, Utc};

/// The times the idle dispatchers that watch are waiting for, one entry each (`None`: it
/// only polls).
#[derive(Default)]
pub(super) struct Watchers {
    watched: Vec<Option<DateTime<Utc>>>,
}

impl Watchers {
    /// Whether an idle dispatcher whose look found the next message visible at `next` should
    /// watch that time and poll: when none does, or when `next` is earlier than any time
    /// watched. A `true` answer is given back with [`Watchers::leave`] once it wakes.
    pub(super) fn join(&mut self, next: Option<DateTime<Utc>>) -> bool {
        let earliest = self.watched.iter().flatten().min();
        let join = match (next, earliest) {
            _ if self.watched.is_empty() => true,
            (Some(next), Some(earliest)) => next < *earliest,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if join {
            self.watched.push(next);
        }
        join
    }

    /// A watcher that woke (whatever woke it) stops watching `next`.
    pub(super) fn leave(&mut self, next: Option<DateTime<Utc>>) {
        if let Some(i) = self.watched.iter().position(|w| *w == next) {
            self.watched.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(secs, 0)
    }

    #[test]
    fn one_watches_and_another_only_for_an_earlier_time() {
        let mut w = Watchers::default();
        assert!(w.join(at(10)), "the first idle dispatcher watches");
        assert!(!w.join(at(10)), "the same time is watched already");
        assert!(
            !w.join(at(20)),
            "a later time is found by the watcher's look"
        );
        assert!(!w.join(None), "polling is the watcher's");
        assert!(w.join(at(5)), "an earlier time is watched too");
        w.leave(at(5));
        assert!(!w.join(at(20)), "10 is still watched");
        assert!(w.join(at(7)));
        w.leave(at(7));
        w.leave(at(10));
        assert!(
            w.join(None),
            "with no watcher left, the next idle one polls"
        );
        assert!(w.join(at(30)), "a time is watched when only polling is");
    }
}

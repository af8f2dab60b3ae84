//! Timers fired from memory, on a store that hands out owned work by reading it.
//!
//! A turn that sets a timer tells the host when it is due: the host keeps that time in a heap
//! (one entry per timer, for timers due within [`HORIZON`]; later ones are found by looking,
//! as before). Shortly before a timer is due ([`READ_AHEAD`]), one task, the timer keeper,
//! reads its instance's work as it will stand then (the messages visible at the due time, the
//! timer's among them), many instances in one read when their timers are due together. When
//! the time comes, the work is handed to the dispatchers with the instance marked busy, and
//! the turn runs at once, from the cached execution: no look, and no read of the work after
//! the due time (an instance not cached reads its history, as any turn does).
//! A burst of timers due together (1,000 reminders at 9:00) starts as fast as turns can run.
//!
//! The work read ahead is only a copy: nothing is held in the store meanwhile, and another
//! turn of the instance may run before the timer is due (an activity's result, an event).
//! So it is used only if no turn of the instance has started since the read began (every
//! turn starts by marking its instance busy, which spoils the copy: see `busy.rs`) and its
//! partition is still owned under the same lease; otherwise the instance is told to the
//! dispatchers as given work, and they read it the usual way. Its commit is checked by the
//! store like any other: it consumes the messages it read, and is refused if one of them is
//! gone.
//!
//! A host that takes partitions over (at its start, after a restart, or from a host that
//! left) asks the store for the messages coming due in them within [`HORIZON`] (timers set
//! before, scheduled starts, scheduled signals) and keeps those times too, before its
//! dispatchers look at those partitions. Later ones, and those the heap has no room for, are
//! found by the dispatchers' looks, as every timer was before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use super::Inner;
use crate::model::history::EventKind;
use crate::store::{OrchestrationWorkItem, Owned, PartitionLease, TurnCommit};

/// Timers due further ahead than this are left to the dispatchers' looks.
const HORIZON: Duration = Duration::from_secs(600);

/// How long before a timer is due its instance's work is read.
const READ_AHEAD: Duration = Duration::from_millis(100);

/// Timers due within this much of the first of a batch are read with it.
const TOGETHER: Duration = Duration::from_millis(2);

/// How many instances one read ahead takes at most.
const READ_BATCH: usize = 128;

/// How many timers the heap keeps at most; more are left to looks.
const MAX_TIMERS: usize = 100_000;

/// The timers this host's turns set, and the work read ahead for them.
#[derive(Default)]
pub(super) struct Timers {
    /// When each timer is due, with its instance.
    due: BinaryHeap<Reverse<(DateTime<Utc>, String)>>,
    /// Work read ahead, waiting for its time.
    read: Vec<ReadAhead>,
    /// The instances whose next turn runs on work read ahead, and when: from the read until
    /// the instance is let go after that turn, or the keeper finds the copy out of date.
    taken: HashMap<String, DateTime<Utc>>,
}

/// What the keeper does when a timer is due.
struct ReadAhead {
    /// When: the latest time the messages read become visible.
    at: DateTime<Utc>,
    what: Due,
}

enum Due {
    /// Hand over the instance's work read ahead under this lease, if no turn of it has
    /// started since (see `Busy::watch`).
    Item(PartitionLease, Box<OrchestrationWorkItem>),
    /// Tell the dispatchers of the instance, for them to read (a turn of it ran when the
    /// read would have begun, or reading it ahead failed).
    Tell(String),
}

impl Timers {
    /// The timers due by `until` (at most [`READ_BATCH`], those due within [`TOGETHER`] of
    /// the first), taken off the heap.
    fn take_due(&mut self, until: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
        let mut taken = Vec::new();
        let Some(Reverse((first, _))) = self.due.peek() else {
            return taken;
        };
        let last = (*first + delta(TOGETHER)).min(until);
        while taken.len() < READ_BATCH {
            match self.due.peek() {
                Some(Reverse((due, _))) if *due <= last => {
                    let Reverse(timer) = self.due.pop().expect("peeked");
                    taken.push(timer);
                }
                _ => break,
            }
        }
        taken
    }

    /// The work read ahead whose time has come.
    fn take_ready(&mut self, now: DateTime<Utc>) -> Vec<ReadAhead> {
        let (ready, waiting) = std::mem::take(&mut self.read)
            .into_iter()
            .partition(|r| r.at <= now);
        self.read = waiting;
        ready
    }

    /// When the keeper next has something to do: read ahead for the next timer, or hand
    /// over work read ahead.
    fn next_wake(&self) -> Option<DateTime<Utc>> {
        let read = self
            .due
            .peek()
            .map(|Reverse((due, _))| *due - delta(READ_AHEAD));
        let run = self.read.iter().map(|r| r.at).min();
        read.into_iter().chain(run).min()
    }

    /// Whether the keeper acts at `at`, the next time a message becomes visible: the first
    /// timer on the heap is due then, or work read ahead runs then. (While a read is under
    /// way, or when the first timer on the heap is one whose message is gone, a dispatcher
    /// watches that time too.)
    fn covers(&self, at: DateTime<Utc>) -> bool {
        self.due.peek().is_some_and(|Reverse((due, _))| *due == at)
            || self.read.iter().any(|r| r.at == at)
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).expect("a short duration fits a time delta")
}

/// The times `commit`, a turn of `instance_id` at `now`, sets its own timers for.
pub(super) fn timers_set(
    commit: &TurnCommit,
    instance_id: &str,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    commit
        .messages
        .iter()
        .filter(|m| m.instance_id == instance_id)
        .filter(|m| matches!(m.event.kind, EventKind::TimerFired { .. }))
        .filter_map(|m| m.visible_at)
        .filter(|at| *at > now)
        .collect()
}

impl Inner {
    /// Whether this host fires timers from memory: on a store read without leases. (Whether
    /// executions are cached does not matter: a copy read ahead is checked against the turns
    /// started since, not against the cache.)
    pub(super) fn fires_timers(&self) -> bool {
        self.store.reads_owned_work()
    }

    /// Keeps the timers a committed turn of `instance_id` set (see [`timers_set`]).
    pub(super) fn keep_timers(
        &self,
        instance_id: &str,
        dues: Vec<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        if dues.is_empty() || !self.fires_timers() {
            return;
        }
        let horizon = now + delta(HORIZON);
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        for due in dues {
            if due <= horizon && timers.due.len() < MAX_TIMERS {
                timers.due.push(Reverse((due, instance_id.to_string())));
            }
        }
        drop(timers);
        self.timer_set.notify_one();
    }

    /// The messages coming due within [`HORIZON`] in `gained`, partitions this host takes
    /// over (see [`Store::coming_due`]), as many as the heap has room for: to keep with
    /// [`Inner::keep_coming_due`] once they are owned. None when the read fails (they are
    /// then found by looking).
    ///
    /// [`Store::coming_due`]: crate::store::Store::coming_due
    pub(super) async fn coming_due_in(
        &self,
        gained: Option<Owned>,
    ) -> Vec<(DateTime<Utc>, String)> {
        let Some(gained) = gained.filter(|_| self.fires_timers()) else {
            return Vec::new();
        };
        let room = {
            let timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
            MAX_TIMERS.saturating_sub(timers.due.len())
        };
        if room == 0 {
            return Vec::new();
        }
        let now = self.clock.now();
        match self
            .store
            .coming_due(now, now + delta(HORIZON), &gained, room)
            .await
        {
            Ok(due) => due.into_iter().map(|(id, at)| (at, id)).collect(),
            Err(e) => {
                tracing::debug!(
                    error = ?e.to_string(),
                    "reading the timers of partitions taken over failed; they are found by looking"
                );
                Vec::new()
            }
        }
    }

    /// Keeps the times `due` (see [`Inner::coming_due_in`]), but for those kept already.
    pub(super) fn keep_coming_due(&self, due: Vec<(DateTime<Utc>, String)>) {
        if due.is_empty() {
            return;
        }
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        let known: HashSet<(DateTime<Utc>, String)> = timers
            .due
            .iter()
            .map(|Reverse(timer)| timer.clone())
            .collect();
        for timer in due {
            if timers.due.len() < MAX_TIMERS && !known.contains(&timer) {
                timers.due.push(Reverse(timer));
            }
        }
        drop(timers);
        self.timer_set.notify_one();
    }

    /// The timer keeper: reads ahead the work of instances whose timers come due, and hands
    /// it to the dispatchers when they do.
    pub(super) async fn timer_keeper(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let set = self.timer_set.notified();
            tokio::pin!(set);
            set.as_mut().enable();
            let now = self.clock.now();
            let (ready, due, next) = {
                let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
                let ready = timers.take_ready(now);
                let due = timers.take_due(now + delta(READ_AHEAD));
                (ready, due, timers.next_wake())
            };
            let worked = !ready.is_empty() || !due.is_empty();
            if !ready.is_empty() {
                self.fire(ready);
            }
            if !due.is_empty() {
                self.read_ahead(due);
            }
            if worked {
                continue;
            }
            let clock = self.clock.clone();
            let wake = async move {
                match next {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                _ = set => {}
                _ = wake => {}
            }
        }
    }

    /// Reads the work of the instances whose timers are due (`timers`, due within
    /// [`TOGETHER`] of each other) as it stands at the last due time, in a task of its own.
    /// Instances with a turn running now are told to the dispatchers when due instead; those
    /// of partitions no longer owned are left to their owners.
    fn read_ahead(self: &Arc<Self>, timers: Vec<(DateTime<Utc>, String)>) {
        let Some(at) = timers.iter().map(|(due, _)| *due).max() else {
            return;
        };
        let mut wanted: Vec<(String, PartitionLease)> = Vec::with_capacity(timers.len());
        let mut tell = Vec::new();
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            for (due, id) in timers {
                if wanted.iter().any(|(w, _)| *w == id) {
                    continue;
                }
                let Some(fence) = self.ownership.fence(&id) else {
                    // The partition changed hands: its owner finds the timer.
                    continue;
                };
                if busy.watch(&id) {
                    wanted.push((id, fence));
                } else {
                    // Its running turn may change the work before it ends: told to the
                    // dispatchers when due, to read it then; no dispatcher watches a time the
                    // keeper acts at.
                    tell.push(ReadAhead {
                        at: due,
                        what: Due::Tell(id),
                    });
                }
            }
        }
        if !tell.is_empty() {
            self.timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .read
                .extend(tell);
        }
        if wanted.is_empty() {
            return;
        }
        let inner = self.clone();
        self.tasks.spawn(async move {
            let read = inner.read_items(&wanted, at).await;
            let mut found = HashSet::new();
            {
                let mut timers = inner.timers.lock().unwrap_or_else(|p| p.into_inner());
                match read {
                    Ok(items) => {
                        for item in items {
                            let Some(&(_, fence)) =
                                wanted.iter().find(|(id, _)| *id == item.instance_id)
                            else {
                                continue;
                            };
                            let at = item
                                .messages
                                .iter()
                                .filter_map(|m| m.message.visible_at)
                                .max()
                                .map_or(at, |latest| latest.max(at));
                            found.insert(item.instance_id.clone());
                            timers.taken.insert(item.instance_id.clone(), at);
                            timers.read.push(ReadAhead {
                                at,
                                what: Due::Item(fence, Box::new(item)),
                            });
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = ?e.to_string(), "reading ahead for timers failed");
                        // Told to the dispatchers when due, to read the usual way.
                        timers.read.extend(wanted.iter().map(|(id, _)| ReadAhead {
                            at,
                            what: Due::Tell(id.clone()),
                        }));
                    }
                }
            }
            // An instance the read found nothing for: its timer is gone (a turn took it, or
            // the instance was replaced).
            let mut busy = inner.busy.lock().unwrap_or_else(|p| p.into_inner());
            for (id, _) in wanted.iter().filter(|(id, _)| !found.contains(id)) {
                busy.unwatch(id);
            }
            drop(busy);
            inner.timer_set.notify_one();
        });
    }

    /// Hands the work read ahead to the dispatchers, each instance marked busy, when it is
    /// still what the instance stands at; tells the others to the dispatchers to read.
    fn fire(self: &Arc<Self>, ready: Vec<ReadAhead>) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let mut items = Vec::with_capacity(ready.len());
        let mut reread = Vec::new();
        let mut not_taken = Vec::new();
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            for ReadAhead { what, .. } in ready {
                let (fence, item) = match what {
                    Due::Item(fence, item) => (fence, *item),
                    Due::Tell(id) => {
                        reread.push(id);
                        continue;
                    }
                };
                let id = item.instance_id.clone();
                if self.ownership.fence(&id) != Some(fence) {
                    // The partition changed hands: its owner finds the timer.
                    busy.unwatch(&id);
                    not_taken.push(id);
                } else if busy.take_watched(&id) {
                    items.push(item);
                } else {
                    // A turn of it started since the read (and may still run: then the
                    // dispatchers look at it again once that turn ends).
                    not_taken.push(id.clone());
                    reread.push(id);
                }
            }
        }
        if !not_taken.is_empty() {
            let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
            for id in &not_taken {
                timers.taken.remove(id);
            }
        }
        self.hand_to_dispatchers(items);
        if !reread.is_empty() {
            self.store.signal().work_for(reread);
        }
    }

    /// Whether the timer keeper acts at `at`, when a timer is due: an idle dispatcher need not
    /// watch that time for it.
    pub(super) fn timer_covers(&self, at: DateTime<Utc>) -> bool {
        self.fires_timers()
            && self
                .timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .covers(at)
    }

    /// Whether `id`'s next turn runs on work read ahead for its timer, due by `now`: it is
    /// handed over now or already was. A look that finds it ready finds that timer.
    pub(super) fn fires_timer_of(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .taken
            .get(id)
            .is_some_and(|at| *at <= now)
    }

    /// Forgets that `id`'s turn ran on work read ahead for a timer due by `now`: the instance
    /// is let go.
    pub(super) fn timer_turn_done(&self, id: &str, now: DateTime<Utc>) {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        if timers.taken.get(id).is_some_and(|at| *at <= now) {
            timers.taken.remove(id);
        }
    }
}

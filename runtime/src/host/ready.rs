//! Dispatching on a store that hands out the work of owned partitions by reading it
//! ([`Store::reads_owned_work`]): no lease per instance. The host keeps the instances found
//! ready in memory and takes them one by one; its busy map is what keeps two turns of one
//! instance apart, and the partition's epoch is what keeps any other host out. Work another
//! host left in a partition this host does not own is leased
//! ([`Store::fetch_left_orchestration`]), as before partitions.
//!
//! [`Store::reads_owned_work`]: crate::store::Store::reads_owned_work
//! [`Store::fetch_left_orchestration`]: crate::store::Store::fetch_left_orchestration

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Inner;
use super::orchestrations::Round;
use crate::store::{LEFT_PAUSE, OrchestrationWorkItem};

/// How many ready instances one look takes.
const READ_AHEAD: usize = 256;

/// How many ready instances a dispatcher reads together at most, when many are queued (timers
/// that came due together): one read instead of one each. It runs the first, and hands the
/// others to the other dispatchers.
const READ_TOGETHER: usize = 16;

/// How long instances this process gave work (taken from the store's signal, without a look)
/// may keep the store from being looked at: timers that came due and work other processes
/// queued are found at the latest then. At least: a look that takes long (a store with much
/// queued, or busy) waits [`LOOK_SHARE`] times as long as it took, so that looking costs the
/// store a tenth of a connection at most, up to [`LOOK_EVERY_MAX`].
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How many times its own duration the next look waits, at least.
const LOOK_SHARE: u32 = 10;

/// The longest wait between looks while instances are taken without one.
const LOOK_EVERY_MAX: Duration = Duration::from_millis(200);

/// The instances found ready and not yet taken.
#[derive(Default)]
pub(super) struct ReadyQueue {
    ids: VecDeque<String>,
    /// The same ids, to keep each once.
    queued: HashSet<String>,
    /// When the store was last looked at for ready instances (tokio's clock, which a test's
    /// manual orchestration clock does not stop).
    looked_at: Option<Instant>,
    /// How long the last look took.
    look_took: Duration,
    /// Whether the last look found as many instances as one look takes, some of them not busy
    /// here (more may be ready).
    look_was_full: bool,
    /// When the last look said the next message becomes visible.
    next_visible: Option<DateTime<Utc>>,
    /// When work left in other hosts' partitions was last looked for.
    left_looked_at: Option<DateTime<Utc>>,
    /// When the dispatcher waiting to take the next look (see [`Next::LookIn`]) takes it.
    pub(super) look_waiter: Option<Instant>,
    /// Whether the last look found instances whose timers' turns run on work read ahead
    /// (see `timers.rs`): the store is looked at again soon, for what else came in for them.
    look_again: bool,
}

impl ReadyQueue {
    fn push(&mut self, id: String) {
        if self.queued.insert(id.clone()) {
            self.ids.push_back(id);
        }
    }
}

enum Next {
    /// Instances this dispatcher now holds in the busy map (at least one), and whether more
    /// are queued.
    Instances(Vec<String>, bool),
    /// Work another host left, leased from a partition this host does not own.
    Left(Box<OrchestrationWorkItem>),
    /// Nothing ready; the next message becomes visible then.
    Empty(Option<DateTime<Utc>>),
    /// Nothing queued, and the store was looked at a moment ago: the next look is due then.
    LookIn(Duration),
}

impl Inner {
    pub(super) async fn read_worker(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        self.dispatcher(shutdown, |inner| async move {
            // Work a commit read for an instance it gave work, already busy here: first.
            if let Some(item) = inner.take_handed() {
                if inner.has_handed() {
                    inner.store.signal().orchestration_work();
                }
                let id = item.instance_id.clone();
                inner.process_item(item).await;
                inner.drain(&id, Vec::new()).await;
                return Round::Worked;
            }
            match inner.next_ready().await {
                Ok(Next::Instances(ids, more)) => {
                    if more {
                        // Pass the wake-up on to another idle dispatcher.
                        inner.store.signal().orchestration_work();
                    }
                    inner.run_ready(ids).await;
                    Round::Worked
                }
                Ok(Next::Left(item)) => {
                    inner.store.signal().orchestration_work();
                    inner.process(*item).await;
                    Round::Worked
                }
                Ok(Next::Empty(next_visible)) => Round::Empty(next_visible),
                Ok(Next::LookIn(after)) => Round::LookIn(after),
                Err(err) => Round::Failed(err),
            }
        })
        .await
    }

    /// The next ready instance, marked busy; reads more from the store when none is left.
    /// Instances busy here are left out and marked to be looked at again when their turn ends.
    async fn next_ready(&self) -> Result<Next, crate::store::StoreError> {
        let mut queue = self.ready.lock().await;
        // What this process's own writes gave work to, told by the store after each commit:
        // taken without looking for it.
        for id in self.store.signal().take_ready() {
            if self.ownership.fence(&id).is_some() {
                queue.push(id);
            }
        }
        let now = self.clock.now();
        let every = (queue.look_took * LOOK_SHARE).clamp(LOOK_EVERY, LOOK_EVERY_MAX);
        let since = queue.looked_at.map(|at| at.elapsed());
        if let Some(since) = since.filter(|since| *since < every) {
            if let Some(ids) = self.take_some(&mut queue) {
                return Ok(Next::Instances(ids, !queue.ids.is_empty()));
            }
            // Woken with nothing queued, though a look just now found what was ready then:
            // what this process's writes give work arrives without a look, and the rest
            // (timers that came due, work other processes queued or left) waits for the
            // next look, as it does while instances are taken without one. Looking at every
            // such wake cost the store a look per turn under load, and each look found the
            // instances whose turns were running, to be read again for nothing after them.
            // Unless the last look found as many as it takes (more were ready then: many
            // timers due at once), or what it said would become visible next is due now: then
            // they are looked for at once.
            let due = queue.next_visible.is_some_and(|at| at <= now);
            if !queue.look_was_full && !due && !self.left_look_due(&queue, now) {
                // One dispatcher waits to take that look; the others wait for a wake-up, as
                // idle ones do. (Every dispatcher woken used to wait for it, and each look
                // sent one of them idle: hundreds took a look every 10 ms, for seconds.)
                let at = Instant::now();
                if queue.look_waiter.is_some_and(|look_at| look_at >= at) {
                    return Ok(Next::Empty(queue.next_visible));
                }
                queue.look_waiter = Some(at + (every - since));
                return Ok(Next::LookIn(every - since));
            }
        }
        let owned = self.ownership.owned();
        let mut next_visible = None;
        if !owned.is_empty() {
            let started = Instant::now();
            let found = self.store.ready_instances(now, &owned, READ_AHEAD).await?;
            queue.looked_at = Some(started);
            queue.look_waiter = None;
            queue.look_took = started.elapsed();
            // Full, and not only of instances whose turns run here (their messages stay in
            // the store until those turns commit, and they are looked at again after them).
            queue.look_was_full = found.instance_ids.len() >= READ_AHEAD && {
                let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                found.instance_ids.iter().any(|id| !busy.contains_key(id))
            };
            queue.next_visible = found.next_visible;
            for id in found.instance_ids {
                if self.fires_timer_of(&id, now) {
                    // Its turn runs on work read ahead for its timer, which the look found:
                    // looked at again soon instead of read now or after that turn (the look
                    // is shared; the read would be one per timer).
                    queue.look_again = true;
                    continue;
                }
                queue.push(id);
            }
            next_visible = found.next_visible;
        }
        // Where several hosts share the hub, work left in their partitions by a host that
        // may not run it is looked for at a refill (one indexed statement), even by a host
        // that owns no partition; at most once per pause of left work, which it waits anyway.
        let now = self.clock.now();
        if self.left_look_due(&queue, now) {
            queue.left_looked_at = Some(now);
            let left = self
                .store
                .fetch_left_orchestration(now, self.config.lease, &owned)
                .await?;
            if let Some(item) = left {
                // There may be more: the next refill looks again.
                queue.left_looked_at = None;
                return Ok(Next::Left(Box::new(item)));
            }
        }
        Ok(match self.take_some(&mut queue) {
            Some(ids) => Next::Instances(ids, !queue.ids.is_empty()),
            None if std::mem::take(&mut queue.look_again) => Next::LookIn(LOOK_EVERY),
            None => Next::Empty(next_visible),
        })
    }

    /// Whether work left in other hosts' partitions is to be looked for now.
    fn left_look_due(&self, queue: &ReadyQueue, now: DateTime<Utc>) -> bool {
        !self.store.single_owner()
            && queue.left_looked_at.is_none_or(|at| {
                now - at >= chrono::TimeDelta::from_std(LEFT_PAUSE).unwrap_or_default()
            })
    }

    /// Takes the next free instances, marked busy: one, or, when many are queued, a
    /// quarter of them up to [`READ_TOGETHER`] (the rest for the other dispatchers).
    fn take_some(&self, queue: &mut ReadyQueue) -> Option<Vec<String>> {
        let first = self.take_first(queue)?;
        let mut ids = vec![first];
        let together = (queue.ids.len() / 4).min(READ_TOGETHER - 1);
        while ids.len() <= together {
            match self.take_first(queue) {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        Some(ids)
    }

    /// Pops instances until one is free, and marks it busy.
    fn take_first(&self, queue: &mut ReadyQueue) -> Option<String> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(id) = queue.ids.pop_front() {
            queue.queued.remove(&id);
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

    /// Reads the busy instances' work (together, when there are several), runs the first's
    /// turn and hands the others' to the other dispatchers; then frees the instance (running
    /// the turns of results that came in meanwhile first). An instance found with no work is
    /// freed at once.
    async fn run_ready(self: &Arc<Self>, ids: Vec<String>) {
        let now = self.clock.now();
        let mut wanted = Vec::with_capacity(ids.len());
        for id in ids {
            match self.ownership.fence(&id) {
                Some(fence) => wanted.push((id, fence)),
                // The partition changed hands since the instance was found ready.
                None => self.drain(&id, Vec::new()).await,
            }
        }
        if wanted.is_empty() {
            return;
        }
        let read = self.read_items(&wanted, now).await;
        let mut items = match read {
            Ok(items) => items,
            Err(e) => {
                for (id, _) in &wanted {
                    tracing::warn!(instance_id = ?id, error = ?e.to_string(), "reading an instance's work failed; will retry");
                }
                self.recheck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(wanted.iter().map(|(id, _)| id.clone()));
                for (id, _) in wanted {
                    self.drain(&id, Vec::new()).await;
                }
                return;
            }
        };
        // Those whose messages were taken by a turn that ran meanwhile: freed.
        for (id, _) in &wanted {
            if !items.iter().any(|item| item.instance_id == *id) {
                self.drain(id, Vec::new()).await;
            }
        }
        let Some(mine) = items.pop() else {
            return;
        };
        self.hand_to_dispatchers(items);
        let id = mine.instance_id.clone();
        self.process_item(mine).await;
        self.drain(&id, Vec::new()).await;
    }

    /// The work of `wanted` as it stands at `now` (see [`Store::read_orchestrations`]): one
    /// read, of one instance or of several.
    ///
    /// [`Store::read_orchestrations`]: crate::store::Store::read_orchestrations
    pub(super) async fn read_items(
        &self,
        wanted: &[(String, crate::store::PartitionLease)],
        now: DateTime<Utc>,
    ) -> Result<Vec<OrchestrationWorkItem>, crate::store::StoreError> {
        match wanted {
            [(id, fence)] => self
                .store
                .read_orchestration(id, now, *fence)
                .await
                .map(|item| item.into_iter().collect()),
            _ => self.store.read_orchestrations(wanted.to_vec(), now).await,
        }
    }
}

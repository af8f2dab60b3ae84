//! The state an executor shares with its orchestration context: step ids, task slots and
//! their wakers, event waiters and buffers, and what the code asked for this turn.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};

use super::action::Action;
use crate::model::history::ParentInstance;
use crate::model::{Error, FailureDetails};

/// A critical section: the lock step's id, the sorted entities, and the latest call step to
/// each entity (to refuse a second call while one is outstanding).
pub(crate) struct CriticalState {
    pub id: i64,
    pub lock_set: Vec<String>,
    pub calls: HashMap<String, i64>,
}

/// How a task slot was completed: the recorded JSON result, or the recorded failure.
pub(crate) type TaskResult = Result<String, FailureDetails>;

pub(crate) enum Slot {
    Waiting(Option<Waker>),
    Done(TaskResult),
    Taken,
    Dropped,
}

pub(super) struct PendingAction {
    pub(super) action: Action,
    pub(super) location: &'static Location<'static>,
}

pub(crate) struct ContinueAsNew {
    pub input: String,
    pub preserve_events: bool,
}

/// The state shared between the executor and the orchestration context.
pub(crate) struct State {
    pub instance_id: String,
    pub execution_id: String,
    pub name: String,
    pub parent: Option<ParentInstance>,
    /// The version the instance started under.
    pub version: Option<String>,
    /// Patch points the recorded history of this execution passed on patched code (read
    /// ahead of replay, so `patched` knows before the replay reaches the marker).
    pub(super) recorded_patches: std::collections::HashSet<String>,
    /// What `patched` answered for each patch id so far: the same answer every time.
    pub(super) patches: HashMap<String, bool>,
    /// Patch markers to record in this turn's history, in the order first reached.
    pub(super) new_patches: Vec<String>,
    pub now: DateTime<Utc>,
    pub replaying: bool,
    pub(super) next_id: i64,
    pub guid_counter: u64,
    pub(super) tasks: HashMap<i64, Slot>,
    pub(super) completed: std::collections::HashSet<i64>,
    pub(super) pending: BTreeMap<i64, PendingAction>,
    pub(super) next_waiter: u64,
    pub(super) waiters: HashMap<u64, Slot>,
    pub(super) waiters_by_name: HashMap<String, VecDeque<u64>>,
    pub(super) buffered: HashMap<String, VecDeque<(u64, String, String)>>,
    pub(super) next_arrival: u64,
    pub custom_status: Option<String>,
    pub continue_as_new: Option<ContinueAsNew>,
    /// A rule violation found inside a context call; fails the instance at the end of the poll.
    pub violation: Option<Error>,
    /// The critical section this orchestration holds or is acquiring.
    pub critical: Option<CriticalState>,
    pub(super) woken: bool,
    /// Where the code scheduled its latest step, for messages about a step it did not take.
    last_location: Option<&'static Location<'static>>,
}

impl State {
    pub(super) fn new(instance_id: String) -> Self {
        State {
            instance_id,
            execution_id: String::new(),
            name: String::new(),
            parent: None,
            version: None,
            recorded_patches: Default::default(),
            patches: HashMap::new(),
            new_patches: Vec::new(),
            now: DateTime::<Utc>::UNIX_EPOCH,
            replaying: true,
            next_id: 0,
            guid_counter: 0,
            tasks: HashMap::new(),
            completed: Default::default(),
            pending: BTreeMap::new(),
            next_waiter: 0,
            waiters: HashMap::new(),
            waiters_by_name: HashMap::new(),
            buffered: HashMap::new(),
            next_arrival: 0,
            custom_status: None,
            continue_as_new: None,
            violation: None,
            critical: None,
            woken: false,
            last_location: None,
        }
    }

    /// Records a new scheduling step and returns its id.
    pub(crate) fn schedule(
        &mut self,
        make: impl FnOnce(i64) -> Action,
        location: &'static Location<'static>,
    ) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let action = make(id);
        let needs_slot = matches!(
            action,
            Action::ScheduleActivity { .. }
                | Action::CreateTimer { .. }
                | Action::StartSubOrchestration { .. }
                | Action::CallEntity { .. }
                | Action::LockEntities { .. }
        );
        self.pending.insert(id, PendingAction { action, location });
        self.last_location = Some(location);
        if needs_slot {
            self.tasks.insert(id, Slot::Waiting(None));
        }
        id
    }

    pub(crate) fn poll_task(&mut self, id: i64, cx: &mut Context<'_>) -> Poll<TaskResult> {
        let polled = poll_slot(self.tasks.get_mut(&id), cx);
        if polled.is_ready() {
            // Taken: a later completion is a duplicate (`completed` knows the step).
            self.tasks.remove(&id);
        }
        polled
    }

    pub(crate) fn drop_task(&mut self, id: i64) {
        if let Some(slot) = self.tasks.get_mut(&id) {
            *slot = Slot::Dropped;
        }
    }

    /// Registers a waiter for an external event; takes a buffered one at once if present.
    pub(crate) fn wait_event(&mut self, name: &str) -> u64 {
        let key = name.to_lowercase();
        let id = self.next_waiter;
        self.next_waiter += 1;
        let buffered = self.buffered.get_mut(&key).and_then(VecDeque::pop_front);
        match buffered {
            Some((_, _, payload)) => {
                self.waiters.insert(id, Slot::Done(Ok(payload)));
            }
            None => {
                self.waiters.insert(id, Slot::Waiting(None));
                self.waiters_by_name.entry(key).or_default().push_back(id);
            }
        }
        id
    }

    pub(crate) fn poll_event(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<TaskResult> {
        let polled = poll_slot(self.waiters.get_mut(&id), cx);
        if polled.is_ready() {
            self.waiters.remove(&id);
        }
        polled
    }

    /// Whether anything durable is outstanding: a step or an event wait whose answer has not
    /// arrived. The slots of taken results are removed, so this looks only at live ones.
    pub(super) fn has_outstanding(&self) -> bool {
        let waiting = |slot: &Slot| matches!(slot, Slot::Waiting(_));
        self.tasks.values().any(waiting) || self.waiters.values().any(waiting)
    }

    /// The latest step the code scheduled, and where.
    pub(super) fn last_step(&self) -> Option<(i64, &'static Location<'static>)> {
        self.last_location.map(|l| (self.next_id - 1, l))
    }

    pub(crate) fn drop_event(&mut self, id: u64, name: &str) {
        // An event already handed to this waiter but never read goes back to the front of the
        // buffer, so dropping a wait never loses an event.
        if let Some(Slot::Done(Ok(payload))) = self.waiters.remove(&id) {
            self.buffered
                .entry(name.to_lowercase())
                .or_default()
                .push_front((0, name.to_string(), payload));
        }
    }

    pub(super) fn deliver_event(&mut self, name: &str, payload: String) {
        let key = name.to_lowercase();
        if let Some(queue) = self.waiters_by_name.get_mut(&key) {
            while let Some(id) = queue.pop_front() {
                if let Some(slot) = self.waiters.get_mut(&id) {
                    complete_slot(slot, Ok(payload), &mut self.woken);
                    return;
                }
            }
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.buffered
            .entry(key)
            .or_default()
            .push_back((arrival, name.to_string(), payload));
    }

    pub(super) fn complete_task(&mut self, id: i64, result: TaskResult) -> bool {
        if !self.completed.insert(id) {
            return false; // a duplicate completion: ignored, never applied twice
        }
        match self.tasks.get_mut(&id) {
            Some(slot) => {
                complete_slot(slot, result, &mut self.woken);
                if matches!(slot, Slot::Dropped) {
                    self.tasks.remove(&id);
                }
                true
            }
            None => {
                self.completed.remove(&id);
                false // never scheduled by this execution
            }
        }
    }

    /// Whether the code takes the patched branch at patch point `id`: yes when the recorded
    /// history passed it on patched code, or when the code reaches it for the first time
    /// (not replaying: the marker is then recorded); no when replaying history that passed
    /// this point on code without it. The first answer holds for the rest of the execution.
    pub(crate) fn patched(&mut self, id: &str) -> bool {
        if let Some(&answer) = self.patches.get(id) {
            return answer;
        }
        let answer = if self.recorded_patches.contains(id) {
            true
        } else if self.replaying {
            false
        } else {
            self.new_patches.push(id.to_string());
            true
        };
        self.patches.insert(id.to_string(), answer);
        answer
    }

    /// Records the marker of patch point `id` when code reaches it for the first time, so
    /// that hosts still running code with `patched(id)` take the patched branch; never
    /// requires the marker on replay.
    pub(crate) fn deprecate_patch(&mut self, id: &str) {
        if self.patches.contains_key(id) {
            return;
        }
        if !self.replaying && !self.recorded_patches.contains(id) {
            self.new_patches.push(id.to_string());
        }
        self.patches.insert(id.to_string(), true);
    }

    /// Whether step `id` has completed.
    pub(crate) fn is_completed(&self, id: i64) -> bool {
        self.completed.contains(&id)
    }

    pub(super) fn unprocessed_events(&mut self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self.buffered.drain().flat_map(|(_, q)| q).collect();
        all.sort_by_key(|(arrival, _, _)| *arrival);
        all.into_iter().map(|(_, name, p)| (name, p)).collect()
    }
}

fn poll_slot(slot: Option<&mut Slot>, cx: &mut Context<'_>) -> Poll<TaskResult> {
    let Some(slot) = slot else {
        return Poll::Pending;
    };
    match std::mem::replace(slot, Slot::Taken) {
        Slot::Done(result) => Poll::Ready(result),
        Slot::Waiting(_) => {
            *slot = Slot::Waiting(Some(cx.waker().clone()));
            Poll::Pending
        }
        other => {
            *slot = other;
            Poll::Pending
        }
    }
}

fn complete_slot(slot: &mut Slot, result: TaskResult, woken: &mut bool) {
    if let Slot::Waiting(waker) = std::mem::replace(slot, Slot::Done(result)) {
        if let Some(w) = waker {
            w.wake();
        }
        *woken = true;
    } else {
        *slot = Slot::Dropped;
    }
}

/// The state handle shared by the executor and every context clone.
#[derive(Clone)]
pub(crate) struct Shared(pub(super) Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

//! The replay core: pure, synchronous, I/O-free.
//!
//! An [`Executor`] owns one orchestration's future and the state its context shares. It is fed
//! history events one at a time, in order; after each it polls the orchestrator until it blocks.
//! Replaying old history and running a new turn are the same operation — the only difference is
//! whether `is_replaying` is set and whether scheduling steps are *checked* against the history
//! (replay) or *emitted* as new actions (new turn). So `when_any`, `select!` and `join!` resolve
//! identically on every replay, and a cached executor resumes without replaying at all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, Location};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};

use crate::error::{Error, ErrorKind, FailureDetails};
use crate::function::BoxFuture;
use crate::history::{CompletionStatus, EventKind, HistoryEvent, ParentInstance};
use crate::orchestration::OrchestrationContext;
use crate::registry::Registry;

/// A step the orchestrator asked for that the host must carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Run an activity.
    ScheduleActivity {
        /// Step id.
        id: i64,
        /// Activity name.
        name: String,
        /// Input JSON.
        input: String,
    },
    /// Fire a timer at a time.
    CreateTimer {
        /// Step id.
        id: i64,
        /// Due time.
        fire_at: DateTime<Utc>,
    },
    /// Start a sub-orchestration.
    StartSubOrchestration {
        /// Step id.
        id: i64,
        /// Orchestrator name.
        name: String,
        /// The child's instance id.
        instance_id: String,
        /// Input JSON.
        input: String,
    },
    /// Raise an event on another instance.
    SendEvent {
        /// Step id.
        id: i64,
        /// Target instance.
        instance_id: String,
        /// Event name.
        name: String,
        /// Payload JSON.
        input: String,
    },
    /// Call an entity operation (two-way).
    CallEntity {
        /// Step id.
        id: i64,
        /// The entity (`@name@key`).
        entity: String,
        /// The operation.
        operation: String,
        /// Input JSON.
        input: String,
    },
    /// Signal an entity operation (one-way), optionally at a time.
    SignalEntity {
        /// Step id.
        id: i64,
        /// The entity (`@name@key`).
        entity: String,
        /// The operation.
        operation: String,
        /// Input JSON.
        input: String,
        /// Deliver no earlier than this.
        at: Option<DateTime<Utc>>,
    },
    /// Lock a set of entities (sorted) for a critical section.
    LockEntities {
        /// Step id (the critical section's id).
        id: i64,
        /// The entities, sorted and deduplicated.
        lock_set: Vec<String>,
    },
    /// Release a critical section's locks.
    UnlockEntities {
        /// Step id.
        id: i64,
        /// The critical section being released.
        critical_section: i64,
        /// The entities it locked.
        lock_set: Vec<String>,
    },
}

impl Action {
    fn id(&self) -> i64 {
        match self {
            Action::ScheduleActivity { id, .. }
            | Action::CreateTimer { id, .. }
            | Action::StartSubOrchestration { id, .. }
            | Action::SendEvent { id, .. }
            | Action::CallEntity { id, .. }
            | Action::SignalEntity { id, .. }
            | Action::LockEntities { id, .. }
            | Action::UnlockEntities { id, .. } => *id,
        }
    }

    fn to_event(&self, now: DateTime<Utc>) -> HistoryEvent {
        let kind = match self.clone() {
            Action::ScheduleActivity { name, input, .. } => {
                EventKind::TaskScheduled { name, input }
            }
            Action::CreateTimer { fire_at, .. } => EventKind::TimerCreated { fire_at },
            Action::StartSubOrchestration {
                name,
                instance_id,
                input,
                ..
            } => EventKind::SubOrchestrationInstanceCreated {
                name,
                instance_id,
                input,
            },
            Action::SendEvent {
                instance_id,
                name,
                input,
                ..
            } => EventKind::EventSent {
                instance_id,
                name,
                input,
            },
            Action::CallEntity {
                entity,
                operation,
                input,
                ..
            } => EventKind::EntityOperationCalled {
                entity_id: entity,
                operation,
                input,
                caller: None,
            },
            Action::SignalEntity {
                entity,
                operation,
                input,
                ..
            } => EventKind::EntityOperationSignaled {
                entity_id: entity,
                operation,
                input,
            },
            Action::LockEntities { lock_set, .. } => EventKind::EntityLockRequested {
                lock_set,
                position: 0,
                caller: None,
            },
            Action::UnlockEntities { lock_set, .. } => EventKind::EntityUnlockSent {
                lock_set,
                caller: None,
            },
        };
        HistoryEvent {
            event_id: self.id(),
            timestamp: now,
            kind,
        }
    }

    /// Whether a recorded scheduling event is the same step (kind and name).
    fn matches(&self, event: &EventKind) -> bool {
        match (self, event) {
            (
                Action::ScheduleActivity { name: a, .. },
                EventKind::TaskScheduled { name: b, .. },
            ) => a == b,
            (Action::CreateTimer { .. }, EventKind::TimerCreated { .. }) => true,
            (
                Action::StartSubOrchestration { name: a, .. },
                EventKind::SubOrchestrationInstanceCreated { name: b, .. },
            ) => a == b,
            (Action::SendEvent { name: a, .. }, EventKind::EventSent { name: b, .. }) => a == b,
            (
                Action::CallEntity {
                    entity, operation, ..
                },
                EventKind::EntityOperationCalled {
                    entity_id,
                    operation: op,
                    ..
                },
            )
            | (
                Action::SignalEntity {
                    entity, operation, ..
                },
                EventKind::EntityOperationSignaled {
                    entity_id,
                    operation: op,
                    ..
                },
            ) => entity == entity_id && operation == op,
            (
                Action::LockEntities { lock_set: a, .. },
                EventKind::EntityLockRequested { lock_set: b, .. },
            ) => a == b,
            (Action::UnlockEntities { .. }, EventKind::EntityUnlockSent { .. }) => true,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Action::ScheduleActivity { name, .. } => format!("call activity `{name}`"),
            Action::CreateTimer { .. } => "create a timer".to_string(),
            Action::StartSubOrchestration { name, .. } => {
                format!("call sub-orchestrator `{name}`")
            }
            Action::SendEvent {
                name, instance_id, ..
            } => {
                format!("send event `{name}` to `{instance_id}`")
            }
            Action::CallEntity {
                entity, operation, ..
            } => format!("call operation `{operation}` on entity `{entity}`"),
            Action::SignalEntity {
                entity, operation, ..
            } => format!("signal operation `{operation}` on entity `{entity}`"),
            Action::LockEntities { lock_set, .. } => format!("lock entities {lock_set:?}"),
            Action::UnlockEntities { .. } => "release a critical section".to_string(),
        }
    }
}

fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::TaskScheduled { name, .. } => format!("a call to activity `{name}`"),
        EventKind::TimerCreated { .. } => "a timer".to_string(),
        EventKind::SubOrchestrationInstanceCreated { name, .. } => {
            format!("a call to sub-orchestrator `{name}`")
        }
        EventKind::EventSent { name, .. } => format!("sending event `{name}`"),
        EventKind::EntityOperationCalled {
            entity_id,
            operation,
            ..
        } => format!("a call to operation `{operation}` on entity `{entity_id}`"),
        EventKind::EntityOperationSignaled {
            entity_id,
            operation,
            ..
        } => format!("a signal of operation `{operation}` to entity `{entity_id}`"),
        EventKind::EntityLockRequested { lock_set, .. } => format!("locking entities {lock_set:?}"),
        EventKind::EntityUnlockSent { .. } => "releasing a critical section".to_string(),
        other => other.name().to_string(),
    }
}

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

struct PendingAction {
    action: Action,
    location: &'static Location<'static>,
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Returned `Ok` with this output JSON.
    Completed(String),
    /// Returned `Err`, panicked, or diverged from history.
    Failed(FailureDetails),
    /// Terminated with this reason JSON.
    Terminated(Option<String>),
    /// Continued as new with this input, carrying these messages over.
    ContinuedAsNew {
        /// The next execution's input JSON.
        input: String,
        /// Messages to deliver to the next execution, in order: unprocessed external events
        /// (when preserving them), and instance-level requests (terminate, suspend, resume)
        /// that arrived in the same batch after the execution ended.
        carried: Vec<HistoryEvent>,
    },
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
    pub now: DateTime<Utc>,
    pub replaying: bool,
    next_id: i64,
    pub guid_counter: u64,
    tasks: HashMap<i64, Slot>,
    completed: std::collections::HashSet<i64>,
    pending: BTreeMap<i64, PendingAction>,
    next_waiter: u64,
    waiters: HashMap<u64, Slot>,
    waiters_by_name: HashMap<String, VecDeque<u64>>,
    buffered: HashMap<String, VecDeque<(u64, String, String)>>,
    next_arrival: u64,
    pub custom_status: Option<String>,
    pub continue_as_new: Option<ContinueAsNew>,
    /// A rule violation found inside a context call; fails the instance at the end of the poll.
    pub violation: Option<Error>,
    /// The critical section this orchestration holds or is acquiring.
    pub critical: Option<CriticalState>,
    woken: bool,
}

impl State {
    fn new(instance_id: String) -> Self {
        State {
            instance_id,
            execution_id: String::new(),
            name: String::new(),
            parent: None,
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
        if needs_slot {
            self.tasks.insert(id, Slot::Waiting(None));
        }
        id
    }

    pub(crate) fn poll_task(&mut self, id: i64, cx: &mut Context<'_>) -> Poll<TaskResult> {
        poll_slot(self.tasks.get_mut(&id), cx)
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
        poll_slot(self.waiters.get_mut(&id), cx)
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

    fn deliver_event(&mut self, name: &str, payload: String) {
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

    fn complete_task(&mut self, id: i64, result: TaskResult) -> bool {
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

    /// Whether step `id` has completed.
    pub(crate) fn is_completed(&self, id: i64) -> bool {
        self.completed.contains(&id)
    }

    fn unprocessed_events(&mut self) -> Vec<(String, String)> {
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
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one turn produced: history to append, actions to carry out, and the instance's state.
#[derive(Debug)]
pub struct TurnOutput {
    /// Events to append to the history, in order.
    pub new_history: Vec<HistoryEvent>,
    /// New steps to carry out.
    pub actions: Vec<Action>,
    /// The custom status JSON, if set.
    pub custom_status: Option<String>,
    /// Set when the execution ended in this turn.
    pub outcome: Option<Outcome>,
    /// Whether the instance is suspended at the end of the turn.
    pub suspended: bool,
}

/// One orchestration instance's replay state: its future and everything its context shares.
pub struct Executor {
    shared: Shared,
    registry: Arc<Registry>,
    future: Option<BoxFuture<Result<String, Error>>>,
    outcome: Option<Outcome>,
    suspended: bool,
    deferred: Vec<HistoryEvent>,
    consumed: usize,
    preserve_events: bool,
}

enum Disposition {
    Record,
    Ignore,
}

impl Executor {
    /// A fresh executor for an instance, with no history applied yet.
    pub fn new(instance_id: &str, registry: Arc<Registry>) -> Self {
        Executor {
            shared: Shared(Arc::new(Mutex::new(State::new(instance_id.to_string())))),
            registry,
            future: None,
            outcome: None,
            suspended: false,
            deferred: Vec::new(),
            consumed: 0,
            preserve_events: false,
        }
    }

    /// How many history events this executor has consumed.
    pub fn history_len(&self) -> usize {
        self.consumed
    }

    /// The execution id the executor is running, once started.
    pub fn execution_id(&self) -> String {
        self.shared.lock().execution_id.clone()
    }

    /// How the execution ended, if it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Replays recorded history (with `is_replaying` set), checking every scheduling step.
    pub fn replay(&mut self, history: &[HistoryEvent]) {
        self.shared.lock().replaying = true;
        for event in history {
            self.consumed += 1;
            if event.kind.is_step() {
                self.match_recorded_step(event);
            } else {
                self.apply(event);
            }
        }
    }

    /// Runs one turn at time `now` with these new events; returns what it produced.
    pub fn run_turn(&mut self, now: DateTime<Utc>, events: Vec<HistoryEvent>) -> TurnOutput {
        self.shared.lock().replaying = false;
        let started = HistoryEvent::new(now, EventKind::OrchestratorStarted);
        self.apply(&started);
        let mut new_history = vec![started];
        for event in events {
            if self.outcome.is_some() {
                // The execution is over: later messages are not applied to it. For a
                // continue-as-new they go to the next execution.
                self.carry_over(event);
                continue;
            }
            if let Disposition::Record = self.apply(&event) {
                new_history.push(event);
            }
        }
        // Steps the code scheduled that history did not contain yet become new actions.
        let (actions, custom_status) = {
            let mut st = self.shared.lock();
            let pending = std::mem::take(&mut st.pending);
            let actions: Vec<Action> = pending.into_values().map(|p| p.action).collect();
            (actions, st.custom_status.clone())
        };
        for action in &actions {
            new_history.push(action.to_event(now));
        }
        // An outcome found while replaying (a nondeterminism) is reported by this turn too.
        let outcome = self.outcome.clone();
        if let Some(outcome) = &outcome {
            new_history.push(HistoryEvent::new(now, completion_event(outcome)));
        }
        new_history.push(HistoryEvent::new(now, EventKind::OrchestratorCompleted));
        self.consumed += new_history.len();
        TurnOutput {
            new_history,
            actions,
            custom_status,
            outcome,
            suspended: self.suspended,
        }
    }

    fn match_recorded_step(&mut self, event: &HistoryEvent) {
        if self.outcome.is_some() && self.future.is_none() {
            if !matches!(self.outcome, Some(Outcome::Failed(_))) {
                let name = self.shared.lock().name.clone();
                self.fail(nondeterminism(
                    &name,
                    format!(
                        "the history recorded {} (step {}), but the code had already returned",
                        describe_event(&event.kind),
                        event.event_id
                    ),
                ));
            }
            return;
        }
        let mut st = self.shared.lock();
        let found = st.pending.remove(&event.event_id);
        let name = st.name.clone();
        drop(st);
        let message = match found {
            Some(p) if p.action.matches(&event.kind) => return,
            Some(p) => format!(
                "the history recorded {} as step {}, but the code now does {} at {}",
                describe_event(&event.kind),
                event.event_id,
                p.action.describe(),
                p.location
            ),
            None => format!(
                "the history recorded {} as step {}, but the code did not schedule it \
                 (it is waiting on something else)",
                describe_event(&event.kind),
                event.event_id
            ),
        };
        self.fail(nondeterminism(&name, message));
    }

    fn apply(&mut self, event: &HistoryEvent) -> Disposition {
        if self.suspended
            && !matches!(
                event.kind,
                EventKind::ExecutionResumed { .. }
                    | EventKind::ExecutionTerminated { .. }
                    | EventKind::OrchestratorStarted
                    | EventKind::OrchestratorCompleted
            )
        {
            self.deferred.push(event.clone());
            return Disposition::Record;
        }
        let disposition = match &event.kind {
            EventKind::OrchestratorStarted => {
                self.shared.lock().now = event.timestamp;
                return Disposition::Record;
            }
            EventKind::ExecutionStarted {
                name,
                input,
                execution_id,
                parent,
            } => {
                if self.future.is_some() || self.outcome.is_some() {
                    return Disposition::Ignore;
                }
                self.start(name, input, execution_id, parent.clone());
                Disposition::Record
            }
            EventKind::TaskCompleted {
                task_scheduled_id,
                result,
            }
            | EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id,
                result,
            } => self.complete(*task_scheduled_id, Ok(result.clone())),
            EventKind::TaskFailed {
                task_scheduled_id,
                failure,
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id,
                failure,
            } => self.complete(*task_scheduled_id, Err(failure.clone())),
            EventKind::TimerFired { timer_id, .. } => {
                self.complete(*timer_id, Ok("null".to_string()))
            }
            EventKind::EntityOperationCompleted {
                task_scheduled_id,
                result,
            } => self.complete(*task_scheduled_id, Ok(result.clone())),
            EventKind::EntityOperationFailed {
                task_scheduled_id,
                failure,
            } => self.complete(*task_scheduled_id, Err(failure.clone())),
            EventKind::EntityLockGranted { task_scheduled_id } => {
                self.complete(*task_scheduled_id, Ok("null".to_string()))
            }
            EventKind::EventRaised { name, input } => {
                self.shared.lock().deliver_event(name, input.clone());
                Disposition::Record
            }
            EventKind::ExecutionSuspended { .. } => {
                self.suspended = true;
                return Disposition::Record;
            }
            EventKind::ExecutionResumed { .. } => {
                if !self.suspended {
                    return Disposition::Ignore;
                }
                self.suspended = false;
                for deferred in std::mem::take(&mut self.deferred) {
                    self.apply(&deferred);
                }
                return Disposition::Record;
            }
            EventKind::ExecutionTerminated { reason } => {
                self.future = None;
                self.outcome = Some(Outcome::Terminated(reason.clone()));
                return Disposition::Record;
            }
            // The host has already rewritten the history (see `Client::rewind`); replaying
            // it is what resumes the execution. The request is kept as a record.
            EventKind::ExecutionRewound { .. } => return Disposition::Record,
            _ => return Disposition::Ignore,
        };
        if let Disposition::Record = disposition {
            self.run_until_blocked();
        }
        disposition
    }

    fn complete(&mut self, id: i64, result: TaskResult) -> Disposition {
        if self.shared.lock().complete_task(id, result) {
            Disposition::Record
        } else {
            Disposition::Ignore
        }
    }

    fn start(
        &mut self,
        name: &str,
        input: &str,
        execution_id: &str,
        parent: Option<ParentInstance>,
    ) {
        {
            let mut st = self.shared.lock();
            st.name = name.to_string();
            st.execution_id = execution_id.to_string();
            st.parent = parent;
        }
        match self.registry.orchestrator(name).cloned() {
            Some(f) => {
                let ctx = OrchestrationContext::new(self.shared.clone());
                let input = input.to_string();
                let replaying = self.shared.lock().replaying;
                let made = guard_replay_logs(replaying, || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx, input)))
                });
                match made {
                    Ok(future) => self.future = Some(future),
                    Err(panic) => self.fail(panicked(name, panic)),
                }
            }
            None => self.fail(Error::new(
                ErrorKind::UnknownFunction,
                format!(
                    "no orchestrator named `{name}` is registered on this host; \
                     register it with `Runtime::builder().register({name})`"
                ),
            )),
        }
    }

    /// Polls the orchestrator until it stops making progress.
    fn run_until_blocked(&mut self) {
        loop {
            let Some(future) = self.future.as_mut() else {
                return;
            };
            let replaying = {
                let mut st = self.shared.lock();
                st.woken = false;
                st.replaying
            };
            let waker = Waker::noop();
            let mut cx = Context::from_waker(waker);
            let polled = guard_replay_logs(replaying, || {
                std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)))
            });
            let (violation, can, woken, name) = {
                let mut st = self.shared.lock();
                (
                    st.violation.take(),
                    st.continue_as_new.take(),
                    st.woken,
                    st.name.clone(),
                )
            };
            if let Some(err) = violation {
                self.fail(err);
                return;
            }
            match polled {
                Err(panic) => {
                    self.fail(panicked(&name, panic));
                    return;
                }
                Ok(Poll::Ready(result)) => {
                    self.future = None;
                    let outcome = match (can, result) {
                        (Some(can), _) => self.continued(can),
                        (None, Ok(output)) => Outcome::Completed(output),
                        (None, Err(err)) => Outcome::Failed(err.to_failure()),
                    };
                    self.outcome = Some(outcome);
                    return;
                }
                Ok(Poll::Pending) => {
                    if let Some(can) = can {
                        self.future = None;
                        let outcome = self.continued(can);
                        self.outcome = Some(outcome);
                        return;
                    }
                    if !woken {
                        return;
                    }
                }
            }
        }
    }

    fn continued(&mut self, can: ContinueAsNew) -> Outcome {
        self.preserve_events = can.preserve_events;
        let carried = if can.preserve_events {
            let mut st = self.shared.lock();
            let now = st.now;
            st.unprocessed_events()
                .into_iter()
                .map(|(name, input)| HistoryEvent::new(now, EventKind::EventRaised { name, input }))
                .collect()
        } else {
            Vec::new()
        };
        Outcome::ContinuedAsNew {
            input: can.input,
            carried,
        }
    }

    fn carry_over(&mut self, event: HistoryEvent) {
        let preserve = self.preserve_events;
        if let Some(Outcome::ContinuedAsNew { carried, .. }) = &mut self.outcome {
            let keep = match event.kind {
                EventKind::EventRaised { .. } => preserve,
                EventKind::ExecutionTerminated { .. }
                | EventKind::ExecutionSuspended { .. }
                | EventKind::ExecutionResumed { .. } => true,
                _ => false,
            };
            if keep {
                carried.push(event);
            }
        }
    }

    fn fail(&mut self, err: Error) {
        self.future = None;
        self.outcome = Some(Outcome::Failed(err.to_failure()));
    }
}

fn completion_event(outcome: &Outcome) -> EventKind {
    match outcome {
        Outcome::Completed(output) => EventKind::ExecutionCompleted {
            status: CompletionStatus::Completed,
            result: Some(output.clone()),
            failure: None,
        },
        Outcome::Failed(failure) => EventKind::ExecutionCompleted {
            status: CompletionStatus::Failed,
            result: None,
            failure: Some(failure.clone()),
        },
        Outcome::Terminated(reason) => EventKind::ExecutionCompleted {
            status: CompletionStatus::Terminated,
            result: reason.clone(),
            failure: None,
        },
        Outcome::ContinuedAsNew { input, .. } => EventKind::ContinueAsNew {
            input: input.clone(),
        },
    }
}

fn nondeterminism(name: &str, detail: String) -> Error {
    Error::new(
        ErrorKind::Nondeterminism,
        format!(
            "nondeterministic orchestrator `{name}`: {detail}. Orchestrator code must make the \
             same calls in the same order on every replay; deploy changed code under a new \
             orchestrator name, or let running instances finish first"
        ),
    )
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

fn panicked(name: &str, panic: Box<dyn std::any::Any + Send>) -> Error {
    Error::new(
        ErrorKind::Panic,
        format!("orchestrator `{name}` panicked: {}", panic_message(&*panic)),
    )
}

/// Runs `f` with `tracing` silenced while replaying, so log lines in orchestrator code are
/// written once, when the code first runs, not again on every replay.
fn guard_replay_logs<R>(replaying: bool, f: impl FnOnce() -> R) -> R {
    if replaying {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
    } else {
        f()
    }
}

/// Who an executor is running: its orchestrator's name, execution and parent.
#[derive(Clone, Debug)]
pub struct ExecutionInfo {
    /// The orchestrator's name.
    pub name: String,
    /// The execution id.
    pub execution_id: String,
    /// The parent, for a sub-orchestration.
    pub parent: Option<ParentInstance>,
}

impl Executor {
    /// The critical section this orchestration holds or is acquiring: its id and entities.
    /// Released by the host when the execution ends in any way.
    pub fn held_locks(&self) -> Option<(i64, Vec<String>)> {
        let st = self.shared.lock();
        st.critical.as_ref().map(|c| (c.id, c.lock_set.clone()))
    }

    /// The orchestrator, execution and parent this executor is running.
    pub fn info(&self) -> ExecutionInfo {
        let st = self.shared.lock();
        ExecutionInfo {
            name: st.name.clone(),
            execution_id: st.execution_id.clone(),
            parent: st.parent.clone(),
        }
    }
}

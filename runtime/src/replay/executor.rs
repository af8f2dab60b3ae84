//! The replay core: pure, synchronous, I/O-free.
//!
//! An [`Executor`] owns one orchestration's future and the state its context shares. It is fed
//! history events one at a time, in order; after each it polls the orchestrator until it blocks.
//! Replaying old history and running a new turn are the same operation — the only difference is
//! whether `is_replaying` is set and whether scheduling steps are *checked* against the history
//! (replay) or *emitted* as new actions (new turn). So `when_any`, `select!` and `join!` resolve
//! identically on every replay, and a cached executor resumes without replaying at all.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};

use super::action::{Action, describe_event};
use super::state::{ContinueAsNew, Shared, State, TaskResult};
use crate::model::BoxFuture;
use crate::model::history::{CompletionStatus, EventKind, HistoryEvent, ParentInstance};
use crate::model::{Error, ErrorKind, FailureDetails};

/// The orchestrator an executor runs, with its types erased: started on the state the
/// executor shares with its context, given the execution's input JSON.
pub(crate) type StartFn =
    Arc<dyn Fn(Shared, String) -> BoxFuture<Result<String, Error>> + Send + Sync>;

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
    pub(super) shared: Shared,
    orchestrator: Option<StartFn>,
    future: Option<BoxFuture<Result<String, Error>>>,
    outcome: Option<Outcome>,
    suspended: bool,
    deferred: Vec<HistoryEvent>,
    consumed: usize,
    preserve_events: bool,
    pub(super) divergence: Option<Divergence>,
}

/// Where replay first found the code diverging from its history: the recorded step, and the
/// code's call site when there is one (the step it took instead, or its last step).
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The recorded step's id.
    pub step: i64,
    /// Where the code took the step that differs (`file:line:column`).
    pub call_site: Option<String>,
}

enum Disposition {
    Record,
    Ignore,
}

impl Executor {
    /// A fresh executor for an instance, with no history applied yet.
    ///
    /// `orchestrator` is the code to run, looked up by the host under the instance's name;
    /// `None` when this host has no orchestrator of that name (the execution then fails when
    /// it starts, saying so).
    pub fn new(instance_id: &str, orchestrator: Option<StartFn>) -> Self {
        Executor {
            shared: Shared(Arc::new(Mutex::new(State::new(instance_id.to_string())))),
            orchestrator,
            future: None,
            outcome: None,
            suspended: false,
            deferred: Vec::new(),
            consumed: 0,
            preserve_events: false,
            divergence: None,
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
        {
            let mut st = self.shared.lock();
            st.replaying = true;
            // Read ahead: `patched` must know whether this execution passed a patch point on
            // patched code before the replay reaches the marker.
            st.recorded_patches
                .extend(history.iter().filter_map(|e| match &e.kind {
                    EventKind::Patched { patch_id } => Some(patch_id.clone()),
                    _ => None,
                }));
        }
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
        self.check_durable_wait();
        // Steps the code scheduled that history did not contain yet become new actions.
        let (actions, custom_status, patches) = {
            let mut st = self.shared.lock();
            let pending = std::mem::take(&mut st.pending);
            let actions: Vec<Action> = pending.into_values().map(|p| p.action).collect();
            let patches = std::mem::take(&mut st.new_patches);
            (actions, st.custom_status.clone(), patches)
        };
        // Patch points first reached in this turn, before the steps they guard.
        new_history.extend(
            patches
                .into_iter()
                .map(|patch_id| HistoryEvent::new(now, EventKind::Patched { patch_id })),
        );
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
                self.diverged(event.event_id, None);
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
        let found = self.shared.lock().pending.remove(&event.event_id);
        let message = match found {
            Some(p) if p.action.matches(&event.kind) => return,
            Some(p) => {
                self.diverged(event.event_id, Some(p.location.to_string()));
                format!(
                    "the history recorded {} as step {}, but the code now {} at {}",
                    describe_event(&event.kind),
                    event.event_id,
                    p.action.describe(),
                    p.location
                )
            }
            None => {
                let last = self.shared.lock().last_step();
                self.diverged(event.event_id, last.map(|(_, at)| at.to_string()));
                let code = match last {
                    Some((step, location)) => format!(
                        "after its last step (step {step}, at {location}) it waits on \
                         something else"
                    ),
                    None => "it scheduled no step and waits on something else".to_string(),
                };
                format!(
                    "the history recorded {} as step {}, but the code did not schedule it: {code}",
                    describe_event(&event.kind),
                    event.event_id
                )
            }
        };
        let name = self.shared.lock().name.clone();
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
                version,
            } => {
                if self.future.is_some() || self.outcome.is_some() {
                    return Disposition::Ignore;
                }
                self.shared.lock().version = version.clone();
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
        match self.orchestrator.clone() {
            Some(start) => {
                let shared = self.shared.clone();
                let input = input.to_string();
                let replaying = self.shared.lock().replaying;
                let made = guard_replay_logs(replaying, || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| start(shared, input)))
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

    /// Fails the execution when its code is blocked with nothing durable outstanding: it
    /// awaits a future that did not come from its context, which no history event can wake,
    /// so it would hang forever.
    fn check_durable_wait(&mut self) {
        if self.outcome.is_some() || self.future.is_none() {
            return;
        }
        let st = self.shared.lock();
        if st.has_outstanding() {
            return;
        }
        let last = match st.last_step() {
            Some((step, location)) => format!(" Its last step was step {step}, at {location}."),
            None => String::new(),
        };
        let name = st.name.clone();
        drop(st);
        self.fail(Error::new(
            ErrorKind::NonDurableWait,
            format!(
                "orchestrator `{name}` is waiting on something that is not durable: it has no \
                 activity, timer, event wait, sub-orchestration or entity call outstanding, so \
                 nothing its history records can ever wake it. It awaits a future that did not \
                 come from its OrchestrationContext (a channel, `tokio::time::sleep`, a lock, a \
                 spawned task). Await only the context's futures: `ctx.sleep` for delays, \
                 `ctx.wait_for_event` for signals from outside, activities for I/O.{last}"
            ),
        ));
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

impl Executor {
    fn diverged(&mut self, step: i64, call_site: Option<String>) {
        if self.divergence.is_none() {
            self.divergence = Some(Divergence { step, call_site });
        }
    }
}

//! Replay checks: a recorded history replayed against the current code, in process, with no
//! store and no host — the replay core's own step comparison, reported as a value.

use std::sync::Arc;

use crate::context::{OrchestrationContext, Orchestrator};
use crate::model::ErrorKind;
use crate::model::history::{CompletionStatus, EventKind, HistoryEvent, HistoryFile};
use crate::registry::Registry;
use crate::replay::{Executor, Outcome, StartFn};

/// Where replayed code no longer matches its history, or why the history could not be
/// replayed. Its message is the runtime's own nondeterminism error when there is one: it
/// names what the history recorded, what the code does now, and where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ReplayDivergence {
    /// The instance the history belongs to.
    pub instance_id: String,
    /// The orchestrator the history ran (empty when the history names none).
    pub orchestrator: String,
    /// The recorded step where the code diverged (the step number the runtime's messages
    /// use); `None` when the divergence is not at a step (the code ends differently).
    pub step: Option<i64>,
    /// The code's call site involved (`file:line:column`), when known.
    pub call_site: Option<String>,
    /// What diverged, in words.
    pub message: String,
}

/// What [`replay_check`] replays a history against: an orchestrator's handle, or a
/// [`Registry`] holding the orchestrators that histories may name.
pub trait ReplayTarget {
    /// The orchestrators, by name.
    fn into_registry(self) -> Registry;
}

impl<O: Orchestrator> ReplayTarget for O {
    fn into_registry(self) -> Registry {
        let mut registry = Registry::default();
        registry.add_orchestrator::<O>();
        registry
    }
}

impl ReplayTarget for Registry {
    fn into_registry(self) -> Registry {
        self
    }
}

impl ReplayTarget for &Registry {
    fn into_registry(self) -> Registry {
        self.clone()
    }
}

/// A history to replay, with the id of the instance it belongs to (replay derives ids from
/// it: `new_guid`, sub-orchestration ids): an exported [`HistoryFile`], or a pair of the
/// instance id and its events.
pub trait ReplayHistory {
    /// The instance id.
    fn instance_id(&self) -> &str;
    /// The events, in order.
    fn events(&self) -> &[HistoryEvent];
}

impl ReplayHistory for HistoryFile {
    fn instance_id(&self) -> &str {
        &self.instance.instance_id
    }
    fn events(&self) -> &[HistoryEvent] {
        &self.history
    }
}

impl<H: ReplayHistory> ReplayHistory for &H {
    fn instance_id(&self) -> &str {
        (**self).instance_id()
    }
    fn events(&self) -> &[HistoryEvent] {
        (**self).events()
    }
}

impl<S: AsRef<str>, E: AsRef<[HistoryEvent]>> ReplayHistory for (S, E) {
    fn instance_id(&self) -> &str {
        self.0.as_ref()
    }
    fn events(&self) -> &[HistoryEvent] {
        self.1.as_ref()
    }
}

/// Replays `history` against the current code of its orchestrator, as the runtime would
/// after a restart, and reports the first divergence: every recorded step is compared in full
/// with the step the code takes (kind, name, input, instance id, due time, entity and
/// operation), exactly as in production. A history that recorded the execution's end must
/// also end the same way (completed, failed, continued as new); a history still running passes
/// when the code takes the steps it recorded, whatever it does next.
///
/// Activities are not run: their recorded results are replayed.
///
/// ```
/// use durable::history::HistoryFile;
/// use durable::prelude::*;
/// use durable::testing::replay_check;
///
/// #[orchestrator]
/// async fn greet(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
///     Ok(format!("Hello {name}!"))
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In a test: `HistoryFile::from_json(include_str!("histories/greet.json"))?`, a file
/// // written by `durable history export`.
/// let exported = r#"{"format":"durable-history","version":1,
///   "instance":{"instanceId":"g-1","name":"greet","executionId":"e1",
///     "runtimeStatus":"Completed","createdAt":"2026-01-01T00:00:00Z",
///     "lastUpdatedAt":"2026-01-01T00:00:00Z"},
///   "history":[
///     {"eventId":-1,"timestamp":"2026-01-01T00:00:00Z","eventType":"OrchestratorStarted"},
///     {"eventId":-1,"timestamp":"2026-01-01T00:00:00Z","eventType":"ExecutionStarted",
///      "name":"greet","input":"\"Ada\"","executionId":"e1"},
///     {"eventId":-1,"timestamp":"2026-01-01T00:00:00Z","eventType":"ExecutionCompleted",
///      "status":"Completed","result":"\"Hello Ada!\""},
///     {"eventId":-1,"timestamp":"2026-01-01T00:00:00Z","eventType":"OrchestratorCompleted"}]}"#;
/// replay_check(greet, HistoryFile::from_json(exported)?)?;
/// # Ok(()) }
/// ```
pub fn replay_check(
    target: impl ReplayTarget,
    history: impl ReplayHistory,
) -> Result<(), ReplayDivergence> {
    let registry = target.into_registry();
    let events = history.events();
    let instance_id = history.instance_id().to_string();
    let divergence = |orchestrator: &str, step, call_site, message: String| ReplayDivergence {
        instance_id: instance_id.clone(),
        orchestrator: orchestrator.to_string(),
        step,
        call_site,
        message,
    };
    let Some(name) = events.iter().find_map(|e| match &e.kind {
        EventKind::ExecutionStarted { name, .. } => Some(name.as_str()),
        _ => None,
    }) else {
        return Err(divergence(
            "",
            None,
            None,
            format!(
                "the history of `{instance_id}` has no ExecutionStarted event, so there is \
                 nothing to replay"
            ),
        ));
    };
    let Some(f) = registry.orchestrator(name).cloned() else {
        return Err(divergence(
            name,
            None,
            None,
            format!(
                "the history of `{instance_id}` ran orchestrator `{name}`, which the code given \
                 to replay_check does not have; pass its handle, or a registry that registers it"
            ),
        ));
    };
    let start: StartFn = Arc::new(move |shared, input| f(OrchestrationContext::new(shared), input));
    let mut executor = Executor::new(&instance_id, Some(start));
    executor.replay(events);

    let failure = match executor.outcome() {
        Some(Outcome::Failed(failure)) => Some(failure.clone()),
        _ => None,
    };
    if let Some(found) = executor.divergence() {
        let message = failure.map_or_else(String::new, |f| f.message);
        return Err(divergence(
            name,
            Some(found.step),
            found.call_site.clone(),
            message,
        ));
    }
    let recorded = recorded_end(events);
    let code = executor.outcome().map(ending);
    match (recorded, code) {
        (Some(recorded), Some(code)) if recorded == code => Ok(()),
        (Some(recorded), None) => {
            let (step, call_site, what) = match executor.unrecorded_steps().into_iter().next() {
                Some((step, what, at)) => (Some(step), Some(at.clone()), format!("{what} at {at}")),
                None => (None, None, "waits on an event or a timer".to_string()),
            };
            Err(divergence(
                name,
                step,
                call_site,
                format!(
                    "nondeterministic orchestrator `{name}`: the history recorded that the \
                     execution {recorded}, but the code now {what}"
                ),
            ))
        }
        (Some(recorded), Some(code)) => Err(divergence(
            name,
            None,
            None,
            format!(
                "orchestrator `{name}`: the history recorded that the execution {recorded}, but \
                 the code now {code}{}",
                detail(executor.outcome())
            ),
        )),
        // Still running in the history: the code failing where the history did not is the
        // one way it can go wrong (a panic while replaying, say).
        (None, Some(Ending::Failed)) => Err(divergence(
            name,
            None,
            None,
            format!(
                "orchestrator `{name}` fails while replaying a history that did not fail{}",
                detail(executor.outcome())
            ),
        )),
        (None, _) => Ok(()),
    }
}

/// How an execution ended, as far as a replay check compares it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    Completed,
    Failed,
    Terminated,
    ContinuedAsNew,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ending::Completed => "completed",
            Ending::Failed => "failed",
            Ending::Terminated => "was terminated",
            Ending::ContinuedAsNew => "continued as new",
        })
    }
}

fn ending(outcome: &Outcome) -> Ending {
    match outcome {
        Outcome::Completed(_) => Ending::Completed,
        Outcome::Failed(_) => Ending::Failed,
        Outcome::Terminated(_) => Ending::Terminated,
        Outcome::ContinuedAsNew { .. } => Ending::ContinuedAsNew,
    }
}

fn recorded_end(history: &[HistoryEvent]) -> Option<Ending> {
    history.iter().rev().find_map(|e| match &e.kind {
        EventKind::ExecutionCompleted { status, .. } => Some(match status {
            CompletionStatus::Completed => Ending::Completed,
            CompletionStatus::Failed => Ending::Failed,
            CompletionStatus::Terminated => Ending::Terminated,
        }),
        EventKind::ContinueAsNew { .. } => Some(Ending::ContinuedAsNew),
        EventKind::ExecutionTerminated { .. } => Some(Ending::Terminated),
        _ => None,
    })
}

/// The code's failure, for a message: ": <kind>: <message>".
fn detail(outcome: Option<&Outcome>) -> String {
    match outcome {
        Some(Outcome::Failed(f)) if f.error_type == ErrorKind::Panic.as_str() => {
            format!(": {}", f.message)
        }
        Some(Outcome::Failed(f)) => format!(": {} ({})", f.message, f.error_type),
        _ => String::new(),
    }
}

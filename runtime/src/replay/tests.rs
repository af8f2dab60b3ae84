//! The replay core on its own: no store, no host — history in, actions and history out.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, Executor, Outcome, StartFn};
use crate::context::{Activity, ActivityContext, OrchestrationContext};
use crate::model::history::{EventKind, HistoryEvent};
use crate::model::{BoxFuture, Error};

/// `add_one`, by hand: what `#[activity]` generates, minus the macro.
#[derive(Clone, Copy)]
struct AddOne;

impl Activity for AddOne {
    type Input = i64;
    type Output = i64;
    const NAME: &'static str = "add_one";
    fn run(_ctx: ActivityContext, n: i64) -> BoxFuture<Result<i64, Error>> {
        Box::pin(async move { Ok(n + 1) })
    }
}

/// An orchestrator calling `add_one` twice, as the host hands it to an executor.
fn two_steps() -> Option<StartFn> {
    Some(Arc::new(|shared, input| {
        let ctx = OrchestrationContext::new(shared);
        Box::pin(async move {
            let n: i64 = serde_json::from_str(&input).map_err(Error::from)?;
            let a = ctx.call_activity(AddOne, n).await?;
            let b = ctx.call_activity(AddOne, a).await?;
            Ok(b.to_string())
        })
    }))
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(secs)
}

fn started(input: &str) -> HistoryEvent {
    HistoryEvent::new(
        t(0),
        EventKind::ExecutionStarted {
            name: "two_steps".into(),
            input: input.into(),
            execution_id: "e1".into(),
            parent: None,
            version: None,
        },
    )
}

fn completed(id: i64, result: &str) -> HistoryEvent {
    HistoryEvent::new(
        t(1),
        EventKind::TaskCompleted {
            task_scheduled_id: id,
            result: result.into(),
        },
    )
}

#[test]
fn a_turn_turns_events_into_actions_and_history() {
    let mut ex = Executor::new("i", two_steps());
    let out = ex.run_turn(t(0), vec![started("1")]);
    assert_eq!(
        out.actions,
        [Action::ScheduleActivity {
            id: 0,
            name: "add_one".into(),
            input: "1".into()
        }]
    );
    let kinds: Vec<_> = out.new_history.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "OrchestratorStarted",
            "ExecutionStarted",
            "TaskScheduled",
            "OrchestratorCompleted"
        ]
    );
    assert_eq!(out.new_history[2].event_id, 0);
    assert!(out.outcome.is_none());
}

#[test]
fn duplicate_and_unknown_completions_are_ignored() {
    let mut ex = Executor::new("i", two_steps());
    ex.run_turn(t(0), vec![started("1")]);
    let out = ex.run_turn(
        t(1),
        vec![completed(0, "2"), completed(0, "2"), completed(7, "99")],
    );
    // Only the first completion is recorded; the duplicate and the unknown step are dropped.
    let recorded: Vec<_> = out
        .new_history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(out.actions.len(), 1, "the second step is scheduled once");
    let out = ex.run_turn(t(2), vec![completed(1, "3"), completed(1, "3")]);
    assert_eq!(out.outcome, Some(Outcome::Completed("3".into())));
}

#[test]
fn replaying_the_recorded_history_reaches_the_same_state() {
    let mut live = Executor::new("i", two_steps());
    let mut history = Vec::new();
    history.extend(live.run_turn(t(0), vec![started("10")]).new_history);
    history.extend(live.run_turn(t(1), vec![completed(0, "11")]).new_history);

    let mut replayed = Executor::new("i", two_steps());
    replayed.replay(&history);
    assert_eq!(replayed.history_len(), history.len());
    let a = live.run_turn(t(2), vec![completed(1, "12")]);
    let b = replayed.run_turn(t(2), vec![completed(1, "12")]);
    assert_eq!(a.new_history, b.new_history);
    assert_eq!(a.outcome, Some(Outcome::Completed("12".into())));
    assert_eq!(b.outcome, a.outcome);
}

#[test]
fn a_recorded_step_of_another_kind_is_a_nondeterminism() {
    let history = vec![
        HistoryEvent::new(t(0), EventKind::OrchestratorStarted),
        started("1"),
        HistoryEvent {
            event_id: 0,
            timestamp: t(0),
            kind: EventKind::TimerCreated { fire_at: t(5) },
        },
        HistoryEvent::new(t(0), EventKind::OrchestratorCompleted),
    ];
    let mut ex = Executor::new("i", two_steps());
    ex.replay(&history);
    let out = ex.run_turn(t(5), vec![]);
    match out.outcome {
        Some(Outcome::Failed(f)) => {
            assert_eq!(f.error_type, "Nondeterminism");
            assert!(
                f.message.contains(
                    "recorded a timer due at 1970-01-01T00:00:05Z as step 0, but the code now \
                     calls activity `add_one` with input `1` at runtime/src/replay/tests.rs:"
                ),
                "{}",
                f.message
            );
        }
        other => panic!("expected a nondeterminism failure, got {other:?}"),
    }
}

#[test]
fn history_events_round_trip_through_json() {
    let event = completed(3, "{\"a\":1}");
    let json = serde_json::to_string(&event).unwrap();
    assert!(json.contains("\"eventType\":\"TaskCompleted\""), "{json}");
    assert!(json.contains("\"taskScheduledId\":3"), "{json}");
    let back: HistoryEvent = serde_json::from_str(&json).unwrap();
    assert_eq!(back, event);
}

/// `add_one` on the input, or — behind patch `p` — on 100; answers which branch it took.
fn patchy() -> Option<StartFn> {
    Some(Arc::new(|shared, input| {
        let ctx = OrchestrationContext::new(shared);
        Box::pin(async move {
            let n: i64 = serde_json::from_str(&input).map_err(Error::from)?;
            let patched = ctx.patched("p");
            let from = if patched { 100 } else { n };
            let out = ctx.call_activity(AddOne, from).await?;
            // The first answer holds for the rest of the execution.
            assert_eq!(ctx.patched("p"), patched);
            Ok(format!("{patched}:{out}"))
        })
    }))
}

#[test]
fn patched_is_false_on_replay_of_a_history_from_before_the_patch() {
    // Recorded by code without the patch: add_one(1) as step 0.
    let mut old = Executor::new("i", two_steps());
    let history = old.run_turn(t(0), vec![started("1")]).new_history;
    let mut ex = Executor::new("i", patchy());
    ex.replay(&history);
    let out = ex.run_turn(t(1), vec![completed(0, "2")]);
    assert_eq!(out.outcome, Some(Outcome::Completed("false:2".into())));
    assert!(
        !out.new_history
            .iter()
            .any(|e| matches!(e.kind, EventKind::Patched { .. })),
        "no marker for an execution that passed the point before the patch"
    );
}

#[test]
fn patched_code_records_the_marker_and_its_replay_takes_the_patched_branch() {
    let mut live = Executor::new("i", patchy());
    let first = live.run_turn(t(0), vec![started("1")]);
    let kinds: Vec<_> = first.new_history.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "OrchestratorStarted",
            "ExecutionStarted",
            "Patched",
            "TaskScheduled",
            "OrchestratorCompleted"
        ]
    );
    assert_eq!(
        first.actions,
        [Action::ScheduleActivity {
            id: 0,
            name: "add_one".into(),
            input: "100".into()
        }]
    );
    let mut replayed = Executor::new("i", patchy());
    replayed.replay(&first.new_history);
    let out = replayed.run_turn(t(1), vec![completed(0, "101")]);
    assert_eq!(out.outcome, Some(Outcome::Completed("true:101".into())));
    let markers = out
        .new_history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Patched { .. }))
        .count();
    assert_eq!(markers, 0, "recorded once, not again on replay");
}

//! Commit building without a store: what each kind of turn turns into.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::model::Ids;
use crate::replay::ExecutionInfo;
use crate::store::LockToken;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(secs)
}

fn item() -> OrchestrationWorkItem {
    OrchestrationWorkItem {
        instance_id: "order-1".into(),
        instance: InstanceStatus {
            instance_id: "order-1".into(),
            name: "checkout".into(),
            execution_id: "e1".into(),
            runtime_status: RuntimeStatus::Running,
            input: Some("7".into()),
            output: None,
            custom_status: None,
            failure: None,
            created_at: t(0),
            last_updated_at: t(0),
            parent_instance_id: None,
            version: Some("3.0".into()),
            history: None,
        },
        history_len: 3,
        messages: Vec::new(),
        lock: LockToken("lock".into()),
        dequeue_count: 1,
        fence: None,
        read_in: None,
    }
}

fn info(parent: Option<ParentInstance>) -> ExecutionInfo {
    ExecutionInfo {
        name: "checkout".into(),
        execution_id: "e1".into(),
        parent,
    }
}

fn parent() -> ParentInstance {
    ParentInstance {
        name: "orders".into(),
        instance_id: "orders-run".into(),
        execution_id: "p1".into(),
        task_scheduled_id: 4,
    }
}

fn turn(actions: Vec<Action>, outcome: Option<Outcome>) -> TurnOutput {
    TurnOutput {
        new_history: vec![HistoryEvent::new(t(9), EventKind::OrchestratorStarted)],
        actions,
        custom_status: Some("\"busy\"".into()),
        outcome,
        suspended: false,
    }
}

fn every_action() -> Vec<Action> {
    vec![
        Action::ScheduleActivity {
            id: 0,
            name: "charge".into(),
            input: "7".into(),
        },
        Action::CreateTimer {
            id: 1,
            fire_at: t(60),
        },
        Action::StartSubOrchestration {
            id: 2,
            name: "ship".into(),
            instance_id: "order-1:2".into(),
            input: "\"box\"".into(),
        },
        Action::SendEvent {
            id: 3,
            instance_id: "other".into(),
            name: "Ping".into(),
            input: "1".into(),
        },
        Action::CallEntity {
            id: 4,
            entity: "@counter@a".into(),
            operation: "add".into(),
            input: "1".into(),
        },
        Action::SignalEntity {
            id: 5,
            entity: "@counter@b".into(),
            operation: "reset".into(),
            input: "null".into(),
            at: Some(t(30)),
        },
    ]
}

#[test]
fn a_running_turn_appends_its_history_and_carries_out_every_action() {
    let commit = build_commit(
        &item(),
        &info(None),
        turn(every_action(), None),
        vec![11, 12],
        t(9),
        &Ids::random(),
    );
    assert_eq!(commit.consumed, [11, 12]);
    assert!(matches!(&commit.history, HistoryWrite::Append(h) if h.len() == 1));
    assert_eq!(commit.status.runtime_status, RuntimeStatus::Running);
    assert_eq!(commit.status.custom_status.as_deref(), Some("\"busy\""));
    assert_eq!(
        commit.status.input.as_deref(),
        Some("7"),
        "the input is kept"
    );
    assert_eq!(commit.status.last_updated_at, t(9));

    assert_eq!(
        commit.activities,
        [ActivityTask {
            instance_id: "order-1".into(),
            execution_id: "e1".into(),
            task_id: 0,
            name: "charge".into(),
            input: "7".into(),
        }]
    );
    let [child] = commit.new_instances.as_slice() else {
        panic!("one child expected: {:?}", commit.new_instances);
    };
    assert_eq!(
        (child.instance_id.as_str(), child.name.as_str()),
        ("order-1:2", "ship")
    );
    let link = child.parent.as_ref().expect("the child knows its parent");
    assert_eq!(
        (link.instance_id.as_str(), link.execution_id.as_str()),
        ("order-1", "e1")
    );
    assert_eq!(link.task_scheduled_id, 2);

    let targets: Vec<(&str, &str, Option<DateTime<Utc>>)> = commit
        .messages
        .iter()
        .map(|m| (m.instance_id.as_str(), m.event.kind.name(), m.visible_at))
        .collect();
    assert_eq!(
        targets,
        [
            ("order-1", "TimerFired", Some(t(60))),
            ("other", "EventRaised", None),
            ("@counter@a", "EntityOperationCalled", None),
            ("@counter@b", "EntityOperationSignaled", Some(t(30))),
        ]
    );
    // The timer answers this execution only; the entity call knows whom to answer.
    assert_eq!(commit.messages[0].execution_id.as_deref(), Some("e1"));
    match &commit.messages[2].event.kind {
        EventKind::EntityOperationCalled {
            caller: Some(caller),
            ..
        } => assert_eq!(
            (caller.instance_id.as_str(), caller.task_scheduled_id),
            ("order-1", 4)
        ),
        other => panic!("an entity call expected, got {other:?}"),
    }
}

#[test]
fn a_finished_sub_orchestration_answers_its_parent_step() {
    let commit = build_commit(
        &item(),
        &info(Some(parent())),
        turn(Vec::new(), Some(Outcome::Completed("42".into()))),
        vec![1],
        t(9),
        &Ids::random(),
    );
    assert_eq!(commit.status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(commit.status.output.as_deref(), Some("42"));
    assert_eq!(
        commit.status.parent_instance_id.as_deref(),
        Some("orders-run")
    );
    let [answer] = commit.messages.as_slice() else {
        panic!("one answer expected: {:?}", commit.messages);
    };
    assert_eq!(answer.instance_id, "orders-run");
    assert_eq!(answer.execution_id.as_deref(), Some("p1"));
    assert_eq!(
        answer.event.kind,
        EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id: 4,
            result: "42".into()
        }
    );
}

#[test]
fn a_failed_or_terminated_execution_starts_nothing_but_releases_its_locks() {
    let mut actions = every_action();
    actions.push(Action::UnlockEntities {
        id: 6,
        critical_section: 3,
        lock_set: vec!["@account@a".into(), "@account@b".into()],
    });
    let failure = FailureDetails {
        error_type: "Application".into(),
        message: "declined".into(),
        cause: None,
    };
    for outcome in [
        Outcome::Failed(failure.clone()),
        Outcome::Terminated(Some("\"stop\"".into())),
    ] {
        let commit = build_commit(
            &item(),
            &info(Some(parent())),
            turn(actions.clone(), Some(outcome.clone())),
            vec![1],
            t(9),
            &Ids::random(),
        );
        assert!(commit.activities.is_empty(), "{outcome:?}");
        assert!(commit.new_instances.is_empty(), "{outcome:?}");
        let kinds: Vec<(&str, &str)> = commit
            .messages
            .iter()
            .map(|m| (m.instance_id.as_str(), m.event.kind.name()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("@account@a", "EntityUnlockSent"),
                ("@account@b", "EntityUnlockSent"),
                ("orders-run", "SubOrchestrationInstanceFailed"),
            ],
            "{outcome:?}"
        );
    }
    let terminated = build_commit(
        &item(),
        &info(None),
        turn(
            Vec::new(),
            Some(Outcome::Terminated(Some("\"stop\"".into()))),
        ),
        vec![1],
        t(9),
        &Ids::random(),
    );
    assert_eq!(terminated.status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(terminated.status.output.as_deref(), Some("\"stop\""));
}

#[test]
fn continue_as_new_resets_the_history_and_starts_the_next_execution() {
    let carried = HistoryEvent::new(
        t(8),
        EventKind::EventRaised {
            name: "Add".into(),
            input: "2".into(),
        },
    );
    let commit = build_commit(
        &item(),
        &info(None),
        turn(
            Vec::new(),
            Some(Outcome::ContinuedAsNew {
                input: "8".into(),
                carried: vec![carried.clone()],
            }),
        ),
        vec![1],
        t(9),
        &Ids::random(),
    );
    assert!(matches!(commit.history, HistoryWrite::Reset));
    assert_eq!(commit.status.runtime_status, RuntimeStatus::ContinuedAsNew);
    assert_eq!(commit.status.input.as_deref(), Some("8"));
    assert_ne!(commit.status.execution_id, "e1", "a new execution");
    let [start, event] = commit.messages.as_slice() else {
        panic!(
            "a start and the carried event expected: {:?}",
            commit.messages
        );
    };
    assert_eq!(
        start.event.kind,
        EventKind::ExecutionStarted {
            name: "checkout".into(),
            input: "8".into(),
            execution_id: commit.status.execution_id.clone(),
            parent: None,
            version: Some("3.0".into()),
        },
        "the next execution keeps the instance's version"
    );
    assert_eq!(commit.status.version.as_deref(), Some("3.0"));
    assert_eq!(
        event.event, carried,
        "unprocessed events go to the next execution"
    );
}

#[test]
fn a_suspended_instance_is_recorded_as_suspended() {
    let mut out = turn(Vec::new(), None);
    out.suspended = true;
    let commit = build_commit(&item(), &info(None), out, vec![1], t(9), &Ids::random());
    assert_eq!(commit.status.runtime_status, RuntimeStatus::Suspended);
}

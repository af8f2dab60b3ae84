//! Writes that reach a store together (a store may write them in one batch) each get their own
//! answer, and a refused one leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use durable::RuntimeStatus;
use durable::history::{EventKind, HistoryEvent};
use durable::store::{
    ActivityTask, ActivityWorkItem, Fetched, HistoryWrite, InstanceVersion, NewInstance,
    OrchestrationMessage, Owned, ResultsCommit, Store, StoreError, TurnCommit,
};

const LEASE: Duration = Duration::from_secs(300);

/// Instances whose result turn commits.
const COMMITTED: usize = 16;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
}

fn new_instance(id: &str) -> NewInstance {
    NewInstance {
        instance_id: id.into(),
        name: "Flow".into(),
        input: "null".into(),
        execution_id: "e1".into(),
        parent: None,
        created_at: at(0),
        start_at: None,
        replace_running: false,
        version: None,
    }
}

fn running(new: &NewInstance, when: DateTime<Utc>) -> durable::InstanceStatus {
    durable::InstanceStatus {
        runtime_status: RuntimeStatus::Running,
        last_updated_at: when,
        ..new.initial_status()
    }
}

fn completed(id: &str, task_id: i64) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: id.into(),
        execution_id: Some("e1".into()),
        event: HistoryEvent::new(
            at(2),
            EventKind::TaskCompleted {
                task_scheduled_id: task_id,
                result: "2".into(),
            },
        ),
        visible_at: None,
    }
}

/// Starts `id` with a first turn that holds `activities` activities for the caller.
async fn started(store: &dyn Store, id: &str, activities: i64) -> Vec<ActivityWorkItem> {
    let new = new_instance(id);
    store.create_instance(new.clone()).await.unwrap();
    let item = match store
        .fetch_orchestration(at(0), LEASE, &Owned::Everything)
        .await
        .unwrap()
    {
        Fetched::Item(item) if item.instance_id == id => item,
        Fetched::Item(other) => panic!("fetched {} instead of {id}", other.instance_id),
        Fetched::Empty { .. } => panic!("{id}'s start is not fetched"),
    };
    let tasks = (0..activities)
        .map(|task_id| ActivityTask {
            instance_id: id.into(),
            execution_id: "e1".into(),
            task_id,
            name: "Step".into(),
            input: "1".into(),
        })
        .collect();
    let first = TurnCommit {
        consumed: item.messages.iter().map(|m| m.seq).collect(),
        history: HistoryWrite::Append(vec![new.start_message().event]),
        status: running(&new, at(1)),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    };
    store
        .commit_turn_holding(&item, first, tasks, LEASE)
        .await
        .unwrap()
}

/// The result turn of `id` for `held`, computed from history length `from`.
fn result_turn(
    id: &str,
    held: &[ActivityWorkItem],
    from: usize,
) -> (
    Vec<(ActivityWorkItem, OrchestrationMessage)>,
    InstanceVersion,
    TurnCommit,
) {
    let results: Vec<_> = held
        .iter()
        .map(|item| (item.clone(), completed(id, item.task.task_id)))
        .collect();
    let commit = TurnCommit {
        consumed: Vec::new(),
        history: HistoryWrite::Append(results.iter().map(|(_, m)| m.event.clone()).collect()),
        status: running(&new_instance(id), at(2)),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    };
    let version = InstanceVersion {
        instance_id: id.into(),
        execution_id: "e1".into(),
        history_len: from,
        last_updated_at: at(1),
        fence: None,
    };
    (results, version, commit)
}

/// Result turns: committed, queued because their instance moved on, or refused because an
/// activity's lease is gone (all of its activities, or one of two).
pub async fn result_turns_arriving_together_each_get_their_own_answer(store: Arc<dyn Store>) {
    let mut jobs = Vec::new();
    for i in 0..COMMITTED {
        let id = format!("rt-{i}");
        let held = started(&*store, &id, 1).await;
        jobs.push((id.clone(), result_turn(&id, &held, 1)));
    }
    // Computed from a history length the instance no longer has: queued.
    let held = started(&*store, "rt-moved-on", 1).await;
    jobs.push(("rt-moved-on".into(), result_turn("rt-moved-on", &held, 7)));
    // Its activity's result was already recorded (its lease is gone): refused.
    let lost = started(&*store, "rt-lost", 1).await;
    // One of its two activities is gone: refused, and the other one stays held.
    let half = started(&*store, "rt-half", 2).await;
    for (id, item) in [("rt-lost", &lost[0]), ("rt-half", &half[0])] {
        store
            .complete_activity(item, completed(id, 0))
            .await
            .unwrap();
    }
    jobs.push(("rt-lost".into(), result_turn("rt-lost", &lost, 1)));
    jobs.push(("rt-half".into(), result_turn("rt-half", &half, 1)));
    let still_held = half[1].clone();

    let mut running = Vec::new();
    for (id, (results, version, commit)) in jobs {
        let store = store.clone();
        running.push(tokio::spawn(async move {
            let done = store
                .complete_activities_and_commit(results, version, commit, Vec::new(), LEASE)
                .await;
            (id, done)
        }));
    }
    for task in running {
        let (id, done) = task.await.unwrap();
        let history = store.history(&id).await.unwrap().len();
        match id.as_str() {
            "rt-moved-on" => {
                assert!(matches!(done, Ok(ResultsCommit::Queued)), "{id}: {done:?}");
                assert_eq!(history, 1, "{id}: its turn applied nothing");
            }
            "rt-lost" | "rt-half" => {
                assert!(matches!(done, Err(StoreError::LeaseLost)), "{id}: {done:?}");
                assert_eq!(history, 1, "{id}: its turn applied nothing");
            }
            _ => {
                assert!(
                    matches!(done, Ok(ResultsCommit::Committed(_))),
                    "{id}: {done:?}"
                );
                assert_eq!(history, 2, "{id}: the result is in its history");
            }
        }
    }
    // What was queued instead of a turn is there for the dispatchers: the moved-on instance's
    // result, and the results recorded before (none of the refused turns' results).
    let mut queued: Vec<(String, i64)> = Vec::new();
    while let Fetched::Item(item) = store
        .fetch_orchestration(at(3), LEASE, &Owned::Everything)
        .await
        .unwrap()
    {
        for m in &item.messages {
            if let EventKind::TaskCompleted {
                task_scheduled_id, ..
            } = m.message.event.kind
            {
                queued.push((item.instance_id.clone(), task_scheduled_id));
            }
        }
    }
    queued.sort();
    assert_eq!(
        queued,
        [
            ("rt-half".to_string(), 0),
            ("rt-lost".to_string(), 0),
            ("rt-moved-on".to_string(), 0)
        ],
        "each result is queued once, or in its turn's history"
    );
    store
        .complete_activity(&still_held, completed("rt-half", 1))
        .await
        .expect("the refused turn's other activity is still held");
}

/// Messages from clients: each is queued, in the order each sender sent them, except those to
/// an orchestration that does not exist, refused with `InstanceNotFound`.
pub async fn messages_arriving_together_each_get_their_own_answer(store: Arc<dyn Store>) {
    for i in 0..4 {
        store
            .create_instance(new_instance(&format!("m-{i}")))
            .await
            .unwrap();
    }
    let mut senders = Vec::new();
    for i in 0..4 {
        for target in [format!("m-{i}"), format!("m-missing-{i}")] {
            let store = store.clone();
            senders.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..5 {
                    let message = OrchestrationMessage {
                        instance_id: target.clone(),
                        execution_id: None,
                        event: HistoryEvent::new(
                            at(1),
                            EventKind::EventRaised {
                                name: "e".into(),
                                input: n.to_string(),
                            },
                        ),
                        visible_at: None,
                    };
                    answers.push(store.enqueue(message).await);
                }
                (target, answers)
            }));
        }
    }
    for sender in senders {
        let (target, answers) = sender.await.unwrap();
        for answer in answers {
            if target.starts_with("m-missing") {
                assert!(
                    matches!(&answer, Err(StoreError::InstanceNotFound(id)) if *id == target),
                    "{target}: {answer:?}"
                );
            } else {
                answer.unwrap_or_else(|e| panic!("{target}: {e}"));
            }
        }
    }
    let mut seen = 0;
    while let Fetched::Item(item) = store
        .fetch_orchestration(at(2), LEASE, &Owned::Everything)
        .await
        .unwrap()
    {
        let events: Vec<String> = item
            .messages
            .iter()
            .filter_map(|m| match &m.message.event.kind {
                EventKind::EventRaised { input, .. } => Some(input.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            events,
            ["0", "1", "2", "3", "4"],
            "{}: every event, in the order sent",
            item.instance_id
        );
        seen += 1;
    }
    assert_eq!(seen, 4, "each existing instance has its events");
}

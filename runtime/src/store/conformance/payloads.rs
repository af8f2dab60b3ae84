//! Payloads: large values and unusual text.

use std::sync::Arc;

use crate::history::{EventKind, HistoryEvent};
use crate::store::{
    ActivityTask, HistoryWrite, OrchestrationMessage, Store, TurnCommit, new_entity_status,
};
use crate::{EntityId, InstanceQuery, RuntimeStatus};

use super::support::*;
/// A JSON string of at least 1 MiB, with escapes and multi-byte characters.
fn big_json(tag: &str) -> String {
    let chunk = format!("{tag}: ünïcødé 🚀 \"quoted\" back\\slash\nnew line\t");
    let mut raw = String::new();
    while raw.len() < (1 << 20) {
        raw.push_str(&chunk);
    }
    json(&raw)
}

/// 1 MiB inputs, outputs, custom statuses, events, activity inputs and results round-trip.
pub async fn large_payloads(store: Arc<dyn Store>) {
    let s = &*store;
    let mut new = new_instance("big", t(0));
    new.input = big_json("input");
    ok(s.create_instance(new.clone()).await, "create a 1 MiB input");
    assert_eq!(
        status_of(s, "big", "big").await.input.as_deref(),
        Some(new.input.as_str()),
        "a 1 MiB input round-trips"
    );
    let raised = OrchestrationMessage {
        event: HistoryEvent::new(
            t(1),
            EventKind::EventRaised {
                name: "Big".into(),
                input: big_json("event"),
            },
        ),
        ..event("big", "Big", t(1))
    };
    ok(s.enqueue(raised.clone()).await, "enqueue a 1 MiB event");
    let item = item_for(s, t(1), "big", "big").await;
    assert!(
        messages(&item) == vec![new.start_message(), raised.clone()],
        "1 MiB messages round-trip"
    );
    let task = ActivityTask {
        instance_id: "big".into(),
        execution_id: new.execution_id.clone(),
        task_id: 0,
        name: "Big".into(),
        input: big_json("activity"),
    };
    let history = vec![
        new.start_message().event,
        raised.event.clone(),
        HistoryEvent {
            event_id: 0,
            timestamp: t(1),
            kind: EventKind::TaskScheduled {
                name: "Big".into(),
                input: task.input.clone(),
            },
        },
    ];
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.custom_status = Some(big_json("custom"));
    status.output = Some(big_json("output"));
    status.failure = Some(failure(&big_json("failure")));
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: seqs(&item),
                history: HistoryWrite::Append(history.clone()),
                status: status.clone(),
                activities: vec![task.clone()],
                messages: Vec::new(),
                new_instances: Vec::new(),
            },
        )
        .await,
        "commit 1 MiB payloads",
    );
    assert!(
        status_of(s, "big", "big").await == status,
        "a status with 1 MiB fields round-trips"
    );
    assert!(
        history_of(s, "big").await == history,
        "a 1 MiB history round-trips"
    );
    let act = fetch_activity(s, LONG_LEASE, "the big activity").await;
    assert!(act.task == task, "a 1 MiB activity input round-trips");
    let response = task_completed(&task, &big_json("result"), t(2));
    ok(
        s.complete_activity(&act, response.clone()).await,
        "complete",
    );
    let item = item_for(s, t(2), "big", "the big response").await;
    assert!(
        messages(&item) == vec![response],
        "a 1 MiB activity result round-trips"
    );
}

/// Ids and payloads with unicode, quotes, backslashes, SQL and JSON metacharacters round-trip
/// through every operation. (Ids never hold control characters — the client refuses them —
/// payloads may.)
pub async fn unusual_text_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let id = "ünïcødé 'single' \"double\" back\\slash |pipe% _under; DROP TABLE x;-- 🚀 日本語";
    let target = "другой \"target\" 'q'";
    let entity = EntityId::new("Ünï", "ключ 'k' \"q\" @at").to_string();
    let payload =
        "{\"text\":\"line one\\nline two\\ttab \\\"q\\\" 'single' \\\\ \\u0000 ünï 🚀\"}\n";
    let mut new = new_instance(id, t(0));
    new.name = "Flow 'named' \"oddly\" ü".into();
    new.input = payload.into();
    new.execution_id = "exec 'ü' \"1\"".into();
    ok(s.create_instance(new.clone()).await, "create an unusual id");
    let mut target_new = new_instance(target, t(0));
    target_new.input = payload.into();
    ok(s.create_instance(target_new.clone()).await, "create");
    assert_eq!(
        status_of(s, id, "the unusual instance").await,
        new.initial_status(),
        "unusual text round-trips through the status"
    );
    let items = all_items(s, t(0), "the unusual instances").await;
    assert_eq!(messages(&items[id]), vec![new.start_message()]);
    assert_eq!(messages(&items[target]), vec![target_new.start_message()]);
    ok(
        s.commit_turn(
            &items[target],
            plain_commit(&items[target], RuntimeStatus::Running, t(0)),
        )
        .await,
        "commit",
    );
    let item = &items[id];
    let task = ActivityTask {
        instance_id: id.into(),
        execution_id: new.execution_id.clone(),
        task_id: 0,
        name: "Act 'ü' \"x\"".into(),
        input: payload.into(),
    };
    let history = first_turn_history(&new.start_message(), t(1));
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.custom_status = Some(payload.into());
    status.failure = Some(failure(payload));
    status.parent_instance_id = Some(target.into());
    let to_target = OrchestrationMessage {
        event: HistoryEvent::new(
            t(1),
            EventKind::EventRaised {
                name: "Név \"x\"".into(),
                input: payload.into(),
            },
        ),
        ..event(target, "x", t(1))
    };
    let to_entity = OrchestrationMessage {
        event: HistoryEvent::new(
            t(1),
            EventKind::EntityOperationSignaled {
                entity_id: entity.clone(),
                operation: "op 'ü'".into(),
                input: payload.into(),
            },
        ),
        ..signal_entity(&entity, "x", t(1))
    };
    ok(
        s.commit_turn(
            item,
            TurnCommit {
                consumed: seqs(item),
                history: HistoryWrite::Append(history.clone()),
                status: status.clone(),
                activities: vec![task.clone()],
                messages: vec![to_target.clone(), to_entity.clone()],
                new_instances: Vec::new(),
            },
        )
        .await,
        "commit unusual text",
    );
    assert_eq!(status_of(s, id, "after the commit").await, status);
    assert_eq!(history_of(s, id).await, history);
    assert_eq!(
        status_of(s, &entity, "the unusual entity").await,
        new_entity_status(&entity, t(1))
    );
    let items = all_items(s, t(1), "the delivered messages").await;
    assert_eq!(messages(&items[target]), vec![to_target]);
    assert_eq!(messages(&items[&entity]), vec![to_entity]);
    let act = fetch_activity(s, LONG_LEASE, "the unusual activity").await;
    assert_eq!(act.task, task);
    ok(s.park_activity(&act, payload, t(2)).await, "park");
    let parked = parked_for(s, id).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].error, payload,
        "an unusual error text round-trips"
    );

    let by_prefix = InstanceQuery {
        instance_id_prefix: Some(id.into()),
        ..Default::default()
    };
    assert_eq!(
        query_ids(s, by_prefix, "the unusual id as a prefix").await,
        vec![id]
    );
    let by_prefix = InstanceQuery {
        instance_id_prefix: Some(entity.clone()),
        ..Default::default()
    };
    assert_eq!(
        query_ids(s, by_prefix, "the unusual entity as a prefix").await,
        vec![entity.clone()]
    );
}

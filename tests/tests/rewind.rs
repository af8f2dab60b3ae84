//! Rewinding failed instances: failed activities run again, failed sub-orchestrations are
//! rewound too, and the orchestrator carries on from its history.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durable::history::{EventKind, HistoryEvent};
use durable::prelude::*;
use durable::store::{OrchestrationMessage, Sqlite};
use durable::testing::TestRuntime;
use durable::{ErrorKind, RuntimeBuilder};
use durable_tests::{failure_message, finished, in_both_modes};

/// How many times each key's activity ran.
static RUNS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());
/// Keys whose `step` fails.
static BROKEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
/// Keys whose `held` may finish.
static RELEASED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A key no other test (or mode) uses, since tests run in parallel and share the statics.
fn key(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

fn runs(key: &str) -> u32 {
    RUNS.lock().unwrap().get(key).copied().unwrap_or(0)
}

fn broken(key: &str) -> String {
    BROKEN.lock().unwrap().insert(key.to_string());
    key.to_string()
}

fn repair(key: &str) {
    BROKEN.lock().unwrap().remove(key);
}

fn count(key: &str) {
    *RUNS.lock().unwrap().entry(key.to_string()).or_default() += 1;
}

/// Fails while its key is broken.
#[activity]
async fn step(_ctx: ActivityContext, key: String) -> Result<String, Error> {
    count(&key);
    if BROKEN.lock().unwrap().contains(&key) {
        return Err(Error::msg(format!("{key} is broken")));
    }
    Ok(format!("{key} done"))
}

/// Finishes once its key is released.
#[activity]
async fn held(_ctx: ActivityContext, key: String) -> Result<String, Error> {
    count(&key);
    while !RELEASED.lock().unwrap().contains(&key) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(format!("{key} released"))
}

#[orchestrator]
async fn chain(ctx: OrchestrationContext, keys: (String, String)) -> Result<String, Error> {
    let first = ctx.call_activity(step, keys.0).await?;
    let second = ctx.call_activity(step, keys.1).await?;
    Ok(format!("{first} + {second}"))
}

#[orchestrator]
async fn child(ctx: OrchestrationContext, key: String) -> Result<String, Error> {
    ctx.call_activity(step, key).await
}

#[orchestrator]
async fn parent(ctx: OrchestrationContext, keys: (String, String)) -> Result<String, Error> {
    let mine = ctx.call_activity(step, keys.0).await?;
    let childs = ctx
        .call_sub_orchestrator(child, keys.1)
        .instance_id("kid")
        .await?;
    Ok(format!("{mine} + {childs}"))
}

#[orchestrator]
async fn slow_child(ctx: OrchestrationContext, key: String) -> Result<String, Error> {
    ctx.call_activity(held, key).await
}

#[orchestrator]
async fn two_children(ctx: OrchestrationContext, keys: (String, String)) -> Result<String, Error> {
    let slow = ctx
        .call_sub_orchestrator(slow_child, keys.0)
        .instance_id("slow-kid")
        .into_future();
    let fast = ctx
        .call_sub_orchestrator(child, keys.1)
        .instance_id("fast-kid")
        .await?;
    Ok(format!("{fast} + {}", slow.await?))
}

#[orchestrator]
async fn picky(ctx: OrchestrationContext, key: String) -> Result<String, Error> {
    let done = ctx.call_activity(step, key).await?;
    Err(Error::msg(format!("refusing `{done}`")))
}

#[orchestrator]
async fn retrying(ctx: OrchestrationContext, key: String) -> Result<String, Error> {
    ctx.call_activity_with_retry(step, key, RetryPolicy::new(2, Duration::from_secs(10)))
        .await
}

#[orchestrator]
async fn fan_out(ctx: OrchestrationContext, keys: (String, String)) -> Result<String, Error> {
    let deadline = ctx.sleep(Duration::from_secs(3600));
    let slow = ctx.call_activity(held, keys.0);
    let fast = ctx.call_activity(step, keys.1).await?;
    let slow = slow.await?;
    deadline.await;
    Ok(format!("{fast} + {slow}"))
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    n: i64,
}

#[entity]
impl Tally {
    pub fn add(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }
}

#[orchestrator]
async fn counts_then_fails(ctx: OrchestrationContext, key: String) -> Result<String, Error> {
    ctx.call_entity::<Tally>("t").add(1).await?;
    ctx.call_activity(step, key).await
}

#[orchestrator]
async fn waiting(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ctx.wait_for_event("Go").await
}

fn register(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register(step)
        .register(held)
        .register(chain)
        .register(child)
        .register(parent)
        .register(slow_child)
        .register(two_children)
        .register(picky)
        .register(retrying)
        .register(fan_out)
        .register(waiting)
        .register(counts_then_fails)
        .register_entity::<Tally>()
}

/// Rewinds `id`, lets the host take the rewind up, and waits for the instance to finish again.
async fn rewind(rt: &TestRuntime, id: &str) -> InstanceStatus {
    rt.client().rewind(id, "fixed").await.unwrap();
    rt.idle().await;
    finished(rt, id).await
}

async fn history(rt: &TestRuntime, id: &str) -> Vec<HistoryEvent> {
    let status = rt.client().status_with_history(id).await.unwrap().unwrap();
    status.history.unwrap()
}

fn kinds(history: &[HistoryEvent]) -> Vec<&'static str> {
    history.iter().map(|e| e.kind.name()).collect()
}

fn occurrences(history: &[HistoryEvent], kind: &str) -> usize {
    kinds(history).iter().filter(|k| **k == kind).count()
}

#[tokio::test]
async fn a_rewound_instance_runs_the_failed_activity_again_and_completes() {
    in_both_modes(register, |rt| async move {
        let (ok, bad) = (key("ok"), broken(&key("bad")));
        let id = rt.client().start(chain, (ok.clone(), bad.clone())).await?;
        let failed = finished(&rt, &id).await;
        assert!(
            failure_message(&failed).contains(&format!("{bad} is broken")),
            "{failed:?}"
        );

        repair(&bad);
        let status = rewind(&rt, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(
            status.output::<String>()?,
            format!("{ok} done + {bad} done")
        );
        assert!(status.failure.is_none(), "{status:?}");
        assert_eq!(runs(&bad), 2, "the failed activity ran again");
        assert_eq!(
            runs(&ok),
            1,
            "the activity that succeeded did not run again"
        );

        let history = history(&rt, &id).await;
        assert_eq!(
            occurrences(&history, "TaskFailed"),
            0,
            "{:?}",
            kinds(&history)
        );
        assert_eq!(occurrences(&history, "ExecutionCompleted"), 1);
        let rewound: Vec<_> = history
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ExecutionRewound { reason } => Some(reason.as_deref()),
                _ => None,
            })
            .collect();
        assert_eq!(rewound, [Some("fixed")], "{:?}", kinds(&history));
        assert!(
            matches!(
                history.iter().rev().nth(1).map(|e| &e.kind),
                Some(EventKind::ExecutionCompleted {
                    result: Some(_),
                    ..
                })
            ),
            "{:?}",
            kinds(&history)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn rewinding_a_parent_rewinds_its_failed_sub_orchestration() {
    in_both_modes(register, |rt| async move {
        let (mine, theirs) = (key("mine"), broken(&key("theirs")));
        let id = rt
            .client()
            .start(parent, (mine.clone(), theirs.clone()))
            .await?;
        let failed = finished(&rt, &id).await;
        assert!(
            failure_message(&failed).contains("sub-orchestrator `child` (instance `kid`) failed"),
            "{failed:?}"
        );
        assert_eq!(
            finished(&rt, "kid").await.runtime_status,
            RuntimeStatus::Failed
        );

        repair(&theirs);
        let status = rewind(&rt, &id).await;
        assert_eq!(
            status.output::<String>()?,
            format!("{mine} done + {theirs} done")
        );
        let kid = finished(&rt, "kid").await;
        assert_eq!(kid.runtime_status, RuntimeStatus::Completed);
        assert_eq!(kid.output::<String>()?, format!("{theirs} done"));
        assert_eq!((runs(&mine), runs(&theirs)), (1, 2));
        for instance in [id.as_str(), "kid"] {
            let history = history(&rt, instance).await;
            assert_eq!(
                occurrences(&history, "ExecutionRewound"),
                1,
                "{instance}: {:?}",
                kinds(&history)
            );
            assert_eq!(occurrences(&history, "TaskFailed"), 0);
            assert_eq!(occurrences(&history, "SubOrchestrationInstanceFailed"), 0);
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_sub_orchestration_result_dropped_while_the_parent_was_failed_is_delivered_again() {
    in_both_modes(register, |rt| async move {
        let (slow, bad) = (key("slow"), broken(&key("fast")));
        let id = rt
            .client()
            .start(two_children, (slow.clone(), bad.clone()))
            .await?;
        finished(&rt, &id).await;
        RELEASED.lock().unwrap().insert(slow.clone());
        let kid = finished(&rt, "slow-kid").await;
        assert_eq!(kid.runtime_status, RuntimeStatus::Completed);
        rt.idle().await;

        repair(&bad);
        let status = rewind(&rt, &id).await;
        assert_eq!(
            status.output::<String>()?,
            format!("{bad} done + {slow} released")
        );
        assert_eq!(runs(&slow), 1, "the completed child was not run again");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn code_that_fails_by_itself_fails_again_after_a_rewind() {
    in_both_modes(register, |rt| async move {
        let k = key("picky");
        let id = rt.client().start(picky, k.clone()).await?;
        let message = failure_message(&finished(&rt, &id).await);
        assert_eq!(message, format!("refusing `{k} done`"));

        let again = rewind(&rt, &id).await;
        assert_eq!(failure_message(&again), message);
        assert_eq!(runs(&k), 1, "the activity's recorded result was replayed");
        let history = history(&rt, &id).await;
        assert_eq!(
            occurrences(&history, "ExecutionCompleted"),
            1,
            "{:?}",
            kinds(&history)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_failure_the_code_handled_stays_in_the_history() {
    // A retry policy handled the first failure (a timer, then a second attempt): only the last
    // attempt's failure ended the instance, and only that attempt runs again.
    in_both_modes(register, |rt| async move {
        let k = broken(&key("retried"));
        let id = rt.client().start(retrying, k.clone()).await?;
        rt.advance(Duration::from_secs(10)).await;
        let failed = finished(&rt, &id).await;
        assert!(failure_message(&failed).contains("is broken"), "{failed:?}");
        assert_eq!(runs(&k), 2);

        repair(&k);
        let status = rewind(&rt, &id).await;
        assert_eq!(status.output::<String>()?, format!("{k} done"));
        assert_eq!(runs(&k), 3);
        let history = history(&rt, &id).await;
        assert_eq!(
            occurrences(&history, "TaskFailed"),
            1,
            "{:?}",
            kinds(&history)
        );
        assert_eq!(occurrences(&history, "TaskScheduled"), 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn results_dropped_while_the_instance_was_failed_are_redone() {
    // The slow activity finishes and the timer fires after the instance failed: both results
    // are dropped then. After the rewind the activity runs again and the timer fires again.
    in_both_modes(register, |rt| async move {
        let (slow, bad) = (key("slow"), broken(&key("fast")));
        let id = rt
            .client()
            .start(fan_out, (slow.clone(), bad.clone()))
            .await?;
        let failed = finished(&rt, &id).await;
        assert!(failure_message(&failed).contains("is broken"), "{failed:?}");
        RELEASED.lock().unwrap().insert(slow.clone());
        rt.advance(Duration::from_secs(3600)).await;
        rt.idle().await;
        assert_eq!(runs(&slow), 1);

        repair(&bad);
        let status = rewind(&rt, &id).await;
        assert_eq!(
            status.output::<String>()?,
            format!("{bad} done + {slow} released")
        );
        assert_eq!((runs(&slow), runs(&bad)), (2, 2));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn only_failed_instances_can_be_rewound() {
    let rt = TestRuntime::start(register(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();

    let k = key("done");
    let done = client.start(child, k).await.unwrap();
    assert_eq!(
        finished(&rt, &done).await.runtime_status,
        RuntimeStatus::Completed
    );
    let err = client.rewind(&done, "why not").await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceNotRunning);
    assert!(
        err.to_string().contains(&format!(
            "cannot rewind instance `{done}`: it is Completed; only failed instances can be \
             rewound"
        )),
        "{err}"
    );

    let running = client.start(waiting, ()).await.unwrap();
    client
        .wait_for_start(&running, durable_tests::WAIT)
        .await
        .unwrap();
    rt.idle().await;
    let err = client.rewind(&running, "why not").await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceNotRunning);
    assert!(err.to_string().contains("it is Running"), "{err}");

    let err = client
        .rewind("no-such-instance", "why not")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceNotFound);
}

#[tokio::test]
async fn a_rewind_that_reaches_a_running_instance_is_recorded_and_changes_nothing() {
    // A client checks the status before queueing the request; a request that arrives after
    // the instance is running again (two rewinds racing) must do no harm.
    in_both_modes(register, |rt| async move {
        let id = rt.client().start(waiting, ()).await?;
        rt.idle().await;
        rt.store()
            .enqueue(OrchestrationMessage {
                instance_id: id.to_string(),
                execution_id: None,
                event: HistoryEvent::new(
                    rt.clock().now(),
                    EventKind::ExecutionRewound { reason: None },
                ),
                visible_at: None,
            })
            .await
            .unwrap();
        rt.idle().await;
        rt.client().raise_event(&id, "Go", "went").await?;
        let status = finished(&rt, &id).await;
        assert_eq!(status.output::<String>()?, "went");
        let history = history(&rt, &id).await;
        assert_eq!(
            occurrences(&history, "ExecutionRewound"),
            1,
            "{:?}",
            kinds(&history)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_rewind_works_after_the_host_restarts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rewind.db");
    let host = |store: Sqlite| TestRuntime::start(register(Runtime::builder().store(store)));
    let (ok, bad) = (key("ok"), broken(&key("bad")));

    let first = host(Sqlite::open(&path).unwrap()).await.unwrap();
    let id = first
        .client()
        .start(chain, (ok.clone(), bad.clone()))
        .await
        .unwrap();
    assert_eq!(
        finished(&first, &id).await.runtime_status,
        RuntimeStatus::Failed
    );
    first.shutdown().await;
    drop(first);

    repair(&bad);
    let second = host(Sqlite::open(&path).unwrap()).await.unwrap();
    let status = rewind(&second, &id).await;
    assert_eq!(
        status.output::<String>().unwrap(),
        format!("{ok} done + {bad} done")
    );
    assert_eq!((runs(&ok), runs(&bad)), (1, 2));
    second.shutdown().await;
}

#[tokio::test]
async fn an_instance_that_called_entities_is_not_rewound_and_says_why() {
    let rt = TestRuntime::start(register(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();
    let id = client
        .start(counts_then_fails, broken(&key("entity")))
        .await
        .unwrap();
    assert_eq!(
        finished(&rt, &id).await.runtime_status,
        RuntimeStatus::Failed
    );
    let err = client.rewind(&id, "try again").await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidArgument);
    assert!(
        err.to_string()
            .contains("it called or locked entities, and a rewind cannot restore"),
        "{err}"
    );
    assert!(err.to_string().contains("restart it instead"), "{err}");
    // Nothing was queued: the instance stays failed.
    rt.idle().await;
    assert_eq!(
        client.status(&id).await.unwrap().unwrap().runtime_status,
        RuntimeStatus::Failed
    );
}

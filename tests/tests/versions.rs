//! Versions: instances record the version they started under; a host runs only what its
//! version match allows and leaves (or fails) the rest; a host without an orchestrator or
//! entity leaves its work for a host that has it. (`patched` has its own file, `patches.rs`.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::history::EventKind;
use durable::prelude::*;
use durable::store::{Memory, Store};
use durable::testing::{ManualClock, TestRuntime};
use durable::{
    ErrorKind, InstanceQuery, LeftReason, LeftWork, RuntimeBuilder, VersionFailure, VersionMatch,
};
use durable_tests::{WAIT, failure_message, finished};
use serde::{Deserialize, Serialize};

#[orchestrator]
async fn report(ctx: OrchestrationContext, _input: ()) -> Result<Option<String>, Error> {
    Ok(ctx.version())
}

#[orchestrator]
async fn waits(ctx: OrchestrationContext, _input: ()) -> Result<Option<String>, Error> {
    ctx.set_custom_status("waiting");
    let _go: bool = ctx.wait_for_event("go").await?;
    Ok(ctx.version())
}

#[orchestrator]
async fn eternal(ctx: OrchestrationContext, round: u32) -> Result<(u32, Option<String>), Error> {
    if round < 2 {
        return ctx.continue_as_new(round + 1).await;
    }
    Ok((round, ctx.version()))
}

#[orchestrator]
async fn parent(
    ctx: OrchestrationContext,
    child_id: String,
) -> Result<(Option<String>, Option<String>), Error> {
    let child = ctx
        .call_sub_orchestrator(report, ())
        .instance_id(child_id)
        .await?;
    Ok((ctx.version(), child))
}

#[derive(Default, Serialize, Deserialize)]
pub struct Tally {
    value: i64,
}

#[entity]
impl Tally {
    pub fn add(&mut self, by: i64) {
        self.value += by;
    }
}

fn host(store: &Arc<dyn Store>) -> RuntimeBuilder {
    Runtime::builder().shared_store(store.clone())
}

async fn on(builder: RuntimeBuilder, clock: &ManualClock) -> TestRuntime {
    TestRuntime::start_with_clock(builder, clock.clone())
        .await
        .expect("the host starts")
}

/// Polls (in real time, up to [`WAIT`]) until `done` holds for the host's left work.
async fn until_left(rt: &TestRuntime, what: &str, done: impl Fn(&[LeftWork]) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = rt.left_work();
        if done(&left) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: left work is {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn instances_record_the_version_they_started_under() {
    let rt = TestRuntime::start(Runtime::builder().register(report).version("2.0"))
        .await
        .unwrap();
    let client = rt.client();
    assert_eq!(client.default_version(), Some("2.0"));
    let by_default = client.start(report, ()).await.unwrap();
    let explicit = client.start(report, ()).version("1.5").await.unwrap();
    let status = finished(&rt, &by_default).await;
    assert_eq!(status.version.as_deref(), Some("2.0"), "the host's version");
    assert_eq!(
        status.output::<Option<String>>().unwrap().as_deref(),
        Some("2.0")
    );
    let status = finished(&rt, &explicit).await;
    assert_eq!(status.version.as_deref(), Some("1.5"));
    assert_eq!(
        status.output::<Option<String>>().unwrap().as_deref(),
        Some("1.5"),
        "ctx.version() is the instance's version, not the host's"
    );
    let history = client
        .status_with_history(&explicit)
        .await
        .unwrap()
        .unwrap();
    let started = history
        .history
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::ExecutionStarted { version, .. } => Some(version),
            _ => None,
        });
    assert_eq!(
        started,
        Some(Some("1.5".to_string())),
        "ExecutionStarted carries it"
    );

    // A client of its own has no default version, unless given one.
    let standalone = durable::Client::new(rt.store().clone());
    assert_eq!(standalone.default_version(), None);
    let unversioned = standalone.start_by_name("report", ()).await.unwrap();
    let status = finished(&rt, &unversioned).await;
    assert_eq!(status.version, None);
    assert_eq!(status.output::<Option<String>>().unwrap(), None);
    let with_default = standalone
        .with_default_version("1.0")
        .start_by_name("report", ())
        .await
        .unwrap();
    assert_eq!(
        finished(&rt, &with_default).await.version.as_deref(),
        Some("1.0")
    );

    let query = |version: &str| InstanceQuery {
        version: Some(version.into()),
        ..Default::default()
    };
    let page = client.query(&query("1.5")).await.unwrap();
    let ids: Vec<&str> = page
        .instances
        .iter()
        .map(|s| s.instance_id.as_str())
        .collect();
    assert_eq!(ids, [explicit.as_str()], "queried by version");
    assert_eq!(
        client.query(&query("2.0")).await.unwrap().instances.len(),
        1
    );
}

#[tokio::test]
async fn bad_versions_are_refused_with_the_reason() {
    let rt = TestRuntime::start(Runtime::builder().register(report))
        .await
        .unwrap();
    for (version, reason) in [
        (String::new(), "empty"),
        ("1".repeat(101), "longer than 100 characters"),
        ("2.0\t".to_string(), "control character"),
    ] {
        let err = rt
            .client()
            .start(report, ())
            .version(version)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidArgument);
        assert!(err.to_string().contains(reason), "{err}");
    }
    let err = Runtime::builder()
        .store(Memory::new())
        .version(" 2.0")
        .start()
        .await
        .err()
        .expect("a host with a bad version does not start");
    assert_eq!(err.kind(), &ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("the host's version") && err.to_string().contains("white space"),
        "{err}"
    );
}

#[tokio::test]
async fn continue_as_new_keeps_the_version_and_children_take_the_hosts() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(eternal)
            .register(parent)
            .register(report)
            .version("2.0"),
    )
    .await
    .unwrap();
    let client = rt.client();
    let id = client.start(eternal, 0).version("1.0").await.unwrap();
    let status = finished(&rt, &id).await;
    assert_eq!(
        status.output::<(u32, Option<String>)>().unwrap(),
        (2, Some("1.0".into()))
    );
    assert_eq!(
        status.version.as_deref(),
        Some("1.0"),
        "kept across executions"
    );

    let id = client
        .start(parent, "kid".to_string())
        .version("1.0")
        .await
        .unwrap();
    let status = finished(&rt, &id).await;
    assert_eq!(
        status.output::<(Option<String>, Option<String>)>().unwrap(),
        (Some("1.0".into()), Some("2.0".into())),
        "a sub-orchestration starts under the version of the host that starts it"
    );
    let child = client.status("kid").await.unwrap().unwrap();
    assert_eq!(child.version.as_deref(), Some("2.0"));
}

/// Captures what `tracing` writes on this thread (the test's runtime runs every task on it).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures this thread's log lines until the guard drops.
    fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        (captured, guard)
    }

    fn lines_with(&self, needles: &[&str]) -> usize {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }
}

#[tokio::test]
async fn an_old_host_leaves_newer_instances_for_a_host_that_may_run_them() {
    let (captured, _logs) = Captured::install();
    let store: Arc<dyn Store> = Arc::new(Memory::new());
    let clock = ManualClock::new();
    let old = on(host(&store).register(waits).version("1.0"), &clock).await;
    let newer = old.client().start(waits, ()).version("2.0").await.unwrap();
    let own = old.client().start(waits, ()).await.unwrap();
    let status = old.client().wait_for_start(&own, WAIT).await.unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Running,
        "1.0 runs on 1.0"
    );
    // The old host keeps fetching and leaving it, backing off each time.
    until_left(&old, "left three times", |left| {
        left.iter()
            .any(|l| l.instance_id == newer.as_str() && l.times >= 3)
    })
    .await;
    let status = old.client().status(&newer).await.unwrap().unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Pending,
        "not run, not failed"
    );
    assert_eq!(status.custom_status, None);
    assert_eq!(
        old.left_work()[0].reason,
        LeftReason::Version {
            instance: Some("2.0".into()),
            host: Some("1.0".into()),
        }
    );
    assert_eq!(
        captured.lines_with(&[
            "WARN",
            newer.as_str(),
            "left for another host",
            "`2.0`",
            "`1.0`"
        ]),
        1,
        "said once per instance, not per attempt"
    );
    assert!(store.parked().await.unwrap().is_empty(), "nothing parked");

    // The upgrade: the old host goes, a new one comes. It parks at the first repeated fetch,
    // and still runs the instance: leaving it was never counted as a failed attempt.
    old.shutdown().await;
    let new = on(
        host(&store)
            .register(waits)
            .version("2.0")
            .max_dequeue_count(1),
        &clock,
    )
    .await;
    let status = new.client().wait_for_start(&newer, WAIT).await.unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    for id in [&newer, &own] {
        new.client().raise_event(id, "go", true).await.unwrap();
    }
    let done = finished(&new, &newer).await;
    assert_eq!(
        done.output::<Option<String>>().unwrap().as_deref(),
        Some("2.0")
    );
    let done = finished(&new, &own).await;
    assert_eq!(
        done.output::<Option<String>>().unwrap().as_deref(),
        Some("1.0"),
        "the new host runs older instances too (current or older)"
    );
    assert!(store.parked().await.unwrap().is_empty(), "nothing parked");
}

#[tokio::test]
async fn the_fail_strategy_fails_what_the_host_may_not_run_naming_both_versions() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(report)
            .version("2.0")
            .version_match(VersionMatch::Strict)
            .version_failure(VersionFailure::Fail),
    )
    .await
    .unwrap();
    let client = rt.client();
    let same = client.start(report, ()).await.unwrap();
    let older = client.start(report, ()).version("1.0").await.unwrap();
    assert_eq!(
        finished(&rt, &same)
            .await
            .output::<Option<String>>()
            .unwrap()
            .as_deref(),
        Some("2.0")
    );
    let status = finished(&rt, &older).await;
    let message = failure_message(&status);
    assert_eq!(
        status.failure.as_ref().unwrap().error_type,
        "VersionMismatch"
    );
    assert!(
        message.contains("`report` of version `1.0`")
            && message.contains("host of version `2.0`")
            && message.contains("Strict"),
        "{message}"
    );
    assert!(rt.left_work().is_empty(), "failed, not left");

    // Current-or-older fails only newer ones; a host without a version runs only instances
    // without one.
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(report)
            .version_failure(VersionFailure::Fail),
    )
    .await
    .unwrap();
    let plain = rt.client().start(report, ()).await.unwrap();
    assert_eq!(
        finished(&rt, &plain).await.runtime_status,
        RuntimeStatus::Completed
    );
    let versioned = rt.client().start(report, ()).version("0.1").await.unwrap();
    let message = failure_message(&finished(&rt, &versioned).await);
    assert!(message.contains("host of version none"), "{message}");

    // With no version match, anything runs.
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(report)
            .version("1.0")
            .version_match(VersionMatch::None)
            .version_failure(VersionFailure::Fail),
    )
    .await
    .unwrap();
    let id = rt.client().start(report, ()).version("9.0").await.unwrap();
    assert_eq!(
        finished(&rt, &id).await.runtime_status,
        RuntimeStatus::Completed
    );
}

#[tokio::test]
async fn a_host_without_the_code_leaves_the_work_for_a_host_that_has_it() {
    let (captured, _logs) = Captured::install();
    let store: Arc<dyn Store> = Arc::new(Memory::new());
    let clock = ManualClock::new();
    let first = on(host(&store).register(waits), &clock).await;
    let running = first.client().start(waits, ()).await.unwrap();
    first.client().wait_for_start(&running, WAIT).await.unwrap();
    first.idle().await;
    first.shutdown().await;
    drop(first);

    // A host that has neither `waits` nor `Tally`.
    let lacking = on(host(&store).register(report), &clock).await;
    let remote = durable::Client::new(store.clone()); // no registry: cannot refuse names
    lacking
        .client()
        .raise_event(&running, "go", true)
        .await
        .unwrap();
    let pending = remote.start_by_name("waits", ()).await.unwrap();
    remote
        .signal_entity_by_id(&EntityId::new("Tally", "t"), "add", 5)
        .await
        .unwrap();
    until_left(&lacking, "all three left", |left| left.len() == 3).await;
    until_left(&lacking, "left again", |left| {
        left.iter().all(|l| l.times >= 2)
    })
    .await;
    let status = lacking.client().status(&running).await.unwrap().unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running, "{status:?}");
    assert_eq!(
        status.custom_status::<String>().unwrap().as_deref(),
        Some("waiting"),
        "the instance's own custom status is kept"
    );
    assert_eq!(status.failure, None);
    let pending_status = lacking.client().status(&pending).await.unwrap().unwrap();
    assert_eq!(pending_status.runtime_status, RuntimeStatus::Pending);
    let left = lacking.left_work();
    assert!(
        left.iter().all(|l| l.reason == LeftReason::NotRegistered),
        "{left:?}"
    );
    let names: Vec<&str> = left.iter().map(|l| l.name.as_str()).collect();
    assert!(
        names.contains(&"waits") && names.contains(&"tally"),
        "{names:?}"
    );
    assert_eq!(
        captured.lines_with(&["WARN", "no orchestrator named `waits` is registered"]),
        1,
        "said once per name"
    );
    assert_eq!(
        captured.lines_with(&["WARN", "no entity named `tally` is registered"]),
        1
    );
    assert!(store.parked().await.unwrap().is_empty(), "nothing parked");

    // The deploy that fixes it: a host that has them runs everything.
    lacking.shutdown().await;
    let able = on(
        host(&store).register(waits).register_entity::<Tally>(),
        &clock,
    )
    .await;
    assert_eq!(
        finished(&able, &running).await.runtime_status,
        RuntimeStatus::Completed
    );
    able.client().wait_for_start(&pending, WAIT).await.unwrap();
    able.client()
        .raise_event(&pending, "go", true)
        .await
        .unwrap();
    assert_eq!(
        finished(&able, &pending).await.runtime_status,
        RuntimeStatus::Completed
    );
    // The signal comes back once its back-off has passed (real time).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(tally) = able.client().read_entity::<Tally>("t").await.unwrap() {
            assert_eq!(tally.value, 5);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the signal was never applied"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

//! Shared helpers for durable's behaviour tests.

/// The README's code blocks, compiled as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
mod readme {}

use std::future::Future;
use std::time::Duration;

use durable::testing::TestRuntime;
use durable::{Error, InstanceStatus, Runtime, RuntimeBuilder};

/// Generous real-time bound for waits; tests drive orchestration time with the manual clock,
/// so this is only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs `scenario` twice: once with the instance cache (instances resume without replay) and
/// once evicting after every turn (every turn replays the whole history). Both must behave the
/// same. A scenario returns `()` or `Result<(), Error>`; a failure names the mode.
pub async fn in_both_modes<F, Fut>(
    configure: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
    scenario: F,
) where
    F: Fn(TestRuntime) -> Fut,
    Fut: Future,
    Fut::Output: ScenarioResult,
{
    for always_replay in [false, true] {
        // Shown with the test's output when an assertion fails.
        println!("--- always_replay({always_replay})");
        let builder = configure(Runtime::builder().always_replay(always_replay));
        let runtime = TestRuntime::start(builder)
            .await
            .expect("the test runtime starts");
        if let Err(err) = scenario(runtime).await.into_result() {
            panic!("always_replay({always_replay}): {err:?}");
        }
    }
}

/// What a scenario may return: `()`, or a `Result` whose `Err` fails the test.
pub trait ScenarioResult {
    /// The scenario's result.
    fn into_result(self) -> Result<(), Error>;
}

impl ScenarioResult for () {
    fn into_result(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ScenarioResult for Result<(), Error> {
    fn into_result(self) -> Result<(), Error> {
        self
    }
}

/// Waits for an instance to finish and returns its status.
pub async fn finished(runtime: &TestRuntime, id: &str) -> InstanceStatus {
    runtime
        .client()
        .wait_for_completion(id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("instance {id} did not finish: {e}"))
}

/// The failure message of a failed instance.
pub fn failure_message(status: &InstanceStatus) -> String {
    assert_eq!(
        status.runtime_status,
        durable::RuntimeStatus::Failed,
        "expected a failed instance, got {status:?}"
    );
    status
        .failure
        .as_ref()
        .map(|f| f.message.clone())
        .unwrap_or_default()
}

/// Shorthand for an application error.
pub fn fail<T>(message: &str) -> Result<T, Error> {
    Err(Error::msg(message))
}

pub mod sim;

/// A memory store with hooks, for tests that inject failures or count what the host does.
pub mod hooked;

/// The workload of the crash tests: orchestrations that chain activities and signal an entity
/// after each step, so a lost or repeated step shows in the entity's total.
pub mod crash {
    use durable::prelude::*;
    use serde::{Deserialize, Serialize};

    /// How many steps each crash-test orchestration runs.
    pub const STEPS: u64 = 60;

    /// Returns `n * 10`, after a short pause so the host is busy when it gets killed.
    #[activity]
    pub async fn step(_ctx: ActivityContext, n: u64) -> Result<u64, Error> {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        Ok(n * 10)
    }

    /// Runs `steps` activities in sequence, signalling the `total` counter after each; returns
    /// the sum of their results.
    #[orchestrator]
    pub async fn crash_chain(ctx: OrchestrationContext, steps: u64) -> Result<u64, Error> {
        let mut sum = 0;
        for i in 1..=steps {
            sum += ctx.call_activity(step, i).await?;
            ctx.signal_entity::<CrashCounter>("total").add(1);
        }
        Ok(sum)
    }

    /// Counts signals.
    #[derive(Default, Serialize, Deserialize, Debug)]
    pub struct CrashCounter {
        /// The number of `add`s applied.
        pub count: u64,
        /// What was added in all.
        pub sum: u64,
    }

    #[entity]
    impl CrashCounter {
        /// Adds `by`.
        pub fn add(&mut self, by: u64) {
            self.count += 1;
            self.sum += by;
        }
    }
}

pub mod together;

pub mod chain;

pub mod sqlite_files;

/// The built-in stores take the one-write path: the conformance suite accepts a store that
/// queues results instead of committing them with their turn (the trait's default), so this
/// holds memory, SQLite and PostgreSQL to the faster answer.
pub mod one_write {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use durable::RuntimeStatus;
    use durable::history::{EventKind, HistoryEvent};
    use durable::store::{
        ActivityTask, Fetched, HistoryWrite, InstanceVersion, NewInstance, OrchestrationMessage,
        Owned, ResultsCommit, Store, TurnCommit,
    };

    const LEASE: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
    }

    /// A turn holds an activity; its result commits the next turn in the same write.
    pub async fn results_commit_with_their_turn(store: &dyn Store) {
        let new = NewInstance {
            instance_id: "one-write".into(),
            name: "Flow".into(),
            input: "null".into(),
            execution_id: "e1".into(),
            parent: None,
            created_at: at(0),
            start_at: None,
            replace_running: false,
            version: None,
        };
        store.create_instance(new.clone()).await.unwrap();
        let Fetched::Item(item) = store
            .fetch_orchestration(at(0), LEASE, &Owned::Everything)
            .await
            .unwrap()
        else {
            panic!("the new instance's start is fetched");
        };
        let task = ActivityTask {
            instance_id: "one-write".into(),
            execution_id: "e1".into(),
            task_id: 0,
            name: "Step".into(),
            input: "1".into(),
        };
        let status = |when| durable::InstanceStatus {
            runtime_status: RuntimeStatus::Running,
            last_updated_at: when,
            ..new.initial_status()
        };
        let first = TurnCommit {
            consumed: item.messages.iter().map(|m| m.seq).collect(),
            history: HistoryWrite::Append(vec![new.start_message().event]),
            status: status(at(1)),
            activities: Vec::new(),
            messages: Vec::new(),
            new_instances: Vec::new(),
        };
        let held = store
            .commit_turn_holding(&item, first, vec![task.clone()], LEASE)
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "the turn's activity is held for its host");
        let result = OrchestrationMessage {
            instance_id: "one-write".into(),
            execution_id: Some("e1".into()),
            event: HistoryEvent::new(
                at(2),
                EventKind::TaskCompleted {
                    task_scheduled_id: 0,
                    result: "2".into(),
                },
            ),
            visible_at: None,
        };
        let next = TurnCommit {
            consumed: Vec::new(),
            history: HistoryWrite::Append(vec![result.event.clone()]),
            status: status(at(2)),
            activities: Vec::new(),
            messages: Vec::new(),
            new_instances: Vec::new(),
        };
        let version = InstanceVersion {
            instance_id: "one-write".into(),
            execution_id: "e1".into(),
            history_len: 1,
            last_updated_at: at(1),
            fence: None,
        };
        let done = store
            .complete_activities_and_commit(
                vec![(held[0].clone(), result)],
                version,
                next,
                Vec::new(),
                LEASE,
            )
            .await
            .unwrap();
        assert!(
            matches!(done, ResultsCommit::Committed(_)),
            "the result and its turn were committed together: {done:?}"
        );
        assert_eq!(store.history("one-write").await.unwrap().len(), 2);
        assert!(
            matches!(
                store
                    .fetch_orchestration(at(2), LEASE, &Owned::Everything)
                    .await
                    .unwrap(),
                Fetched::Empty { .. }
            ),
            "nothing was queued"
        );
    }
}

/// A store that counts the work it hands out and the turns committed to it, and passes every
/// call (and every choice the engine makes from the store: whether it reads owned work, owns
/// the hub alone, how often to poll) to the store it wraps unchanged: for tests that check a
/// host does no work it need not do.
pub mod counted;

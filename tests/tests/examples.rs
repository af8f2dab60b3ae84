//! The example patterns of `durable-examples`, run on the test kit's manual clock: every timer
//! is passed with `TestRuntime::advance`, never with a real sleep.
//!
//! Each test runs its scenario twice, once with the instance cache and once with
//! `always_replay(true)` (every turn replays the whole history), and both must see the same
//! outputs.

use std::time::Duration;

use durable::ErrorKind;
use durable::history::{EventKind, HistoryEvent};
use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_examples::{
    approval, chaining, eternal_counter, fan_out_fan_in, monitor, retries, sub_orchestrations,
};
use durable_tests::in_both_modes;

/// Real-time bound on a wait for completion. Orchestration time is driven by the manual clock,
/// so this is only reached when something is broken.
const WAIT: Duration = Duration::from_secs(10);

const HOUR: Duration = Duration::from_secs(3600);

/// Waits until the instance has finished.
async fn finished(test: &TestRuntime, id: &str) -> Result<InstanceStatus, Error> {
    test.client().wait_for_completion(id, WAIT).await
}

/// The instance's status once all work due now has settled.
async fn settled(test: &TestRuntime, id: &str) -> Result<InstanceStatus, Error> {
    test.idle().await;
    test.client()
        .status(id)
        .await?
        .ok_or_else(|| Error::msg(format!("no instance `{id}`")))
}

/// The history of the instance's current execution.
async fn history(test: &TestRuntime, id: &str) -> Result<Vec<HistoryEvent>, Error> {
    let status = test.client().status_with_history(id).await?;
    Ok(status.and_then(|s| s.history).unwrap_or_default())
}

/// How many times the activity `name` was scheduled in `history`.
fn scheduled(history: &[HistoryEvent], name: &str) -> usize {
    history
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::TaskScheduled { name: n, .. } if n == name))
        .count()
}

/// How many events of the kind named `kind` `history` holds.
fn count(history: &[HistoryEvent], kind: &str) -> usize {
    history.iter().filter(|e| e.kind.name() == kind).count()
}

/// Moves the clock forward `times` times by `step`, letting due work settle before each move.
async fn advance_times(test: &TestRuntime, step: Duration, times: u32) {
    for _ in 0..times {
        test.advance(step).await;
    }
}

#[tokio::test]
async fn chaining_greets_the_three_cities_in_order() {
    in_both_modes(chaining::register, |test| async move {
        let id = test.client().start(chaining::hello_cities, ()).await?;
        let status = finished(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(
            status.output::<Vec<String>>()?,
            ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        );
        let history = history(&test, &id).await?;
        assert_eq!(scheduled(&history, "say_hello"), 3);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn fan_out_fan_in_sums_every_square() {
    in_both_modes(fan_out_fan_in::register, |test| async move {
        let id = test
            .client()
            .start(fan_out_fan_in::sum_of_squares, 10)
            .await?;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<u64>()?, 385);
        let history = history(&test, &id).await?;
        assert_eq!(scheduled(&history, "square"), 10);

        let id = test
            .client()
            .start(fan_out_fan_in::sum_of_squares, 40)
            .await?;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<u64>()?, 22_140);
        assert_eq!(fan_out_fan_in::expected_sum(40), 22_140);

        // An empty batch fans out to nothing and sums to zero.
        let id = test
            .client()
            .start(fan_out_fan_in::sum_of_squares, 0)
            .await?;
        assert_eq!(finished(&test, &id).await?.output::<u64>()?, 0);
        Ok(())
    })
    .await;
}

fn monitor_input(done_on_poll: u32, expires_after: Duration) -> monitor::MonitorInput {
    monitor::MonitorInput {
        job_id: "job-42".to_string(),
        done_on_poll,
        poll_every_ms: 60_000,
        expires_after_ms: expires_after.as_millis() as u64,
    }
}

#[tokio::test]
async fn monitor_completes_when_the_job_is_done_before_expiry() {
    in_both_modes(monitor::register, |test| async move {
        let minute = Duration::from_secs(60);
        let input = monitor_input(3, HOUR);
        let id = test.client().start(monitor::job_monitor, input).await?;

        // First poll: still running; the monitor waits on its timer.
        let status = settled(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Running);
        assert_eq!(
            status.custom_status::<monitor::MonitorProgress>()?,
            Some(monitor::MonitorProgress {
                polls: 1,
                last_state: monitor::JobState::Running
            })
        );

        // Polls two and three, a minute apart; the third reports done.
        advance_times(&test, minute, 2).await;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<String>()?, monitor::COMPLETED);
        assert_eq!(
            status.custom_status::<monitor::MonitorProgress>()?,
            Some(monitor::MonitorProgress {
                polls: 3,
                last_state: monitor::JobState::Done
            })
        );
        let history = history(&test, &id).await?;
        assert_eq!(scheduled(&history, "check_job_status"), 3);
        assert_eq!(count(&history, "TimerFired"), 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn monitor_expires_when_the_job_outlasts_the_deadline() {
    in_both_modes(monitor::register, |test| async move {
        let minute = Duration::from_secs(60);
        // Polls at 0, 1, 2, 3, 4 and 5 minutes; a seventh would be past the 5-minute deadline.
        let input = monitor_input(1_000, 5 * minute);
        let id = test.client().start(monitor::job_monitor, input).await?;

        advance_times(&test, minute, 4).await;
        let status = settled(&test, &id).await?;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Running,
            "the deadline has not passed yet"
        );

        test.advance(minute).await;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<String>()?, monitor::EXPIRED);
        assert_eq!(
            status
                .custom_status::<monitor::MonitorProgress>()?
                .map(|p| p.polls),
            Some(6)
        );
        Ok(())
    })
    .await;
}

const THREE_DAYS_SECS: u64 = 72 * 3600;

#[tokio::test]
async fn approval_is_approved_by_the_event() {
    in_both_modes(approval::register, |test| async move {
        let client = test.client();
        let id = client
            .start(approval::approval_workflow, THREE_DAYS_SECS)
            .await?;
        let status = settled(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Running);
        assert_eq!(
            status.custom_status::<String>()?.as_deref(),
            Some("waiting for approval")
        );

        client
            .raise_event(&id, approval::APPROVAL_EVENT, true)
            .await?;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<String>()?, approval::APPROVED);
        assert_eq!(scheduled(&history(&test, &id).await?, "escalate"), 0);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn approval_is_rejected_by_the_event() {
    in_both_modes(approval::register, |test| async move {
        let client = test.client();
        let id = client
            .start(approval::approval_workflow, THREE_DAYS_SECS)
            .await?;
        test.advance(HOUR).await;
        client
            .raise_event(&id, approval::APPROVAL_EVENT, false)
            .await?;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<String>()?, approval::REJECTED);
        assert_eq!(scheduled(&history(&test, &id).await?, "escalate"), 0);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn approval_escalates_after_72_hours_without_an_answer() {
    in_both_modes(approval::register, |test| async move {
        let client = test.client();
        let id = client
            .start(approval::approval_workflow, THREE_DAYS_SECS)
            .await?;

        // An hour short of the timeout, it still waits.
        test.advance(71 * HOUR).await;
        let status = settled(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Running);

        test.advance(HOUR).await;
        let status = finished(&test, &id).await?;
        assert_eq!(status.output::<String>()?, approval::ESCALATED);

        let history = history(&test, &id).await?;
        assert_eq!(count(&history, "TimerFired"), 1);
        assert_eq!(scheduled(&history, "escalate"), 1);
        let escalation = history.iter().find_map(|e| match &e.kind {
            EventKind::TaskCompleted { result, .. } if result.contains("escalated") => {
                Some(result.clone())
            }
            _ => None,
        });
        assert!(
            escalation.is_some_and(|r| r.contains(&*id)),
            "the escalate activity ran for this instance: {history:#?}"
        );

        // A decision that comes too late is refused: the instance has finished.
        let late = client
            .raise_event(&id, approval::APPROVAL_EVENT, true)
            .await;
        assert_eq!(
            late.map_err(|e| e.kind().clone()),
            Err(ErrorKind::InstanceNotRunning)
        );
        Ok(())
    })
    .await;
}

/// Runs an eternal counter to `limit` and returns the length of its final history.
async fn count_to(test: &TestRuntime, limit: u64) -> Result<usize, Error> {
    let second = Duration::from_secs(1);
    let input = eternal_counter::CounterState::new(limit, 1_000);
    let id = test
        .client()
        .start(eternal_counter::eternal_counter, input)
        .await?;

    advance_times(test, second, limit as u32 - 1).await;
    let status = settled(test, &id).await?;
    assert_ne!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "one step early"
    );
    assert_eq!(status.custom_status::<u64>()?, Some(limit - 1));

    test.advance(second).await;
    let status = finished(test, &id).await?;
    assert_eq!(status.output::<u64>()?, limit);
    assert_eq!(
        status.input::<eternal_counter::CounterState>()?.count,
        limit
    );

    let history = history(test, &id).await?;
    assert_eq!(
        count(&history, "ExecutionStarted"),
        1,
        "only the last execution's history is kept: {history:#?}"
    );
    assert_eq!(count(&history, "TimerFired"), 0);
    Ok(history.len())
}

#[tokio::test]
async fn eternal_counter_reaches_its_limit_with_a_bounded_history() {
    in_both_modes(eternal_counter::register, |test| async move {
        let short = count_to(&test, 3).await?;
        let long = count_to(&test, 25).await?;
        assert_eq!(short, long, "the history does not grow with the count");
        assert!(long <= 6, "a fresh execution's history is short: {long}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sub_orchestrations_aggregate_the_children() {
    use sub_orchestrations::{RegionPlan, RegionReport};

    in_both_modes(sub_orchestrations::register, |test| async move {
        let client = test.client();
        let plans = vec![
            RegionPlan::new("eu-west", 2),
            RegionPlan::new("us-east", 3),
            RegionPlan::new("ap-south", 1),
        ];
        let id = client
            .start(sub_orchestrations::deploy_all_regions, plans)
            .instance_id("rollout-1")
            .await?;
        let status = finished(&test, &id).await?;
        let summary = status.output::<sub_orchestrations::DeploymentSummary>()?;
        assert_eq!(summary.total_servers, 6);
        let regions: Vec<&str> = summary.regions.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(regions, ["eu-west", "us-east", "ap-south"]);
        assert_eq!(
            summary.regions[0],
            RegionReport {
                region: "eu-west".into(),
                hosts: vec!["eu-west-vm-1".into(), "eu-west-vm-2".into()],
                endpoint: "https://eu-west.example.test".into(),
            }
        );

        // Every child is an instance of its own, linked to the parent.
        for region in regions {
            let child = finished(&test, &format!("rollout-1:{region}")).await?;
            assert_eq!(child.name, "deploy_region");
            assert_eq!(child.parent_instance_id.as_deref(), Some("rollout-1"));
            assert_eq!(child.output::<RegionReport>()?.region, region);
        }
        let history = history(&test, &id).await?;
        assert_eq!(count(&history, "SubOrchestrationInstanceCompleted"), 3);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sub_orchestration_failure_reaches_the_parent() {
    use sub_orchestrations::RegionPlan;

    in_both_modes(sub_orchestrations::register, |test| async move {
        let plans = vec![RegionPlan::new("eu-west", 2), RegionPlan::new("nowhere", 0)];
        let id = test
            .client()
            .start(sub_orchestrations::deploy_all_regions, plans)
            .await?;
        let status = finished(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let message = status.failure.map(|f| f.message).unwrap_or_default();
        assert!(message.contains("deploy_region"), "{message}");
        assert!(message.contains("needs at least one server"), "{message}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn retry_succeeds_on_the_third_attempt() {
    in_both_modes(retries::register, |test| async move {
        let id = test
            .client()
            .start(retries::upload_with_retry, "q3-report.pdf".to_string())
            .await?;
        // The waits between attempts: 500 ms, then 1 s.
        let first = retries::FIRST_RETRY_INTERVAL;
        test.advance(first).await;
        let status = settled(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Running);
        test.advance(first * 2).await;

        let status = finished(&test, &id).await?;
        assert_eq!(
            status.output::<String>()?,
            "uploaded q3-report.pdf on attempt 3"
        );
        let history = history(&test, &id).await?;
        assert_eq!(scheduled(&history, "upload_report"), 3);
        assert_eq!(count(&history, "TaskFailed"), 2);
        assert_eq!(count(&history, "TimerFired"), 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn retry_gives_up_with_the_activity_error() {
    in_both_modes(retries::register, |test| async move {
        let id = test
            .client()
            .start(retries::charge_with_retry, 4_200)
            .await?;
        let first = retries::FIRST_RETRY_INTERVAL;
        test.advance(first).await;
        test.advance(first * 2).await;

        let status = finished(&test, &id).await?;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let message = status.failure.as_ref().map(|f| f.message.clone());
        assert_eq!(
            message.as_deref(),
            Some(
                "gave up after 3 attempts: activity `charge_card` failed: payment gateway \
                 unavailable, could not charge 4200 cents (attempt 3)"
            )
        );
        let history = history(&test, &id).await?;
        assert_eq!(scheduled(&history, "charge_card"), 3);
        assert_eq!(count(&history, "TaskFailed"), 3);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn register_all_registers_every_example() {
    let test = TestRuntime::start(durable_examples::register_all(Runtime::builder()))
        .await
        .expect("no name is registered twice");
    let id = test
        .client()
        .start(chaining::hello_cities, ())
        .await
        .unwrap();
    assert_eq!(
        finished(&test, &id)
            .await
            .unwrap()
            .output::<Vec<String>>()
            .unwrap()
            .len(),
        3
    );
    for name in [
        "hello_cities",
        "sum_of_squares",
        "job_monitor",
        "approval_workflow",
        "eternal_counter",
        "deploy_all_regions",
        "upload_with_retry",
        "charge_with_retry",
    ] {
        let started = test
            .client()
            .start_by_name(name, serde_json::Value::Null)
            .await;
        // Known names are checked against their input type (null fits some); an unknown name
        // would be an UnknownFunction error.
        assert!(
            started
                .as_ref()
                .map_or_else(|e| e.kind() == &durable::ErrorKind::Serialization, |_| true),
            "`{name}` is registered: {started:?}"
        );
    }
}

//! **Monitor**: watch something that changes on its own schedule, checking it at intervals
//! until it reaches the state you want or you stop caring.
//!
//! `job_monitor` polls the `check_job_status` activity, and between polls waits on a *durable*
//! timer (`ctx.create_timer`). Nothing runs while it waits: the timer is a message in the store,
//! so a monitor can poll every hour for a week without holding a thread, and it survives host
//! restarts. The deadline is computed from `ctx.current_utc_datetime()`, the orchestration's
//! replay-safe clock, so every replay makes the same decision the first run made.
//!
//! The job is simulated: it "finishes" on a poll number given in the input, and the activity
//! computes its state from the poll number it is passed. No state is kept anywhere else, so the
//! outcome depends only on the input.
//!
//! ```text
//! ┌─► check_job_status ── done? ──yes──► "completed"
//! │          │ no
//! │   next poll past the deadline? ──yes──► "expired"
//! │          │ no
//! └── durable timer (poll_every_ms)
//! ```

use std::time::Duration;

use chrono::TimeDelta;
use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// What to monitor, how often, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorInput {
    /// The job's id.
    pub job_id: String,
    /// The simulated job reports done on this poll (1 = the first poll).
    pub done_on_poll: u32,
    /// The wait between polls, in milliseconds.
    pub poll_every_ms: u64,
    /// Give up this long after the monitor started, in milliseconds.
    pub expires_after_ms: u64,
}

/// One status check: which job, and which poll this is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusQuery {
    /// The job's id.
    pub job_id: String,
    /// The poll number (1 for the first).
    pub poll: u32,
    /// The simulated job reports done from this poll on.
    pub done_on_poll: u32,
}

/// The state of a job as the status check reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    /// Still working.
    Running,
    /// Finished.
    Done,
}

/// Progress shown in the instance's custom status while the monitor runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorProgress {
    /// Polls made so far.
    pub polls: u32,
    /// What the last poll said.
    pub last_state: JobState,
}

/// Output of a monitor whose job finished before the deadline.
pub const COMPLETED: &str = "completed";
/// Output of a monitor that gave up at its deadline.
pub const EXPIRED: &str = "expired";

/// Checks a (simulated) job: it reports [`JobState::Done`] from poll `done_on_poll` on, and
/// [`JobState::Running`] before. A real check would call the job's status endpoint.
#[activity]
pub async fn check_job_status(
    _ctx: ActivityContext,
    query: StatusQuery,
) -> Result<JobState, Error> {
    Ok(if query.poll >= query.done_on_poll {
        JobState::Done
    } else {
        JobState::Running
    })
}

/// Polls a job every `poll_every_ms` until it is done ([`COMPLETED`]) or until the next poll
/// would fall past `expires_after_ms` from the start ([`EXPIRED`]).
#[orchestrator]
pub async fn job_monitor(ctx: OrchestrationContext, input: MonitorInput) -> Result<String, Error> {
    let expires_at = ctx.current_utc_datetime() + millis(input.expires_after_ms);
    let mut poll = 0;
    loop {
        poll += 1;
        let state = ctx
            .call_activity(
                check_job_status,
                StatusQuery {
                    job_id: input.job_id.clone(),
                    poll,
                    done_on_poll: input.done_on_poll,
                },
            )
            .await?;
        ctx.set_custom_status(MonitorProgress {
            polls: poll,
            last_state: state,
        });
        if state == JobState::Done {
            return Ok(COMPLETED.to_string());
        }
        let next_poll = ctx.current_utc_datetime() + millis(input.poll_every_ms);
        if next_poll > expires_at {
            return Ok(EXPIRED.to_string());
        }
        ctx.create_timer(next_poll).await;
    }
}

fn millis(ms: u64) -> TimeDelta {
    TimeDelta::from_std(Duration::from_millis(ms)).unwrap_or(TimeDelta::MAX)
}

/// Registers [`job_monitor`] and [`check_job_status`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register(job_monitor).register(check_job_status)
}

//! Messages for an instance that has not started yet: an instance scheduled to start later
//! (`start_at`) may be sent events or a suspension before its start message is visible. Run as
//! a turn, they would be consumed with nothing started (and the start, when it came, would be
//! ignored for the history that turn wrote). The host puts them back in the queue instead,
//! hidden until the start is due, so that they come with it (after it, in the order they were
//! put back) and reach the orchestrator once it runs. A termination is not held back: it ends
//! the instance at once, and its start is then dropped like any late message.
//!
//! Putting them back is a commit, not an abandon: it counts no failed delivery (the messages
//! are never parked for waiting), and the time they wait is orchestration time, the clock
//! start times are on. Until then nothing of the instance is visible, so the host does not
//! look at it again; the dispatchers wait for the next visible message as for any timer.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Inner;
use super::orchestrations::{TurnError, unchanged};
use crate::model::history::EventKind;
use crate::store::{OrchestrationMessage, OrchestrationWorkItem};

/// How long messages for an instance that has not started wait at a time when the store does
/// not say when its start is due (a store that cannot tell, or a start held back for another
/// reason, such as a retry after a failed first turn): as long as they have waited already,
/// from a second up to a minute. An instance whose start never comes (one imported before it
/// started) costs a look a minute, not a turn loop.
const RECHECK: Duration = Duration::from_secs(1);
const MAX_RECHECK: Duration = Duration::from_secs(60);

/// Whether `item` holds messages for an instance that has not started and that must wait for
/// its start: it has no history, the item holds no start of its current execution, and
/// nothing in it ends the instance.
pub(super) fn waits_for_start(item: &OrchestrationWorkItem) -> bool {
    let execution = &item.instance.execution_id;
    item.history_len == 0
        && !item.instance.runtime_status.is_terminal()
        && !item.messages.iter().any(|m| match &m.message.event.kind {
            EventKind::ExecutionStarted { execution_id, .. } => execution_id == execution,
            EventKind::ExecutionTerminated { .. } => true,
            _ => false,
        })
}

impl Inner {
    /// Puts `item`'s messages back in the queue, hidden until the instance's start is due, in
    /// one commit that changes nothing else. Answers meant for another execution are dropped,
    /// as a turn drops them.
    pub(super) async fn wait_for_start(
        &self,
        item: &OrchestrationWorkItem,
        now: DateTime<Utc>,
    ) -> Result<(), TurnError> {
        self.evict(&item.instance_id);
        let known = self.store.next_visible_for(&item.instance_id, now).await?;
        let due = known.unwrap_or_else(|| {
            let sent = item
                .messages
                .iter()
                .map(|m| m.message.event.timestamp)
                .min()
                .unwrap_or(now);
            let waited = (now - sent).to_std().unwrap_or_default();
            let wait = waited.clamp(RECHECK, MAX_RECHECK);
            now + TimeDelta::from_std(wait).expect("a minute fits a time delta")
        });
        let execution = item.instance.execution_id.as_str();
        let waiting: Vec<OrchestrationMessage> = item
            .messages
            .iter()
            .map(|m| &m.message)
            .filter(|m| match &m.event.kind {
                EventKind::ExecutionStarted { .. } => false,
                kind if kind.is_response() => m.execution_id.as_deref() == Some(execution),
                _ => true,
            })
            .map(|m| OrchestrationMessage {
                visible_at: Some(m.visible_at.map_or(due, |at| at.max(due))),
                ..m.clone()
            })
            .collect();
        tracing::debug!(
            instance_id = ?item.instance_id,
            messages = waiting.len(),
            until = %due,
            start_known = known.is_some(),
            "the instance has not started: its messages wait for the start"
        );
        let consumed = item.messages.iter().map(|m| m.seq).collect();
        let mut commit = unchanged(&item.instance, consumed);
        commit.messages = waiting;
        self.commit(item, commit).await
    }
}

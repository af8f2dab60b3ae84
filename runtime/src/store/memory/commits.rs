//! The in-memory store's commits of turns, as the `Store` methods call them: a turn (reading
//! the work it gives this host's idle instances at once), a start with its first turn, and
//! finished activities with the turn they unblock.

use std::time::Duration;

use chrono::{DateTime, Utc};

// Tokio's clock, so that paused time (a simulation) drives leases.
use tokio::time::Instant;

use super::{Memory, activities, work};
use crate::store::signal::TurnWakes;
use crate::store::{
    ActivityTask, ActivityWorkItem, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, PartitionLease, ResultsCommit, StoreError, TurnCommit,
};

impl Memory {
    pub(super) async fn complete_and_commit(
        &self,
        results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
        expected: InstanceVersion,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<ResultsCommit, StoreError> {
        let wakes = TurnWakes::of(&commit, &expected.instance_id);
        let expected_id = expected.instance_id.clone();
        let done = {
            let mut guard = self.hub();
            let hub = &mut *guard;
            if let Some((item, _)) = results.iter().find(|(item, _)| !hub.holds(item)) {
                tracing::debug!(activity = ?item.task.name, "a finished activity's lease was lost");
                return Err(StoreError::LeaseLost);
            }
            for (item, _) in &results {
                activities::take_leased(hub, item)?;
            }
            let real_now = Instant::now();
            let unchanged = hub
                .instances
                .get(&expected.instance_id)
                .is_some_and(|entry| {
                    let leased = entry.lock.is_some()
                        && hub
                            .leases
                            .get(&expected.instance_id)
                            .is_some_and(|deadline| *deadline > real_now);
                    !leased
                        && expected.fence.is_none_or(|f| hub.fence_holds(&f))
                        && entry.history.len() == expected.history_len
                        && entry.status.execution_id == expected.execution_id
                        && entry.status.last_updated_at == expected.last_updated_at
                });
            if unchanged {
                hub.unlock(&expected.instance_id);
                hub.apply(&expected.instance_id, commit);
                ResultsCommit::Committed(activities::hold(hub, run_here, lease))
            } else {
                for (_, response) in results {
                    hub.deliver(response);
                }
                ResultsCommit::Queued
            }
        };
        match &done {
            ResultsCommit::Committed(_) => self.shared.signal.turn_applied(wakes),
            ResultsCommit::Queued => self.shared.signal.work_for([expected_id]),
        }
        Ok(done)
    }

    pub(super) async fn commit_reading(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        read: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ActivityWorkItem>, Vec<OrchestrationWorkItem>), StoreError> {
        let mut wakes = TurnWakes::of(&commit, &item.instance_id)
            .waking_orchestrations(!item.lock.0.is_empty());
        let (held, items) = {
            let mut guard = self.hub();
            let hub = &mut *guard;
            hub.check_lock(item)?;
            hub.check_consumed(&item.instance_id, &commit.consumed)?;
            hub.unlock(&item.instance_id);
            hub.apply(&item.instance_id, commit);
            let held = activities::hold(hub, run_here, lease);
            let items: Vec<OrchestrationWorkItem> = read
                .iter()
                .filter_map(|(id, fence)| work::read_work(hub, id, now, *fence))
                .collect();
            (held, items)
        };
        wakes.read(items.iter().map(|i| i.instance_id.as_str()));
        self.shared.signal.turn_applied(wakes);
        Ok((held, items))
    }

    pub(super) async fn create_started(
        &self,
        instance: NewInstance,
        fence: PartitionLease,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
        let wakes = TurnWakes::of(&commit, &instance.instance_id);
        let held = {
            let mut guard = self.hub();
            let hub = &mut *guard;
            if !hub.fence_holds(&fence) {
                return Err(StoreError::LeaseLost);
            }
            let id = instance.instance_id.clone();
            hub.insert_new(instance)?;
            hub.apply(&id, commit);
            activities::hold(hub, run_here, lease)
        };
        self.shared.signal.turn_applied(wakes);
        Ok(Some(held))
    }
}

//! The activity queue in memory: fetch, renew, complete, abandon and park activity work.

use std::time::Duration;

// Tokio's clock, so that paused time (a simulation) drives leases and retry delays.
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use super::{Hub, LeasedActivity, Memory, QueuedActivity, token};
use crate::store::{
    ActivityTask, ActivityWorkItem, LockToken, OrchestrationMessage, ParkedMessage, StoreError,
};

pub(super) async fn fetch_activity(
    store: &Memory,
    lease: Duration,
) -> Result<Option<ActivityWorkItem>, StoreError> {
    Ok(fetch_activities(store, lease, 1).await?.pop())
}

pub(super) async fn fetch_activities(
    store: &Memory,
    lease: Duration,
    max: usize,
) -> Result<Vec<ActivityWorkItem>, StoreError> {
    let real_now = Instant::now();
    let mut guard = store.hub();
    let hub = &mut *guard;
    hub.expire_leases(real_now);
    let mut items = Vec::new();
    while items.len() < max {
        let Some(pos) = hub
            .activities
            .iter()
            .position(|a| a.not_before.is_none_or(|t| t <= real_now))
        else {
            break;
        };
        let mut activity = hub.activities.remove(pos).expect("position is valid");
        activity.dequeue_count += 1;
        let lock = token(hub.seq());
        items.push(ActivityWorkItem {
            task: activity.task.clone(),
            lock: LockToken(lock.clone()),
            dequeue_count: activity.dequeue_count,
        });
        hub.leased_activities.insert(
            lock,
            LeasedActivity {
                activity,
                deadline: real_now + lease,
            },
        );
    }
    Ok(items)
}

pub(super) async fn renew_activity_lease(
    store: &Memory,
    item: &ActivityWorkItem,
    lease: Duration,
) -> Result<(), StoreError> {
    let mut hub = store.hub();
    let leased = hub
        .leased_activities
        .get_mut(&item.lock.0)
        .ok_or(StoreError::LeaseLost)?;
    leased.deadline = Instant::now() + lease;
    Ok(())
}

pub(super) async fn complete_activity(
    store: &Memory,
    item: &ActivityWorkItem,
    response: OrchestrationMessage,
) -> Result<(), StoreError> {
    let ready = response.instance_id.clone();
    {
        let mut hub = store.hub();
        take_leased(&mut hub, item)?;
        hub.deliver(response);
    }
    store.shared.signal.work_for([ready]);
    Ok(())
}

/// Queues `tasks` leased to the caller for `lease`; their work items.
pub(super) fn hold(
    hub: &mut Hub,
    tasks: Vec<ActivityTask>,
    lease: Duration,
) -> Vec<ActivityWorkItem> {
    let deadline = Instant::now() + lease;
    tasks
        .into_iter()
        .map(|task| {
            let lock = token(hub.seq());
            let item = ActivityWorkItem {
                task: task.clone(),
                lock: LockToken(lock.clone()),
                dequeue_count: 1,
            };
            let activity = QueuedActivity {
                task,
                dequeue_count: 1,
                not_before: None,
            };
            hub.leased_activities
                .insert(lock, LeasedActivity { activity, deadline });
            item
        })
        .collect()
}

pub(super) async fn abandon_activity(
    store: &Memory,
    item: &ActivityWorkItem,
    retry_after: Duration,
) -> Result<(), StoreError> {
    {
        let mut hub = store.hub();
        let mut activity = take_leased(&mut hub, item)?;
        activity.not_before = Some(Instant::now() + retry_after);
        hub.activities.push_back(activity);
    }
    store.wake_later(retry_after);
    Ok(())
}

pub(super) async fn park_activity(
    store: &Memory,
    item: &ActivityWorkItem,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut hub = store.hub();
    let activity = take_leased(&mut hub, item)?;
    hub.parked.push(ParkedMessage {
        instance_id: activity.task.instance_id.clone(),
        message: format!("{:?}", activity.task),
        error: error.to_string(),
        parked_at: now,
    });
    Ok(())
}

pub(super) fn take_leased(
    hub: &mut Hub,
    item: &ActivityWorkItem,
) -> Result<QueuedActivity, StoreError> {
    hub.leased_activities
        .remove(&item.lock.0)
        .map(|leased| leased.activity)
        .ok_or(StoreError::LeaseLost)
}

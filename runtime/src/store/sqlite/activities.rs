//! The activity queue on SQLite: fetch, renew, complete, abandon and park activity work.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::ops::{self, db, millis, real_millis};
use super::{Sqlite, new_token};
use crate::store::{ActivityTask, ActivityWorkItem, LockToken, OrchestrationMessage, StoreError};

pub(super) async fn fetch_activity(
    store: &Sqlite,
    lease: Duration,
) -> Result<Option<ActivityWorkItem>, StoreError> {
    Ok(fetch_activities(store, lease, 1).await?.pop())
}

pub(super) async fn fetch_activities(
    store: &Sqlite,
    lease: Duration,
    max: usize,
) -> Result<Vec<ActivityWorkItem>, StoreError> {
    store
        .write_checked(move |conn, hub| lease_activities(conn, hub, lease, max))
        .await
}

/// Leases up to `max` activities: free ones in order first, then ones whose lease ran out.
fn lease_activities(
    conn: &Connection,
    hub: &str,
    lease: Duration,
    max: usize,
) -> Result<Vec<ActivityWorkItem>, StoreError> {
    let real_now = real_millis();
    let free = "SELECT seq, instance_id, execution_id, task_id, name, input, dequeue_count \
         FROM activities WHERE hub = ?1 AND lock_token IS NULL \
         AND (not_before IS NULL OR not_before <= ?2) ORDER BY seq LIMIT ?3";
    let expired = "SELECT seq, instance_id, execution_id, task_id, name, input, dequeue_count \
         FROM activities WHERE hub = ?1 AND lock_token IS NOT NULL AND lock_expires <= ?2 \
         ORDER BY lock_expires LIMIT ?3";
    let mut found = Vec::new();
    for sql in [free, expired] {
        let left = max.saturating_sub(found.len());
        if left == 0 {
            break;
        }
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(db("looking for activities"))?;
        let rows = stmt
            .query_map(params![hub, real_now, left as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    ActivityTask {
                        instance_id: r.get(1)?,
                        execution_id: r.get(2)?,
                        task_id: r.get(3)?,
                        name: r.get(4)?,
                        input: r.get(5)?,
                    },
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(db("looking for activities"))?;
        for row in rows {
            found.push(row.map_err(db("looking for activities"))?);
        }
    }
    let mut lease_one = conn
        .prepare_cached(
            "UPDATE activities SET lock_token = ?2, lock_expires = ?3, \
             dequeue_count = dequeue_count + 1 WHERE seq = ?1",
        )
        .map_err(db("leasing an activity"))?;
    let mut items = Vec::with_capacity(found.len());
    for (seq, task, count) in found {
        let token = new_token();
        lease_one
            .execute(params![seq, token, real_now + millis(lease)])
            .map_err(db("leasing an activity"))?;
        items.push(ActivityWorkItem {
            task,
            lock: LockToken(token),
            dequeue_count: count as u32 + 1,
        });
    }
    Ok(items)
}

pub(super) async fn renew_activity_lease(
    store: &Sqlite,
    item: &ActivityWorkItem,
    lease: Duration,
) -> Result<(), StoreError> {
    let token = item.lock.0.clone();
    store
        .write(move |conn, hub| {
            let renewed = conn
                .prepare_cached(
                    "UPDATE activities SET lock_expires = ?3 WHERE hub = ?1 AND lock_token = ?2",
                )
                .map_err(db("renewing an activity's lease"))?
                .execute(params![hub, token, real_millis() + millis(lease)])
                .map_err(db("renewing an activity's lease"))?;
            if renewed == 0 {
                return Err(StoreError::LeaseLost);
            }
            Ok(())
        })
        .await
}

pub(super) async fn complete_activity(
    store: &Sqlite,
    item: &ActivityWorkItem,
    response: OrchestrationMessage,
) -> Result<(), StoreError> {
    let item = item.clone();
    let ready = response.instance_id.clone();
    let event = ops::event_json(&response);
    store
        .write_checked(move |conn, hub| {
            take(conn, hub, &item)?;
            ops::deliver_serialized(conn, hub, &response, &event)
        })
        .await?;
    store.inner.signal.work_for([ready]);
    Ok(())
}

/// Queues `tasks` leased to the caller for `lease`; their work items.
pub(super) fn hold(
    conn: &Connection,
    hub: &str,
    tasks: Vec<ActivityTask>,
    lease: Duration,
) -> Result<Vec<ActivityWorkItem>, StoreError> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let expires = real_millis() + millis(lease);
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO activities (hub, instance_id, execution_id, task_id, name, input, \
             lock_token, lock_expires, dequeue_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)",
        )
        .map_err(db("queueing activities"))?;
    let mut items = Vec::with_capacity(tasks.len());
    for task in tasks {
        let token = new_token();
        insert
            .execute(params![
                hub,
                task.instance_id,
                task.execution_id,
                task.task_id,
                task.name,
                task.input,
                token,
                expires
            ])
            .map_err(db("queueing activities"))?;
        items.push(ActivityWorkItem {
            task,
            lock: LockToken(token),
            dequeue_count: 1,
        });
    }
    Ok(items)
}

/// Removes the activities held under `items`' tokens; `LeaseLost`, before anything changed,
/// when one is not.
pub(super) fn take_all<'a>(
    conn: &Connection,
    hub: &str,
    items: impl ExactSizeIterator<Item = &'a ActivityWorkItem> + Clone,
) -> Result<(), StoreError> {
    if items.len() > 1 {
        let mut held = conn
            .prepare_cached("SELECT 1 FROM activities WHERE hub = ?1 AND lock_token = ?2")
            .map_err(db("completing an activity"))?;
        for item in items.clone() {
            if !held
                .exists(params![hub, item.lock.0])
                .map_err(db("completing an activity"))?
            {
                return Err(StoreError::LeaseLost);
            }
        }
    }
    for item in items {
        take(conn, hub, item)?;
    }
    Ok(())
}

/// Removes an activity held under `item`'s token; `LeaseLost` when it is not.
pub(super) fn take(
    conn: &Connection,
    hub: &str,
    item: &ActivityWorkItem,
) -> Result<(), StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM activities WHERE hub = ?1 AND lock_token = ?2")
        .map_err(db("completing an activity"))?
        .execute(params![hub, item.lock.0])
        .map_err(db("completing an activity"))?;
    if deleted == 0 {
        return Err(StoreError::LeaseLost);
    }
    Ok(())
}

pub(super) async fn abandon_activity(
    store: &Sqlite,
    item: &ActivityWorkItem,
    retry_after: Duration,
) -> Result<(), StoreError> {
    let token = item.lock.0.clone();
    store
        .write(move |conn, hub| {
            let updated = conn
                .prepare_cached(
                    "UPDATE activities SET lock_token = NULL, lock_expires = NULL, not_before = ?3 \
                 WHERE hub = ?1 AND lock_token = ?2",
                )
                .map_err(db("abandoning an activity"))?
                .execute(params![hub, token, real_millis() + millis(retry_after)])
                .map_err(db("abandoning an activity"))?;
            if updated == 0 {
                return Err(StoreError::LeaseLost);
            }
            Ok(())
        })
        .await?;
    store.wake_later(retry_after);
    Ok(())
}

pub(super) async fn park_activity(
    store: &Sqlite,
    item: &ActivityWorkItem,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let token = item.lock.0.clone();
    let text = format!("{:?}", item.task);
    let instance_id = item.task.instance_id.clone();
    let error = error.to_string();
    store
        .write(move |conn, hub| {
            let deleted = conn
                .prepare_cached("DELETE FROM activities WHERE hub = ?1 AND lock_token = ?2")
                .map_err(db("parking an activity"))?
                .execute(params![hub, token])
                .map_err(db("parking an activity"))?;
            if deleted == 0 {
                return Err(StoreError::LeaseLost);
            }
            ops::park(conn, hub, &instance_id, &text, &error, now)
        })
        .await
}

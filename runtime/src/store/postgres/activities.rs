//! The activity queue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;

use super::Postgres;
use super::db::{Fail, execute, micros, nanos, row, storable};
use super::listener::Wake;
use super::work::{deliver_one, lease_one, notify};
use crate::store::{
    ActivityTask, ActivityWorkItem, LockToken, OrchestrationMessage, OrchestrationWorkItem,
    StoreError,
};

/// Leases the oldest activity that is neither leased nor waiting to be retried.
const LEASE: &str = "
UPDATE durable_activities
SET lock_token = $2, lock_expires_at = now() + $3::bigint * interval '1 microsecond',
    dequeue_count = dequeue_count + 1
WHERE seq = (
    SELECT seq FROM durable_activities
    WHERE hub = $1
      AND (lock_token IS NULL OR lock_expires_at <= now())
      AND (not_before IS NULL OR not_before <= now())
    ORDER BY seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING instance_id, execution_id, task_id, name, input, dequeue_count";

pub(super) async fn fetch(
    store: &Postgres,
    client: &mut Client,
    lease: Duration,
) -> Result<Option<ActivityWorkItem>, Fail> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let Some(leased) = row(&*client, LEASE, &[&store.hub, &token, &micros(lease)]).await? else {
        return Ok(None);
    };
    let dequeue_count: i32 = leased.try_get(5)?;
    Ok(Some(ActivityWorkItem {
        task: ActivityTask {
            instance_id: leased.try_get(0)?,
            execution_id: leased.try_get(1)?,
            task_id: leased.try_get(2)?,
            name: leased.try_get(3)?,
            input: leased.try_get(4)?,
        },
        lock: LockToken(token),
        dequeue_count: dequeue_count.max(0) as u32,
    }))
}

/// Records an activity's result; with `fetch`, also leases the instance it is for (see
/// [`crate::store::Store::complete_activity_and_fetch`]).
pub(super) async fn complete(
    store: &Postgres,
    client: &mut Client,
    item: &ActivityWorkItem,
    response: OrchestrationMessage,
    fetch: Option<(DateTime<Utc>, Duration)>,
) -> Result<Option<OrchestrationWorkItem>, Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    let removed = execute(
        &tx,
        "DELETE FROM durable_activities WHERE hub = $1 AND lock_token = $2",
        &[&hub, &item.lock.0],
    )
    .await?;
    if removed == 0 {
        return Err(StoreError::LeaseLost.into());
    }
    let instance_id = response.instance_id.clone();
    deliver_one(&tx, hub, response).await?;
    let fetched = match fetch {
        Some((now, lease)) => lease_one(&tx, hub, &instance_id, now, lease).await?,
        None => None,
    };
    if fetched.is_none() {
        let wake = Wake {
            orchestrations: true,
            ..Wake::default()
        };
        notify(&tx, hub, wake).await?;
    }
    tx.commit().await?;
    Ok(fetched)
}

/// Extends a running activity's lease from now, on the database's clock.
pub(super) async fn renew(
    store: &Postgres,
    client: &mut Client,
    item: &ActivityWorkItem,
    lease: Duration,
) -> Result<(), Fail> {
    let renewed = execute(
        &*client,
        "UPDATE durable_activities
         SET lock_expires_at = now() + $3::bigint * interval '1 microsecond'
         WHERE hub = $1 AND lock_token = $2",
        &[&store.hub, &item.lock.0, &micros(lease)],
    )
    .await?;
    if renewed == 0 {
        return Err(StoreError::LeaseLost.into());
    }
    Ok(())
}

pub(super) async fn abandon(
    store: &Postgres,
    client: &mut Client,
    item: &ActivityWorkItem,
    retry_after: Duration,
) -> Result<(), Fail> {
    // Back of the queue (a new sequence number), released, not fetched before the delay.
    let released = execute(
        &*client,
        "UPDATE durable_activities
         SET seq = nextval(pg_get_serial_sequence('durable_activities', 'seq')),
             lock_token = NULL, lock_expires_at = NULL,
             not_before = now() + $3::bigint * interval '1 microsecond'
         WHERE hub = $1 AND lock_token = $2",
        &[&store.hub, &item.lock.0, &micros(retry_after)],
    )
    .await?;
    if released == 0 {
        return Err(StoreError::LeaseLost.into());
    }
    Ok(())
}

pub(super) async fn park(
    store: &Postgres,
    client: &mut Client,
    item: &ActivityWorkItem,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), Fail> {
    let parked = execute(
        &*client,
        "WITH taken AS (
             DELETE FROM durable_activities WHERE hub = $1 AND lock_token = $2
             RETURNING instance_id)
         INSERT INTO durable_parked (hub, instance_id, message, error, parked_at_ns)
         SELECT $1, instance_id, $3, $4, $5 FROM taken",
        &[
            &store.hub,
            &item.lock.0,
            &storable(&format!("{:?}", item.task)).as_ref(),
            &storable(error).as_ref(),
            &nanos(now),
        ],
    )
    .await?;
    if parked == 0 {
        return Err(StoreError::LeaseLost.into());
    }
    Ok(())
}

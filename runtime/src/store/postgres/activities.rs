//! The activity queue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};

use super::Postgres;
use super::db::{Fail, execute, micros, nanos, row, rows, storable};
use super::listener::Wake;
use super::turns::apply_turn;
use super::work::deliver_one;
use crate::store::{
    ActivityTask, ActivityWorkItem, InstanceVersion, LockToken, OrchestrationMessage,
    ResultsCommit, StoreError, TurnCommit,
};

/// Leases the oldest activities (up to `$4`) that are neither leased nor waiting to be
/// retried; each token is `$2` and the activity's row.
///
/// The activities are picked by an `ARRAY(…)` subquery, which PostgreSQL runs once, before the
/// update. Picked by `seq IN (SELECT … LIMIT $4 …)` instead, they may be many more than `$4`:
/// the planner may make that subquery the inner side of a nested loop (it does when the
/// table's statistics say it is nearly empty, as after an autovacuum `ANALYZE` while the queue
/// was drained) and run it again for every row of the table, and each run skips the rows the
/// update has already changed and locks the next ones.
const LEASE: &str = "
UPDATE durable_activities
SET lock_token = $2 || ':' || seq::text,
    lock_expires_at = now() + $3::bigint * interval '1 microsecond',
    dequeue_count = dequeue_count + 1
WHERE hub = $1 AND seq = ANY(ARRAY(
    SELECT seq FROM durable_activities
    WHERE hub = $1
      AND (lock_token IS NULL OR lock_expires_at <= now())
      AND (not_before IS NULL OR not_before <= now())
    ORDER BY seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED))
RETURNING seq, instance_id, execution_id, task_id, name, input, dequeue_count, lock_token";

pub(super) async fn fetch(
    store: &Postgres,
    client: &mut Client,
    lease: Duration,
    max: usize,
) -> Result<Vec<ActivityWorkItem>, Fail> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let leased = rows(&*client, LEASE, &[&store.hub, &token, &micros(lease), &max]).await?;
    let mut items = Vec::with_capacity(leased.len());
    for row in leased {
        let seq: i64 = row.try_get(0)?;
        let dequeue_count: i32 = row.try_get(6)?;
        let item = ActivityWorkItem {
            task: ActivityTask {
                instance_id: row.try_get(1)?,
                execution_id: row.try_get(2)?,
                task_id: row.try_get(3)?,
                name: row.try_get(4)?,
                input: row.try_get(5)?,
            },
            lock: LockToken(row.try_get(7)?),
            dequeue_count: dequeue_count.max(0) as u32,
        };
        items.push((seq, item));
    }
    items.sort_by_key(|(seq, _)| *seq);
    Ok(items.into_iter().map(|(_, item)| item).collect())
}

pub(super) async fn complete(
    store: &Postgres,
    client: &mut Client,
    item: &ActivityWorkItem,
    response: OrchestrationMessage,
) -> Result<(), Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    take(&tx, hub, std::slice::from_ref(item)).await?;
    deliver_one(&tx, hub, response).await?;
    let wake = Wake {
        orchestrations: true,
        ..Wake::default()
    };
    tx.commit().await?;
    store.announce(wake);
    Ok(())
}

/// Removes activities held under their items' tokens; [`StoreError::LeaseLost`] when one is
/// not (the caller's transaction is then dropped: nothing applied).
async fn take(
    client: &impl GenericClient,
    hub: &str,
    items: &[ActivityWorkItem],
) -> Result<(), Fail> {
    let tokens: Vec<&str> = items.iter().map(|i| i.lock.0.as_str()).collect();
    let removed = execute(
        client,
        "DELETE FROM durable_activities WHERE hub = $1 AND lock_token = ANY($2)",
        &[&hub, &tokens],
    )
    .await?;
    if removed as usize != items.len() {
        return Err(StoreError::LeaseLost.into());
    }
    Ok(())
}

/// Whether the instance is unleased (or its lease ran out) and still at `expected`; locks its
/// row until the transaction ends.
const UNCHANGED: &str = "
SELECT (lock_token IS NULL OR lock_expires_at <= now())
    AND history_len = $3 AND execution_id = $4 AND last_updated_at_ns = $5
FROM durable_instances WHERE hub = $1 AND instance_id = $2 FOR NO KEY UPDATE";

/// See [`crate::store::Store::complete_activities_and_commit`].
pub(super) async fn complete_and_commit(
    store: &Postgres,
    client: &mut Client,
    results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
    expected: InstanceVersion,
    commit: TurnCommit,
    run_here: Vec<ActivityTask>,
    lease: Duration,
) -> Result<(ResultsCommit, Wake), Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    let (items, responses): (Vec<_>, Vec<_>) = results.into_iter().unzip();
    take(&tx, hub, &items).await?;
    let history_len = i32::try_from(expected.history_len)
        .map_err(|_| Fail::Described("a history longer than 2^31 events".into()))?;
    let unchanged = row(
        &tx,
        UNCHANGED,
        &[
            &hub,
            &expected.instance_id,
            &history_len,
            &expected.execution_id,
            &nanos(expected.last_updated_at),
        ],
    )
    .await?
    .map(|r| r.try_get::<_, bool>(0))
    .transpose()?
    .unwrap_or(false)
        && super::partitions::fence_holds(&tx, hub, expected.fence.as_ref()).await?;
    let (done, wake) = if unchanged {
        let wake = Wake {
            // The instance was not leased: only what the turn sent is new work.
            orchestrations: commit.sends_messages(),
            activities: !commit.activities.is_empty(),
            instances: true,
        };
        let id = expected.instance_id.as_str();
        let held = apply_turn(&tx, hub, id, None, commit, run_here, lease).await?;
        (ResultsCommit::Committed(held), wake)
    } else {
        for response in responses {
            deliver_one(&tx, hub, response).await?;
        }
        let wake = Wake {
            orchestrations: true,
            ..Wake::default()
        };
        (ResultsCommit::Queued, wake)
    };
    tx.commit().await?;
    store.announce(wake);
    Ok((done, wake))
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

//! The work of owned partitions, read without a lease: which instances are ready, and one
//! instance's work item as it stands. Only the partition's owner reads it; the partition's
//! epoch, which every commit of such an item checks, keeps every other host out, and a host
//! that leased the instance as work left for it ([`super::work::fetch_left`]) keeps the owner
//! out while its lease lives.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};

use super::Postgres;
use super::db::{
    Fail, STATUS_COLUMNS, event_from_json, instant, nanos, row, rows, status_from_row,
};
use super::work::partition_params;
use crate::store::{
    LockToken, OrchestrationMessage, OrchestrationWorkItem, Owned, PartitionLease, QueuedMessage,
    ReadyInstances, StoreError,
};

/// The instances of the owned partitions (`$3`, `$4`) with visible messages and no live lease,
/// by their oldest visible message; work this host (`$5`) left waits out its pause.
const READY: &str = "
SELECT m.instance_id, min(m.seq) AS first
FROM durable_messages m
JOIN durable_instances i ON i.hub = m.hub AND i.instance_id = m.instance_id
WHERE m.hub = $1
  AND (m.visible_at_ns IS NULL OR m.visible_at_ns <= $2)
  AND (m.not_before IS NULL OR m.not_before <= now())
  AND (i.lock_token IS NULL OR i.lock_expires_at <= now())
  AND i.id_hash % $3 = ANY($4)
  AND NOT (i.left_by IS NOT NULL AND i.left_by = $5 AND i.left_until > now())
GROUP BY m.instance_id
ORDER BY first
LIMIT $6";

const NEXT_VISIBLE: &str =
    "SELECT min(visible_at_ns) FROM durable_messages WHERE hub = $1 AND visible_at_ns > $2";

/// The instance's messages visible at `$3`, oldest first.
const MESSAGES: &str = "
SELECT seq, execution_id, event::text, visible_at_ns, dequeue_count
FROM durable_messages
WHERE hub = $1 AND instance_id = $2
  AND (visible_at_ns IS NULL OR visible_at_ns <= $3)
  AND (not_before IS NULL OR not_before <= now())
ORDER BY seq";

/// See [`crate::store::Store::ready_instances`].
pub(super) async fn ready(
    store: &Postgres,
    client: &mut Client,
    now: DateTime<Utc>,
    owned: &Owned,
    limit: usize,
) -> Result<ReadyInstances, Fail> {
    let hub = store.hub.as_str();
    let now_ns = nanos(now);
    let (count, partitions) = partition_params(owned);
    let host = owned.host().unwrap_or("");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let instance_ids = rows(
        &*client,
        READY,
        &[&hub, &now_ns, &count, &partitions, &host, &limit],
    )
    .await?
    .iter()
    .map(|r| r.try_get::<_, String>(0))
    .collect::<Result<Vec<_>, _>>()?;
    let next_visible = row(&*client, NEXT_VISIBLE, &[&hub, &now_ns])
        .await?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(instant);
    Ok(ReadyInstances {
        instance_ids,
        next_visible,
    })
}

/// See [`crate::store::Store::read_orchestration`]. `None` as well while another host holds
/// the instance under a live lease (work left for it).
pub(super) async fn read(
    store: &Postgres,
    client: &mut Client,
    id: &str,
    now: DateTime<Utc>,
    fence: PartitionLease,
) -> Result<Option<OrchestrationWorkItem>, Fail> {
    let hub = store.hub.as_str();
    // One snapshot for the instance and its messages.
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let found = row(
        &tx,
        &format!(
            "SELECT {STATUS_COLUMNS}, history_len FROM durable_instances
             WHERE hub = $1 AND instance_id = $2
               AND (lock_token IS NULL OR lock_expires_at <= now())"
        ),
        &[&hub, &id],
    )
    .await?;
    let Some(found) = found else {
        return Ok(None);
    };
    let mut messages = Vec::new();
    let mut dequeue_count = 0u32;
    for r in rows(&tx, MESSAGES, &[&hub, &id, &nanos(now)]).await? {
        let event: String = r.try_get(2)?;
        // This read is one more delivery (counted in the store only if it is abandoned).
        dequeue_count = dequeue_count.max(r.try_get::<_, i32>(4)?.max(0) as u32 + 1);
        messages.push(QueuedMessage {
            seq: r.try_get::<_, i64>(0)? as u64,
            message: OrchestrationMessage {
                instance_id: id.to_string(),
                execution_id: r.try_get(1)?,
                event: event_from_json(id, &event)?,
                visible_at: r.try_get::<_, Option<i64>>(3)?.map(instant),
            },
        });
    }
    tx.commit().await?;
    if messages.is_empty() {
        return Ok(None);
    }
    Ok(Some(OrchestrationWorkItem {
        instance_id: id.to_string(),
        instance: status_from_row(&found)?,
        history_len: found.try_get::<_, i32>(12)?.max(0) as usize,
        messages,
        lock: LockToken(String::new()),
        dequeue_count,
        fence: Some(fence),
    }))
}

/// Fails with [`StoreError::LeaseLost`] unless the lease on the partition of `item` (read
/// without a lease of its own) still holds.
pub(super) async fn check_fence(
    client: &impl GenericClient,
    hub: &str,
    item: &OrchestrationWorkItem,
) -> Result<(), Fail> {
    match item.fence.as_ref() {
        Some(fence) if super::partitions::fence_holds(client, hub, Some(fence)).await? => Ok(()),
        _ => Err(StoreError::LeaseLost.into()),
    }
}

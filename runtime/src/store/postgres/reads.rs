//! The work of owned partitions, read without a lease: which instances are ready, and one
//! instance's work item as it stands. Only the partition's owner reads it; the partition's
//! epoch, which every commit of such an item checks, keeps every other host out, and a host
//! that leased the instance as work left for it ([`super::lease::fetch_left`]) keeps the owner
//! out while its lease lives.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use tokio_postgres::Row;

use super::Postgres;
use super::db::{Fail, STATUS_COLUMNS, instant, nanos, row, rows, status_from_row};
use super::lease::{Taken, partition_params};
use crate::store::{LockToken, OrchestrationWorkItem, Owned, PartitionLease, ReadyInstances};

/// The instances of the owned partitions (`$3`, `$4`) with visible messages and no live lease,
/// by their oldest visible message, at most `$6`; work this host (`$5`) left waits out its
/// pause. And when the next timer is due. One statement, one round trip.
///
/// Driven by the messages, whatever the planner knows of the tables (a new hub's tables have
/// no statistics): the visible messages are grouped by instance, oldest first, and each
/// instance is then found by its key (`LIMIT 1` keeps that lookup from being turned into a
/// join that reads every instance of the hub), until `$6` are found.
const READY: &str = "
WITH waiting AS MATERIALIZED (
    SELECT instance_id, min(seq) AS first
    FROM durable_messages
    WHERE hub = $1
      AND (visible_at_ns IS NULL OR visible_at_ns <= $2)
      AND (not_before IS NULL OR not_before <= now())
    GROUP BY instance_id
    ORDER BY first)
SELECT array(
    SELECT w.instance_id
    FROM waiting w
    CROSS JOIN LATERAL (
        SELECT 1 FROM durable_instances i
        WHERE i.hub = $1 AND i.instance_id = w.instance_id
          AND (i.lock_token IS NULL OR i.lock_expires_at <= now())
          AND i.id_hash % $3 = ANY($4)
          AND NOT (i.left_by IS NOT NULL AND i.left_by = $5 AND i.left_until > now())
        LIMIT 1) free
    LIMIT $6),
  (SELECT min(visible_at_ns) FROM durable_messages WHERE hub = $1 AND visible_at_ns > $2)";

/// The instance, unless another host holds it under a live lease, with its messages visible at
/// `$3` (oldest first, as JSON), in one snapshot.
static READ: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {STATUS_COLUMNS}, history_len,
    (SELECT json_agg(json_build_object('seq', seq, 'executionId', execution_id,
        'event', event, 'visibleAtNs', visible_at_ns, 'dequeueCount', dequeue_count)
        ORDER BY seq)
     FROM durable_messages
     WHERE hub = $1 AND instance_id = $2
       AND (visible_at_ns IS NULL OR visible_at_ns <= $3)
       AND (not_before IS NULL OR not_before <= now()))::text
FROM durable_instances
WHERE hub = $1 AND instance_id = $2 AND (lock_token IS NULL OR lock_expires_at <= now())"
    )
});

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
    let found = row(
        &*client,
        READY,
        &[&hub, &now_ns, &count, &partitions, &host, &limit],
    )
    .await?
    .ok_or_else(|| Fail::Described("the ready query returned no row".into()))?;
    let instance_ids: Vec<String> = found.try_get(0)?;
    let next_visible = found.try_get::<_, Option<i64>>(1)?.map(instant);
    Ok(ReadyInstances {
        instance_ids,
        next_visible,
    })
}

/// The messages of the owned partitions (`$4`, `$5`) visible after `$2` and by `$3`, earliest
/// first, at most `$6`.
const COMING_DUE: &str = "
SELECT m.instance_id, m.visible_at_ns
FROM durable_messages m
WHERE m.hub = $1 AND m.visible_at_ns > $2 AND m.visible_at_ns <= $3
  AND EXISTS (SELECT 1 FROM durable_instances i
              WHERE i.hub = $1 AND i.instance_id = m.instance_id AND i.id_hash % $4 = ANY($5))
ORDER BY m.visible_at_ns
LIMIT $6";

/// See [`crate::store::Store::coming_due`].
pub(super) async fn coming_due(
    store: &Postgres,
    client: &mut Client,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    owned: &Owned,
    limit: usize,
) -> Result<Vec<(String, DateTime<Utc>)>, Fail> {
    let (count, partitions) = partition_params(owned);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let found = rows(
        &*client,
        COMING_DUE,
        &[
            &store.hub.as_str(),
            &nanos(now),
            &nanos(until),
            &count,
            &partitions,
            &limit,
        ],
    )
    .await?;
    found
        .iter()
        .map(|r| Ok((r.try_get(0)?, instant(r.try_get(1)?))))
        .collect()
}

/// Instances `$2`, each read at its time in `$3` as [`READ`] reads one, in one statement (the
/// work a commit gives this host's idle instances, read in the commit's transaction, or many
/// instances found ready at once). Each instance is found by its key: `LIMIT 1` keeps the
/// lookup from becoming a join that reads every instance of the hub.
pub(super) static READ_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT i.*,
    (SELECT json_agg(json_build_object('seq', seq, 'executionId', execution_id,
        'event', event, 'visibleAtNs', visible_at_ns, 'dequeueCount', dequeue_count)
        ORDER BY seq)
     FROM durable_messages m
     WHERE m.hub = $1 AND m.instance_id = i.instance_id
       AND (m.visible_at_ns IS NULL OR m.visible_at_ns <= r.at_ns)
       AND (m.not_before IS NULL OR m.not_before <= now()))::text
FROM unnest($2::text[], $3::bigint[]) AS r(wanted, at_ns)
CROSS JOIN LATERAL (
    SELECT {STATUS_COLUMNS}, history_len FROM durable_instances
    WHERE hub = $1 AND instance_id = r.wanted
      AND (lock_token IS NULL OR lock_expires_at <= now())
    LIMIT 1) i"
    )
});

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
    match row(&*client, &READ, &[&hub, &id, &nanos(now)]).await? {
        Some(found) => work_item(&found, fence),
        None => Ok(None),
    }
}

/// The work of each instance of `wanted` (with the lease of its partition and the time to read
/// it at) that has visible messages and is not held by another host, as [`read`] reads one.
pub(super) async fn read_many<C: GenericClient>(
    client: &C,
    hub: &str,
    wanted: &[(&str, PartitionLease, i64)],
) -> Result<Vec<OrchestrationWorkItem>, Fail> {
    let (ids, at) = read_many_params(wanted);
    let found = rows(client, &READ_MANY, &[&hub, &ids, &at]).await?;
    work_items(&found, wanted)
}

/// The parameters of [`READ_MANY`] after the hub: the instances' ids and times.
pub(super) fn read_many_params<'a>(
    wanted: &[(&'a str, PartitionLease, i64)],
) -> (Vec<&'a str>, Vec<i64>) {
    wanted.iter().map(|(id, _, at)| (*id, *at)).unzip()
}

/// The work items of the rows [`READ_MANY`] returned for `wanted`.
pub(super) fn work_items(
    found: &[Row],
    wanted: &[(&str, PartitionLease, i64)],
) -> Result<Vec<OrchestrationWorkItem>, Fail> {
    let mut items = Vec::new();
    for found in found {
        let id: String = found.try_get(0)?;
        let Some((_, fence, _)) = wanted.iter().find(|(w, _, _)| *w == id) else {
            continue;
        };
        if let Some(item) = work_item(found, *fence)? {
            items.push(item);
        }
    }
    Ok(items)
}

/// A work item from a row of [`READ`] or [`READ_MANY`]; `None` without visible messages.
fn work_item(found: &Row, fence: PartitionLease) -> Result<Option<OrchestrationWorkItem>, Fail> {
    let Some(messages) = found.try_get::<_, Option<String>>(13)? else {
        return Ok(None);
    };
    let instance = status_from_row(found)?;
    let id = instance.instance_id.clone();
    let messages = Taken::decode(&id, &messages)?;
    // This read is one more delivery (counted in the store only if it is abandoned).
    let dequeue_count = messages
        .iter()
        .map(|m| m.dequeue_count.max(0) as u32 + 1)
        .max()
        .unwrap_or(1);
    Ok(Some(OrchestrationWorkItem {
        messages: messages.into_iter().map(|m| m.queued(&id)).collect(),
        instance_id: id,
        instance,
        history_len: found.try_get::<_, i32>(12)?.max(0) as usize,
        lock: LockToken(String::new()),
        dequeue_count,
        fence: Some(fence),
        read_in: None,
    }))
}

/// When the first of an instance's messages not visible at `$3` becomes visible.
const NEXT_VISIBLE_FOR: &str = "SELECT min(visible_at_ns) FROM durable_messages
WHERE hub = $1 AND instance_id = $2 AND visible_at_ns > $3";

/// See [`crate::store::Store::next_visible_for`].
pub(super) async fn next_visible_for(
    store: &Postgres,
    client: &mut Client,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Fail> {
    let hub = store.hub.as_str();
    Ok(row(&*client, NEXT_VISIBLE_FOR, &[&hub, &id, &nanos(now)])
        .await?
        .map(|r| r.try_get::<_, Option<i64>>(0))
        .transpose()?
        .flatten()
        .map(instant))
}

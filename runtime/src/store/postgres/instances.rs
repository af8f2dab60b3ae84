//! Reading, querying and removing instances.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;

use super::Postgres;
use super::db::{
    Fail, STATUS_COLUMNS, TERMINAL, history_row_events, instant, nanos, roll_back, row, rows,
    status_from_row,
};
use crate::model::EntityId;
use crate::model::history::HistoryEvent;
use crate::model::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};
use crate::store::ParkedMessage;
use crate::store::paging;

static STATUS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {STATUS_COLUMNS} FROM durable_instances WHERE hub = $1 AND instance_id = $2")
});

/// One page of instances, in (creation time, id) order, filtered as
/// [`InstanceQuery::matches`] does: entities only when the prefix starts with `@`.
static QUERY: LazyLock<String> = LazyLock::new(|| query_sql(">", ""));

/// The same, newest first (the index scanned backwards).
static QUERY_NEWEST_FIRST: LazyLock<String> = LazyLock::new(|| query_sql("<", " DESC"));

fn query_sql(after: &str, order: &str) -> String {
    format!(
        "SELECT {STATUS_COLUMNS} FROM durable_instances
WHERE hub = $1
  AND ($2 OR NOT starts_with(instance_id, '@'))
  AND (cardinality($3::text[]) = 0 OR runtime_status = ANY($3))
  AND ($4::bigint IS NULL OR created_at_ns >= $4)
  AND ($5::bigint IS NULL OR created_at_ns <= $5)
  AND ($6::text IS NULL OR starts_with(instance_id, $6))
  AND ($7::bigint IS NULL OR (created_at_ns, instance_id) {after} ($7, $8::text))
  AND ($10::text IS NULL OR version = $10)
ORDER BY created_at_ns{order}, instance_id{order}
LIMIT $9"
    )
}

/// How many orchestration instances are in each status.
const COUNT_BY_STATUS: &str = "SELECT runtime_status, COUNT(*) FROM durable_instances
WHERE hub = $1 AND NOT starts_with(instance_id, '@')
GROUP BY runtime_status";

/// Deletes finished, unleased instances matching the filter, with their activities and parked
/// messages. Returns their ids: their history and messages go in [`PURGE_REST`].
const PURGE: &str = "
WITH gone AS (
    DELETE FROM durable_instances
    WHERE hub = $1
      AND ($2::text IS NULL OR instance_id = $2)
      AND ($3 OR NOT starts_with(instance_id, '@'))
      AND runtime_status = ANY($4)
      AND ($5::bigint IS NULL OR created_at_ns >= $5)
      AND ($6::bigint IS NULL OR created_at_ns <= $6)
      AND (lock_token IS NULL OR lock_expires_at <= now())
    RETURNING instance_id),
activities AS (
    DELETE FROM durable_activities a USING gone
    WHERE a.hub = $1 AND a.instance_id = gone.instance_id),
parked AS (
    DELETE FROM durable_parked p USING gone
    WHERE p.hub = $1 AND p.instance_id = gone.instance_id)
SELECT instance_id FROM gone";

/// Deletes the history and messages of removed instances. A statement of its own, after the
/// instances' deletion: it sees the messages that a transaction holding an instance's row
/// (queueing to it) committed while the deletion waited for it; any later one finds the
/// instance gone and queues nothing.
const PURGE_REST: &str = "
WITH history AS (
    DELETE FROM durable_history WHERE hub = $1 AND instance_id = ANY($2))
DELETE FROM durable_messages WHERE hub = $1 AND instance_id = ANY($2)";

const IS_BUSY: &str = "
SELECT EXISTS (SELECT 1 FROM durable_instances
               WHERE hub = $1 AND lock_token IS NOT NULL AND lock_expires_at > now())
    OR EXISTS (SELECT 1 FROM durable_activities WHERE hub = $1)
    OR EXISTS (SELECT 1 FROM durable_messages
               WHERE hub = $1
                 AND (visible_at_ns IS NULL OR visible_at_ns <= $2)
                 AND (not_before IS NULL OR not_before <= now()))";

pub(super) async fn history(
    store: &Postgres,
    client: &mut Client,
    instance_id: &str,
) -> Result<Vec<HistoryEvent>, Fail> {
    let mut events = Vec::new();
    for r in rows(
        &*client,
        "SELECT event::text FROM durable_history WHERE hub = $1 AND instance_id = $2 ORDER BY seq",
        &[&store.hub, &instance_id],
    )
    .await?
    {
        history_row_events(instance_id, r.try_get(0)?, &mut events)?;
    }
    Ok(events)
}

pub(super) async fn status(
    store: &Postgres,
    client: &mut Client,
    instance_id: &str,
) -> Result<Option<InstanceStatus>, Fail> {
    row(&*client, &STATUS, &[&store.hub, &instance_id])
        .await?
        .as_ref()
        .map(status_from_row)
        .transpose()
}

pub(super) async fn query(
    store: &Postgres,
    client: &mut Client,
    query: &InstanceQuery,
    newest_first: bool,
) -> Result<QueryPage, Fail> {
    let after = paging::start_after(query)?;
    let entities = query
        .instance_id_prefix
        .as_deref()
        .is_some_and(|p| p.starts_with('@'));
    let statuses: Vec<&str> = query.runtime_status.iter().map(|s| s.as_str()).collect();
    let size = paging::page_size(query);
    let limit = i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1);
    let found = rows(
        &*client,
        if newest_first {
            &QUERY_NEWEST_FIRST
        } else {
            &QUERY
        },
        &[
            &store.hub,
            &entities,
            &statuses,
            &query.created_from.map(nanos),
            &query.created_to.map(nanos),
            &query.instance_id_prefix,
            &after.as_ref().map(|(t, _)| nanos(*t)),
            &after.as_ref().map(|(_, id)| id.as_str()),
            &limit,
            &query.version,
        ],
    )
    .await?;
    let matches = found
        .iter()
        .map(status_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paging::page(matches, size))
}

pub(super) async fn count_by_status(
    store: &Postgres,
    client: &mut Client,
) -> Result<Vec<(RuntimeStatus, u64)>, Fail> {
    let found = rows(&*client, COUNT_BY_STATUS, &[&store.hub]).await?;
    let mut counts: Vec<(RuntimeStatus, u64)> = found
        .iter()
        .filter_map(|r| {
            let status: String = r.get(0);
            let n: i64 = r.get(1);
            status.parse().ok().map(|s| (s, n.max(0) as u64))
        })
        .collect();
    counts.sort_by_key(|(s, _)| RuntimeStatus::ALL.iter().position(|a| a == s));
    Ok(counts)
}

async fn purge_matching(
    store: &Postgres,
    client: &mut Client,
    instance_id: Option<&str>,
    filter: &PurgeFilter,
) -> Result<u64, Fail> {
    let statuses: Vec<&str> = if filter.runtime_status.is_empty() {
        TERMINAL.to_vec()
    } else {
        filter
            .runtime_status
            .iter()
            .map(|s| s.as_str())
            .filter(|s| TERMINAL.contains(s))
            .collect()
    };
    let tx = client.transaction().await?;
    let gone: Vec<String> = rows(
        &tx,
        PURGE,
        &[
            &store.hub,
            &instance_id,
            // A purge by id removes whatever finished instance has it.
            &instance_id.is_some(),
            &statuses,
            &filter.created_from.map(nanos),
            &filter.created_to.map(nanos),
        ],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    if !gone.is_empty() {
        super::db::execute(&tx, PURGE_REST, &[&store.hub, &gone]).await?;
    }
    tx.commit().await?;
    Ok(gone.len() as u64)
}

pub(super) async fn purge(
    store: &Postgres,
    client: &mut Client,
    instance_id: &str,
) -> Result<bool, Fail> {
    Ok(purge_matching(store, client, Some(instance_id), &PurgeFilter::default()).await? > 0)
}

pub(super) async fn purge_where(
    store: &Postgres,
    client: &mut Client,
    filter: &PurgeFilter,
) -> Result<u64, Fail> {
    purge_matching(store, client, None, filter).await
}

pub(super) async fn remove_entity(
    store: &Postgres,
    client: &mut Client,
    instance_id: &str,
    if_last_updated: DateTime<Utc>,
) -> Result<bool, Fail> {
    if !EntityId::is_entity_instance(instance_id) {
        return Ok(false);
    }
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    // The row lock waits for transactions that are queueing messages for the entity, so the
    // check for messages below sees them. A refusal once the row is locked ends the transaction
    // before it answers, or the entity would stay locked, and unfetchable, after the answer.
    let Some(entity) = row(
        &tx,
        "SELECT last_updated_at_ns, lock_token IS NULL OR lock_expires_at <= now()
         FROM durable_instances WHERE hub = $1 AND instance_id = $2 FOR UPDATE",
        &[&hub, &instance_id],
    )
    .await?
    else {
        return Ok(false);
    };
    let unchanged = entity.try_get::<_, i64>(0)? == nanos(if_last_updated);
    let unleased: bool = entity.try_get(1)?;
    if !unchanged || !unleased {
        return roll_back(tx, Ok(false)).await;
    }
    let queued = row(
        &tx,
        "SELECT EXISTS (SELECT 1 FROM durable_messages WHERE hub = $1 AND instance_id = $2)",
        &[&hub, &instance_id],
    )
    .await?
    .is_some_and(|r| r.get::<_, bool>(0));
    if queued {
        return roll_back(tx, Ok(false)).await;
    }
    super::db::execute(
        &tx,
        "DELETE FROM durable_instances WHERE hub = $1 AND instance_id = $2",
        &[&hub, &instance_id],
    )
    .await?;
    super::db::execute(&tx, PURGE_REST, &[&hub, &[instance_id].as_slice()]).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn is_idle(
    store: &Postgres,
    client: &mut Client,
    now: DateTime<Utc>,
) -> Result<bool, Fail> {
    let busy = row(&*client, IS_BUSY, &[&store.hub, &nanos(now)])
        .await?
        .is_some_and(|r| r.get::<_, bool>(0));
    Ok(!busy)
}

pub(super) async fn parked(
    store: &Postgres,
    client: &mut Client,
) -> Result<Vec<ParkedMessage>, Fail> {
    rows(
        &*client,
        "SELECT instance_id, message, error, parked_at_ns FROM durable_parked
         WHERE hub = $1 ORDER BY seq",
        &[&store.hub],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ParkedMessage {
            instance_id: r.try_get(0)?,
            message: r.try_get(1)?,
            error: r.try_get(2)?,
            parked_at: instant(r.try_get(3)?),
        })
    })
    .collect()
}

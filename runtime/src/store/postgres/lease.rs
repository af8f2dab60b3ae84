//! Leasing an instance's work: the statements that lease the next instance with its messages
//! (of the partitions owned, or work a host left for another), and the messages they return.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};

use super::Postgres;
use super::db::{Fail, STATUS_COLUMNS, execute, instant, micros, nanos, row, status_from_row};
use crate::model::history::HistoryEvent;
use crate::store::{
    Fetched, LockToken, OrchestrationMessage, OrchestrationWorkItem, Owned, QueuedMessage,
};

/// Leases the instance whose oldest visible message is oldest, skipping instances another
/// host holds (or is locking right now), and takes its visible messages (counted as delivered
/// once more), in one statement: a lease is never taken without its messages.
static LEASE: LazyLock<String> = LazyLock::new(|| {
    lease_statement(
        "SELECT i.hub, i.instance_id
        FROM durable_messages m
        JOIN durable_instances i ON i.hub = m.hub AND i.instance_id = m.instance_id
        WHERE m.hub = $1
          AND (m.visible_at_ns IS NULL OR m.visible_at_ns <= $2)
          AND (m.not_before IS NULL OR m.not_before <= now())
          AND (i.lock_token IS NULL OR i.lock_expires_at <= now())
          AND (i.id_hash % $5 = ANY($6) OR i.left_by IS NOT NULL)
          AND NOT (i.left_by IS NOT NULL AND i.left_by = $7 AND i.left_until > now())
        ORDER BY m.seq
        LIMIT 1
        FOR NO KEY UPDATE OF i SKIP LOCKED",
    )
});

/// Leases, like [`LEASE`], an instance outside the partitions `$6` (of `$5`) whose work a host
/// left for another (see [`crate::store::Store::fetch_left_orchestration`]); found through the
/// index of left instances, so it costs next to nothing when there are none.
static LEASE_LEFT: LazyLock<String> = LazyLock::new(|| {
    lease_statement(
        "SELECT i.hub, i.instance_id
        FROM durable_instances i
        WHERE i.hub = $1 AND i.left_by IS NOT NULL
          AND NOT (i.id_hash % $5 = ANY($6))
          AND NOT (i.left_by = $7 AND i.left_until > now())
          AND (i.lock_token IS NULL OR i.lock_expires_at <= now())
          AND EXISTS (SELECT 1 FROM durable_messages m
              WHERE m.hub = i.hub AND m.instance_id = i.instance_id
                AND (m.visible_at_ns IS NULL OR m.visible_at_ns <= $2)
                AND (m.not_before IS NULL OR m.not_before <= now()))
        ORDER BY i.left_until
        LIMIT 1
        FOR NO KEY UPDATE OF i SKIP LOCKED",
    )
});

/// The statement that leases the instance `pick` selects (`$1` hub, `$2` now, `$3` token,
/// `$4` lease in microseconds; `pick` may use `$5`–`$7`) and takes its visible messages.
fn lease_statement(pick: &str) -> String {
    format!(
        "WITH leased AS (
    UPDATE durable_instances
    SET lock_token = $3, lock_expires_at = now() + $4::bigint * interval '1 microsecond'
    WHERE (hub, instance_id) = ({pick})
    RETURNING {STATUS_COLUMNS}, history_len
),
taken AS (
    UPDATE durable_messages m SET dequeue_count = m.dequeue_count + 1
    FROM leased
    WHERE m.hub = $1 AND m.instance_id = leased.instance_id
      AND (m.visible_at_ns IS NULL OR m.visible_at_ns <= $2)
      AND (m.not_before IS NULL OR m.not_before <= now())
    RETURNING m.seq, m.execution_id, m.event, m.visible_at_ns, m.dequeue_count
)
SELECT leased.*,
    (SELECT json_agg(json_build_object('seq', seq, 'executionId', execution_id,
        'event', event, 'visibleAtNs', visible_at_ns, 'dequeueCount', dequeue_count)
        ORDER BY seq) FROM taken)::text
FROM leased"
    )
}

/// A message as [`LEASE`] (and a read) returns it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Taken {
    seq: i64,
    execution_id: Option<String>,
    event: HistoryEvent,
    visible_at_ns: Option<i64>,
    pub(super) dequeue_count: i32,
}

impl Taken {
    /// The messages of instance `id` as a statement returned them (a JSON array).
    pub(super) fn decode(id: &str, json: &str) -> Result<Vec<Taken>, Fail> {
        serde_json::from_str(json).map_err(|e| {
            Fail::Described(format!(
                "a stored message of instance `{id}` does not decode: {e}"
            ))
        })
    }

    /// The message of instance `id`.
    pub(super) fn queued(self, id: &str) -> QueuedMessage {
        QueuedMessage {
            seq: self.seq as u64,
            message: OrchestrationMessage {
                instance_id: id.to_string(),
                execution_id: self.execution_id,
                event: self.event,
                visible_at: self.visible_at_ns.map(instant),
            },
        }
    }
}

const NEXT_VISIBLE: &str =
    "SELECT min(visible_at_ns) FROM durable_messages WHERE hub = $1 AND visible_at_ns > $2";

/// Releases a lease; no row when the token is no longer the instance's.
pub(super) const RELEASE: &str =
    "UPDATE durable_instances SET lock_token = NULL, lock_expires_at = NULL
WHERE hub = $1 AND instance_id = $2 AND lock_token = $3";

pub(super) async fn fetch(
    store: &Postgres,
    client: &mut Client,
    now: DateTime<Utc>,
    lease: Duration,
    owned: &Owned,
) -> Result<Fetched<OrchestrationWorkItem>, Fail> {
    if let Some(item) = lease_next(store, client, &LEASE, now, lease, owned).await? {
        return Ok(Fetched::Item(item));
    }
    let next_visible = row(&*client, NEXT_VISIBLE, &[&store.hub, &nanos(now)])
        .await?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(instant);
    Ok(Fetched::Empty { next_visible })
}

/// See [`crate::store::Store::fetch_left_orchestration`].
pub(super) async fn fetch_left(
    store: &Postgres,
    client: &mut Client,
    now: DateTime<Utc>,
    lease: Duration,
    owned: &Owned,
) -> Result<Option<OrchestrationWorkItem>, Fail> {
    match owned {
        // Every partition is owned: there is no outside.
        Owned::Everything => return Ok(None),
        // The hub's partitions are not known yet (no claim went through).
        Owned::Partitions { count: 0, .. } => return Ok(None),
        Owned::Partitions { .. } => {}
    }
    lease_next(store, client, &LEASE_LEFT, now, lease, owned).await
}

/// The partition count and the owned partitions as the statements take them (`$5`, `$6`);
/// everything is partition 0 of 1.
pub(super) fn partition_params(owned: &Owned) -> (i64, Vec<i64>) {
    match owned {
        Owned::Everything => (1, vec![0]),
        Owned::Partitions { count, leases, .. } => (
            i64::from(*count),
            leases.iter().map(|l| i64::from(l.partition)).collect(),
        ),
    }
}

/// Leases the instance `statement` picks, with its messages, fenced when its partition is
/// owned.
async fn lease_next(
    store: &Postgres,
    client: &mut Client,
    statement: &str,
    now: DateTime<Utc>,
    lease: Duration,
    owned: &Owned,
) -> Result<Option<OrchestrationWorkItem>, Fail> {
    let hub = store.hub.as_str();
    let now_ns = nanos(now);
    let lease = micros(lease);
    let (count, partitions) = partition_params(owned);
    // Each round leases one instance; a round only repeats when the leased instance's
    // messages vanished in between (it was replaced), which is rare.
    for _ in 0..4 {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let host = owned.host().unwrap_or("");
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&hub, &now_ns, &token, &lease, &count, &partitions, &host];
        let Some(leased) = row(&*client, statement, &params).await? else {
            break;
        };
        if let Some(mut item) = leased_item(&*client, hub, &leased, token).await? {
            item.fence = owned.fence(&item.instance_id).flatten();
            return Ok(Some(item));
        }
    }
    Ok(None)
}

/// The work item of a row [`LEASE`] returned; `None` (and the lease released) when the
/// instance's messages were removed between the pick and the take (it was replaced).
async fn leased_item(
    client: &impl GenericClient,
    hub: &str,
    leased: &tokio_postgres::Row,
    token: String,
) -> Result<Option<OrchestrationWorkItem>, Fail> {
    {
        let instance = status_from_row(leased)?;
        let history_len: i32 = leased.try_get(12)?;
        let id = instance.instance_id.clone();
        let Some(taken) = leased.try_get::<_, Option<String>>(13)? else {
            execute(client, RELEASE, &[&hub, &id, &token]).await?;
            return Ok(None);
        };
        let taken = Taken::decode(&id, &taken)?;
        let dequeue_count = taken
            .iter()
            .map(|m| m.dequeue_count.max(0) as u32)
            .max()
            .unwrap_or(0);
        let messages = taken.into_iter().map(|m| m.queued(&id)).collect();
        Ok(Some(OrchestrationWorkItem {
            instance_id: id,
            instance,
            history_len: history_len.max(0) as usize,
            messages,
            lock: LockToken(token),
            dequeue_count,
            fence: None,
            read_in: None,
        }))
    }
}

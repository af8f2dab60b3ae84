//! The orchestration queue: creating instances, delivering messages, leasing work, and
//! releasing, renewing, abandoning and parking it (a turn's commit is in `turns.rs`).

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};

use super::Postgres;
use super::db::{
    Fail, STATUS_COLUMNS, event_json, execute, instant, micros, nanos, row, rows, status_from_row,
    storable,
};
use super::listener::Wake;
use crate::model::EntityId;
use crate::model::history::HistoryEvent;
use crate::store::{
    Fetched, LEFT_PAUSE, LockToken, NewInstance, OrchestrationMessage, OrchestrationWorkItem,
    Owned, QueuedMessage, StoreError, new_entity_status,
};

/// Creates (or replaces a finished) instance, unless one with its id is pending or running and
/// `replace_running` is unset. Returns whether it was created; the caller delivers its start.
const CREATE: &str = r#"
INSERT INTO durable_instances AS i (hub, instance_id, name, execution_id, runtime_status, input,
    created_at_ns, last_updated_at_ns, parent_instance_id, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $10)
ON CONFLICT (hub, instance_id) DO UPDATE SET
    name = excluded.name, execution_id = excluded.execution_id,
    runtime_status = excluded.runtime_status, input = excluded.input, output = NULL,
    custom_status = NULL, failure = NULL, created_at_ns = excluded.created_at_ns,
    last_updated_at_ns = excluded.last_updated_at_ns,
    parent_instance_id = excluded.parent_instance_id, version = excluded.version,
    history_len = 0, lock_token = NULL,
    lock_expires_at = NULL
WHERE i.runtime_status IN ('Completed', 'Failed', 'Terminated') OR $9
"#;

/// An entity's instance, created by the first message for it.
const CREATE_ENTITY: &str = "
INSERT INTO durable_instances (hub, instance_id, name, execution_id, runtime_status,
    created_at_ns, last_updated_at_ns)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (hub, instance_id) DO NOTHING";

/// Which targets exist; locks them against removal (not against updates, so two instances
/// messaging each other never deadlock) until the messages are in.
const LOCK_TARGETS: &str = "SELECT instance_id FROM durable_instances
WHERE hub = $1 AND instance_id = ANY($2) FOR KEY SHARE";

const INSERT_MESSAGES: &str = "
INSERT INTO durable_messages (hub, instance_id, execution_id, event, visible_at_ns)
SELECT $1, t.instance_id, t.execution_id, t.event::json, t.visible_at_ns
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])
    WITH ORDINALITY AS t(instance_id, execution_id, event, visible_at_ns, ord)
ORDER BY t.ord";

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
const RELEASE: &str = "UPDATE durable_instances SET lock_token = NULL, lock_expires_at = NULL
WHERE hub = $1 AND instance_id = $2 AND lock_token = $3";

/// Extends a lease from now, on the database's clock; no row when the token is no longer the
/// instance's.
const RENEW: &str = "UPDATE durable_instances
SET lock_expires_at = now() + $4::bigint * interval '1 microsecond'
WHERE hub = $1 AND instance_id = $2 AND lock_token = $3";

/// Creates an instance row for `instance` unless a pending or running one is in the way.
pub(super) async fn create(
    client: &impl GenericClient,
    hub: &str,
    instance: &NewInstance,
) -> Result<bool, Fail> {
    let status = instance.initial_status();
    let created = execute(
        client,
        CREATE,
        &[
            &hub,
            &status.instance_id,
            &status.name,
            &status.execution_id,
            &status.runtime_status.as_str(),
            &status.input,
            &nanos(status.created_at),
            &status.parent_instance_id,
            &instance.replace_running,
            &status.version,
        ],
    )
    .await?
        == 1;
    if created {
        // A replaced instance starts over: no history, no queued messages.
        for table in ["durable_history", "durable_messages"] {
            execute(
                client,
                &format!("DELETE FROM {table} WHERE hub = $1 AND instance_id = $2"),
                &[&hub, &instance.instance_id],
            )
            .await?;
        }
    }
    Ok(created)
}

/// Queues messages, creating entities on first use. Returns the targets that do not exist
/// (their messages are dropped).
pub(super) async fn deliver(
    client: &impl GenericClient,
    hub: &str,
    messages: &[OrchestrationMessage],
) -> Result<Vec<String>, Fail> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut targets: Vec<&str> = Vec::new();
    for message in messages {
        let id = message.instance_id.as_str();
        if targets.contains(&id) {
            continue;
        }
        targets.push(id);
        if EntityId::is_entity_instance(id) {
            let status = new_entity_status(id, message.event.timestamp);
            execute(
                client,
                CREATE_ENTITY,
                &[
                    &hub,
                    &status.instance_id,
                    &status.name,
                    &status.execution_id,
                    &status.runtime_status.as_str(),
                    &nanos(status.created_at),
                ],
            )
            .await?;
        }
    }
    let existing: HashSet<String> = rows(client, LOCK_TARGETS, &[&hub, &targets])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ids = Vec::new();
    let mut executions = Vec::new();
    let mut events = Vec::new();
    let mut visible = Vec::new();
    let mut missing = Vec::new();
    for message in messages {
        if !existing.contains(&message.instance_id) {
            tracing::warn!(
                instance_id = ?message.instance_id,
                event = ?message.event.kind.name(),
                "dropped a message for an instance that does not exist"
            );
            missing.push(message.instance_id.clone());
            continue;
        }
        ids.push(message.instance_id.as_str());
        executions.push(message.execution_id.as_deref());
        events.push(event_json(&message.event)?);
        visible.push(message.visible_at.map(nanos));
    }
    if !ids.is_empty() {
        execute(
            client,
            INSERT_MESSAGES,
            &[&hub, &ids, &executions, &events, &visible],
        )
        .await?;
    }
    Ok(missing)
}

pub(super) async fn create_instance(
    store: &Postgres,
    client: &mut Client,
    instance: NewInstance,
) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    if !create(&tx, &store.hub, &instance).await? {
        return Err(StoreError::InstanceAlreadyExists(instance.instance_id).into());
    }
    deliver(&tx, &store.hub, &[instance.start_message()]).await?;
    tx.commit().await?;
    store.announce(Wake::ALL);
    Ok(())
}

pub(super) async fn enqueue(
    store: &Postgres,
    client: &mut Client,
    message: OrchestrationMessage,
) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    let target = message.instance_id.clone();
    if !deliver(&tx, &store.hub, &[message]).await?.is_empty() {
        return Err(StoreError::InstanceNotFound(target).into());
    }
    let wake = Wake {
        orchestrations: true,
        ..Wake::default()
    };
    tx.commit().await?;
    store.announce(wake);
    Ok(())
}

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
        }))
    }
}

/// Ends `item`'s hold inside `tx`: releases its lease, or, for an item read without one (an
/// empty lock token), checks that the lease on its partition still holds it;
/// [`StoreError::LeaseLost`] when the hold was lost.
async fn release(
    client: &impl GenericClient,
    hub: &str,
    item: &OrchestrationWorkItem,
) -> Result<(), Fail> {
    if read_without_lease(item) {
        return super::partitions::check_fence(client, hub, item).await;
    }
    if execute(client, RELEASE, &[&hub, &item.instance_id, &item.lock.0]).await? == 0 {
        return Err(StoreError::LeaseLost.into());
    }
    Ok(())
}

/// Whether `item` was read without a lease ([`crate::store::Store::read_orchestration`]).
pub(super) fn read_without_lease(item: &OrchestrationWorkItem) -> bool {
    item.lock.0.is_empty()
}

pub(super) async fn renew(
    store: &Postgres,
    client: &mut Client,
    item: &OrchestrationWorkItem,
    lease: Duration,
) -> Result<(), Fail> {
    if read_without_lease(item) {
        // Held by its partition's lease, which the host renews: nothing to extend.
        return super::partitions::check_fence(&*client, &store.hub, item).await;
    }
    let renewed = execute(
        &*client,
        RENEW,
        &[&store.hub, &item.instance_id, &item.lock.0, &micros(lease)],
    )
    .await?;
    if renewed == 0 {
        return Err(StoreError::LeaseLost.into());
    }
    Ok(())
}

fn seqs(item: &OrchestrationWorkItem) -> Vec<i64> {
    item.messages.iter().map(|m| m.seq as i64).collect()
}

pub(super) async fn abandon(
    store: &Postgres,
    client: &mut Client,
    item: &OrchestrationWorkItem,
    retry_after: Duration,
) -> Result<(), Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    release(&tx, hub, item).await?;
    // A read counted no delivery: the abandon does.
    let counted = i32::from(read_without_lease(item));
    execute(
        &tx,
        "UPDATE durable_messages
         SET not_before = now() + $4::bigint * interval '1 microsecond',
             dequeue_count = dequeue_count + $5
         WHERE hub = $1 AND instance_id = $2 AND seq = ANY($3)",
        &[
            &hub,
            &item.instance_id,
            &seqs(item),
            &micros(retry_after),
            &counted,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// See [`crate::store::Store::release_orchestration`]: in one transaction, releases the lease,
/// takes back the delivery the fetch counted, lets the messages wait [`LEFT_PAUSE`] at most,
/// and marks the work as left by `by`, which does not get it back before `retry_after`.
pub(super) async fn leave(
    store: &Postgres,
    client: &mut Client,
    item: &OrchestrationWorkItem,
    retry_after: Duration,
    by: &str,
) -> Result<(), Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    release(&tx, hub, item).await?;
    let pause = micros(retry_after.min(LEFT_PAUSE));
    // A leased fetch counted a delivery, which is taken back; a read counted none.
    let uncounted = i32::from(!read_without_lease(item));
    execute(
        &tx,
        "UPDATE durable_messages
         SET not_before = now() + $4::bigint * interval '1 microsecond',
             dequeue_count = greatest(dequeue_count - $5, 0)
         WHERE hub = $1 AND instance_id = $2 AND seq = ANY($3)",
        &[&hub, &item.instance_id, &seqs(item), &pause, &uncounted],
    )
    .await?;
    execute(
        &tx,
        "UPDATE durable_instances SET left_by = $3,
             left_until = now() + $4::bigint * interval '1 microsecond'
         WHERE hub = $1 AND instance_id = $2",
        &[&hub, &item.instance_id, &by, &micros(retry_after)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn park(
    store: &Postgres,
    client: &mut Client,
    item: &OrchestrationWorkItem,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    release(&tx, hub, item).await?;
    let removed: HashSet<i64> = rows(
        &tx,
        "DELETE FROM durable_messages WHERE hub = $1 AND instance_id = $2 AND seq = ANY($3)
         RETURNING seq",
        &[&hub, &item.instance_id, &seqs(item)],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut parked: Vec<_> = item
        .messages
        .iter()
        .filter(|m| removed.contains(&(m.seq as i64)))
        .collect();
    parked.sort_by_key(|m| m.seq);
    let descriptions: Vec<String> = parked
        .iter()
        .map(|m| storable(&format!("{:?}", m.message.event)).into_owned())
        .collect();
    if !descriptions.is_empty() {
        execute(
            &tx,
            "INSERT INTO durable_parked (hub, instance_id, message, error, parked_at_ns)
             SELECT $1, $2, t.message, $4, $5
             FROM unnest($3::text[]) WITH ORDINALITY AS t(message, ord) ORDER BY t.ord",
            &[
                &hub,
                &item.instance_id,
                &descriptions,
                &storable(error).as_ref(),
                &nanos(now),
            ],
        )
        .await?;
    }
    let wake = Wake {
        orchestrations: true,
        ..Wake::default()
    };
    tx.commit().await?;
    store.announce(wake);
    Ok(())
}

/// Queues one message (dropped when its target does not exist).
pub(super) async fn deliver_one(
    client: &impl GenericClient,
    hub: &str,
    message: OrchestrationMessage,
) -> Result<(), Fail> {
    deliver(client, hub, std::slice::from_ref(&message)).await?;
    Ok(())
}

//! The orchestration queue: creating instances, delivering messages, and releasing, renewing,
//! abandoning and parking leased or read work (leasing is in `lease.rs`, a turn's commit in
//! `turns.rs`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use tokio_postgres::types::ToSql;

use super::Postgres;
use super::db::{Fail, event_json, execute, micros, nanos, roll_back, row, rows, storable};
use super::lease::RELEASE;
use super::listener::Wake;
use crate::model::{EntityId, InstanceStatus};
use crate::store::{
    LEFT_PAUSE, NewInstance, OrchestrationMessage, OrchestrationWorkItem, StoreError,
    new_entity_status,
};

/// Creates each instance (or replaces a finished one with its id), unless one with its id is
/// pending or running and `$10` (replace running ones) is unset. Returns the ids created; the
/// caller delivers their starts or writes their first turns.
pub(super) const CREATE: &str = r#"
INSERT INTO durable_instances AS i (hub, instance_id, name, execution_id, runtime_status, input,
    created_at_ns, last_updated_at_ns, parent_instance_id, version)
SELECT $1, t.instance_id, t.name, t.execution_id, t.runtime_status, t.input, t.created_ns,
    t.created_ns, t.parent, t.version
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
        $8::text[], $9::text[])
    AS t(instance_id, name, execution_id, runtime_status, input, created_ns, parent, version)
ON CONFLICT (hub, instance_id) DO UPDATE SET
    name = excluded.name, execution_id = excluded.execution_id,
    runtime_status = excluded.runtime_status, input = excluded.input, output = NULL,
    custom_status = NULL, failure = NULL, created_at_ns = excluded.created_at_ns,
    last_updated_at_ns = excluded.last_updated_at_ns,
    parent_instance_id = excluded.parent_instance_id, version = excluded.version,
    history_len = 0, lock_token = NULL, lock_expires_at = NULL
WHERE i.runtime_status IN ('Completed', 'Failed', 'Terminated') OR $10
RETURNING i.instance_id, i.xmax <> 0 AS replaced"#;

/// Entities' instances, created by the first message for each (in the order given: callers
/// sort them, so that two transactions creating the same entities never wait on each other in
/// a circle). Only those not already there are inserted: an insert that meets an existing row
/// would wait for any transaction updating that row (an entity's turn being committed) before
/// doing nothing, a wait per message to a busy entity.
pub(super) const CREATE_ENTITIES: &str = "
INSERT INTO durable_instances (hub, instance_id, name, execution_id, runtime_status,
    created_at_ns, last_updated_at_ns)
SELECT $1, t.instance_id, t.name, '', $4, t.created_ns, t.created_ns
FROM unnest($2::text[], $3::text[], $5::bigint[]) WITH ORDINALITY
    AS t(instance_id, name, created_ns, ord)
WHERE NOT EXISTS (SELECT 1 FROM durable_instances AS i
                  WHERE i.hub = $1 AND i.instance_id = t.instance_id)
ORDER BY t.ord
ON CONFLICT (hub, instance_id) DO NOTHING";

/// Queues the messages (`$3`..`$6`) whose targets (`$2`) exist, and returns those targets;
/// locks them against removal (not against updates, so two instances messaging each other
/// never deadlock) until the messages are in.
pub(super) const DELIVER: &str = "
WITH target AS (
    SELECT instance_id FROM durable_instances
    WHERE hub = $1 AND instance_id = ANY($2) FOR KEY SHARE),
queued AS (
    INSERT INTO durable_messages (hub, instance_id, execution_id, event, visible_at_ns)
    SELECT $1, t.instance_id, t.execution_id, t.event::json, t.visible_at_ns
    FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[])
        WITH ORDINALITY AS t(instance_id, execution_id, event, visible_at_ns, ord)
    WHERE t.instance_id IN (SELECT instance_id FROM target)
    ORDER BY t.ord
    RETURNING 1)
SELECT instance_id FROM target";

/// Extends a lease from now, on the database's clock; no row when the token is no longer the
/// instance's.
const RENEW: &str = "UPDATE durable_instances
SET lock_expires_at = now() + $4::bigint * interval '1 microsecond'
WHERE hub = $1 AND instance_id = $2 AND lock_token = $3";

/// Creates an instance row for `instance` unless a pending or running one is in the way.
/// Each created row says whether it replaced one (a row version an upsert updated has its
/// transaction as `xmax`; a new one has none): only a replaced instance has history and
/// messages to clear.
pub(super) async fn create(
    client: &impl GenericClient,
    hub: &str,
    instance: &NewInstance,
) -> Result<bool, Fail> {
    let status = instance.initial_status();
    let created = row(
        client,
        CREATE,
        &[
            &hub,
            &[status.instance_id.as_str()].as_slice(),
            &[status.name.as_str()].as_slice(),
            &[status.execution_id.as_str()].as_slice(),
            &[status.runtime_status.as_str()].as_slice(),
            &[status.input.as_deref()].as_slice(),
            &[nanos(status.created_at)].as_slice(),
            &[status.parent_instance_id.as_deref()].as_slice(),
            &[status.version.as_deref()].as_slice(),
            &instance.replace_running,
        ],
    )
    .await?;
    let Some(created) = created else {
        return Ok(false);
    };
    if created.try_get::<_, bool>(1)? {
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
    Ok(true)
}

/// Messages to queue, as the parameters of [`CREATE_ENTITIES`] and [`DELIVER`].
pub(super) struct Delivery<'a> {
    /// Entities among the targets, by id (see [`CREATE_ENTITIES`]).
    entity_ids: Vec<&'a str>,
    entity_names: Vec<String>,
    entity_created: Vec<i64>,
    entity_status: &'static str,
    targets: Vec<&'a str>,
    ids: Vec<&'a str>,
    executions: Vec<Option<&'a str>>,
    events: Vec<String>,
    visible: Vec<Option<i64>>,
}

impl<'a> Delivery<'a> {
    pub(super) fn of(messages: &'a [OrchestrationMessage]) -> Result<Delivery<'a>, Fail> {
        let mut targets: Vec<&str> = Vec::new();
        let mut entities: Vec<(&str, InstanceStatus)> = Vec::new();
        for message in messages {
            let id = message.instance_id.as_str();
            if targets.contains(&id) {
                continue;
            }
            targets.push(id);
            if EntityId::is_entity_instance(id) {
                entities.push((id, new_entity_status(id, message.event.timestamp)));
            }
        }
        entities.sort_by(|a, b| a.0.cmp(b.0));
        Ok(Delivery {
            entity_ids: entities.iter().map(|(id, _)| *id).collect(),
            entity_names: entities.iter().map(|(_, e)| e.name.clone()).collect(),
            entity_created: entities.iter().map(|(_, e)| nanos(e.created_at)).collect(),
            entity_status: entities
                .first()
                .map_or("Running", |(_, e)| e.runtime_status.as_str()),
            targets,
            ids: messages.iter().map(|m| m.instance_id.as_str()).collect(),
            executions: messages.iter().map(|m| m.execution_id.as_deref()).collect(),
            events: messages
                .iter()
                .map(|m| event_json(&m.event))
                .collect::<Result<_, _>>()?,
            visible: messages.iter().map(|m| m.visible_at.map(nanos)).collect(),
        })
    }

    /// Whether there is nothing to queue.
    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether some targets are entities, to create first with [`CREATE_ENTITIES`].
    pub(super) fn creates_entities(&self) -> bool {
        !self.entity_ids.is_empty()
    }

    pub(super) fn entity_params<'b>(&'b self, hub: &'b &str) -> [&'b (dyn ToSql + Sync); 5] {
        [
            hub,
            &self.entity_ids,
            &self.entity_names,
            &self.entity_status,
            &self.entity_created,
        ]
    }

    pub(super) fn params<'b>(&'b self, hub: &'b &str) -> [&'b (dyn ToSql + Sync); 6] {
        [
            hub,
            &self.targets,
            &self.ids,
            &self.executions,
            &self.events,
            &self.visible,
        ]
    }

    /// The targets of the messages that [`DELIVER`] did not find (`found`, its rows); their
    /// messages were dropped.
    pub(super) fn missing(
        &self,
        messages: &[OrchestrationMessage],
        found: &[tokio_postgres::Row],
    ) -> Vec<String> {
        let existing: HashSet<&str> = found.iter().map(|r| r.get(0)).collect();
        let mut missing = Vec::new();
        for message in messages {
            if !existing.contains(message.instance_id.as_str()) {
                tracing::warn!(
                    instance_id = ?message.instance_id,
                    event = ?message.event.kind.name(),
                    "dropped a message for an instance that does not exist"
                );
                missing.push(message.instance_id.clone());
            }
        }
        missing
    }
}

/// Queues messages, creating entities on first use. Returns the targets that do not exist
/// (their messages are dropped).
pub(super) async fn deliver(
    client: &impl GenericClient,
    hub: &str,
    messages: &[OrchestrationMessage],
) -> Result<Vec<String>, Fail> {
    let delivery = Delivery::of(messages)?;
    if delivery.is_empty() {
        return Ok(Vec::new());
    }
    if delivery.creates_entities() {
        execute(client, CREATE_ENTITIES, &delivery.entity_params(&hub)).await?;
    }
    let found = rows(client, DELIVER, &delivery.params(&hub)).await?;
    Ok(delivery.missing(messages, &found))
}

pub(super) async fn create_instance(
    store: &Postgres,
    client: &mut Client,
    instance: NewInstance,
) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    if !create(&tx, &store.hub, &instance).await? {
        // The refused upsert still locked the existing row.
        let refused = StoreError::InstanceAlreadyExists(instance.instance_id);
        return roll_back(tx, Err(refused.into())).await;
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

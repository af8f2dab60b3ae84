//! A turn's commit on PostgreSQL: the instance's new status and history, its activities (some
//! held for the committing host), children and messages, in one transaction.

use std::time::Duration;

use deadpool_postgres::{Client, GenericClient};

use super::Postgres;
use super::db::{Fail, events_json, execute, failure_json, micros, nanos, row};
use super::group::TurnJob;
use super::listener::Wake;
use super::work::{create, deliver};
use crate::store::{
    ActivityTask, ActivityWorkItem, HistoryWrite, LockToken, NewInstance, PartitionLease,
    StoreError, TurnCommit,
};

/// A turn's new status (creation time kept), history length, and the lease released; no row
/// when the lease `$3` was lost, or, without one, when another host holds the instance under a
/// live lease.
const UPDATE_STATUS: &str = "
UPDATE durable_instances SET name = $4, execution_id = $5, runtime_status = $6, input = $7,
    output = $8, custom_status = $9, failure = $10::text::json, last_updated_at_ns = $11,
    parent_instance_id = $12,
    history_len = CASE WHEN $13 THEN $14::integer ELSE history_len + $14 END,
    lock_token = NULL, lock_expires_at = NULL, left_by = NULL, left_until = NULL
WHERE hub = $1 AND instance_id = $2
  AND (lock_token = $3
       OR ($3::text IS NULL AND (lock_token IS NULL OR lock_expires_at <= now())))
RETURNING history_len";

/// A turn's events, one row keyed by the sequence number of the first.
const APPEND_HISTORY: &str = "
INSERT INTO durable_history (hub, instance_id, seq, event) VALUES ($1, $2, $3, $4::text::json)";

const INSERT_ACTIVITIES: &str = "
INSERT INTO durable_activities (hub, instance_id, execution_id, task_id, name, input)
SELECT $1, t.instance_id, t.execution_id, t.task_id, t.name, t.input
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
    WITH ORDINALITY AS t(instance_id, execution_id, task_id, name, input, ord)
ORDER BY t.ord";

/// Commits `turn` in a transaction of its own (the group commit's way when its batch
/// failed).
pub(super) async fn commit(
    store: &Postgres,
    client: &mut Client,
    turn: TurnJob,
    wake: Wake,
) -> Result<Vec<ActivityWorkItem>, Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    // An item read without a lease is held by its partition's lease alone.
    if (turn.lock.is_none() && turn.fence.is_none())
        || !super::partitions::fence_holds(&tx, hub, turn.fence.as_ref()).await?
    {
        return Err(StoreError::LeaseLost.into());
    }
    let held = apply_turn(
        &tx,
        hub,
        &turn.instance_id,
        turn.lock.as_deref(),
        turn.commit,
        turn.run_here,
        turn.lease,
    )
    .await?;
    tx.commit().await?;
    store.announce(wake);
    Ok(held)
}

/// Creates `instance` with its first turn applied, in one transaction: no start message is
/// queued. Refused as a create is, and with [`StoreError::LeaseLost`] when `fence` moved on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn create_with_turn(
    store: &Postgres,
    client: &mut Client,
    instance: NewInstance,
    fence: PartitionLease,
    commit: TurnCommit,
    run_here: Vec<ActivityTask>,
    lease: Duration,
    wake: Wake,
) -> Result<Vec<ActivityWorkItem>, Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    if !super::partitions::fence_holds(&tx, hub, Some(&fence)).await? {
        return Err(StoreError::LeaseLost.into());
    }
    if !create(&tx, hub, &instance).await? {
        // The refused create locked the existing row: unlocked before the answer.
        let refused = Err(StoreError::InstanceAlreadyExists(instance.instance_id).into());
        return super::db::roll_back(tx, refused).await;
    }
    let held = apply_turn(
        &tx,
        hub,
        &instance.instance_id,
        None,
        commit,
        run_here,
        lease,
    )
    .await?;
    tx.commit().await?;
    store.announce(wake);
    Ok(held)
}

/// Applies a turn inside `tx` and releases any lease on the instance; with `lock`, only under
/// that lease ([`StoreError::LeaseLost`] without it, and nothing applied).
pub(super) async fn apply_turn(
    tx: &impl GenericClient,
    hub: &str,
    id: &str,
    lock: Option<&str>,
    commit: TurnCommit,
    run_here: Vec<ActivityTask>,
    lease: Duration,
) -> Result<Vec<ActivityWorkItem>, Fail> {
    let status = &commit.status;
    let (reset, appended): (bool, &[_]) = match &commit.history {
        HistoryWrite::Reset => (true, &[]),
        HistoryWrite::Replace(events) => (true, events),
        HistoryWrite::Append(events) => (false, events),
    };
    let appended_len = i32::try_from(appended.len())
        .map_err(|_| Fail::Described("a turn appended more than 2^31 events".into()))?;
    let Some(updated) = row(
        tx,
        UPDATE_STATUS,
        &[
            &hub,
            &id,
            &lock,
            &status.name,
            &status.execution_id,
            &status.runtime_status.as_str(),
            &status.input,
            &status.output,
            &status.custom_status,
            &failure_json(status.failure.as_ref())?,
            &nanos(status.last_updated_at),
            &status.parent_instance_id,
            &reset,
            &appended_len,
        ],
    )
    .await?
    else {
        // Dropping the transaction rolls it back: nothing of the turn is applied.
        return Err(StoreError::LeaseLost.into());
    };
    if reset {
        execute(
            tx,
            "DELETE FROM durable_history WHERE hub = $1 AND instance_id = $2",
            &[&hub, &id],
        )
        .await?;
    }
    if !appended.is_empty() {
        let history_len: i32 = updated.try_get(0)?;
        execute(
            tx,
            APPEND_HISTORY,
            &[
                &hub,
                &id,
                &(history_len - appended_len),
                &events_json(appended)?,
            ],
        )
        .await?;
    }
    if !commit.consumed.is_empty() {
        let consumed: Vec<i64> = commit.consumed.iter().map(|&s| s as i64).collect();
        let removed = execute(
            tx,
            "DELETE FROM durable_messages WHERE hub = $1 AND instance_id = $2 AND seq = ANY($3)",
            &[&hub, &id, &consumed],
        )
        .await?;
        if removed != consumed.len() as u64 {
            // Another turn took them (or the instance was replaced): this one is stale.
            return Err(StoreError::LeaseLost.into());
        }
    }
    if !commit.activities.is_empty() {
        let a = &commit.activities;
        let ids: Vec<&str> = a.iter().map(|t| t.instance_id.as_str()).collect();
        let executions: Vec<&str> = a.iter().map(|t| t.execution_id.as_str()).collect();
        let task_ids: Vec<i64> = a.iter().map(|t| t.task_id).collect();
        let names: Vec<&str> = a.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&str> = a.iter().map(|t| t.input.as_str()).collect();
        execute(
            tx,
            INSERT_ACTIVITIES,
            &[&hub, &ids, &executions, &task_ids, &names, &inputs],
        )
        .await?;
    }
    // Children first, so that messages the turn sends them find them.
    for child in &commit.new_instances {
        if create(tx, hub, child).await? {
            deliver(tx, hub, &[child.start_message()]).await?;
        } else if let Some(response) = child.conflict_response() {
            deliver(tx, hub, &[response]).await?;
        }
    }
    deliver(tx, hub, &commit.messages).await?;
    hold_activities(tx, hub, run_here, lease).await
}

const INSERT_HELD_ACTIVITIES: &str = "
INSERT INTO durable_activities (hub, instance_id, execution_id, task_id, name, input,
    lock_token, lock_expires_at, dequeue_count)
SELECT $1, t.instance_id, t.execution_id, t.task_id, t.name, t.input, t.token,
    now() + $8::bigint * interval '1 microsecond', 1
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
    WITH ORDINALITY AS t(instance_id, execution_id, task_id, name, input, token, ord)
ORDER BY t.ord";

/// Queues `tasks` leased to the caller for `lease`; their work items.
async fn hold_activities(
    client: &impl GenericClient,
    hub: &str,
    tasks: Vec<ActivityTask>,
    lease: Duration,
) -> Result<Vec<ActivityWorkItem>, Fail> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let tokens: Vec<String> = tasks
        .iter()
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let ids: Vec<&str> = tasks.iter().map(|t| t.instance_id.as_str()).collect();
    let executions: Vec<&str> = tasks.iter().map(|t| t.execution_id.as_str()).collect();
    let task_ids: Vec<i64> = tasks.iter().map(|t| t.task_id).collect();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&str> = tasks.iter().map(|t| t.input.as_str()).collect();
    execute(
        client,
        INSERT_HELD_ACTIVITIES,
        &[
            &hub,
            &ids,
            &executions,
            &task_ids,
            &names,
            &inputs,
            &tokens,
            &micros(lease),
        ],
    )
    .await?;
    Ok(tasks
        .into_iter()
        .zip(tokens)
        .map(|(task, token)| ActivityWorkItem {
            task,
            lock: LockToken(token),
            dequeue_count: 1,
        })
        .collect())
}

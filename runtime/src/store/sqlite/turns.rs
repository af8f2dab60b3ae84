//! A turn's commit on SQLite: under the instance's lease, or checked against where the
//! instance stood when the turn was computed without one.

use rusqlite::{Connection, OptionalExtension, params};

use super::ops::{self, Queued, db, nanos, real_millis};
use super::partitions;
use crate::model::InstanceStatus;
use crate::store::{
    ActivityTask, HistoryWrite, InstanceVersion, NewInstance, OrchestrationMessage, PartitionLease,
    StoreError, TurnCommit,
};

/// A turn's commit made ready on the caller's thread: its history events and messages
/// serialized, so that the single writer spends its time on SQL.
pub(super) struct PreparedTurn {
    consumed: Vec<u64>,
    /// Whether the history so far is kept (appended to) or discarded.
    keep_history: bool,
    /// The events the turn writes, as one history row, and how many they are.
    events: Option<(String, i64)>,
    status: InstanceStatus,
    activities: Vec<ActivityTask>,
    messages: Vec<(OrchestrationMessage, String)>,
    /// Where each of `messages` went in the queue (none: it was dropped), once applied.
    queued: Vec<Option<i64>>,
    new_instances: Vec<NewInstance>,
}

impl PreparedTurn {
    pub(super) fn new(commit: TurnCommit) -> PreparedTurn {
        let (keep_history, events) = match &commit.history {
            HistoryWrite::Append(events) => (true, events.as_slice()),
            HistoryWrite::Reset => (false, &[][..]),
            HistoryWrite::Replace(events) => (false, events.as_slice()),
        };
        let events = (!events.is_empty()).then(|| (ops::history_json(events), events.len() as i64));
        let messages = commit
            .messages
            .into_iter()
            .map(|m| {
                let event = ops::event_json(&m);
                (m, event)
            })
            .collect();
        PreparedTurn {
            consumed: commit.consumed,
            keep_history,
            events,
            status: commit.status,
            activities: commit.activities,
            messages,
            queued: Vec::new(),
            new_instances: commit.new_instances,
        }
    }

    /// The messages the applied turn queued, with their place in the queue: what a read of
    /// their receivers in the same transaction finds (see [`Queued`]).
    pub(super) fn queued(&mut self) -> Queued {
        let messages = std::mem::take(&mut self.messages);
        Queued::new(
            std::mem::take(&mut self.queued)
                .into_iter()
                .zip(messages)
                .filter_map(|(seq, (m, _))| Some((seq?, m)))
                .collect(),
        )
    }
}

/// Applies a turn under the instance's lease (refused with `LeaseLost` without it) and
/// releases the lease.
pub(super) fn commit_turn(
    conn: &Connection,
    hub: &str,
    id: &str,
    token: &str,
    fence: Option<&PartitionLease>,
    commit: &mut PreparedTurn,
) -> Result<(), StoreError> {
    partitions::check_hold(conn, hub, id, token, fence)?;
    apply_turn(conn, hub, id, commit)
}

/// Creates `instance` (refused as `ops::create` refuses) with `commit`, its first turn, applied
/// at once: no start message is queued. Refused with `LeaseLost` when `fence` moved on.
pub(super) fn create_with_turn(
    conn: &Connection,
    hub: &str,
    instance: &NewInstance,
    fence: &PartitionLease,
    commit: &mut PreparedTurn,
) -> Result<(), StoreError> {
    if !partitions::fence_holds(conn, hub, Some(fence))? {
        return Err(StoreError::LeaseLost);
    }
    ops::insert_new(conn, hub, instance)?;
    apply_turn(conn, hub, &instance.instance_id, commit)
}

/// Whether the instance is unleased (or its lease ran out) and still at `expected`.
pub(super) fn unchanged(
    conn: &Connection,
    hub: &str,
    expected: &InstanceVersion,
) -> Result<bool, StoreError> {
    type Row = (Option<String>, Option<i64>, i64, String, i64);
    let found: Option<Row> = conn
        .prepare_cached(
            "SELECT lock_token, lock_expires, history_len, execution_id, last_updated_at \
             FROM instances WHERE hub = ?1 AND instance_id = ?2",
        )
        .map_err(db("reading an instance"))?
        .query_row(params![hub, expected.instance_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()
        .map_err(db("reading an instance"))?;
    if !partitions::fence_holds(conn, hub, expected.fence.as_ref())? {
        return Ok(false);
    }
    Ok(match found {
        None => false,
        Some((lock, expires, len, execution_id, updated)) => {
            (lock.is_none() || expires.is_some_and(|at| at <= real_millis()))
                && len == expected.history_len as i64
                && execution_id == expected.execution_id
                && updated == nanos(expected.last_updated_at)
        }
    })
}

/// Applies a turn's changes and releases any lease on the instance. Refused with `LeaseLost`
/// when the turn's messages are gone (another turn took them, or the instance was replaced):
/// before anything changed, when its first one is. The turn is borrowed, so that the caller
/// frees it off the writer's thread.
pub(super) fn apply_turn(
    conn: &Connection,
    hub: &str,
    id: &str,
    commit: &mut PreparedTurn,
) -> Result<(), StoreError> {
    let mut delete = conn
        .prepare_cached("DELETE FROM messages WHERE hub = ?1 AND seq = ?2")
        .map_err(db("consuming messages"))?;
    for seq in &commit.consumed {
        let removed = delete
            .execute(params![hub, *seq as i64])
            .map_err(db("consuming messages"))?;
        if removed == 0 {
            // This turn is stale. A turn that took the same messages took all of them, so the
            // first is the one found missing, before this write changed anything.
            return Err(StoreError::LeaseLost);
        }
    }
    if !commit.keep_history {
        ops::delete_history(conn, hub, id)?;
    }
    let (count, last) = match &commit.events {
        Some((events, count)) => {
            let row = ops::append_history(conn, hub, id, commit.keep_history, events)?;
            (*count, Some(row.ok_or(StoreError::LeaseLost)?))
        }
        None => (0, None),
    };
    if !ops::update_status_and_unlock(conn, hub, &commit.status, commit.keep_history, count, last)?
    {
        return Err(StoreError::LeaseLost);
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO activities (hub, instance_id, execution_id, task_id, name, input) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(db("queueing activities"))?;
    for t in &commit.activities {
        insert
            .execute(params![
                hub,
                t.instance_id,
                t.execution_id,
                t.task_id,
                t.name,
                t.input
            ])
            .map_err(db("queueing activities"))?;
    }
    // Children first, so a message to a child started in this turn finds it.
    for child in &commit.new_instances {
        match ops::create(conn, hub, child) {
            Err(StoreError::InstanceAlreadyExists(_)) => {
                if let Some(response) = child.conflict_response() {
                    ops::deliver(conn, hub, &response)?;
                }
            }
            other => other?,
        }
    }
    commit.queued.clear();
    for (m, event) in &commit.messages {
        commit
            .queued
            .push(ops::deliver_serialized(conn, hub, m, event)?);
    }
    Ok(())
}

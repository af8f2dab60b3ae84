//! Synchronous SQL shared by the writer's jobs and the readers.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Durability;
use crate::model::EntityId;
use crate::model::history::HistoryEvent;
use crate::model::{InstanceStatus, RuntimeStatus};
use crate::store::ownership::{HostRow, PartitionRow, apply_claim};
use crate::store::{
    LockToken, NewInstance, OrchestrationMessage, OrchestrationWorkItem, Owned, PartitionClaim,
    PartitionLease, PartitionTable, QueuedMessage, ReadyInstances, StoreError, new_entity_status,
};

pub(super) fn db(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("SQLite {what}: {e}"))
}

pub(super) fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("corrupt {what} in the SQLite store: {e}"))
}

/// Orchestration time as stored: nanoseconds since the epoch.
pub(super) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub(super) fn from_nanos(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

/// Real time (for leases and retry delays): milliseconds since the epoch.
pub(super) fn real_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

pub(super) const STATUS_COLUMNS: &str = "instance_id, name, execution_id, runtime_status, input, \
     output, custom_status, failure, created_at, last_updated_at, parent_instance_id, version";

pub(super) fn status_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<Result<InstanceStatus, StoreError>> {
    let runtime_status: String = row.get(3)?;
    let failure: Option<String> = row.get(7)?;
    let status = InstanceStatus {
        instance_id: row.get(0)?,
        name: row.get(1)?,
        execution_id: row.get(2)?,
        runtime_status: RuntimeStatus::Pending,
        input: row.get(4)?,
        output: row.get(5)?,
        custom_status: row.get(6)?,
        failure: None,
        created_at: from_nanos(row.get(8)?),
        last_updated_at: from_nanos(row.get(9)?),
        parent_instance_id: row.get(10)?,
        version: row.get(11)?,
        history: None,
    };
    Ok((|| {
        let runtime_status = runtime_status.parse::<RuntimeStatus>().map_err(|_| {
            StoreError::Backend(format!(
                "corrupt runtime status `{runtime_status}` in the SQLite store"
            ))
        })?;
        let failure = failure
            .map(|f| serde_json::from_str(&f).map_err(json_err("failure details")))
            .transpose()?;
        Ok(InstanceStatus {
            runtime_status,
            failure,
            ..status
        })
    })())
}

/// An instance's status, lock token and history length.
pub(super) fn instance(
    conn: &Connection,
    hub: &str,
    id: &str,
) -> Result<Option<(InstanceStatus, Option<String>, i64)>, StoreError> {
    let sql = format!(
        "SELECT {STATUS_COLUMNS}, lock_token, history_len FROM instances \
         WHERE hub = ?1 AND instance_id = ?2"
    );
    let found = conn
        .prepare_cached(&sql)
        .map_err(db("reading an instance"))?
        .query_row(params![hub, id], |row| {
            Ok((
                status_from_row(row)?,
                row.get::<_, Option<String>>(12)?,
                row.get::<_, i64>(13)?,
            ))
        })
        .optional()
        .map_err(db("reading an instance"))?;
    match found {
        None => Ok(None),
        Some((status, lock, len)) => Ok(Some((status?, lock, len))),
    }
}

pub(super) fn insert_status(
    conn: &Connection,
    hub: &str,
    s: &InstanceStatus,
) -> Result<(), StoreError> {
    let failure = s
        .failure
        .as_ref()
        .map(|f| serde_json::to_string(f).expect("failure details serialize"));
    conn.prepare_cached(&format!(
        "INSERT INTO instances (hub, {STATUS_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))
    .map_err(db("creating an instance"))?
    .execute(params![
        hub,
        s.instance_id,
        s.name,
        s.execution_id,
        s.runtime_status.as_str(),
        s.input,
        s.output,
        s.custom_status,
        failure,
        nanos(s.created_at),
        nanos(s.last_updated_at),
        s.parent_instance_id,
        s.version,
    ])
    .map_err(db("creating an instance"))?;
    Ok(())
}

/// Replaces an instance's status and releases its lease.
pub(super) fn update_status_and_unlock(
    conn: &Connection,
    hub: &str,
    s: &InstanceStatus,
    history_len: i64,
) -> Result<(), StoreError> {
    let failure = s
        .failure
        .as_ref()
        .map(|f| serde_json::to_string(f).expect("failure details serialize"));
    conn.prepare_cached(
        "UPDATE instances SET name = ?3, execution_id = ?4, runtime_status = ?5, input = ?6, \
         output = ?7, custom_status = ?8, failure = ?9, last_updated_at = ?10, \
         parent_instance_id = ?11, history_len = ?12, lock_token = NULL, lock_expires = NULL \
         WHERE hub = ?1 AND instance_id = ?2",
    )
    .map_err(db("updating an instance"))?
    .execute(params![
        hub,
        s.instance_id,
        s.name,
        s.execution_id,
        s.runtime_status.as_str(),
        s.input,
        s.output,
        s.custom_status,
        failure,
        nanos(s.last_updated_at),
        s.parent_instance_id,
        history_len,
    ])
    .map_err(db("updating an instance"))?;
    Ok(())
}

/// Removes an instance and everything it owns.
pub(super) fn delete_instance(conn: &Connection, hub: &str, id: &str) -> Result<(), StoreError> {
    for table in ["instances", "history", "messages", "activities", "parked"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE hub = ?1 AND instance_id = ?2"
        ))
        .map_err(db("deleting an instance"))?
        .execute(params![hub, id])
        .map_err(db("deleting an instance"))?;
    }
    Ok(())
}

/// Queues a message for its instance: creates an entity on first use; drops a message for any
/// other instance that does not exist.
pub(super) fn deliver(
    conn: &Connection,
    hub: &str,
    m: &OrchestrationMessage,
) -> Result<(), StoreError> {
    let exists = instance_exists(conn, hub, &m.instance_id)?;
    if !exists {
        if EntityId::is_entity_instance(&m.instance_id) {
            insert_status(
                conn,
                hub,
                &new_entity_status(&m.instance_id, m.event.timestamp),
            )?;
        } else {
            tracing::warn!(
                instance_id = ?m.instance_id,
                event = ?m.event.kind.name(),
                "dropped a message for an instance that does not exist"
            );
            return Ok(());
        }
    }
    let event = serde_json::to_string(&m.event).expect("history events serialize");
    conn.prepare_cached(
        "INSERT INTO messages (hub, instance_id, execution_id, event, visible_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(db("queueing a message"))?
    .execute(params![
        hub,
        m.instance_id,
        m.execution_id,
        event,
        m.visible_at.map(nanos)
    ])
    .map_err(db("queueing a message"))?;
    Ok(())
}

pub(super) fn instance_exists(conn: &Connection, hub: &str, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM instances WHERE hub = ?1 AND instance_id = ?2")
        .map_err(db("reading an instance"))?
        .exists(params![hub, id])
        .map_err(db("reading an instance"))
}

/// Creates (or re-creates) an instance and queues its start.
pub(super) fn create(conn: &Connection, hub: &str, ni: &NewInstance) -> Result<(), StoreError> {
    if let Some((status, _, _)) = instance(conn, hub, &ni.instance_id)? {
        if !status.runtime_status.is_terminal() && !ni.replace_running {
            return Err(StoreError::InstanceAlreadyExists(ni.instance_id.clone()));
        }
        delete_instance(conn, hub, &ni.instance_id)?;
    }
    insert_status(conn, hub, &ni.initial_status())?;
    deliver(conn, hub, &ni.start_message())
}

/// Fails with `LeaseLost` unless the instance is leased under `token`.
pub(super) fn check_lock(
    conn: &Connection,
    hub: &str,
    id: &str,
    token: &str,
) -> Result<(), StoreError> {
    let held: Option<Option<String>> = conn
        .prepare_cached("SELECT lock_token FROM instances WHERE hub = ?1 AND instance_id = ?2")
        .map_err(db("checking a lease"))?
        .query_row(params![hub, id], |r| r.get(0))
        .optional()
        .map_err(db("checking a lease"))?;
    match held {
        Some(Some(t)) if t == token => Ok(()),
        _ => Err(StoreError::LeaseLost),
    }
}

/// Fails with `LeaseLost` unless the work item is still held: by its instance lease, or, for an
/// item read without one (empty token), by its partition's lease. A fenced item needs both.
pub(super) fn check_hold(
    conn: &Connection,
    hub: &str,
    id: &str,
    token: &str,
    fence: Option<&PartitionLease>,
) -> Result<(), StoreError> {
    if token.is_empty() {
        if fence.is_none() {
            return Err(StoreError::LeaseLost);
        }
    } else {
        check_lock(conn, hub, id, token)?;
    }
    if !fence_holds(conn, hub, fence)? {
        return Err(StoreError::LeaseLost);
    }
    Ok(())
}

/// The instances with messages visible at `now` (orchestration time) and `real_now` (the
/// lease clock) and no live lease, by their oldest visible message, at most `limit` of those
/// `owned` takes.
pub(super) fn ready_instances(
    conn: &Connection,
    hub: &str,
    now: i64,
    real_now: i64,
    owned: &Owned,
    limit: usize,
) -> Result<ReadyInstances, StoreError> {
    let what = "looking for work";
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.instance_id, MIN(m.seq) AS first FROM messages m \
             JOIN instances i ON i.hub = m.hub AND i.instance_id = m.instance_id \
             WHERE m.hub = ?1 AND (m.visible_at IS NULL OR m.visible_at <= ?2) \
             AND (m.not_before IS NULL OR m.not_before <= ?3) \
             AND (i.lock_token IS NULL OR i.lock_expires <= ?3) \
             GROUP BY m.instance_id ORDER BY first",
        )
        .map_err(db(what))?;
    let mut rows = stmt.query(params![hub, now, real_now]).map_err(db(what))?;
    let mut instance_ids = Vec::new();
    while instance_ids.len() < limit
        && let Some(row) = rows.next().map_err(db(what))?
    {
        let id: String = row.get(0).map_err(db(what))?;
        if owned.fence(&id).is_some() {
            instance_ids.push(id);
        }
    }
    let next: Option<i64> = conn
        .prepare_cached("SELECT MIN(visible_at) FROM messages WHERE hub = ?1 AND visible_at > ?2")
        .map_err(db("looking for timers"))?
        .query_row(params![hub, now], |r| r.get(0))
        .map_err(db("looking for timers"))?;
    Ok(ReadyInstances {
        instance_ids,
        next_visible: next.map(from_nanos),
    })
}

/// `id`'s work item read without a lease, held by `fence` (see
/// [`crate::store::Store::read_orchestration`]).
pub(super) fn read_instance(
    conn: &Connection,
    hub: &str,
    id: &str,
    now: i64,
    real_now: i64,
    fence: PartitionLease,
) -> Result<Option<OrchestrationWorkItem>, StoreError> {
    let messages = read_messages(conn, hub, id, now, real_now)?;
    if messages.is_empty() {
        return Ok(None);
    }
    let Some((instance, _, history_len)) = instance(conn, hub, id)? else {
        return Ok(None);
    };
    let dequeue_count = messages.iter().map(|(_, c)| *c).max().unwrap_or(1);
    Ok(Some(OrchestrationWorkItem {
        instance_id: id.to_string(),
        instance,
        history_len: history_len as usize,
        messages: messages.into_iter().map(|(m, _)| m).collect(),
        lock: LockToken(String::new()),
        dequeue_count,
        fence: Some(fence),
    }))
}

/// Whether the partition `fence` names is still at its epoch (no fence: yes).
pub(super) fn fence_holds(
    conn: &Connection,
    hub: &str,
    fence: Option<&PartitionLease>,
) -> Result<bool, StoreError> {
    let Some(fence) = fence else {
        return Ok(true);
    };
    let epoch: Option<i64> = conn
        .prepare_cached("SELECT epoch FROM partitions WHERE hub = ?1 AND partition = ?2")
        .map_err(db("checking a partition's epoch"))?
        .query_row(params![hub, fence.partition], |r| r.get(0))
        .optional()
        .map_err(db("checking a partition's epoch"))?;
    Ok(crate::store::ownership::fence_holds(
        epoch.map(|e| e as u64),
        fence,
    ))
}

/// Applies a partition claim: reads the hub's partitions and heartbeats, applies it, writes
/// back what changed.
pub(super) fn claim_partitions(
    conn: &Connection,
    hub: &str,
    claim: &PartitionClaim,
) -> Result<PartitionTable, StoreError> {
    let what = "claiming partitions";
    let now_ms = real_millis();
    let mut rows: Vec<PartitionRow> = conn
        .prepare_cached(
            "SELECT partition, owner, epoch, lease_expires FROM partitions WHERE hub = ?1 \
             ORDER BY partition",
        )
        .map_err(db(what))?
        .query_map(params![hub], |r| {
            Ok(PartitionRow {
                partition: r.get(0)?,
                owner: r.get(1)?,
                epoch: r.get::<_, i64>(2)? as u64,
                expires_ms: r.get(3)?,
                changed: false,
            })
        })
        .map_err(db(what))?
        .collect::<Result<_, _>>()
        .map_err(db(what))?;
    if rows.is_empty() {
        rows = (0..claim.count_if_new.max(1))
            .map(PartitionRow::new)
            .collect();
    }
    let mut hosts: Vec<HostRow> = conn
        .prepare_cached("SELECT host, expires FROM hosts WHERE hub = ?1")
        .map_err(db(what))?
        .query_map(params![hub], |r| {
            Ok(HostRow {
                host: r.get(0)?,
                expires_ms: r.get(1)?,
            })
        })
        .map_err(db(what))?
        .collect::<Result<_, _>>()
        .map_err(db(what))?;
    let table = apply_claim(&mut rows, &mut hosts, claim, now_ms);
    let mut write = conn
        .prepare_cached(
            "INSERT INTO partitions (hub, partition, owner, epoch, lease_expires) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (hub, partition) DO UPDATE SET \
             owner = excluded.owner, epoch = excluded.epoch, lease_expires = excluded.lease_expires",
        )
        .map_err(db(what))?;
    for r in rows.iter().filter(|r| r.changed) {
        write
            .execute(params![
                hub,
                r.partition,
                r.owner,
                r.epoch as i64,
                r.expires_ms
            ])
            .map_err(db(what))?;
    }
    conn.prepare_cached("DELETE FROM hosts WHERE hub = ?1")
        .map_err(db(what))?
        .execute(params![hub])
        .map_err(db(what))?;
    let mut beat = conn
        .prepare_cached("INSERT INTO hosts (hub, host, expires) VALUES (?1, ?2, ?3)")
        .map_err(db(what))?;
    for h in &hosts {
        beat.execute(params![hub, h.host, h.expires_ms])
            .map_err(db(what))?;
    }
    Ok(table)
}

pub(super) fn unlock(conn: &Connection, hub: &str, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE instances SET lock_token = NULL, lock_expires = NULL \
         WHERE hub = ?1 AND instance_id = ?2",
    )
    .map_err(db("releasing a lease"))?
    .execute(params![hub, id])
    .map_err(db("releasing a lease"))?;
    Ok(())
}

pub(super) fn append_history(
    conn: &Connection,
    hub: &str,
    id: &str,
    start: i64,
    events: &[HistoryEvent],
) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO history (hub, instance_id, idx, event) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db("appending history"))?;
    for (i, event) in events.iter().enumerate() {
        let json = serde_json::to_string(event).expect("history events serialize");
        insert
            .execute(params![hub, id, start + i as i64, json])
            .map_err(db("appending history"))?;
    }
    Ok(())
}

pub(super) fn park(
    conn: &Connection,
    hub: &str,
    id: &str,
    message: &str,
    error: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO parked (hub, instance_id, message, error, parked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(db("parking a message"))?
    .execute(params![hub, id, message, error, nanos(at)])
    .map_err(db("parking a message"))?;
    Ok(())
}

pub(super) fn connect(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Backend(format!("cannot open `{shown}`: {e}")))?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(db("setting the busy timeout"))?;
    // Stable plans: otherwise SQLite re-plans a statement each time a parameter compared with
    // a column in a range (a visible time, a lease expiry) is bound to a new value — which is
    // every time, and was a quarter of the writer thread's work.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(db("asking for stable query plans"))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
    ))
    .map_err(|e| {
        StoreError::Backend(format!(
            "`{shown}` cannot be opened as a durable store (is it a SQLite database?): {e}"
        ))
    })?;
    Ok(conn)
}

pub(super) fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Activity lock tokens carry the task's row: `<seq>:<random>`.
pub(super) fn activity_seq(lock: &LockToken) -> Result<i64, StoreError> {
    lock.0
        .split_once(':')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or(StoreError::LeaseLost)
}

pub(super) fn read_messages(
    conn: &Connection,
    hub: &str,
    id: &str,
    now: i64,
    real_now: i64,
) -> Result<Vec<(QueuedMessage, u32)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, execution_id, event, visible_at, dequeue_count FROM messages \
             WHERE hub = ?1 AND instance_id = ?2 AND (visible_at IS NULL OR visible_at <= ?3) \
             AND (not_before IS NULL OR not_before <= ?4) ORDER BY seq",
        )
        .map_err(db("reading messages"))?;
    let rows = stmt
        .query_map(params![hub, id, now, real_now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(db("reading messages"))?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, execution_id, event, visible_at, count) = row.map_err(db("reading messages"))?;
        let event: HistoryEvent = serde_json::from_str(&event).map_err(json_err("message"))?;
        out.push((
            QueuedMessage {
                seq: seq as u64,
                message: OrchestrationMessage {
                    instance_id: id.to_string(),
                    execution_id,
                    event,
                    visible_at: visible_at.map(from_nanos),
                },
            },
            count as u32 + 1,
        ));
    }
    Ok(out)
}

/// Leases `id` for `lease` with its messages visible at `now` (counted as delivered once
/// more), unless another lease holds it or it has none visible.
pub(super) fn lease_instance(
    conn: &Connection,
    hub: &str,
    id: &str,
    now: i64,
    real_now: i64,
    lease: Duration,
) -> Result<Option<OrchestrationWorkItem>, StoreError> {
    let token = new_token();
    let leased = conn
        .prepare_cached(
            "UPDATE instances SET lock_token = ?3, lock_expires = ?4 \
             WHERE hub = ?1 AND instance_id = ?2 AND (lock_token IS NULL OR lock_expires <= ?5)",
        )
        .map_err(db("leasing an instance"))?
        .execute(params![hub, id, token, real_now + millis(lease), real_now])
        .map_err(db("leasing an instance"))?;
    if leased == 0 {
        return Ok(None);
    }
    let messages = read_messages(conn, hub, id, now, real_now)?;
    if messages.is_empty() {
        unlock(conn, hub, id)?;
        return Ok(None);
    }
    let mut bump = conn
        .prepare_cached("UPDATE messages SET dequeue_count = dequeue_count + 1 WHERE seq = ?1")
        .map_err(db("counting deliveries"))?;
    for (m, _) in &messages {
        bump.execute(params![m.seq as i64])
            .map_err(db("counting deliveries"))?;
    }
    let (instance, _, history_len) = instance(conn, hub, id)?
        .ok_or_else(|| StoreError::Backend(format!("instance `{id}` vanished")))?;
    let dequeue_count = messages.iter().map(|(_, c)| *c).max().unwrap_or(1);
    Ok(Some(OrchestrationWorkItem {
        instance_id: id.to_string(),
        instance,
        history_len: history_len as usize,
        messages: messages.into_iter().map(|(m, _)| m).collect(),
        lock: LockToken(token),
        dequeue_count,
        fence: None,
    }))
}

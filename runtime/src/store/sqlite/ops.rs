//! Synchronous SQL shared by the writer's jobs and the readers.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Durability;
use crate::model::EntityId;
use crate::model::history::HistoryEvent;
use crate::model::{InstanceStatus, RuntimeStatus};
use crate::store::{
    LockToken, NewInstance, OrchestrationMessage, OrchestrationWorkItem, QueuedMessage, StoreError,
    new_entity_status,
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

/// The columns [`status_from_row`] reads, in its order.
macro_rules! status_columns {
    () => {
        "instance_id, name, execution_id, runtime_status, input, output, custom_status, \
         failure, created_at, last_updated_at, parent_instance_id, version"
    };
}

pub(super) const STATUS_COLUMNS: &str = status_columns!();

/// An instance's status, lock token and history length: `?1` the hub, `?2` the instance.
const INSTANCE: &str = concat!(
    "SELECT ",
    status_columns!(),
    ", lock_token, history_len FROM instances WHERE hub = ?1 AND instance_id = ?2"
);

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
    let found = conn
        .prepare_cached(INSTANCE)
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

/// Replaces an instance's status (all but its creation time) and releases its lease. Its
/// history grows by `added` events, or is now `added` long when not `kept`; `last` is the
/// history row appended, if any (see [`append_history`]). Returns whether the instance
/// exists.
pub(super) fn update_status_and_unlock(
    conn: &Connection,
    hub: &str,
    s: &InstanceStatus,
    kept: bool,
    added: i64,
    last: Option<i64>,
) -> Result<bool, StoreError> {
    let failure = s
        .failure
        .as_ref()
        .map(|f| serde_json::to_string(f).expect("failure details serialize"));
    conn.prepare_cached(
        "UPDATE instances SET name = ?3, execution_id = ?4, runtime_status = ?5, input = ?6, \
         output = ?7, custom_status = ?8, failure = ?9, last_updated_at = ?10, \
         parent_instance_id = ?11, \
         history_len = CASE WHEN ?12 THEN history_len + ?13 ELSE ?13 END, \
         history_last = CASE WHEN ?14 IS NOT NULL THEN ?14 WHEN ?12 THEN history_last END, \
         lock_token = NULL, lock_expires = NULL \
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
        kept,
        added,
        last,
    ])
    .map(|updated| updated == 1)
    .map_err(db("updating an instance"))
}

/// Removes an instance and everything it owns.
pub(super) fn delete_instance(conn: &Connection, hub: &str, id: &str) -> Result<(), StoreError> {
    // Its history first: the instance's row points to it.
    delete_history(conn, hub, id)?;
    for table in ["instances", "messages", "activities", "parked"] {
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
    deliver_serialized(conn, hub, m, &event_json(m)).map(drop)
}

/// A message's event as it is queued.
pub(super) fn event_json(m: &OrchestrationMessage) -> String {
    serde_json::to_string(&m.event).expect("history events serialize")
}

/// [`deliver`] with the message's event already serialized (see [`event_json`]). Returns
/// where the message went in the queue, unless it was dropped.
pub(super) fn deliver_serialized(
    conn: &Connection,
    hub: &str,
    m: &OrchestrationMessage,
    event: &str,
) -> Result<Option<i64>, StoreError> {
    // Queued only to an instance that exists, in one statement: most messages go to one.
    // `OR IGNORE` (there is no conflict to ignore: every value is given) tells SQLite the
    // statement cannot fail halfway, so it keeps no statement journal for it, as it would for
    // an `INSERT … SELECT` that might: that copied every page the insert touched.
    let mut queue = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO messages (hub, instance_id, execution_id, event, visible_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 \
             WHERE EXISTS (SELECT 1 FROM instances WHERE hub = ?1 AND instance_id = ?2)",
        )
        .map_err(db("queueing a message"))?;
    let args = params![
        hub,
        m.instance_id,
        m.execution_id,
        event,
        m.visible_at.map(nanos)
    ];
    if queue.execute(args).map_err(db("queueing a message"))? == 1 {
        return Ok(Some(conn.last_insert_rowid()));
    }
    if !EntityId::is_entity_instance(&m.instance_id) {
        tracing::warn!(
            instance_id = ?m.instance_id,
            event = ?m.event.kind.name(),
            "dropped a message for an instance that does not exist"
        );
        return Ok(None);
    }
    insert_status(
        conn,
        hub,
        &new_entity_status(&m.instance_id, m.event.timestamp),
    )?;
    queue.execute(args).map_err(db("queueing a message"))?;
    Ok(Some(conn.last_insert_rowid()))
}

pub(super) fn instance_exists(conn: &Connection, hub: &str, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM instances WHERE hub = ?1 AND instance_id = ?2")
        .map_err(db("reading an instance"))?
        .exists(params![hub, id])
        .map_err(db("reading an instance"))
}

/// Creates (or re-creates) an instance and queues its start.
pub(super) fn create(conn: &Connection, hub: &str, ni: &NewInstance) -> Result<(), StoreError> {
    insert_new(conn, hub, ni)?;
    deliver(conn, hub, &ni.start_message())
}

/// Writes a new instance's status, replacing a finished one with its id (or a running one, with
/// `replace_running`); its start message is the caller's to queue.
pub(super) fn insert_new(conn: &Connection, hub: &str, ni: &NewInstance) -> Result<(), StoreError> {
    if let Some((status, _, _)) = instance(conn, hub, &ni.instance_id)? {
        if !status.runtime_status.is_terminal() && !ni.replace_running {
            return Err(StoreError::InstanceAlreadyExists(ni.instance_id.clone()));
        }
        delete_instance(conn, hub, &ni.instance_id)?;
    }
    insert_status(conn, hub, &ni.initial_status())
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

/// Events as one history row holds them: a JSON array.
pub(super) fn history_json(events: &[HistoryEvent]) -> String {
    serde_json::to_string(events).expect("history events serialize")
}

/// Appends one history row holding `events`, a JSON array (see [`history_json`]): after the
/// instance's history so far when it is `kept`, or as the first row of a history discarded
/// before. Returns the new row's id, which the instance must point to as its last (see
/// [`update_status_and_unlock`]), or `None` when the instance does not exist.
pub(super) fn append_history(
    conn: &Connection,
    hub: &str,
    id: &str,
    kept: bool,
    events: &str,
) -> Result<Option<i64>, StoreError> {
    // `OR IGNORE`: no statement journal, as in `deliver_serialized`.
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO history (hub, instance_id, idx, prev, events) \
             SELECT hub, instance_id, CASE WHEN ?3 THEN history_len ELSE 0 END, \
             CASE WHEN ?3 THEN history_last END, ?4 \
             FROM instances WHERE hub = ?1 AND instance_id = ?2",
        )
        .map_err(db("appending history"))?
        .execute(params![hub, id, kept, events])
        .map_err(db("appending history"))?;
    // Not `RETURNING`, which costs a temporary table per statement.
    Ok((inserted == 1).then(|| conn.last_insert_rowid()))
}

/// The ids of an instance's history rows, from its last back to its first: `?1` the hub,
/// `?2` the instance.
const HISTORY_ROWS: &str = "WITH RECURSIVE chain (seq) AS ( \
         SELECT history_last FROM instances WHERE hub = ?1 AND instance_id = ?2 \
         UNION ALL \
         SELECT h.prev FROM history AS h JOIN chain ON h.seq = chain.seq \
     ) SELECT seq FROM chain";

/// Deletes an instance's history (its instance row keeps pointing to it: the caller's to
/// change or delete).
pub(super) fn delete_history(conn: &Connection, hub: &str, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "DELETE FROM history WHERE seq IN ({HISTORY_ROWS})"
    ))
    .map_err(db("deleting history"))?
    .execute(params![hub, id])
    .map_err(db("deleting history"))?;
    Ok(())
}

/// An instance's history: its rows' events, in order. One statement, so one snapshot of the
/// file however many rows it reads.
pub(super) fn read_history(
    conn: &Connection,
    hub: &str,
    id: &str,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT h.events FROM history AS h WHERE h.seq IN ({HISTORY_ROWS}) ORDER BY h.idx"
        ))
        .map_err(db("reading history"))?;
    let mut rows = stmt
        .query(params![hub, id])
        .map_err(db("reading history"))?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(db("reading history"))? {
        let json = row.get_ref(0).map_err(db("reading history"))?;
        let json = json
            .as_str()
            .map_err(|e| StoreError::Backend(format!("SQLite reading history: {e}")))?;
        let mut row_events: Vec<HistoryEvent> =
            serde_json::from_str(json).map_err(json_err("history event"))?;
        events.append(&mut row_events);
    }
    Ok(events)
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
    // Every write runs in a savepoint of the writer's group transaction: its statement
    // journal is kept in memory instead of a temporary file opened for each. A page cache of
    // 32 MiB (instead of 2 MiB) keeps a busy hub's index pages in memory between commits.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
         PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;"
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

/// Messages a transaction queued, by their place in the queue: a read of their receivers'
/// messages in that transaction takes them from here instead of parsing what it just wrote.
#[derive(Default)]
pub(super) struct Queued(Vec<(i64, OrchestrationMessage)>);

impl Queued {
    pub(super) fn new(queued: Vec<(i64, OrchestrationMessage)>) -> Self {
        Queued(queued)
    }

    /// The message queued at `seq`, if it is one of these (taken: each is read once).
    fn take(&mut self, seq: i64) -> Option<OrchestrationMessage> {
        let at = self.0.iter().position(|(s, _)| *s == seq)?;
        Some(self.0.swap_remove(at).1)
    }
}

/// `id`'s messages visible at `now` (and due by `real_now`), with how many times each will
/// have been delivered; those in `known` are taken from there rather than parsed.
pub(super) fn read_messages(
    conn: &Connection,
    hub: &str,
    id: &str,
    now: i64,
    real_now: i64,
    known: &mut Queued,
) -> Result<Vec<(QueuedMessage, u32)>, StoreError> {
    let what = "reading messages";
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, execution_id, event, visible_at, dequeue_count FROM messages \
             WHERE hub = ?1 AND instance_id = ?2 AND (visible_at IS NULL OR visible_at <= ?3) \
             AND (not_before IS NULL OR not_before <= ?4) ORDER BY seq",
        )
        .map_err(db(what))?;
    let mut rows = stmt
        .query(params![hub, id, now, real_now])
        .map_err(db(what))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db(what))? {
        let seq: i64 = r.get(0).map_err(db(what))?;
        let count: i64 = r.get(4).map_err(db(what))?;
        let message = match known.take(seq) {
            Some(message) => message,
            None => {
                let event = r
                    .get_ref(2)
                    .and_then(|v| Ok(v.as_str()?))
                    .map_err(db(what))?;
                OrchestrationMessage {
                    instance_id: id.to_string(),
                    execution_id: r.get(1).map_err(db(what))?,
                    event: serde_json::from_str(event).map_err(json_err("message"))?,
                    visible_at: r
                        .get::<_, Option<i64>>(3)
                        .map_err(db(what))?
                        .map(from_nanos),
                }
            }
        };
        out.push((
            QueuedMessage {
                seq: seq as u64,
                message,
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
    let messages = read_messages(conn, hub, id, now, real_now, &mut Queued::default())?;
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
        read_in: None,
    }))
}

//! Partition ownership on SQLite: claims, the fence a commit checks, and the work of owned
//! partitions read without a lease.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::ops::{Queued, check_lock, db, from_nanos, instance, read_messages, real_millis};
use crate::store::ownership::{HostRow, PartitionRow, apply_claim};
use crate::store::{
    LockToken, OrchestrationWorkItem, Owned, PartitionClaim, PartitionLease, PartitionTable,
    ReadyInstances, StoreError,
};

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
    // Two ranges of the visible-time index, each already in the order wanted and read only
    // as far as needed: immediate messages by arrival, then due timers by due time (each
    // instance kept at its oldest message). A look with nothing ready costs two index probes,
    // however many timers wait; grouping every message of the hub first cost a fifth of the
    // host's work with a thousand timers set.
    let first = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        let mut stmt = conn.prepare_cached(sql).map_err(db(what))?;
        let mut rows = stmt.query(params).map_err(db(what))?;
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while found.len() < limit
            && let Some(row) = rows.next().map_err(db(what))?
        {
            let id: String = row.get(0).map_err(db(what))?;
            if seen.insert(id.clone()) && owned.fence(&id).is_some() {
                found.push((id, row.get(1).map_err(db(what))?));
            }
        }
        Ok::<_, StoreError>(found)
    };
    let immediate = first(
        "SELECT m.instance_id, m.seq FROM messages AS m INDEXED BY messages_by_visible \
         JOIN instances i ON i.hub = m.hub AND i.instance_id = m.instance_id \
         WHERE m.hub = ?1 AND m.visible_at IS NULL \
         AND (m.not_before IS NULL OR m.not_before <= ?2) \
         AND (i.lock_token IS NULL OR i.lock_expires <= ?2) \
         ORDER BY m.visible_at, m.seq",
        params![hub, real_now],
    )?;
    let due = first(
        "SELECT m.instance_id, m.seq FROM messages AS m INDEXED BY messages_by_visible \
         JOIN instances i ON i.hub = m.hub AND i.instance_id = m.instance_id \
         WHERE m.hub = ?1 AND m.visible_at <= ?2 \
         AND (m.not_before IS NULL OR m.not_before <= ?3) \
         AND (i.lock_token IS NULL OR i.lock_expires <= ?3) \
         ORDER BY m.visible_at, m.seq",
        params![hub, now, real_now],
    )?;
    let mut both: Vec<(String, i64)> = immediate.into_iter().chain(due).collect();
    both.sort_by_key(|(_, seq)| *seq);
    let mut seen = std::collections::HashSet::new();
    let instance_ids: Vec<String> = both
        .into_iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(id, _)| id)
        .take(limit)
        .collect();
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

/// The messages of `owned` partitions visible after `now` and by `until`, earliest first, at
/// most `limit` (see [`crate::store::Store::coming_due`]).
pub(super) fn coming_due(
    conn: &Connection,
    hub: &str,
    now: i64,
    until: i64,
    owned: &Owned,
    limit: usize,
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let what = "looking for timers coming due";
    let mut stmt = conn
        .prepare_cached(
            "SELECT instance_id, visible_at FROM messages INDEXED BY messages_by_visible \
             WHERE hub = ?1 AND visible_at > ?2 AND visible_at <= ?3 \
             ORDER BY visible_at, seq",
        )
        .map_err(db(what))?;
    let mut rows = stmt.query(params![hub, now, until]).map_err(db(what))?;
    let mut found = Vec::new();
    while found.len() < limit
        && let Some(row) = rows.next().map_err(db(what))?
    {
        let id: String = row.get(0).map_err(db(what))?;
        if owned.fence(&id).is_some() {
            found.push((id, from_nanos(row.get(1).map_err(db(what))?)));
        }
    }
    Ok(found)
}

/// When `id`'s first message that `now` does not reach yet becomes visible (see
/// [`crate::store::Store::next_visible_for`]).
pub(super) fn next_visible_for(
    conn: &Connection,
    hub: &str,
    id: &str,
    now: i64,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let what = "looking for an instance's next message";
    let next: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(visible_at) FROM messages INDEXED BY messages_by_instance \
             WHERE hub = ?1 AND instance_id = ?2 AND visible_at > ?3",
        )
        .map_err(db(what))?
        .query_row(params![hub, id, now], |r| r.get(0))
        .map_err(db(what))?;
    Ok(next.map(from_nanos))
}

/// The work items of `wanted`, each read as [`read_instance`] reads one (see
/// [`crate::store::Store::read_orchestrations`]).
pub(super) fn read_instances(
    conn: &Connection,
    hub: &str,
    wanted: &[(String, PartitionLease)],
    now: i64,
) -> Result<Vec<OrchestrationWorkItem>, StoreError> {
    let real_now = real_millis();
    let mut items = Vec::with_capacity(wanted.len());
    for (id, fence) in wanted {
        items.extend(read_instance(
            conn,
            hub,
            id,
            now,
            real_now,
            *fence,
            &mut Queued::default(),
        )?);
    }
    Ok(items)
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
    known: &mut Queued,
) -> Result<Option<OrchestrationWorkItem>, StoreError> {
    let messages = read_messages(conn, hub, id, now, real_now, known)?;
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
        read_in: None,
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

/// Expires every partition lease, activity lease and heartbeat in the file, of every hub:
/// called once the file's owner lock is held, when every process that held them has ended (a
/// host that does not own the file runs no activities either).
pub(super) fn forget_ended_owners(conn: &Connection) -> Result<(), StoreError> {
    let what = "letting go of ended hosts' partitions";
    for sql in [
        "UPDATE partitions SET lease_expires = 0 WHERE owner IS NOT NULL",
        "UPDATE activities SET lock_expires = 0 WHERE lock_token IS NOT NULL",
    ] {
        conn.prepare_cached(sql)
            .map_err(db(what))?
            .execute([])
            .map_err(db(what))?;
    }
    conn.prepare_cached("DELETE FROM hosts")
        .map_err(db(what))?
        .execute([])
        .map_err(db(what))?;
    Ok(())
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

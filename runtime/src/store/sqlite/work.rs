//! The orchestration queue on SQLite: leasing the next instance's work, and setting work
//! aside (abandoned or released for another host) or parking it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::ops::{self, db, from_nanos, millis, nanos, real_millis};
use super::{Sqlite, partitions};
use crate::store::{Fetched, OrchestrationWorkItem, Owned, StoreError};

/// See [`crate::store::Store::fetch_orchestration`].
pub(super) async fn fetch(
    store: &Sqlite,
    now: DateTime<Utc>,
    lease: Duration,
    owned: &Owned,
) -> Result<Fetched<OrchestrationWorkItem>, StoreError> {
    let now = nanos(now);
    let owned = owned.clone();
    store
        .write(move |conn, hub| {
            let real_now = real_millis();
            // The instance whose oldest visible message is oldest: the first immediate message
            // (walking the ready index in order) or the first due timer, whichever came first;
            // of the partitions owned (with one host owning the file, that is all of them).
            let mut candidates = Vec::with_capacity(2);
            for sql in [
                "SELECT m.seq, m.instance_id FROM messages m INDEXED BY messages_by_visible \
             JOIN instances i ON i.hub = m.hub AND i.instance_id = m.instance_id \
             WHERE m.hub = ?1 AND m.visible_at IS NULL \
             AND (m.not_before IS NULL OR m.not_before <= ?3) \
             AND (i.lock_token IS NULL OR i.lock_expires <= ?3) \
             ORDER BY m.seq",
                "SELECT m.seq, m.instance_id FROM messages m INDEXED BY messages_by_visible \
             JOIN instances i ON i.hub = m.hub AND i.instance_id = m.instance_id \
             WHERE m.hub = ?1 AND m.visible_at <= ?2 \
             AND (m.not_before IS NULL OR m.not_before <= ?3) \
             AND (i.lock_token IS NULL OR i.lock_expires <= ?3) \
             ORDER BY m.seq",
            ] {
                let mut stmt = conn.prepare_cached(sql).map_err(db("looking for work"))?;
                let mut rows = stmt
                    .query(params![hub, now, real_now])
                    .map_err(db("looking for work"))?;
                while let Some(row) = rows.next().map_err(db("looking for work"))? {
                    let seq: i64 = row.get(0).map_err(db("looking for work"))?;
                    let id: String = row.get(1).map_err(db("looking for work"))?;
                    if let Some(fence) = owned.fence(&id) {
                        candidates.push((seq, id, fence));
                        break;
                    }
                }
            }
            let candidate = candidates.into_iter().min_by_key(|(seq, _, _)| *seq);
            let Some((_, id, fence)) = candidate else {
                let next: Option<i64> = conn
                    .prepare_cached(
                        "SELECT MIN(visible_at) FROM messages WHERE hub = ?1 AND visible_at > ?2",
                    )
                    .map_err(db("looking for timers"))?
                    .query_row(params![hub, now], |r| r.get(0))
                    .map_err(db("looking for timers"))?;
                return Ok(Fetched::Empty {
                    next_visible: next.map(from_nanos),
                });
            };
            ops::lease_instance(conn, hub, &id, now, real_now, lease)?
                .map(|item| Fetched::Item(OrchestrationWorkItem { fence, ..item }))
                .ok_or_else(|| StoreError::Backend(format!("instance `{id}` vanished")))
        })
        .await
}

/// Makes `item`'s messages wait `retry_after` and releases its hold, changing their delivery
/// count by `counted` (an abandon counts the delivery a read did not; a release takes back
/// the one a leased fetch counted).
pub(super) async fn set_aside(
    store: &Sqlite,
    item: &OrchestrationWorkItem,
    retry_after: Duration,
    counted: i64,
) -> Result<(), StoreError> {
    let id = item.instance_id.clone();
    let token = item.lock.0.clone();
    let seqs: Vec<i64> = item.messages.iter().map(|m| m.seq as i64).collect();
    let fence = item.fence;
    store
        .write_item(item, move |conn, hub| {
            partitions::check_hold(conn, hub, &id, &token, fence.as_ref())?;
            let not_before = real_millis() + millis(retry_after);
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE messages SET not_before = ?3, \
                     dequeue_count = max(dequeue_count + ?4, 0) WHERE hub = ?1 AND seq = ?2",
                )
                .map_err(db("setting messages aside"))?;
            for seq in &seqs {
                stmt.execute(params![hub, seq, not_before, counted])
                    .map_err(db("setting messages aside"))?;
            }
            ops::unlock(conn, hub, &id)
        })
        .await
}

/// See [`crate::store::Store::park_orchestration`].
pub(super) async fn park(
    store: &Sqlite,
    item: &OrchestrationWorkItem,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = item.instance_id.clone();
    let token = item.lock.0.clone();
    let error = error.to_string();
    let messages: Vec<(i64, String)> = item
        .messages
        .iter()
        .map(|m| (m.seq as i64, format!("{:?}", m.message.event)))
        .collect();
    let fence = item.fence;
    store
        .write_item(item, move |conn, hub| {
            partitions::check_hold(conn, hub, &id, &token, fence.as_ref())?;
            for (seq, text) in &messages {
                conn.prepare_cached("DELETE FROM messages WHERE hub = ?1 AND seq = ?2")
                    .map_err(db("parking messages"))?
                    .execute(params![hub, seq])
                    .map_err(db("parking messages"))?;
                ops::park(conn, hub, &id, text, &error, now)?;
            }
            ops::unlock(conn, hub, &id)
        })
        .await
}

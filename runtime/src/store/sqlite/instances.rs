//! Instances on SQLite: status, queries, purges and entity removal.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params, params_from_iter};

use super::Sqlite;
use super::ops::{self, db, nanos};
use crate::model::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};
use crate::store::StoreError;

pub(super) async fn instance(
    store: &Sqlite,
    instance_id: &str,
) -> Result<Option<InstanceStatus>, StoreError> {
    let id = instance_id.to_string();
    store
        .read(move |conn, hub| Ok(ops::instance(conn, hub, &id)?.map(|(s, _, _)| s)))
        .await
}

pub(super) async fn query(store: &Sqlite, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
    let query = query.clone();
    store
        .read(move |conn, hub| query_page(conn, hub, &query, false))
        .await
}

/// One page newest first (the same index, scanned backwards).
pub(super) async fn query_newest_first(
    store: &Sqlite,
    query: &InstanceQuery,
) -> Result<QueryPage, StoreError> {
    let query = query.clone();
    store
        .read(move |conn, hub| query_page(conn, hub, &query, true))
        .await
}

/// How many orchestration instances are in each status.
pub(super) async fn count_by_status(
    store: &Sqlite,
) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
    store
        .read(move |conn, hub| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT runtime_status, COUNT(*) FROM instances \
                     WHERE hub = ?1 AND substr(instance_id, 1, 1) <> '@' \
                     GROUP BY runtime_status",
                )
                .map_err(db("counting instances"))?;
            let rows = stmt
                .query_map(params![hub], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(db("counting instances"))?;
            let mut counts = Vec::new();
            for row in rows {
                let (status, n) = row.map_err(db("counting instances"))?;
                if let Ok(status) = status.parse::<RuntimeStatus>() {
                    counts.push((status, n.max(0) as u64));
                }
            }
            counts.sort_by_key(|(s, _)| RuntimeStatus::ALL.iter().position(|a| a == s));
            Ok(counts)
        })
        .await
}

pub(super) async fn purge(store: &Sqlite, instance_id: &str) -> Result<bool, StoreError> {
    let id = instance_id.to_string();
    store
        .write(move |conn, hub| purge_one(conn, hub, &id))
        .await
}

pub(super) async fn purge_where(store: &Sqlite, filter: &PurgeFilter) -> Result<u64, StoreError> {
    let filter = filter.clone();
    store
        .write(move |conn, hub| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM instances WHERE hub = ?1 AND lock_token IS NULL",
                    ops::STATUS_COLUMNS
                ))
                .map_err(db("selecting instances to purge"))?;
            let rows = stmt
                .query_map(params![hub], ops::status_from_row)
                .map_err(db("selecting instances to purge"))?;
            let mut ids = Vec::new();
            for row in rows {
                let status = row.map_err(db("selecting instances to purge"))??;
                if filter.matches(&status) {
                    ids.push(status.instance_id);
                }
            }
            drop(stmt);
            let mut purged = 0;
            for id in ids {
                if purge_one(conn, hub, &id)? {
                    purged += 1;
                }
            }
            Ok(purged)
        })
        .await
}

pub(super) async fn remove_entity(
    store: &Sqlite,
    instance_id: &str,
    if_last_updated: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let id = instance_id.to_string();
    store
        .write(move |conn, hub| {
            if !crate::model::EntityId::is_entity_instance(&id) {
                return Ok(false);
            }
            let Some((status, lock, _)) = ops::instance(conn, hub, &id)? else {
                return Ok(false);
            };
            let pending = conn
                .prepare_cached("SELECT 1 FROM messages WHERE hub = ?1 AND instance_id = ?2")
                .map_err(db("checking an entity"))?
                .exists(params![hub, id])
                .map_err(db("checking an entity"))?;
            if lock.is_some() || pending || status.last_updated_at != if_last_updated {
                return Ok(false);
            }
            ops::delete_instance(conn, hub, &id)?;
            Ok(true)
        })
        .await
}

pub(super) fn purge_one(conn: &Connection, hub: &str, id: &str) -> Result<bool, StoreError> {
    match ops::instance(conn, hub, id)? {
        Some((status, None, _)) if status.runtime_status.is_terminal() => {
            ops::delete_instance(conn, hub, id)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

pub(super) fn query_page(
    conn: &Connection,
    hub: &str,
    q: &InstanceQuery,
    newest_first: bool,
) -> Result<QueryPage, StoreError> {
    let after = crate::store::paging::start_after(q)?;
    let mut sql = format!(
        "SELECT {} FROM instances WHERE hub = ?",
        ops::STATUS_COLUMNS
    );
    let mut args: Vec<rusqlite::types::Value> = vec![hub.to_string().into()];
    if !q.runtime_status.is_empty() {
        let marks = vec!["?"; q.runtime_status.len()].join(", ");
        sql.push_str(&format!(" AND runtime_status IN ({marks})"));
        args.extend(
            q.runtime_status
                .iter()
                .map(|s| s.as_str().to_string().into()),
        );
    }
    if let Some(from) = q.created_from {
        sql.push_str(" AND created_at >= ?");
        args.push(nanos(from).into());
    }
    if let Some(to) = q.created_to {
        sql.push_str(" AND created_at <= ?");
        args.push(nanos(to).into());
    }
    if let Some(version) = q.version.as_deref() {
        sql.push_str(" AND version = ?");
        args.push(version.to_string().into());
    }
    if let Some(prefix) = q.instance_id_prefix.as_deref() {
        sql.push_str(" AND substr(instance_id, 1, ?) = ?");
        args.push((prefix.chars().count() as i64).into());
        args.push(prefix.to_string().into());
    }
    if !q
        .instance_id_prefix
        .as_deref()
        .is_some_and(|p| p.starts_with('@'))
    {
        sql.push_str(" AND substr(instance_id, 1, 1) <> '@'");
    }
    if let Some((t, id)) = &after {
        sql.push_str(if newest_first {
            " AND (created_at < ? OR (created_at = ? AND instance_id < ?))"
        } else {
            " AND (created_at > ? OR (created_at = ? AND instance_id > ?))"
        });
        args.push(nanos(*t).into());
        args.push(nanos(*t).into());
        args.push(id.clone().into());
    }
    let size = crate::store::paging::page_size(q);
    let order = if newest_first {
        "created_at DESC, instance_id DESC"
    } else {
        "created_at, instance_id"
    };
    sql.push_str(&format!(" ORDER BY {order} LIMIT {}", size + 1));
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(db("querying instances"))?;
    let rows = stmt
        .query_map(params_from_iter(args), ops::status_from_row)
        .map_err(db("querying instances"))?;
    let mut instances = Vec::new();
    for row in rows {
        instances.push(row.map_err(db("querying instances"))??);
    }
    Ok(crate::store::paging::page(instances, size))
}

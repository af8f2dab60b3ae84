//! Importing an instance on SQLite: its status and history written as exported, nothing
//! queued, in one transaction.

use rusqlite::params;

use super::Sqlite;
use super::ops::{append_history, db, delete_instance, insert_status, instance_exists};
use crate::model::InstanceStatus;
use crate::model::history::HistoryEvent;
use crate::store::StoreError;

pub(super) async fn import(
    store: &Sqlite,
    status: InstanceStatus,
    history: Vec<HistoryEvent>,
    replace: bool,
) -> Result<(), StoreError> {
    store
        .write(move |conn, hub| {
            let id = status.instance_id.as_str();
            if instance_exists(conn, hub, id)? {
                if !replace {
                    return Err(StoreError::InstanceAlreadyExists(id.to_string()));
                }
                delete_instance(conn, hub, id)?;
            }
            insert_status(conn, hub, &status)?;
            conn.prepare_cached(
                "UPDATE instances SET history_len = ?3 WHERE hub = ?1 AND instance_id = ?2",
            )
            .map_err(db("importing an instance"))?
            .execute(params![hub, id, history.len() as i64])
            .map_err(db("importing an instance"))?;
            append_history(conn, hub, id, 0, &history)
        })
        .await
}

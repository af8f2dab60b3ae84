//! Importing an instance on SQLite: its status and history written as exported, nothing
//! queued, in one transaction.

use rusqlite::params;

use super::Sqlite;
use super::ops::{
    append_history, db, delete_instance, history_json, insert_status, instance_exists,
};
use crate::model::InstanceStatus;
use crate::model::history::HistoryEvent;
use crate::store::StoreError;

pub(super) async fn import(
    store: &Sqlite,
    status: InstanceStatus,
    history: Vec<HistoryEvent>,
    replace: bool,
) -> Result<(), StoreError> {
    let len = history.len() as i64;
    // Serialized here, not on the writer's thread.
    let events = (!history.is_empty()).then(|| history_json(&history));
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
            let last = match &events {
                Some(events) => append_history(conn, hub, id, true, events)?,
                None => None,
            };
            conn.prepare_cached(
                "UPDATE instances SET history_len = ?3, history_last = ?4 \
                 WHERE hub = ?1 AND instance_id = ?2",
            )
            .map_err(db("importing an instance"))?
            .execute(params![hub, id, len, last])
            .map_err(db("importing an instance"))?;
            Ok(())
        })
        .await
}

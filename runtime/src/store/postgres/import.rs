//! Importing an instance on PostgreSQL: its status and history written as exported, nothing
//! queued, in one transaction.

use deadpool_postgres::Client;

use super::Postgres;
use super::db::{Fail, events_json, execute, failure_json, nanos};
use crate::model::InstanceStatus;
use crate::model::history::HistoryEvent;
use crate::store::StoreError;

const INSERT: &str = "
INSERT INTO durable_instances (hub, instance_id, name, execution_id, runtime_status, input,
    output, custom_status, failure, created_at_ns, last_updated_at_ns, parent_instance_id,
    history_len, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::json, $10, $11, $12, $13, $14)
ON CONFLICT (hub, instance_id) DO NOTHING";

/// The imported history, one row (as one turn).
const INSERT_HISTORY: &str = "
INSERT INTO durable_history (hub, instance_id, seq, event) VALUES ($1, $2, 0, $3::text::json)";

pub(super) async fn import(
    store: &Postgres,
    client: &mut Client,
    status: InstanceStatus,
    history: Vec<HistoryEvent>,
    replace: bool,
) -> Result<(), Fail> {
    let hub = store.hub.as_str();
    let id = status.instance_id.as_str();
    let tx = client.transaction().await?;
    if replace {
        for table in [
            "durable_activities",
            "durable_parked",
            "durable_instances",
            "durable_history",
            "durable_messages",
        ] {
            execute(
                &tx,
                &format!("DELETE FROM {table} WHERE hub = $1 AND instance_id = $2"),
                &[&hub, &id],
            )
            .await?;
        }
    }
    let history_len = i32::try_from(history.len())
        .map_err(|_| Fail::Described("the history is too long to import".to_string()))?;
    let inserted = execute(
        &tx,
        INSERT,
        &[
            &hub,
            &id,
            &status.name,
            &status.execution_id,
            &status.runtime_status.as_str(),
            &status.input,
            &status.output,
            &status.custom_status,
            &failure_json(status.failure.as_ref())?,
            &nanos(status.created_at),
            &nanos(status.last_updated_at),
            &status.parent_instance_id,
            &history_len,
            &status.version,
        ],
    )
    .await?;
    if inserted == 0 {
        return Err(StoreError::InstanceAlreadyExists(id.to_string()).into());
    }
    if !history.is_empty() {
        execute(&tx, INSERT_HISTORY, &[&hub, &id, &events_json(&history)?]).await?;
    }
    tx.commit().await?;
    Ok(())
}

//! The backend that works straight on a store (SQLite file or PostgreSQL), with no host.

use std::path::Path;
use std::sync::Arc;

use durable::history::HistoryFile;
use durable::http::api::{EntityListItem, Show, Status, json_value};
use durable::store::{Postgres, Sqlite, Store, StoreError};
use durable::{Client, EntityId, EntityQuery, InstanceQuery};
use serde_json::Value;

use super::{Backend, Control, InstanceFilter, Page, PageRequest, no_entity};
use crate::error::{CliError, Exit};

/// A store opened by the CLI.
pub struct StoreBackend {
    client: Client,
    store: Arc<dyn Store>,
}

impl StoreBackend {
    /// Opens the store `spec` names — a `postgres://` (or `postgresql://`) URL, or the path of
    /// an existing SQLite file — on task hub `task_hub` (`default` when unset).
    pub async fn open(spec: &str, task_hub: Option<&str>) -> Result<Self, CliError> {
        let unreachable = |what: String| CliError::new(Exit::Unreachable, what);
        let store: Arc<dyn Store> = if is_postgres(spec) {
            let pg = Postgres::connect(spec)
                .await
                .map_err(|e| unreachable(format!("cannot open the PostgreSQL store: {e}")))?;
            Arc::new(pg)
        } else {
            let path = Path::new(spec);
            // Opening a missing file would create an empty store: a typo would then list
            // nothing instead of saying what is wrong.
            if !path.is_file() {
                return Err(unreachable(format!(
                    "no store at `{spec}`: give the path of an existing SQLite store (a host \
                     creates one, e.g. `.durable-data/durable.db`) or a postgres:// URL"
                )));
            }
            let sqlite = Sqlite::open(path)
                .map_err(|e| unreachable(format!("cannot open the store `{spec}`: {e}")))?;
            Arc::new(sqlite)
        };
        let store = match task_hub {
            Some(hub) => store.with_task_hub(hub),
            None => store,
        };
        Ok(StoreBackend {
            client: Client::new(store.clone()),
            store,
        })
    }
}

/// Whether a store spec is a PostgreSQL URL rather than a file path.
pub fn is_postgres(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// Entity ids (`@name@key`) are not instances to the commands, as on the HTTP API.
fn refuse_entity_id(id: &str) -> Result<(), CliError> {
    if EntityId::is_entity_instance(id) {
        return Err(CliError::failed(
            "ids starting with `@` are entities; use `durable entity get NAME KEY` or \
             `durable entity signal NAME KEY delete`",
        ));
    }
    Ok(())
}

impl Backend for StoreBackend {
    async fn start(
        &self,
        name: &str,
        id: Option<&str>,
        version: Option<&str>,
        input: &Value,
    ) -> Result<String, CliError> {
        let mut request = self.client.start_by_name(name, input);
        if let Some(id) = id {
            request = request.instance_id(id);
        }
        if let Some(version) = version {
            request = request.version(version);
        }
        Ok(request.await?.to_string())
    }

    async fn status(&self, id: &str, history: bool) -> Result<Status, CliError> {
        let status = if history {
            self.client.status_with_history(id).await?
        } else {
            self.client.status(id).await?
        };
        let status = status
            .filter(|s| !EntityId::is_entity_instance(&s.instance_id))
            .ok_or_else(|| CliError::no_instance(id))?;
        let show = Show {
            input: true,
            history,
            history_output: history,
        };
        Ok(Status::from_instance(&status, show))
    }

    async fn query(
        &self,
        filter: &InstanceFilter,
        page: &PageRequest,
    ) -> Result<Page<Status>, CliError> {
        let query = InstanceQuery {
            runtime_status: filter.statuses.clone(),
            created_from: filter.from,
            created_to: filter.to,
            instance_id_prefix: filter.prefix.clone(),
            version: filter.version.clone(),
            page_size: page.size,
            continuation_token: page.continuation.clone(),
        };
        let result = self.client.query(&query).await?;
        Ok(Page {
            items: result
                .instances
                .iter()
                .map(|s| Status::from_instance(s, Show::default()))
                .collect(),
            continuation: result.continuation_token,
        })
    }

    async fn raise_event(&self, id: &str, event: &str, data: &Value) -> Result<(), CliError> {
        refuse_entity_id(id)?;
        Ok(self.client.raise_event(id, event, data).await?)
    }

    async fn control(&self, id: &str, control: Control, reason: &str) -> Result<(), CliError> {
        refuse_entity_id(id)?;
        let client = &self.client;
        let result = match control {
            Control::Terminate => client.terminate(id, reason).await,
            Control::Suspend => client.suspend(id, reason).await,
            Control::Resume => client.resume(id, reason).await,
            Control::Rewind => client.rewind(id, reason).await,
        };
        Ok(result?)
    }

    async fn restart(&self, id: &str, new_id: bool) -> Result<String, CliError> {
        refuse_entity_id(id)?;
        Ok(self.client.restart(id, new_id).await?.to_string())
    }

    async fn purge(&self, id: &str) -> Result<(), CliError> {
        refuse_entity_id(id)?;
        match self.client.purge(id).await? {
            true => Ok(()),
            false => Err(CliError::no_instance(id)),
        }
    }

    async fn export(&self, id: &str) -> Result<HistoryFile, CliError> {
        refuse_entity_id(id)?;
        let mut status = self
            .client
            .status_with_history(id)
            .await?
            .ok_or_else(|| CliError::no_instance(id))?;
        let history = status.history.take().unwrap_or_default();
        Ok(HistoryFile::new(&status, history))
    }

    async fn import(&self, file: HistoryFile, replace: bool) -> Result<(), CliError> {
        let id = file.instance.instance_id.clone();
        refuse_entity_id(&id)?;
        let status = file.status();
        self.store
            .import_instance(status, file.history, replace)
            .await
            .map_err(|e| match e {
                StoreError::InstanceAlreadyExists(_) => CliError::failed(format!(
                    "instance `{id}` already exists in this store; add --replace to replace it \
                     (its history and queued work are dropped)"
                )),
                other => CliError::failed(format!("importing `{id}` failed: {other}")),
            })
    }

    async fn entity_state(&self, name: &str, key: &str) -> Result<Value, CliError> {
        match self
            .client
            .entity_metadata(&EntityId::new(name, key), true)
            .await?
        {
            Some(meta) if meta.has_state => Ok(json_value(meta.state.as_deref())),
            _ => Err(no_entity(name, key)),
        }
    }

    async fn signal_entity(
        &self,
        name: &str,
        key: &str,
        op: &str,
        input: &Value,
    ) -> Result<(), CliError> {
        let id = EntityId::new(name, key);
        Ok(self.client.signal_entity_by_id(&id, op, input).await?)
    }

    async fn list_entities(
        &self,
        name: Option<&str>,
        state: bool,
        page: &PageRequest,
    ) -> Result<Page<EntityListItem>, CliError> {
        let query = EntityQuery {
            name_prefix: name.map(str::to_string),
            include_state: state,
            include_stateless: false,
            page_size: page.size,
            continuation_token: page.continuation.clone(),
        };
        let result = self.client.list_entities(&query).await?;
        Ok(Page {
            items: result
                .entities
                .iter()
                // The name is a prefix to the store; the API lists exactly that name.
                .filter(|m| name.is_none_or(|n| m.id.name().eq_ignore_ascii_case(n)))
                .map(|m| EntityListItem::from_metadata(m, state))
                .collect(),
            continuation: result.continuation_token,
        })
    }
}

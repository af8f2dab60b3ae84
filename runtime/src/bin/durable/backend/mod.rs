//! Where the commands act: a host's HTTP management API, or a store opened directly. Both give
//! back the HTTP API's JSON types (`durable::http::api`), so printing is shared and the two
//! behave the same from the user's side.

mod http;
mod store;

use chrono::{DateTime, Utc};
use durable::RuntimeStatus;
use durable::history::HistoryFile;
use durable::http::api::{EntityListItem, Status};
use serde_json::Value;

pub use self::http::HttpBackend;
pub use self::store::StoreBackend;
use crate::error::CliError;

/// Which instances a listing returns.
#[derive(Clone, Debug, Default)]
pub struct InstanceFilter {
    /// Only these statuses (all when empty).
    pub statuses: Vec<RuntimeStatus>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created at or before.
    pub to: Option<DateTime<Utc>>,
    /// Ids starting with this.
    pub prefix: Option<String>,
    /// Only instances started under this version.
    pub version: Option<String>,
}

/// Which page of a listing to fetch.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// At most this many (the host's default, 100, when unset).
    pub size: Option<usize>,
    /// Where the previous page ended.
    pub continuation: Option<String>,
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// The token for the next page; `None` on the last.
    pub continuation: Option<String>,
}

/// What the client-side controls of an instance do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// End a pending, running or suspended instance for good.
    Terminate,
    /// Stop processing events until resumed.
    Suspend,
    /// Carry on after a suspend.
    Resume,
    /// Run a failed instance again from where it failed.
    Rewind,
}

impl Control {
    /// The verb, as in the API's path (`instances/{id}/terminate`).
    pub fn verb(self) -> &'static str {
        match self {
            Control::Terminate => "terminate",
            Control::Suspend => "suspend",
            Control::Resume => "resume",
            Control::Rewind => "rewind",
        }
    }
}

/// The operations every command is built from.
pub trait Backend {
    /// Starts orchestrator `name` (under `id`, or a generated id; under `version`, or the
    /// default version); returns the id.
    async fn start(
        &self,
        name: &str,
        id: Option<&str>,
        version: Option<&str>,
        input: &Value,
    ) -> Result<String, CliError>;

    /// An instance's status with its input, and with its history (results included) when
    /// `history` is set. Not found: [`Exit::NotFound`](crate::error::Exit::NotFound).
    async fn status(&self, id: &str, history: bool) -> Result<Status, CliError>;

    /// One page of the instances matching `filter` (entities are never listed).
    async fn query(
        &self,
        filter: &InstanceFilter,
        page: &PageRequest,
    ) -> Result<Page<Status>, CliError>;

    /// Raises event `event` with `data` on a running instance.
    async fn raise_event(&self, id: &str, event: &str, data: &Value) -> Result<(), CliError>;

    /// Terminates, suspends, resumes or rewinds an instance.
    async fn control(&self, id: &str, control: Control, reason: &str) -> Result<(), CliError>;

    /// Starts an instance's orchestrator again with its input, under the same id or a new one;
    /// returns the id.
    async fn restart(&self, id: &str, new_id: bool) -> Result<String, CliError>;

    /// Removes every trace of a finished instance.
    async fn purge(&self, id: &str) -> Result<(), CliError>;

    /// An instance's status and whole history, in the exported format. Not found:
    /// [`Exit::NotFound`](crate::error::Exit::NotFound).
    async fn export(&self, id: &str) -> Result<HistoryFile, CliError>;

    /// Writes an exported instance, with nothing queued; an existing instance of that id is
    /// refused unless `replace` is set.
    async fn import(&self, file: HistoryFile, replace: bool) -> Result<(), CliError>;

    /// An entity's state. Not found (no state): [`Exit::NotFound`](crate::error::Exit::NotFound).
    async fn entity_state(&self, name: &str, key: &str) -> Result<Value, CliError>;

    /// Signals operation `op` with `input` to an entity.
    async fn signal_entity(
        &self,
        name: &str,
        key: &str,
        op: &str,
        input: &Value,
    ) -> Result<(), CliError>;

    /// One page of the entities (named `name`, or all), with their state when `state` is set.
    async fn list_entities(
        &self,
        name: Option<&str>,
        state: bool,
        page: &PageRequest,
    ) -> Result<Page<EntityListItem>, CliError>;
}

/// An entity's id as the runtime writes it: `@name@key`, the name in lower case.
pub fn entity_id(name: &str, key: &str) -> String {
    durable::EntityId::new(name, key).to_string()
}

/// The message for an entity that has no state (the host's wording).
pub fn no_entity(name: &str, key: &str) -> CliError {
    CliError::not_found(format!(
        "entity `{}` does not exist (it has no state)",
        entity_id(name, key)
    ))
}

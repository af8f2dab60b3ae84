//! What the store keeps for an entity, and the client's views of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::entity::EntityId;
use super::error::{Error, ErrorKind};
use super::history::{EntityCaller, HistoryEvent};
use super::status::InstanceStatus;

/// The durable record of one entity, kept as JSON in its instance's `output`: the state, the
/// critical section holding its lock, operations deferred while it is locked, unlocks that
/// arrived before their lock request, and how many times in a row the oldest deferred lock
/// request was passed over for a section already holding other locks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntityRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<EntityCaller>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<HistoryEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<EntityCaller>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passed_over: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl EntityRecord {
    /// Reads the record from an entity instance's status (an empty record when it has none).
    pub fn from_status(status: &InstanceStatus) -> Result<Self, Error> {
        match status.output.as_deref() {
            None => Ok(EntityRecord::default()),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!(
                        "the stored record of entity `{}` is corrupt: {e}",
                        status.instance_id
                    ),
                )
            }),
        }
    }

    /// The record as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an entity record always serializes")
    }

    /// Whether nothing is left of the entity: no state, no lock, nothing deferred.
    pub fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.locked_by.is_none()
            && self.queue.is_empty()
            && self.released.is_empty()
    }
}

/// What a client sees of an entity.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityMetadata {
    /// The entity's id.
    pub id: EntityId,
    /// When it last processed operations.
    pub last_modified_at: DateTime<Utc>,
    /// Its state as JSON, when asked for and it has one.
    pub state: Option<String>,
    /// Whether it has state (exists).
    pub has_state: bool,
    /// The orchestration holding its lock, if any.
    pub locked_by: Option<String>,
    /// How many operations wait for its lock to be released.
    pub backlog: usize,
}

impl EntityMetadata {
    pub(crate) fn from_status(
        status: &InstanceStatus,
        include_state: bool,
    ) -> Result<Option<Self>, Error> {
        let Ok(id) = status.instance_id.parse::<EntityId>() else {
            return Ok(None);
        };
        let record = EntityRecord::from_status(status)?;
        Ok(Some(EntityMetadata {
            id,
            last_modified_at: status.last_updated_at,
            has_state: record.state.is_some(),
            state: if include_state { record.state } else { None },
            locked_by: record.locked_by.map(|c| c.instance_id),
            backlog: record.queue.len(),
        }))
    }
}

/// Which entities a listing returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntityQuery {
    /// Entities whose name starts with this (case-insensitive); all when unset.
    pub name_prefix: Option<String>,
    /// Include each entity's state.
    pub include_state: bool,
    /// Include entities that have no state (deleted, or only ever read).
    pub include_stateless: bool,
    /// At most this many per page (100 when unset). A page may hold fewer when stateless
    /// entities are filtered out.
    pub page_size: Option<usize>,
    /// Where the previous page ended.
    pub continuation_token: Option<String>,
}

/// One page of an entity listing.
#[derive(Clone, Debug, Default)]
pub struct EntityQueryPage {
    /// The entities on this page.
    pub entities: Vec<EntityMetadata>,
    /// Pass back as `continuation_token` for the next page; `None` on the last.
    pub continuation_token: Option<String>,
}

/// What [`Client::clean_entity_storage`](crate::Client::clean_entity_storage) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanEntityStorageResult {
    /// Entities with no state, no lock and nothing pending that were removed.
    pub empty_entities_removed: u64,
    /// Locks released because the orchestration holding them no longer runs.
    pub orphaned_locks_released: u64,
}

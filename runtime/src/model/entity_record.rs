//! What the store keeps for an entity, and the client's views of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    pub queue: Vec<Deferred>,
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

    /// The record as JSON. A message deferred by the lock is written out the first time only:
    /// after that its JSON is copied (a busy entity's queue is most of its record, and its
    /// record is written at every batch).
    pub fn write_json(&mut self) -> String {
        for deferred in &mut self.queue {
            deferred.written();
        }
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

/// A message an entity's lock deferred, kept with its JSON once that is known (read with the
/// record, or written by [`EntityRecord::write_json`]). The event is read-only: its JSON
/// stays what it is.
#[derive(Clone, Debug)]
pub(crate) struct Deferred {
    event: HistoryEvent,
    json: Option<Box<RawValue>>,
}

impl Deferred {
    pub fn new(event: HistoryEvent) -> Self {
        Deferred { event, json: None }
    }

    pub fn event(&self) -> &HistoryEvent {
        &self.event
    }

    pub fn into_event(self) -> HistoryEvent {
        self.event
    }

    /// Writes its JSON, unless it has it.
    fn written(&mut self) {
        if self.json.is_none() {
            self.json = Some(
                serde_json::value::to_raw_value(&self.event).expect("a history event serializes"),
            );
        }
    }
}

impl PartialEq for Deferred {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

impl Serialize for Deferred {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(serializer),
            None => self.event.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Deferred {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        let event = serde_json::from_str(json.get()).map_err(serde::de::Error::custom)?;
        Ok(Deferred {
            event,
            json: Some(json),
        })
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::history::EventKind;

    fn signal(operation: &str, at: i64) -> HistoryEvent {
        HistoryEvent::new(
            Utc.timestamp_opt(at, 0).unwrap(),
            EventKind::EntityOperationSignaled {
                entity_id: "@account@alice".into(),
                operation: operation.into(),
                input: "30".into(),
            },
        )
    }

    fn lock_request(at: i64) -> HistoryEvent {
        HistoryEvent::new(
            Utc.timestamp_opt(at, 0).unwrap(),
            EventKind::EntityLockRequested {
                lock_set: vec!["@account@alice".into(), "@account@bob".into()],
                position: 0,
                caller: Some(EntityCaller {
                    instance_id: "transfer-1".into(),
                    execution_id: "e1".into(),
                    task_scheduled_id: 0,
                }),
            },
        )
    }

    #[test]
    fn a_deferred_message_is_stored_as_its_event_is() {
        let event = lock_request(1);
        let mut deferred = Deferred::new(event.clone());
        let expected = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::to_string(&deferred).unwrap(), expected);
        deferred.written();
        assert_eq!(serde_json::to_string(&deferred).unwrap(), expected);
    }

    #[test]
    fn a_record_read_back_and_written_again_is_unchanged() {
        let mut record = EntityRecord {
            state: Some("{\"balance\":70}".into()),
            locked_by: None,
            queue: vec![
                Deferred::new(lock_request(1)),
                Deferred::new(signal("deposit", 2)),
            ],
            released: Vec::new(),
            passed_over: 2,
        };
        let json = record.write_json();
        let mut read: EntityRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(read, record);
        assert_eq!(read.queue[1].event(), &signal("deposit", 2));
        // What was read is written back as it was, with a message deferred since.
        read.queue.push(Deferred::new(signal("withdraw", 3)));
        record.queue.push(Deferred::new(signal("withdraw", 3)));
        let again = read.write_json();
        let fresh = EntityRecord {
            queue: record
                .queue
                .iter()
                .map(|d| Deferred::new(d.event().clone()))
                .collect(),
            ..record.clone()
        };
        assert_eq!(again, serde_json::to_string(&fresh).unwrap());
        assert_eq!(
            serde_json::from_str::<EntityRecord>(&again).unwrap(),
            record
        );
    }
}

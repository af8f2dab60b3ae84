//! The exported history format: one instance's status and its whole history as one JSON
//! document, versioned, for `durable history export` / `import` and for replay checks in tests.
//!
//! ```json
//! {
//!   "format": "durable-history",
//!   "version": 1,
//!   "instance": { "instanceId": "order-17", "name": "checkout", "runtimeStatus": "Completed", ... },
//!   "history": [ { "eventId": -1, "timestamp": "...", "eventType": "ExecutionStarted", ... }, ... ]
//! }
//! ```
//!
//! `history` holds the events exactly as the store keeps them ([`HistoryEvent`]'s JSON form:
//! step ids, turn markers and every input and result), so a replay of it is the replay the
//! runtime would do. A reader refuses another `format`, a `version` it does not know, and a
//! document whose history does not start an execution.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventKind, HistoryEvent};
use crate::model::{FailureDetails, InstanceStatus, RuntimeStatus};

/// The value of the `format` field.
pub const FORMAT: &str = "durable-history";
/// The version this crate writes, and the newest it reads.
pub const VERSION: u32 = 1;

/// One exported instance: its status and its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version ([`VERSION`]).
    pub version: u32,
    /// The instance's status when it was exported.
    pub instance: ExportedInstance,
    /// The history of its current execution, in order.
    pub history: Vec<HistoryEvent>,
}

/// An instance's status as the exported format records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedInstance {
    /// The instance id.
    pub instance_id: String,
    /// The orchestrator's name.
    pub name: String,
    /// The current execution's id.
    pub execution_id: String,
    /// Where the instance was in its lifecycle.
    pub runtime_status: RuntimeStatus,
    /// The input, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The output (Completed) or termination reason (Terminated), as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The custom status, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<String>,
    /// What went wrong (Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetails>,
    /// When the instance was created.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub last_updated_at: DateTime<Utc>,
    /// The parent's id, for a sub-orchestration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_instance_id: Option<String>,
    /// The orchestration version the instance started under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Why a document is not an exported history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryFileError {
    /// Not JSON, or JSON cut short.
    #[error("not a JSON document ({0}); an exported history is one JSON object")]
    NotJson(serde_json::Error),
    /// JSON, but not of this format.
    #[error(
        "not an exported history: `format` is {found}, expected \"{FORMAT}\" (write one with \
         `durable history export`)"
    )]
    WrongFormat {
        /// What the document's `format` was (`missing` when absent).
        found: String,
    },
    /// A version this crate cannot read.
    #[error(
        "exported history version {found} is not supported; this version of durable reads \
         version {VERSION}"
    )]
    UnsupportedVersion {
        /// The document's version.
        found: String,
    },
    /// The right format and version, but a field is missing or of the wrong type.
    #[error("a malformed exported history: {0}")]
    Malformed(serde_json::Error),
    /// The history does not record an execution's start.
    #[error(
        "the exported history of `{0}` has no ExecutionStarted event, so it cannot be replayed"
    )]
    NotStarted(String),
}

impl HistoryFile {
    /// An exported history of `status` with `history` (the status's own `history` field is
    /// not used).
    pub fn new(status: &InstanceStatus, history: Vec<HistoryEvent>) -> Self {
        HistoryFile {
            format: FORMAT.to_string(),
            version: VERSION,
            instance: ExportedInstance {
                instance_id: status.instance_id.clone(),
                name: status.name.clone(),
                execution_id: status.execution_id.clone(),
                runtime_status: status.runtime_status,
                input: status.input.clone(),
                output: status.output.clone(),
                custom_status: status.custom_status.clone(),
                failure: status.failure.clone(),
                created_at: status.created_at,
                last_updated_at: status.last_updated_at,
                parent_instance_id: status.parent_instance_id.clone(),
                version: status.version.clone(),
            },
            history,
        }
    }

    /// Reads a document, checking its format, its version and that its history starts an
    /// execution.
    pub fn from_json(text: &str) -> Result<Self, HistoryFileError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(HistoryFileError::NotJson)?;
        let format = value.get("format");
        if format.and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(HistoryFileError::WrongFormat {
                found: format.map_or("missing".to_string(), |f| f.to_string()),
            });
        }
        let version = value.get("version");
        if version.and_then(|v| v.as_u64()) != Some(u64::from(VERSION)) {
            return Err(HistoryFileError::UnsupportedVersion {
                found: version.map_or("missing".to_string(), |v| v.to_string()),
            });
        }
        let file: HistoryFile =
            serde_json::from_value(value).map_err(HistoryFileError::Malformed)?;
        if !file
            .history
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))
        {
            return Err(HistoryFileError::NotStarted(file.instance.instance_id));
        }
        Ok(file)
    }

    /// The document as pretty-printed JSON (what `durable history export` writes).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("an exported history is always serializable")
    }

    /// The instance's status, with the history attached.
    pub fn status(&self) -> InstanceStatus {
        let i = &self.instance;
        InstanceStatus {
            instance_id: i.instance_id.clone(),
            name: i.name.clone(),
            execution_id: i.execution_id.clone(),
            runtime_status: i.runtime_status,
            input: i.input.clone(),
            output: i.output.clone(),
            custom_status: i.custom_status.clone(),
            failure: i.failure.clone(),
            created_at: i.created_at,
            last_updated_at: i.last_updated_at,
            parent_instance_id: i.parent_instance_id.clone(),
            version: i.version.clone(),
            history: Some(self.history.clone()),
        }
    }
}

impl AsRef<[HistoryEvent]> for HistoryFile {
    fn as_ref(&self) -> &[HistoryEvent] {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HistoryFile {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let status = InstanceStatus {
            instance_id: "order-17".into(),
            name: "checkout".into(),
            execution_id: "e1".into(),
            runtime_status: RuntimeStatus::Running,
            input: Some("17".into()),
            output: None,
            custom_status: None,
            failure: None,
            created_at: at,
            last_updated_at: at,
            parent_instance_id: None,
            version: None,
            history: None,
        };
        let started = HistoryEvent::new(
            at,
            EventKind::ExecutionStarted {
                name: "checkout".into(),
                input: "17".into(),
                execution_id: "e1".into(),
                parent: None,
                version: None,
            },
        );
        HistoryFile::new(&status, vec![started])
    }

    #[test]
    fn a_document_round_trips() {
        let file = sample();
        let text = file.to_json_pretty();
        assert!(text.contains("\"format\": \"durable-history\""), "{text}");
        assert!(text.contains("\"version\": 1"), "{text}");
        assert_eq!(HistoryFile::from_json(&text).unwrap(), file);
        assert_eq!(file.status().runtime_status, RuntimeStatus::Running);
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let text = sample().to_json_pretty();
        let err = |t: &str| HistoryFile::from_json(t).unwrap_err().to_string();
        assert!(err("hello").starts_with("not a JSON document"));
        assert!(err(&text[..text.len() / 2]).starts_with("not a JSON document"));
        assert!(
            err(r#"{"format":"other","version":1}"#)
                .contains("`format` is \"other\", expected \"durable-history\"")
        );
        assert!(err("[]").contains("`format` is missing"));
        assert!(
            err(r#"{"format":"durable-history","version":7}"#)
                .contains("version 7 is not supported; this version of durable reads version 1")
        );
        assert!(
            err(r#"{"format":"durable-history","version":1,"history":[]}"#)
                .starts_with("a malformed exported history: missing field `instance`")
        );
        let unstarted = text.replace("ExecutionStarted", "ExecutionResumed");
        assert!(err(&unstarted).contains("`order-17` has no ExecutionStarted event"));
    }
}

//! The JSON bodies of the HTTP management API, with the field names Durable Functions' built-in
//! API uses. They deserialize too, so tools (the `durable` CLI) can read what a host returns.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::EntityMetadata;
use crate::model::InstanceStatus;
use crate::model::history::{EventKind, HistoryEvent};

/// The body of `202 Accepted` after a start or restart: the instance id and the URLs that
/// manage it (`{eventName}` and `{text}` are placeholders for the caller to fill in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    /// The instance id.
    pub id: String,
    /// GET: the instance's status.
    pub status_query_get_uri: String,
    /// POST: raise an event (replace `{eventName}`).
    pub send_event_post_uri: String,
    /// POST: terminate (replace `{text}` with the reason).
    pub terminate_post_uri: String,
    /// POST: rewind a failed instance (replace `{text}` with the reason).
    pub rewind_post_uri: String,
    /// DELETE: purge the instance's history.
    pub purge_history_delete_uri: String,
    /// POST: restart with the same input.
    pub restart_post_uri: String,
    /// POST: suspend (replace `{text}` with the reason).
    pub suspend_post_uri: String,
    /// POST: resume (replace `{text}` with the reason).
    pub resume_post_uri: String,
}

/// An instance's status, as `GET instances/{id}` and `GET instances` return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The orchestrator's name.
    pub name: String,
    /// The instance id.
    pub instance_id: String,
    /// `Pending`, `Running`, `Completed`, `ContinuedAsNew`, `Failed`, `Terminated` or
    /// `Suspended`.
    pub runtime_status: String,
    /// The input (null unless asked for, in queries).
    #[serde(default)]
    pub input: Value,
    /// The custom status the orchestrator set.
    #[serde(default)]
    pub custom_status: Value,
    /// The output (Completed), the failure message (Failed) or the reason (Terminated).
    #[serde(default)]
    pub output: Value,
    /// When the instance was created (RFC 3339, UTC).
    pub created_time: String,
    /// When its status last changed (RFC 3339, UTC).
    pub last_updated_time: String,
    /// What went wrong, for a failed instance: `errorType`, `message` and `cause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_details: Option<Value>,
    /// The version the instance started under; left out when it has none (Durable Functions'
    /// built-in API has no such field, and its clients ignore fields they do not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The history (with `showHistory=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_events: Option<Vec<Value>>,
    /// The history again, under the name Durable Functions' JavaScript and Python clients read
    /// (`history`; the extension sends only `historyEvents`, so their users never see one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Value>>,
}

/// The body of a purge: how many instances were deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purged {
    /// How many instances were deleted.
    pub instances_deleted: u64,
}

/// An entity's id in listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityIdBody {
    /// The entity's name (lower case).
    pub name: String,
    /// Its key.
    pub key: String,
}

/// One entity in `GET entities[/{name}]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityListItem {
    /// Which entity.
    pub entity_id: EntityIdBody,
    /// When it last processed operations (RFC 3339, UTC).
    pub last_operation_time: String,
    /// Its state (with `fetchState=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
}

/// The body of every error response: what was wrong, in words, and a stable kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable name for the kind of error (`InstanceNotFound`, `BadRequest`, ...).
    pub error: String,
    /// What was wrong and, where it helps, what to send instead.
    pub message: String,
    /// The message again, under the name Durable Functions' own error bodies use (its clients
    /// read it: the Python client fails with a `KeyError` without it).
    #[serde(rename = "Message", default)]
    pub message_compat: String,
    /// The message once more, as Durable Functions' `ExceptionMessage`.
    #[serde(rename = "ExceptionMessage", default)]
    pub exception_message: String,
}

impl ErrorBody {
    /// An error body of this kind and message, with the fields Durable Functions' clients
    /// read filled in.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        ErrorBody {
            error: error.into(),
            message_compat: message.clone(),
            exception_message: message.clone(),
            message,
        }
    }
}

/// Formats a timestamp the way the API does: RFC 3339 in UTC, whole seconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads a time as the API accepts it: RFC 3339 (`2026-01-31T12:00:00Z`), or a date and time
/// without an offset (taken as UTC, with `T` or a space, seconds optional), or a bare date
/// (midnight UTC). `None` when it is none of these.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A stored JSON text as a JSON value (a text that is not JSON is returned as a string).
pub fn json_value(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
    }
}

/// What of an instance a status body shows (`showInput`, `showHistory`, `showHistoryOutput`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Show {
    /// The instance's input, and inputs in the history.
    pub input: bool,
    /// The history (the instance must have been read with its history).
    pub history: bool,
    /// Results in the history.
    pub history_output: bool,
}

impl Status {
    /// The body for an instance's status.
    pub fn from_instance(status: &InstanceStatus, show: Show) -> Self {
        let failure = status
            .failure
            .as_ref()
            .map(|f| serde_json::to_value(f).unwrap_or(Value::Null));
        let output = match (&status.failure, status.runtime_status) {
            (Some(f), crate::model::RuntimeStatus::Failed) => Value::String(f.message.clone()),
            _ => json_value(status.output.as_deref()),
        };
        let history = show.history.then(|| {
            history_events(
                status.history.as_deref().unwrap_or(&[]),
                show.input,
                show.history_output,
            )
        });
        Status {
            name: status.name.clone(),
            instance_id: status.instance_id.clone(),
            runtime_status: status.runtime_status.as_str().to_string(),
            input: if show.input {
                json_value(status.input.as_deref())
            } else {
                Value::Null
            },
            custom_status: json_value(status.custom_status.as_deref()),
            output,
            created_time: timestamp(status.created_at),
            last_updated_time: timestamp(status.last_updated_at),
            failure_details: failure,
            version: status.version.clone(),
            history: history.clone(),
            history_events: history,
        }
    }
}

impl EntityListItem {
    /// The listing entry for an entity (its state only with `with_state`).
    pub fn from_metadata(meta: &EntityMetadata, with_state: bool) -> Self {
        EntityListItem {
            entity_id: EntityIdBody {
                name: meta.id.name().to_string(),
                key: meta.id.key().to_string(),
            },
            last_operation_time: timestamp(meta.last_modified_at),
            state: with_state.then(|| json_value(meta.state.as_deref())),
        }
    }
}

/// The history as the API shows it: one object per event with PascalCase fields; the turn
/// markers are left out and each scheduled step is shown once, where it finished, with the
/// name and the time it was scheduled. Inputs only with `with_input`, results only with
/// `with_output` (`showInput`, `showHistoryOutput`).
pub fn history_events(history: &[HistoryEvent], with_input: bool, with_output: bool) -> Vec<Value> {
    use std::collections::HashMap;

    let mut scheduled: HashMap<i64, (&str, DateTime<Utc>, Option<&str>)> = HashMap::new();
    // Steps whose answer is in the history are shown once, at the answer.
    let finished: std::collections::HashSet<i64> = history
        .iter()
        .filter_map(|e| e.kind.answered_step())
        .collect();
    let mut out = Vec::new();
    for event in history {
        let mut o = Map::new();
        let mut put = |k: &str, v: Value| {
            o.insert(k.to_string(), v);
        };
        put("EventType", Value::String(event.kind.name().to_string()));
        put("Timestamp", Value::String(timestamp(event.timestamp)));
        let output = |text: &str| json_value(Some(text));
        // An answer to an activity or sub-orchestration names what was scheduled, and when.
        if let Some((name, at, child)) = event
            .kind
            .answered_step()
            .and_then(|step| scheduled.get(&step))
        {
            put("FunctionName", (*name).into());
            put("ScheduledTime", timestamp(*at).into());
            if let Some(child) = child {
                put("InstanceId", (*child).into());
            }
        }
        match &event.kind {
            EventKind::OrchestratorStarted | EventKind::OrchestratorCompleted => continue,
            EventKind::ExecutionStarted {
                name,
                input,
                version,
                ..
            } => {
                put("FunctionName", name.as_str().into());
                if let Some(version) = version {
                    put("Version", version.as_str().into());
                }
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::Patched { patch_id } => put("PatchId", patch_id.as_str().into()),
            EventKind::ExecutionCompleted {
                status,
                result,
                failure,
            } => {
                put(
                    "OrchestrationStatus",
                    serde_json::to_value(status).unwrap_or(Value::Null),
                );
                if with_output {
                    put("Result", json_value(result.as_deref()));
                }
                if let Some(f) = failure {
                    put(
                        "FailureDetails",
                        serde_json::to_value(f).unwrap_or_default(),
                    );
                }
            }
            EventKind::ExecutionTerminated { reason }
            | EventKind::ExecutionSuspended { reason }
            | EventKind::ExecutionResumed { reason }
            | EventKind::ExecutionRewound { reason } => {
                put("Reason", json_value(reason.as_deref()));
            }
            EventKind::ContinueAsNew { input } => {
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::TaskScheduled { name, input } => {
                scheduled.insert(event.event_id, (name, event.timestamp, None));
                if finished.contains(&event.event_id) {
                    continue;
                }
                put("Name", name.as_str().into());
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::SubOrchestrationInstanceCreated {
                name,
                instance_id,
                input,
            } => {
                scheduled.insert(
                    event.event_id,
                    (name, event.timestamp, Some(instance_id.as_str())),
                );
                if finished.contains(&event.event_id) {
                    continue;
                }
                put("FunctionName", name.as_str().into());
                put("InstanceId", instance_id.as_str().into());
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::TaskCompleted { result, .. }
            | EventKind::SubOrchestrationInstanceCompleted { result, .. } => {
                if with_output {
                    put("Result", output(result));
                }
            }
            EventKind::TaskFailed { failure, .. }
            | EventKind::SubOrchestrationInstanceFailed { failure, .. } => {
                put("Reason", failure.message.as_str().into());
                put(
                    "FailureDetails",
                    serde_json::to_value(failure).unwrap_or_default(),
                );
            }
            EventKind::TimerCreated { fire_at } | EventKind::TimerFired { fire_at, .. } => {
                put("FireAt", timestamp(*fire_at).into());
            }
            EventKind::EventRaised { name, input } => {
                put("Name", name.as_str().into());
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::EventSent {
                instance_id,
                name,
                input,
            } => {
                put("Name", name.as_str().into());
                put("InstanceId", instance_id.as_str().into());
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::EntityOperationCalled {
                entity_id,
                operation,
                input,
                ..
            }
            | EventKind::EntityOperationSignaled {
                entity_id,
                operation,
                input,
            } => {
                put("EntityId", entity_id.as_str().into());
                put("Operation", operation.as_str().into());
                if with_input {
                    put("Input", output(input));
                }
            }
            EventKind::EntityLockRequested { lock_set, .. }
            | EventKind::EntityUnlockSent { lock_set, .. } => {
                put("LockSet", lock_set.clone().into());
            }
            EventKind::EntityOperationCompleted { result, .. } => {
                if with_output {
                    put("Result", output(result));
                }
            }
            EventKind::EntityOperationFailed { failure, .. } => {
                put("Reason", failure.message.as_str().into());
                put(
                    "FailureDetails",
                    serde_json::to_value(failure).unwrap_or_default(),
                );
            }
            EventKind::EntityLockGranted { .. } => {}
        }
        out.push(Value::Object(o));
    }
    out
}

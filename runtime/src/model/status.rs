//! Instance status as clients see it, and the query and purge filters.

use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Error, ErrorKind, FailureDetails};
use super::history::HistoryEvent;

/// The lifecycle state of an orchestration instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    /// Created, not yet started (or scheduled to start later).
    Pending,
    /// Started and not finished.
    Running,
    /// Returned `Ok`.
    Completed,
    /// Ended one execution with `continue_as_new`; the next is about to start.
    ContinuedAsNew,
    /// Returned `Err`, panicked, or diverged from its history.
    Failed,
    /// Terminated by a client.
    Terminated,
    /// Suspended by a client; resumes on `resume`.
    Suspended,
}

impl RuntimeStatus {
    /// Every status, in declaration order.
    pub const ALL: [RuntimeStatus; 7] = [
        RuntimeStatus::Pending,
        RuntimeStatus::Running,
        RuntimeStatus::Completed,
        RuntimeStatus::ContinuedAsNew,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
        RuntimeStatus::Suspended,
    ];

    /// Whether the instance has finished for good (Completed, Failed or Terminated).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated
        )
    }

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "Pending",
            RuntimeStatus::Running => "Running",
            RuntimeStatus::Completed => "Completed",
            RuntimeStatus::ContinuedAsNew => "ContinuedAsNew",
            RuntimeStatus::Failed => "Failed",
            RuntimeStatus::Terminated => "Terminated",
            RuntimeStatus::Suspended => "Suspended",
        }
    }
}

impl fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuntimeStatus {
    type Err = Error;

    /// Parses a status name, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Error> {
        RuntimeStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "`{s}` is not a runtime status; expected one of Pending, Running, \
                         Completed, ContinuedAsNew, Failed, Terminated, Suspended"
                    ),
                )
            })
    }
}

/// An orchestration instance's id. Derefs to `&str`, so it passes wherever a client method
/// takes an id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        InstanceId(id.into())
    }

    /// A fresh random id (32 hex digits).
    pub fn random() -> Self {
        InstanceId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for InstanceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

impl PartialEq<str> for InstanceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for InstanceId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// An orchestration instance's status.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceStatus {
    /// The instance id.
    pub instance_id: String,
    /// The orchestrator's name.
    pub name: String,
    /// The current execution's id.
    pub execution_id: String,
    /// Where the instance is in its lifecycle.
    pub runtime_status: RuntimeStatus,
    /// The input, as JSON.
    pub input: Option<String>,
    /// The output, as JSON (Completed), or the termination reason (Terminated).
    pub output: Option<String>,
    /// The custom status the orchestrator set, as JSON.
    pub custom_status: Option<String>,
    /// What went wrong (Failed).
    pub failure: Option<FailureDetails>,
    /// When the instance was created.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub last_updated_at: DateTime<Utc>,
    /// The parent's id, for a sub-orchestration.
    pub parent_instance_id: Option<String>,
    /// The version the instance started under (see
    /// [`RuntimeBuilder::version`](crate::RuntimeBuilder::version)); `None` for an instance
    /// started without one, and for entities.
    pub version: Option<String>,
    /// The history, when asked for.
    pub history: Option<Vec<HistoryEvent>>,
}

impl InstanceStatus {
    /// The output as a `T`. An error when the instance has no output (not completed) or the
    /// output is not a `T`; for a failed instance the error carries its failure message.
    pub fn output<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match (&self.output, self.runtime_status) {
            (Some(json), RuntimeStatus::Completed) => serde_json::from_str(json)
                .map_err(|e| Error::serialization("the instance's output is not of that type", e)),
            (_, RuntimeStatus::Failed) => Err(Error::new(
                ErrorKind::InstanceNotRunning,
                format!(
                    "instance `{}` failed: {}",
                    self.instance_id,
                    self.failure
                        .as_ref()
                        .map(|f| f.message.as_str())
                        .unwrap_or("no details")
                ),
            )),
            _ => Err(Error::new(
                ErrorKind::InstanceNotRunning,
                format!(
                    "instance `{}` has no output: it is {}",
                    self.instance_id, self.runtime_status
                ),
            )),
        }
    }

    /// The input as a `T`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let json = self.input.as_deref().unwrap_or("null");
        serde_json::from_str(json)
            .map_err(|e| Error::serialization("the instance's input is not of that type", e))
    }

    /// The custom status as a `T`, if set.
    pub fn custom_status<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.custom_status
            .as_deref()
            .map(|json| {
                serde_json::from_str(json).map_err(|e| {
                    Error::serialization("the instance's custom status is not of that type", e)
                })
            })
            .transpose()
    }
}

/// Which instances a query returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceQuery {
    /// Only these statuses (all when empty).
    pub runtime_status: Vec<RuntimeStatus>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created at or before.
    pub created_to: Option<DateTime<Utc>>,
    /// Ids starting with this.
    pub instance_id_prefix: Option<String>,
    /// Only instances started under exactly this version (compared as text).
    pub version: Option<String>,
    /// At most this many per page (100 when unset).
    pub page_size: Option<usize>,
    /// Where the previous page ended.
    pub continuation_token: Option<String>,
}

impl InstanceQuery {
    /// Whether an instance matches the filters (not the paging). Entities (`@name@key`) match
    /// only a prefix that starts with `@`.
    pub fn matches(&self, status: &InstanceStatus) -> bool {
        let entities_asked = self
            .instance_id_prefix
            .as_deref()
            .is_some_and(|p| p.starts_with('@'));
        (entities_asked || !status.instance_id.starts_with('@'))
            && (self.runtime_status.is_empty()
                || self.runtime_status.contains(&status.runtime_status))
            && self.created_from.is_none_or(|t| status.created_at >= t)
            && self.created_to.is_none_or(|t| status.created_at <= t)
            && self
                .instance_id_prefix
                .as_deref()
                .is_none_or(|p| status.instance_id.starts_with(p))
            && self
                .version
                .as_deref()
                .is_none_or(|v| status.version.as_deref() == Some(v))
    }
}

/// One page of a query.
#[derive(Clone, Debug, Default)]
pub struct QueryPage {
    /// The instances on this page.
    pub instances: Vec<InstanceStatus>,
    /// Pass back as `continuation_token` for the next page; `None` on the last.
    pub continuation_token: Option<String>,
}

/// Which finished instances a purge removes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeFilter {
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created at or before.
    pub created_to: Option<DateTime<Utc>>,
    /// Only these (terminal) statuses; all terminal ones when empty.
    pub runtime_status: Vec<RuntimeStatus>,
}

impl PurgeFilter {
    /// Whether a finished instance matches.
    pub fn matches(&self, status: &InstanceStatus) -> bool {
        !status.instance_id.starts_with('@')
            && status.runtime_status.is_terminal()
            && (self.runtime_status.is_empty()
                || self.runtime_status.contains(&status.runtime_status))
            && self.created_from.is_none_or(|t| status.created_at >= t)
            && self.created_to.is_none_or(|t| status.created_at <= t)
    }
}

//! Which fetched work this host runs: the instance's version against the host's, and whether
//! the host has the code. What it may not run it leaves for another host (or fails, by its
//! version failure strategy), saying so once.

use std::collections::HashMap;
use std::time::Duration;

use super::Inner;
use crate::model::history::EventKind;
use crate::model::version::{mismatch_error, show};
use crate::model::{EntityId, Error, VersionFailure};
use crate::store::OrchestrationWorkItem;

/// Work this host fetched and left for another host, as [`Runtime::left_work`] lists it.
///
/// [`Runtime::left_work`]: crate::Runtime::left_work
#[derive(Clone, Debug, PartialEq)]
pub struct LeftWork {
    /// The instance (an entity's is `@name@key`).
    pub instance_id: String,
    /// Its orchestrator's (or entity's) name.
    pub name: String,
    /// Why this host left it.
    pub reason: LeftReason,
    /// How many times this host fetched and left it.
    pub times: u32,
}

/// Why a host left work for another.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LeftReason {
    /// No orchestrator (or entity) of that name is registered on this host.
    NotRegistered,
    /// The instance's version is one this host's version match does not allow.
    Version {
        /// The version the instance started under.
        instance: Option<String>,
        /// This host's version.
        host: Option<String>,
    },
}

impl std::fmt::Display for LeftReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftReason::NotRegistered => f.write_str("not registered on this host"),
            LeftReason::Version { instance, host } => write!(
                f,
                "version {} is not allowed on this host of version {}",
                show(instance.as_deref()),
                show(host.as_deref())
            ),
        }
    }
}

/// What a host does with a fetched work item.
pub(super) enum Admission {
    Run,
    Leave(LeftReason),
    Fail(Error),
}

/// At most this many instances are remembered as left (and logged once each).
const MAX_LEFT: usize = 10_000;

/// The work this host left, and the names it has warned about.
#[derive(Default)]
pub(super) struct Left {
    instances: HashMap<String, LeftWork>,
    warned_names: std::collections::HashSet<String>,
}

impl Inner {
    /// Whether this host runs a fetched work item: finished instances always (their late
    /// messages are dropped, a rewind rewrites history without running code); others only when
    /// the version match allows the instance's version and the host has its code.
    pub(super) fn admit(&self, item: &OrchestrationWorkItem) -> Admission {
        let status = &item.instance;
        if EntityId::is_entity_instance(&item.instance_id) {
            return match item.instance_id.parse::<EntityId>() {
                Ok(id) if self.registry.entity(id.name()).is_none() => {
                    Admission::Leave(LeftReason::NotRegistered)
                }
                _ => Admission::Run,
            };
        }
        let rewinding = item
            .messages
            .iter()
            .any(|m| matches!(m.message.event.kind, EventKind::ExecutionRewound { .. }));
        if status.runtime_status.is_terminal() || rewinding {
            return Admission::Run;
        }
        let host = self.config.version.as_deref();
        if !self
            .config
            .version_match
            .allows(status.version.as_deref(), host)
        {
            return match self.config.version_failure {
                VersionFailure::Leave => Admission::Leave(LeftReason::Version {
                    instance: status.version.clone(),
                    host: host.map(str::to_string),
                }),
                VersionFailure::Fail => Admission::Fail(mismatch_error(
                    &status.name,
                    status.version.as_deref(),
                    host,
                    self.config.version_match,
                )),
            };
        }
        if self.registry.orchestrator(&status.name).is_none() {
            return Admission::Leave(LeftReason::NotRegistered);
        }
        Admission::Run
    }

    /// Whether this host runs orchestrator `name` for an instance of `version`: it has the
    /// code and its version match allows the version.
    pub(super) fn may_run(&self, name: &str, version: Option<&str>) -> bool {
        self.registry.orchestrator(name).is_some()
            && self
                .config
                .version_match
                .allows(version, self.config.version.as_deref())
    }

    /// Leaves a work item for another host: released without counting as a failed attempt,
    /// offered again after a back-off that grows with each time this host left it. Logged
    /// once per instance for a version, once per name for missing code.
    pub(super) async fn leave(&self, item: &OrchestrationWorkItem, reason: LeftReason) {
        let id = &item.instance_id;
        let name = &item.instance.name;
        let times = {
            let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
            let first_for_name = matches!(reason, LeftReason::NotRegistered)
                && left.warned_names.insert(name.clone());
            let full = left.instances.len() >= MAX_LEFT && !left.instances.contains_key(id);
            let entry = (!full).then(|| {
                left.instances
                    .entry(id.clone())
                    .or_insert_with(|| LeftWork {
                        instance_id: id.clone(),
                        name: name.clone(),
                        reason: reason.clone(),
                        times: 0,
                    })
            });
            let times = match entry {
                Some(entry) => {
                    entry.reason = reason.clone();
                    entry.times += 1;
                    entry.times
                }
                None => 1,
            };
            match &reason {
                LeftReason::NotRegistered if first_for_name => {
                    let what = if EntityId::is_entity_instance(id) {
                        "entity"
                    } else {
                        "orchestrator"
                    };
                    tracing::warn!(
                        instance_id = ?id,
                        name = ?name,
                        "no {what} named `{name}` is registered on this host: its work is left \
                         for a host that has it (this host says so once per name; \
                         `Runtime::left_work` lists what it left)"
                    );
                }
                LeftReason::Version { .. } if times == 1 => {
                    tracing::warn!(
                        instance_id = ?id,
                        name = ?name,
                        "instance `{id}` is left for another host: {reason}"
                    );
                }
                _ => {}
            }
            times
        };
        if let Err(e) = self
            .store
            .release_orchestration(item, leave_backoff(times), &self.ownership.owner)
            .await
        {
            tracing::warn!(instance_id = ?id, error = ?e.to_string(), "leaving the work item failed");
        }
    }

    /// Forgets that this host left an instance (it ran it after all).
    pub(super) fn ran(&self, instance_id: &str) {
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        if !left.instances.is_empty() {
            left.instances.remove(instance_id);
        }
    }

    /// The work this host left, oldest instance id first.
    pub(super) fn left_work(&self) -> Vec<LeftWork> {
        let left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<LeftWork> = left.instances.values().cloned().collect();
        all.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        all
    }
}

/// How long left work stays out of sight of every host: 100 ms the first time this host left
/// it, doubling, at most 5 s (a host that may run it then finds it soon after it appears).
fn leave_backoff(times: u32) -> Duration {
    Duration::from_millis(100u64 << times.saturating_sub(1).min(6)).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_grows_to_five_seconds() {
        assert_eq!(leave_backoff(1), Duration::from_millis(100));
        assert_eq!(leave_backoff(2), Duration::from_millis(200));
        assert_eq!(leave_backoff(6), Duration::from_millis(3200));
        assert_eq!(leave_backoff(7), Duration::from_secs(5));
        assert_eq!(leave_backoff(1000), Duration::from_secs(5));
    }
}

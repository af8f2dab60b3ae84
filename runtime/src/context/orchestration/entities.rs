//! Entities from an orchestration: two-way calls, signals and critical sections.

use std::panic::Location;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{OrchestrationContext, Task, TaskKind};
use crate::model::{EntityId, Error, ErrorKind};
use crate::replay::{Action, Shared};

impl OrchestrationContext {
    pub(crate) fn call_entity_from<T>(
        &self,
        id: &EntityId,
        operation: &str,
        input: &impl Serialize,
        location: &'static Location<'static>,
    ) -> Task<T> {
        let entity = id.to_string();
        let operation = operation.to_lowercase();
        let input = match Error::to_json(
            input,
            format_args!("the input of operation `{operation}` of entity `{entity}`"),
        ) {
            Ok(input) => input,
            Err(e) => return Task::failed(e),
        };
        let mut st = self.shared.lock();
        if let Some(cs) = &st.critical {
            if !cs.lock_set.contains(&entity) {
                return Task::failed(rule_error(
                    3,
                    format!(
                        "inside a critical section only locked entities can be called: \
                         `{entity}` is not one of {:?}",
                        cs.lock_set
                    ),
                ));
            }
            if let Some(&earlier) = cs.calls.get(&entity)
                && !st.is_completed(earlier)
            {
                return Task::failed(rule_error(
                    4,
                    format!(
                        "inside a critical section one entity cannot be called twice in \
                         parallel: a call to `{entity}` is still outstanding; await it first"
                    ),
                ));
            }
        }
        let step = st.schedule(
            |id| Action::CallEntity {
                id,
                entity: entity.clone(),
                operation: operation.clone(),
                input,
            },
            location,
        );
        if let Some(cs) = &mut st.critical {
            cs.calls.insert(entity.clone(), step);
        }
        drop(st);
        Task::scheduled(
            self.shared.clone(),
            step,
            TaskKind::Entity { entity, operation },
        )
    }

    pub(crate) fn signal_entity_from(
        &self,
        id: &EntityId,
        operation: &str,
        input: &impl Serialize,
        at: Option<DateTime<Utc>>,
        location: &'static Location<'static>,
    ) {
        let entity = id.to_string();
        let operation = operation.to_lowercase();
        let mut st = self.shared.lock();
        let input = match Error::to_json(
            input,
            format_args!("the input of operation `{operation}` of entity `{entity}`"),
        ) {
            Ok(input) => input,
            Err(e) => {
                st.violation = Some(e);
                return;
            }
        };
        if let Some(cs) = &st.critical
            && cs.lock_set.contains(&entity)
        {
            st.violation = Some(rule_error(
                5,
                format!(
                    "inside a critical section a locked entity cannot be signalled (at \
                     {location}): `{entity}` is locked by this orchestration; call it instead"
                ),
            ));
            return;
        }
        st.schedule(
            |id| Action::SignalEntity {
                id,
                entity,
                operation,
                input,
                at,
            },
            location,
        );
    }
}

pub(super) fn rule_error(rule: u8, detail: String) -> Error {
    let name = match rule {
        1 => "no nesting",
        2 => "no sub-orchestrations inside",
        3 => "call only locked entities",
        4 => "no parallel calls to one entity",
        _ => "signal only entities that are not locked",
    };
    Error::new(
        ErrorKind::CriticalSection,
        format!("critical section rule \"{name}\": {detail}"),
    )
}

/// A held critical section over a set of entities. The locks are released when it drops.
#[must_use = "the locks are released as soon as the guard is dropped"]
pub struct CriticalSection {
    pub(super) shared: Shared,
    pub(super) id: i64,
    pub(super) lock_set: Vec<String>,
    pub(super) location: &'static Location<'static>,
}

impl CriticalSection {
    /// The locked entities (`@name@key`), sorted.
    pub fn entities(&self) -> &[String] {
        &self.lock_set
    }

    /// Releases the locks now (the same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for CriticalSection {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.critical.as_ref().is_some_and(|c| c.id == self.id) {
            st.critical = None;
            let lock_set = self.lock_set.clone();
            let critical_section = self.id;
            st.schedule(
                |id| Action::UnlockEntities {
                    id,
                    critical_section,
                    lock_set,
                },
                self.location,
            );
        }
    }
}

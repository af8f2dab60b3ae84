//! Entities from an orchestration: two-way calls, signals and critical sections.

use std::future::Future;
use std::panic::Location;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{OrchestrationContext, Task, TaskKind};
use crate::context::entity::{CallTarget, Entity, SignalTarget, Sink};
use crate::model::{EntityId, Error, ErrorKind};
use crate::replay::{Action, CriticalState, Shared};

impl OrchestrationContext {
    /// A two-way proxy to the class-style entity `E` with this key: each operation method
    /// returns a task resolving to the operation's result.
    pub fn call_entity<E: Entity>(&self, key: impl Into<String>) -> E::Call {
        E::call_proxy(CallTarget {
            ctx: self.clone(),
            id: EntityId::of::<E>(key),
        })
    }

    /// A one-way proxy to the class-style entity `E` with this key: each operation method
    /// sends a signal when the turn commits.
    pub fn signal_entity<E: Entity>(&self, key: impl Into<String>) -> E::Signal {
        E::signal_proxy(SignalTarget {
            sink: Sink::Orchestration(self.clone()),
            id: EntityId::of::<E>(key),
            at: None,
        })
    }

    /// Like [`signal_entity`](Self::signal_entity), delivered at `at`.
    pub fn signal_entity_at<E: Entity>(
        &self,
        key: impl Into<String>,
        at: DateTime<Utc>,
    ) -> E::Signal {
        E::signal_proxy(SignalTarget {
            sink: Sink::Orchestration(self.clone()),
            id: EntityId::of::<E>(key),
            at: Some(at),
        })
    }

    /// Calls an operation by entity id and operation name (any entity style).
    #[track_caller]
    pub fn call_entity_by_id<T: DeserializeOwned>(
        &self,
        id: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Task<T> {
        self.call_entity_from(id, operation, &input, Location::caller())
    }

    /// Signals an operation by entity id and operation name (any entity style).
    #[track_caller]
    pub fn signal_entity_by_id(&self, id: &EntityId, operation: &str, input: impl Serialize) {
        self.signal_entity_from(id, operation, &input, None, Location::caller());
    }

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

    /// Locks a set of entities for a critical section and resolves to its guard once every
    /// lock is held. The locks are taken in sorted order (so two sections never deadlock) and
    /// released when the guard drops or the orchestration ends in any way. While it holds
    /// them, each entity runs only this orchestration's operations.
    ///
    /// Rules, each refused with an error of kind [`ErrorKind::CriticalSection`] that names it:
    /// no nesting; no sub-orchestrations inside; call only locked entities; no two parallel
    /// calls to one entity; signal only entities that are not locked.
    #[track_caller]
    pub fn lock_entities<I: IntoIterator<Item = EntityId>>(
        &self,
        entities: I,
    ) -> impl Future<Output = Result<CriticalSection, Error>> + Send + use<I> {
        let location = Location::caller();
        let mut lock_set: Vec<String> = entities.into_iter().map(|e| e.to_string()).collect();
        lock_set.sort();
        lock_set.dedup();
        let shared = self.shared.clone();
        let prepared = (|| {
            if lock_set.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "lock_entities needs at least one entity",
                ));
            }
            let mut st = shared.lock();
            if let Some(cs) = &st.critical {
                return Err(rule_error(
                    1,
                    format!(
                        "critical sections cannot be nested: this orchestration already holds \
                         {:?}; drop that guard first",
                        cs.lock_set
                    ),
                ));
            }
            let set = lock_set.clone();
            let id = st.schedule(|id| Action::LockEntities { id, lock_set: set }, location);
            st.critical = Some(CriticalState {
                id,
                lock_set: lock_set.clone(),
                calls: Default::default(),
            });
            drop(st);
            Ok((
                id,
                Task::<()>::scheduled(shared.clone(), id, TaskKind::Lock),
            ))
        })();
        async move {
            let (id, granted) = prepared?;
            granted.await?;
            Ok(CriticalSection {
                shared,
                id,
                lock_set,
                location,
            })
        }
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
    shared: Shared,
    id: i64,
    lock_set: Vec<String>,
    location: &'static Location<'static>,
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

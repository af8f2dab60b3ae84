//! The context an entity operation runs with.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Entity;
use super::proxy::{SignalTarget, Sink};
use crate::context::function::Orchestrator;
use crate::model::history::{EventKind, HistoryEvent};
use crate::model::{EntityId, Error, ErrorKind, Ids, InstanceId};
use crate::store::{NewInstance, OrchestrationMessage};

/// The context of one entity operation: which entity and operation, the input, the state (for
/// function-style entities), and one-way messages to send when the operation succeeds.
///
/// Cheap to clone; clones share one operation's effects. If the operation fails, its state
/// change and its messages are all discarded.
#[derive(Clone)]
pub struct EntityContext {
    inner: Arc<Mutex<Inner>>,
}

pub(crate) struct Inner {
    pub id: EntityId,
    pub operation: String,
    pub input: String,
    pub state: Option<String>,
    pub newly_constructed: bool,
    pub now: DateTime<Utc>,
    pub messages: Vec<OrchestrationMessage>,
    pub new_instances: Vec<NewInstance>,
    pub result: Option<String>,
    pub violation: Option<Error>,
    pub deleted: bool,
    /// Where the ids of the orchestrations it starts come from (the host's).
    pub ids: Arc<Ids>,
}

impl EntityContext {
    pub(crate) fn new(
        id: EntityId,
        operation: String,
        input: String,
        state: Option<String>,
        now: DateTime<Utc>,
        ids: Arc<Ids>,
    ) -> Self {
        EntityContext {
            inner: Arc::new(Mutex::new(Inner {
                id,
                operation,
                input,
                newly_constructed: state.is_none(),
                state,
                now,
                messages: Vec::new(),
                new_instances: Vec::new(),
                result: None,
                violation: None,
                deleted: false,
                ids,
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A context for calling an entity's operations directly, e.g. in a unit test.
    pub fn for_test(id: EntityId, operation: &str) -> Self {
        EntityContext::new(
            id,
            operation.to_lowercase(),
            "null".into(),
            None,
            Utc::now(),
            Arc::new(Ids::random()),
        )
    }

    /// The entity's id.
    pub fn id(&self) -> EntityId {
        self.lock().id.clone()
    }

    /// The operation being run, lower case.
    pub fn operation(&self) -> String {
        self.lock().operation.clone()
    }

    /// The operation's input as a `T`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let st = self.lock();
        super::decode_input(st.id.name(), &st.operation, &st.input)
    }

    /// The time the batch of operations began.
    pub fn current_utc_datetime(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// Whether the entity had no state when this operation began (it is being created).
    pub fn is_newly_constructed(&self) -> bool {
        self.lock().newly_constructed
    }

    /// Whether the entity currently has state.
    pub fn has_state(&self) -> bool {
        self.lock().state.is_some()
    }

    /// The entity's state as a `T` (function style), or `None` when it has none.
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        let st = self.lock();
        st.state
            .as_deref()
            .map(|json| {
                serde_json::from_str(json).map_err(|e| {
                    Error::serialization(
                        format_args!("the state of entity `{}` does not fit the type", st.id),
                        e,
                    )
                })
            })
            .transpose()
    }

    /// The entity's state as a `T`, or `T::default()` when it has none.
    pub fn state_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        Ok(self.state()?.unwrap_or_default())
    }

    /// Replaces the entity's state (function style).
    pub fn set_state(&self, state: impl Serialize) -> Result<(), Error> {
        let json = Error::to_json(&state, "the entity state")?;
        let mut st = self.lock();
        st.state = Some(json);
        st.deleted = false;
        Ok(())
    }

    /// Deletes the entity's state: the entity no longer exists once this operation succeeds.
    pub fn delete_state(&self) {
        let mut st = self.lock();
        st.state = None;
        st.deleted = true;
    }

    /// Sets the value a caller of this operation receives (function style).
    pub fn set_result(&self, value: impl Serialize) -> Result<(), Error> {
        let json = Error::to_json(&value, "the operation's result")?;
        self.lock().result = Some(json);
        Ok(())
    }

    /// Signals an operation on a class-style entity (itself too), sent when this operation
    /// succeeds.
    pub fn signal_entity<E: Entity>(&self, key: impl Into<String>) -> E::Signal {
        E::signal_proxy(SignalTarget {
            sink: Sink::Entity(self.clone()),
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
            sink: Sink::Entity(self.clone()),
            id: EntityId::of::<E>(key),
            at: Some(at),
        })
    }

    /// Signals an operation by entity id and operation name (any entity style).
    pub fn signal_entity_by_id(&self, id: &EntityId, operation: &str, input: impl Serialize) {
        self.signal_raw(id, operation, &input, None);
    }

    pub(crate) fn signal_raw(
        &self,
        id: &EntityId,
        operation: &str,
        input: &impl Serialize,
        at: Option<DateTime<Utc>>,
    ) {
        let mut st = self.lock();
        match Error::to_json(input, format_args!("the input of operation `{operation}`")) {
            Ok(input) => {
                let message = signal_message(id, operation, input, at, st.now);
                st.messages.push(message);
            }
            Err(e) => st.violation = Some(e),
        }
    }

    /// Starts a new orchestration when this operation succeeds; returns its id.
    pub fn start_new_orchestration<O: Orchestrator>(
        &self,
        orchestrator: O,
        input: O::Input,
    ) -> Result<InstanceId, Error> {
        let _ = orchestrator;
        let input = Error::to_json(
            &input,
            format_args!("the input of orchestrator `{}`", O::NAME),
        )?;
        let mut st = self.lock();
        let id = InstanceId::new(st.ids.next());
        let execution_id = st.ids.next();
        let now = st.now;
        st.new_instances.push(NewInstance {
            instance_id: id.to_string(),
            name: O::NAME.to_string(),
            input,
            execution_id,
            parent: None,
            created_at: now,
            start_at: None,
            replace_running: false,
            // Set by the host: the version it runs.
            version: None,
        });
        Ok(id)
    }

    pub(crate) fn take_violation(&self) -> Option<Error> {
        self.lock().violation.take()
    }
}

/// The message that signals `operation` on entity `id`.
pub(crate) fn signal_message(
    id: &EntityId,
    operation: &str,
    input: String,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: id.to_string(),
        execution_id: None,
        event: HistoryEvent::new(
            now,
            EventKind::EntityOperationSignaled {
                entity_id: id.to_string(),
                operation: operation.to_string(),
                input,
            },
        ),
        visible_at: at,
    }
}

pub(crate) fn no_such_entity(id: &EntityId) -> Error {
    Error::new(
        ErrorKind::UnknownFunction,
        format!(
            "no entity named `{}` is registered on this host (addressed as `{id}`)",
            id.name()
        ),
    )
}

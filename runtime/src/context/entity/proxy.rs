//! What the generated entity proxies call into.

use std::future::Future;
use std::panic::Location;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EntityContext;
use crate::context::orchestration::{OrchestrationContext, Task};
use crate::model::{BoxFutureOf, EntityId, Error};

/// The target of a two-way call proxy (`ctx.call_entity::<E>(key)`).
pub struct CallTarget {
    pub(crate) ctx: OrchestrationContext,
    pub(crate) id: EntityId,
}

impl CallTarget {
    /// Calls `operation` with `input`; the task resolves to the operation's output.
    #[track_caller]
    pub fn call<T: DeserializeOwned>(self, operation: &str, input: &impl Serialize) -> Task<T> {
        self.ctx
            .call_entity_from(&self.id, operation, input, Location::caller())
    }

    /// The entity being called.
    pub fn id(&self) -> &EntityId {
        &self.id
    }
}

pub(crate) enum Sink {
    Orchestration(OrchestrationContext),
    Entity(EntityContext),
}

/// The target of a one-way signal proxy (`ctx.signal_entity::<E>(key)` in an orchestration or
/// an entity). The signal is sent when the turn or operation commits.
pub struct SignalTarget {
    pub(crate) sink: Sink,
    pub(crate) id: EntityId,
    pub(crate) at: Option<DateTime<Utc>>,
}

impl SignalTarget {
    /// Signals `operation` with `input`.
    #[track_caller]
    pub fn signal(self, operation: &str, input: &impl Serialize) {
        match self.sink {
            Sink::Orchestration(ctx) => {
                ctx.signal_entity_from(&self.id, operation, input, self.at, Location::caller())
            }
            Sink::Entity(ctx) => ctx.signal_raw(&self.id, operation, input, self.at),
        }
    }

    /// The entity being signalled.
    pub fn id(&self) -> &EntityId {
        &self.id
    }
}

/// What sends a client's signals: the [`Client`](crate::Client), seen from below it.
pub(crate) trait SignalSender: Sync {
    /// Durably enqueues `operation` with `input` (JSON) for the entity, at `at` if given.
    fn send_signal<'a>(
        &'a self,
        id: &'a EntityId,
        operation: &'a str,
        input: String,
        at: Option<DateTime<Utc>>,
    ) -> BoxFutureOf<'a, Result<(), Error>>;
}

/// The target of a client's signal proxy (`client.signal_entity::<E>(key)`).
pub struct ClientSignalTarget<'a> {
    pub(crate) client: &'a dyn SignalSender,
    pub(crate) id: EntityId,
    pub(crate) at: Option<DateTime<Utc>>,
}

impl<'a> ClientSignalTarget<'a> {
    /// Signals `operation` with `input`; resolves once the signal is durably enqueued.
    pub fn signal<I: Serialize + ?Sized>(
        self,
        operation: &str,
        input: &I,
    ) -> impl Future<Output = Result<(), Error>> + Send + use<'a, I> {
        let input = Error::to_json(input, format_args!("the input of operation `{operation}`"));
        let operation = operation.to_string();
        async move {
            self.client
                .send_signal(&self.id, &operation, input?, self.at)
                .await
        }
    }

    /// The entity being signalled.
    pub fn id(&self) -> &EntityId {
        &self.id
    }
}

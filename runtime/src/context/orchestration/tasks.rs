//! The futures an orchestration awaits: tasks, sub-orchestrations, timers, event waits and
//! continue-as-new.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::FusedFuture;
use serde::de::DeserializeOwned;

use super::OrchestrationContext;
use crate::model::{Error, ErrorKind, RetryPolicy};
use crate::replay::{Shared, TaskResult};

#[derive(Clone)]
pub(crate) enum TaskKind {
    Activity(String),
    SubOrchestration { name: String, instance_id: String },
    Entity { entity: String, operation: String },
    Lock,
}

enum TaskState {
    Scheduled { shared: Shared, id: i64 },
    Failed(Option<Error>),
    Done,
}

/// A scheduled activity or sub-orchestration; resolves to its typed result.
#[must_use = "a task does nothing for the orchestration unless awaited"]
pub struct Task<T> {
    state: TaskState,
    kind: Option<TaskKind>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Task<T> {
    pub(super) fn scheduled(shared: Shared, id: i64, kind: TaskKind) -> Self {
        Task {
            state: TaskState::Scheduled { shared, id },
            kind: Some(kind),
            _marker: PhantomData,
        }
    }

    pub(super) fn failed(err: Error) -> Self {
        Task {
            state: TaskState::Failed(Some(err)),
            kind: None,
            _marker: PhantomData,
        }
    }
}

impl<T> Unpin for Task<T> {}

impl<T: DeserializeOwned> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result: TaskResult = match &mut self.state {
            TaskState::Scheduled { shared, id } => match shared.lock().poll_task(*id, cx) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            },
            TaskState::Failed(err) => {
                return Poll::Ready(Err(err.take().unwrap_or_else(|| {
                    Error::new(ErrorKind::InvalidArgument, "task polled after completion")
                })));
            }
            TaskState::Done => return Poll::Pending,
        };
        self.state = TaskState::Done;
        let kind = self.kind.take().expect("a scheduled task has a kind");
        Poll::Ready(match (result, kind) {
            (Ok(json), TaskKind::Activity(name)) => serde_json::from_str(&json).map_err(|e| {
                Error::serialization(
                    format_args!("the output of activity `{name}` does not fit the expected type"),
                    e,
                )
            }),
            (Ok(json), TaskKind::SubOrchestration { name, .. }) => serde_json::from_str(&json)
                .map_err(|e| {
                    Error::serialization(
                        format_args!(
                            "the output of sub-orchestrator `{name}` does not fit the expected type"
                        ),
                        e,
                    )
                }),
            (Ok(json), TaskKind::Entity { entity, operation }) => serde_json::from_str(&json)
                .map_err(|e| {
                    Error::serialization(
                        format_args!(
                            "the output of operation `{operation}` of entity `{entity}` does not \
                             fit the expected type"
                        ),
                        e,
                    )
                }),
            (Ok(json), TaskKind::Lock) => {
                serde_json::from_str(&json).map_err(|e| Error::serialization("the lock grant", e))
            }
            (Err(failure), TaskKind::Entity { entity, operation }) => Err(Error::new(
                ErrorKind::EntityOperationFailed {
                    entity_id: entity.clone(),
                    operation: operation.clone(),
                },
                format!(
                    "operation `{operation}` on entity `{entity}` failed: {}",
                    failure.message
                ),
            )
            .with_cause(failure)),
            (Err(failure), TaskKind::Lock) => Err(Error::from_failure(&failure)),
            (Err(failure), TaskKind::Activity(name)) => Err(Error::new(
                ErrorKind::ActivityFailed { name: name.clone() },
                format!("activity `{name}` failed: {}", failure.message),
            )
            .with_cause(failure)),
            (Err(failure), TaskKind::SubOrchestration { name, instance_id }) => Err(Error::new(
                ErrorKind::SubOrchestrationFailed {
                    name: name.clone(),
                    instance_id: instance_id.clone(),
                },
                format!(
                    "sub-orchestrator `{name}` (instance `{instance_id}`) failed: {}",
                    failure.message
                ),
            )
            .with_cause(failure)),
        })
    }
}

impl<T: DeserializeOwned> FusedFuture for Task<T> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, TaskState::Done)
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let TaskState::Scheduled { shared, id } = &self.state {
            shared.lock().drop_task(*id);
        }
    }
}

/// A call to a sub-orchestrator, not yet scheduled: configure it, then `.await` it.
#[must_use = "a sub-orchestration is only started when awaited"]
pub struct SubOrchestration<T> {
    pub(super) ctx: OrchestrationContext,
    pub(super) name: &'static str,
    pub(super) input: Result<String, Error>,
    pub(super) instance_id: Option<String>,
    pub(super) retry: Option<RetryPolicy>,
    pub(super) location: &'static Location<'static>,
    pub(super) _marker: PhantomData<fn() -> T>,
}

impl<T> SubOrchestration<T> {
    /// Runs the child under this instance id instead of one derived from the parent's.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Retries a failed child by `policy` (each retry a new child instance).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for SubOrchestration<T> {
    type Output = Result<T, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let SubOrchestration {
            ctx,
            name,
            input,
            instance_id,
            retry,
            location,
            ..
        } = self;
        let input = match input {
            Ok(input) => input,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        match retry {
            None => Box::pin(ctx.schedule_sub_orchestration::<T>(
                name,
                instance_id.as_deref(),
                input,
                location,
            )),
            Some(policy) => Box::pin(async move {
                let mut attempt = 0u32;
                ctx.retry(policy, location, || {
                    attempt += 1;
                    let id = instance_id.as_ref().map(|id| match attempt {
                        1 => id.clone(),
                        n => format!("{id}:retry{n}"),
                    });
                    ctx.schedule_sub_orchestration::<T>(
                        name,
                        id.as_deref(),
                        input.clone(),
                        location,
                    )
                })
                .await
            }),
        }
    }
}

/// A durable timer; resolves to `()` when it fires. Dropping it cancels the wait.
#[must_use = "a timer does nothing unless awaited"]
pub struct Timer {
    pub(super) shared: Shared,
    pub(super) id: i64,
    pub(super) done: bool,
}

impl Future for Timer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let id = self.id;
        let polled = self.shared.lock().poll_task(id, cx);
        match polled {
            Poll::Ready(_) => {
                self.done = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl FusedFuture for Timer {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !self.done {
            self.shared.lock().drop_task(self.id);
        }
    }
}

/// A wait for an external event; resolves to its payload as a `T`.
#[must_use = "an event wait does nothing unless awaited"]
pub struct EventWait<T> {
    pub(super) shared: Shared,
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) done: bool,
    pub(super) _marker: PhantomData<fn() -> T>,
}

impl<T> Unpin for EventWait<T> {}

impl<T: DeserializeOwned> Future for EventWait<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let polled = self.shared.lock().poll_event(id, cx);
        match polled {
            Poll::Ready(Ok(json)) => {
                self.done = true;
                Poll::Ready(serde_json::from_str(&json).map_err(|e| {
                    Error::serialization(
                        format_args!(
                            "the payload of event `{}` does not fit the expected type",
                            self.name
                        ),
                        e,
                    )
                }))
            }
            Poll::Ready(Err(failure)) => {
                self.done = true;
                Poll::Ready(Err(Error::from_failure(&failure)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: DeserializeOwned> FusedFuture for EventWait<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T> Drop for EventWait<T> {
    fn drop(&mut self) {
        self.shared.lock().drop_event(self.id, &self.name);
    }
}

/// The future [`OrchestrationContext::continue_as_new`] returns: it never resolves; the
/// execution ends as soon as the orchestrator is polled after the call.
#[must_use = "await it, or return from the orchestrator after calling continue_as_new"]
pub struct ContinueAsNewFuture<T> {
    pub(super) _marker: PhantomData<fn() -> T>,
}

impl<T> Future for ContinueAsNewFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        Poll::Pending
    }
}

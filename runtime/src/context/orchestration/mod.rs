//! The orchestration context: every replay-safe operation an orchestrator may perform.
//!
//! `mod.rs` has the context and its calls (activities, sub-orchestrations, timers, events,
//! combinators, continue-as-new); `entities.rs` its entity calls, signals and critical
//! sections; `tasks.rs` the futures those calls return; `versions.rs` the instance's version
//! and patch points.

mod entities;
mod tasks;
mod versions;

pub use entities::CriticalSection;
use entities::rule_error;
pub(crate) use tasks::TaskKind;
pub use tasks::{ContinueAsNewFuture, EventWait, SubOrchestration, Task, Timer};

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::Location;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{Either, select};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::context::entity::{CallTarget, Entity, SignalTarget, Sink};
use crate::model::EntityId;

use crate::context::function::{Activity, Orchestrator};
use crate::model::history::ParentInstance;
use crate::model::{Error, ErrorKind, RetryPolicy};
use crate::replay::{Action, ContinueAsNew, CriticalState, Shared};

/// The context an `#[orchestrator]` receives. Every method is replay-safe: on replay it returns
/// what it returned the first time, from history.
///
/// Cloning is cheap; clones share one instance's state.
///
/// ```
/// use std::time::Duration;
/// use durable::prelude::*;
///
/// #[activity]
/// async fn reserve(_ctx: ActivityContext, item: String) -> Result<u32, Error> {
///     Ok(item.len() as u32) // a reservation number
/// }
///
/// #[orchestrator]
/// async fn order(ctx: OrchestrationContext, items: Vec<String>) -> Result<Vec<u32>, Error> {
///     // Fan out: every call is scheduled at once; `when_all` gives the results in order.
///     let calls = items.into_iter().map(|item| ctx.call_activity(reserve, item));
///     let reserved: Vec<u32> = ctx.when_all(calls).await?;
///     // Wait for a payment event for at most a day of orchestration time.
///     let paid: Option<bool> = ctx
///         .wait_for_event_with_timeout("Paid", Duration::from_secs(24 * 3600))
///         .await?;
///     if paid != Some(true) {
///         return Err(Error::msg("not paid within a day"));
///     }
///     // Tell another instance, fire-and-forget: sent when this turn commits.
///     ctx.raise_event("shipping", "OrderPaid", &reserved)?;
///     Ok(reserved)
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct OrchestrationContext {
    shared: Shared,
}

/// The namespace of [`OrchestrationContext::new_guid`]'s name-based UUIDs.
const GUID_NAMESPACE: Uuid = Uuid::from_u128(0x9e95_2958_5e33_4daf_827f_2fa1_2937_b875);

impl OrchestrationContext {
    pub(crate) fn new(shared: Shared) -> Self {
        OrchestrationContext { shared }
    }

    /// The instance id of this orchestration.
    pub fn instance_id(&self) -> String {
        self.shared.lock().instance_id.clone()
    }

    /// The id of the current execution (a new one after every `continue_as_new`).
    pub fn execution_id(&self) -> String {
        self.shared.lock().execution_id.clone()
    }

    /// The orchestrator's registered name.
    pub fn name(&self) -> String {
        self.shared.lock().name.clone()
    }

    /// The parent orchestration, when this one runs as a sub-orchestration.
    pub fn parent_instance(&self) -> Option<ParentInstance> {
        self.shared.lock().parent.clone()
    }

    /// Whether the code is being replayed from history (rather than running for the first time).
    pub fn is_replaying(&self) -> bool {
        self.shared.lock().replaying
    }

    /// The orchestration time: the time the current turn started, the same on every replay.
    pub fn current_utc_datetime(&self) -> DateTime<Utc> {
        self.shared.lock().now
    }

    /// A deterministic UUID: name-based (v5) on the instance id, the orchestration time and a
    /// counter, so every replay gets the same values in the same order.
    pub fn new_guid(&self) -> Uuid {
        let mut st = self.shared.lock();
        let name = format!(
            "{}_{}_{}",
            st.instance_id,
            st.now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            st.guid_counter
        );
        st.guid_counter += 1;
        Uuid::new_v5(&GUID_NAMESPACE, name.as_bytes())
    }

    /// Sets the custom status clients see in the instance's status.
    pub fn set_custom_status(&self, status: impl Serialize) {
        match Error::to_json(&status, "the custom status") {
            Ok(json) => self.shared.lock().custom_status = Some(json),
            Err(e) => self.shared.lock().violation = Some(e),
        }
    }

    /// Clears the custom status.
    pub fn clear_custom_status(&self) {
        self.shared.lock().custom_status = None;
    }

    /// Calls an activity and resolves to its result. A failed activity resolves to an `Err`
    /// of kind [`ErrorKind::ActivityFailed`](crate::ErrorKind::ActivityFailed) that names the activity and the cause.
    ///
    /// The call is scheduled at once; awaiting is what waits for it. So several calls made
    /// before awaiting run in parallel.
    #[track_caller]
    pub fn call_activity<A: Activity>(&self, activity: A, input: A::Input) -> Task<A::Output> {
        let _ = activity;
        let location = Location::caller();
        match Error::to_json(&input, format_args!("the input of activity `{}`", A::NAME)) {
            Ok(input) => self.schedule_activity(A::NAME, input, location),
            Err(e) => Task::failed(e),
        }
    }

    fn schedule_activity<T>(
        &self,
        name: &str,
        input: String,
        location: &'static Location<'static>,
    ) -> Task<T> {
        let id = self.shared.lock().schedule(
            |id| Action::ScheduleActivity {
                id,
                name: name.to_string(),
                input,
            },
            location,
        );
        Task::scheduled(
            self.shared.clone(),
            id,
            TaskKind::Activity(name.to_string()),
        )
    }

    /// Calls an activity, retrying failed attempts by `policy`; every wait between attempts is
    /// a durable timer.
    #[track_caller]
    pub fn call_activity_with_retry<A: Activity>(
        &self,
        activity: A,
        input: A::Input,
        policy: RetryPolicy,
    ) -> impl Future<Output = Result<A::Output, Error>> + Send + use<A> {
        let _ = activity;
        let location = Location::caller();
        let ctx = self.clone();
        let input = Error::to_json(&input, format_args!("the input of activity `{}`", A::NAME));
        async move {
            let input = input?;
            ctx.retry(policy, location, || {
                ctx.schedule_activity::<A::Output>(A::NAME, input.clone(), location)
            })
            .await
        }
    }

    async fn retry<T, F>(
        &self,
        policy: RetryPolicy,
        location: &'static Location<'static>,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let first_started = self.current_utc_datetime();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let Some(delay) = policy.next_delay(attempts, &err) else {
                return Err(err);
            };
            if let Some(timeout) = policy.retry_timeout {
                let elapsed = self.current_utc_datetime() - first_started;
                let after = elapsed.to_std().unwrap_or_default() + delay;
                if after > timeout {
                    return Err(err);
                }
            }
            self.timer_at(self.current_utc_datetime() + to_chrono(delay), location)
                .await;
        }
    }

    /// Calls a sub-orchestrator and resolves to its output. Add `.instance_id(..)` to choose
    /// the child's id, `.retry(policy)` to retry it.
    #[track_caller]
    pub fn call_sub_orchestrator<O: Orchestrator>(
        &self,
        orchestrator: O,
        input: O::Input,
    ) -> SubOrchestration<O::Output> {
        let _ = orchestrator;
        SubOrchestration {
            ctx: self.clone(),
            name: O::NAME,
            input: Error::to_json(
                &input,
                format_args!("the input of sub-orchestrator `{}`", O::NAME),
            ),
            instance_id: None,
            retry: None,
            location: Location::caller(),
            _marker: PhantomData,
        }
    }

    fn schedule_sub_orchestration<T>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: String,
        location: &'static Location<'static>,
    ) -> Task<T> {
        let mut st = self.shared.lock();
        if let Some(cs) = &st.critical {
            return Task::failed(rule_error(
                2,
                format!(
                    "a sub-orchestration cannot be called inside a critical section (holding \
                     {:?}); release the locks first",
                    cs.lock_set
                ),
            ));
        }
        let parent = st.instance_id.clone();
        let mut child = String::new();
        let id = st.schedule(
            |id| {
                child = match instance_id {
                    Some(chosen) => chosen.to_string(),
                    None => format!("{parent}:{id}"),
                };
                Action::StartSubOrchestration {
                    id,
                    name: name.to_string(),
                    instance_id: child.clone(),
                    input,
                }
            },
            location,
        );
        drop(st);
        Task::scheduled(
            self.shared.clone(),
            id,
            TaskKind::SubOrchestration {
                name: name.to_string(),
                instance_id: child,
            },
        )
    }

    /// A durable timer that fires at `at`. Dropping the future cancels the wait.
    #[track_caller]
    pub fn create_timer(&self, at: DateTime<Utc>) -> Timer {
        self.timer_at(at, Location::caller())
    }

    /// A durable timer that fires `duration` after the current orchestration time.
    #[track_caller]
    pub fn sleep(&self, duration: Duration) -> Timer {
        let at = self.current_utc_datetime() + to_chrono(duration);
        self.timer_at(at, Location::caller())
    }

    fn timer_at(&self, at: DateTime<Utc>, location: &'static Location<'static>) -> Timer {
        let id = self
            .shared
            .lock()
            .schedule(|id| Action::CreateTimer { id, fire_at: at }, location);
        Timer {
            shared: self.shared.clone(),
            id,
            done: false,
        }
    }

    /// Waits for the external event `name` (matched case-insensitively) and resolves to its
    /// payload. Events that arrived before anyone waited are delivered in arrival order.
    pub fn wait_for_event<T: DeserializeOwned>(&self, name: &str) -> EventWait<T> {
        let id = self.shared.lock().wait_event(name);
        EventWait {
            shared: self.shared.clone(),
            id,
            name: name.to_string(),
            done: false,
            _marker: PhantomData,
        }
    }

    /// Waits for the external event `name` for at most `timeout` of orchestration time;
    /// `Ok(None)` when the time runs out first (the waiter is then withdrawn, so a later event
    /// stays buffered for the next wait).
    #[track_caller]
    pub fn wait_for_event_with_timeout<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + use<T> {
        let event = self.wait_for_event::<T>(name);
        let timer = self.sleep(timeout);
        async move {
            match select(event, timer).await {
                Either::Left((result, _timer)) => result.map(Some),
                Either::Right(((), _event)) => Ok(None),
            }
        }
    }

    /// Raises an event on another instance (fire-and-forget; sent when the turn commits).
    #[track_caller]
    pub fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        payload: impl Serialize,
    ) -> Result<(), Error> {
        let input = Error::to_json(&payload, "the event payload")?;
        self.shared.lock().schedule(
            |id| Action::SendEvent {
                id,
                instance_id: instance_id.to_string(),
                name: name.to_string(),
                input,
            },
            Location::caller(),
        );
        Ok(())
    }

    /// Waits for all futures; resolves to their outputs in input order, or to the first error
    /// (in input order) once all have finished.
    pub fn when_all<I, F, T>(&self, futures: I) -> impl Future<Output = Result<Vec<T>, Error>>
    where
        I: IntoIterator<Item = F>,
        F: IntoFuture<Output = Result<T, Error>>,
    {
        let all = futures::future::join_all(futures.into_iter().map(IntoFuture::into_future));
        async move { all.await.into_iter().collect() }
    }

    /// Waits for the first of the futures to finish; resolves to its index and output. The
    /// others are dropped (a dropped timer is cancelled).
    pub fn when_any<F>(&self, futures: Vec<F>) -> impl Future<Output = (usize, F::Output)>
    where
        F: IntoFuture,
    {
        let boxed: Vec<_> = futures
            .into_iter()
            .map(|f| Box::pin(f.into_future()))
            .collect();
        async move {
            if boxed.is_empty() {
                return futures::future::pending().await;
            }
            let (output, index, _rest) = futures::future::select_all(boxed).await;
            (index, output)
        }
    }

    /// Ends this execution and starts the orchestrator afresh with `input`, with an empty
    /// history (the eternal-orchestration pattern). Returns a future that never resolves, so
    /// `return ctx.continue_as_new(next).await;` reads naturally; calling it without awaiting
    /// and then returning works too. Unprocessed external events are dropped; use
    /// [`continue_as_new_preserving_events`](Self::continue_as_new_preserving_events) to keep them.
    /// The next execution keeps the instance's [`version`](Self::version), as in Durable
    /// Functions.
    pub fn continue_as_new<T>(&self, input: impl Serialize) -> ContinueAsNewFuture<T> {
        self.set_continue_as_new(input, false)
    }

    /// Like [`continue_as_new`](Self::continue_as_new), but external events that arrived and
    /// were not yet consumed are delivered to the next execution, in arrival order.
    pub fn continue_as_new_preserving_events<T>(
        &self,
        input: impl Serialize,
    ) -> ContinueAsNewFuture<T> {
        self.set_continue_as_new(input, true)
    }

    fn set_continue_as_new<T>(
        &self,
        input: impl Serialize,
        preserve: bool,
    ) -> ContinueAsNewFuture<T> {
        let mut st = self.shared.lock();
        match Error::to_json(&input, "the continue-as-new input") {
            Ok(input) => {
                st.continue_as_new = Some(ContinueAsNew {
                    input,
                    preserve_events: preserve,
                })
            }
            Err(e) => st.violation = Some(e),
        }
        ContinueAsNewFuture {
            _marker: PhantomData,
        }
    }

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

fn to_chrono(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

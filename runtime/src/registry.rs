//! The registry of orchestrators and activities a host can run, by name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::context::{
    Activity, ActivityContext, Dispatched, Entity, EntityContext, EntityFunction,
    OrchestrationContext, Orchestrator,
};
use crate::model::{BoxFuture, Error};

/// An activity with its types erased: JSON in, JSON out.
pub type ActivityFn =
    Arc<dyn Fn(ActivityContext, String) -> BoxFuture<Result<String, Error>> + Send + Sync>;
/// An orchestrator with its types erased: JSON in, JSON out.
pub type OrchestratorFn =
    Arc<dyn Fn(OrchestrationContext, String) -> BoxFuture<Result<String, Error>> + Send + Sync>;

/// An entity with its types erased: one operation against the state in its context.
pub type EntityFn =
    Arc<dyn Fn(EntityContext) -> BoxFuture<Result<Dispatched, Error>> + Send + Sync>;

/// Something that can be registered with a runtime: the handles of `#[activity]` and
/// `#[orchestrator]` functions.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered with a runtime",
    label = "expected a function marked `#[orchestrator]` or `#[activity]`"
)]
pub trait Register {
    /// Adds this function to the registry.
    fn register(self, registry: &mut Registry);
}

/// Whether a JSON text fits an orchestrator's input type.
type InputCheck = fn(&str) -> Result<(), Error>;

/// Orchestrators, activities and entities by registered name.
#[derive(Default, Clone)]
pub struct Registry {
    activities: HashMap<String, ActivityFn>,
    orchestrators: HashMap<String, OrchestratorFn>,
    /// Each orchestrator's input check: does a JSON text fit its input type?
    orchestrator_inputs: HashMap<String, InputCheck>,
    entities: HashMap<String, EntityFn>,
    duplicates: Vec<String>,
}

fn decode<T: serde::de::DeserializeOwned>(kind: &str, name: &str, input: &str) -> Result<T, Error> {
    serde_json::from_str(input).map_err(|e| {
        Error::serialization(
            format_args!("the input of {kind} `{name}` does not fit its input type"),
            e,
        )
    })
}

fn encode<T: serde::Serialize>(kind: &str, name: &str, output: &T) -> Result<String, Error> {
    Error::to_json(output, format_args!("the output of {kind} `{name}`"))
}

fn check_input<O: Orchestrator>(input: &str) -> Result<(), Error> {
    decode::<O::Input>("orchestrator", O::NAME, input).map(drop)
}

impl Registry {
    /// Registers an activity under its name.
    pub fn add_activity<A: Activity>(&mut self) {
        let f: ActivityFn = Arc::new(|ctx, input| {
            let input = decode::<A::Input>("activity", A::NAME, &input);
            Box::pin(async move {
                let output = A::run(ctx, input?).await?;
                encode("activity", A::NAME, &output)
            })
        });
        self.add_activity_fn::<A>(f);
    }

    /// Registers an orchestrator under its name.
    pub fn add_orchestrator<O: Orchestrator>(&mut self) {
        let f: OrchestratorFn = Arc::new(|ctx, input| {
            let input = decode::<O::Input>("orchestrator", O::NAME, &input);
            Box::pin(async move {
                let output = O::run(ctx, input?).await?;
                encode("orchestrator", O::NAME, &output)
            })
        });
        self.add_orchestrator_fn::<O>(f);
    }

    /// Registers `f` as the activity named `A::NAME` (its own code, or a test's mock).
    pub(crate) fn add_activity_fn<A: Activity>(&mut self, f: ActivityFn) {
        if self.activities.insert(A::NAME.to_string(), f).is_some() {
            self.duplicates.push(format!("activity `{}`", A::NAME));
        }
    }

    /// Registers `f` as the orchestrator named `O::NAME` (its own code, or a test's mock).
    pub(crate) fn add_orchestrator_fn<O: Orchestrator>(&mut self, f: OrchestratorFn) {
        self.orchestrator_inputs
            .insert(O::NAME.to_string(), check_input::<O>);
        if self.orchestrators.insert(O::NAME.to_string(), f).is_some() {
            self.duplicates.push(format!("orchestrator `{}`", O::NAME));
        }
    }

    /// Registers a class-style entity under its (lower-case) name.
    pub fn add_entity<E: Entity>(&mut self) {
        let f: EntityFn = Arc::new(|ctx: EntityContext| {
            Box::pin(async move {
                let (state, operation, input) = {
                    let st = ctx.lock();
                    (st.state.clone(), st.operation.clone(), st.input.clone())
                };
                if operation == "delete" && !E::OPERATIONS.contains(&"delete") {
                    ctx.delete_state();
                    return Ok(Dispatched {
                        output: "null".to_string(),
                        mutated: true,
                    });
                }
                let mut value: E = match state.as_deref() {
                    Some(json) => serde_json::from_str(json).map_err(|e| {
                        Error::serialization(
                            format_args!(
                                "the stored state of entity `{}` does not fit its type",
                                E::NAME
                            ),
                            e,
                        )
                    })?,
                    None => E::default(),
                };
                let dispatched = value.dispatch(&ctx, &operation, &input).await?;
                if dispatched.mutated && !ctx.lock().deleted {
                    let json =
                        Error::to_json(&value, format_args!("the state of entity `{}`", E::NAME))?;
                    ctx.lock().state = Some(json);
                }
                Ok(dispatched)
            })
        });
        self.insert_entity(E::NAME, f);
    }

    /// Registers a function-style entity under its (lower-case) name.
    pub fn add_entity_function<F: EntityFunction>(&mut self) {
        let f: EntityFn = Arc::new(|ctx: EntityContext| {
            Box::pin(async move {
                F::run(ctx.clone()).await?;
                let output = ctx
                    .lock()
                    .result
                    .take()
                    .unwrap_or_else(|| "null".to_string());
                Ok(Dispatched {
                    output,
                    mutated: true,
                })
            })
        });
        self.insert_entity(F::NAME, f);
    }

    fn insert_entity(&mut self, name: &str, f: EntityFn) {
        if self.entities.insert(name.to_lowercase(), f).is_some() {
            self.duplicates.push(format!("entity `{name}`"));
        }
    }

    /// The entity registered under `name` (case-insensitive).
    pub fn entity(&self, name: &str) -> Option<&EntityFn> {
        self.entities.get(&name.to_lowercase())
    }

    /// The activity registered under `name`.
    pub fn activity(&self, name: &str) -> Option<&ActivityFn> {
        self.activities.get(name)
    }

    /// The orchestrator registered under `name`.
    pub fn orchestrator(&self, name: &str) -> Option<&OrchestratorFn> {
        self.orchestrators.get(name)
    }

    /// Whether `input` (JSON text) fits the input type of the orchestrator registered under
    /// `name`: `None` when there is no such orchestrator, else the error a start with this
    /// input would fail with.
    pub fn check_orchestrator_input(&self, name: &str, input: &str) -> Option<Result<(), Error>> {
        self.orchestrator_inputs.get(name).map(|check| check(input))
    }

    /// Names registered twice (an error when the runtime starts).
    pub(crate) fn duplicates(&self) -> &[String] {
        &self.duplicates
    }
}

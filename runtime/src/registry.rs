//! The registry of orchestrators and activities a host can run, by name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::activity::ActivityContext;
use crate::error::Error;
use crate::function::{Activity, BoxFuture, Orchestrator};
use crate::orchestration::OrchestrationContext;

/// An activity with its types erased: JSON in, JSON out.
pub type ActivityFn =
    Arc<dyn Fn(ActivityContext, String) -> BoxFuture<Result<String, Error>> + Send + Sync>;
/// An orchestrator with its types erased: JSON in, JSON out.
pub type OrchestratorFn =
    Arc<dyn Fn(OrchestrationContext, String) -> BoxFuture<Result<String, Error>> + Send + Sync>;

/// Orchestrators and activities by registered name.
#[derive(Default, Clone)]
pub struct Registry {
    activities: HashMap<String, ActivityFn>,
    orchestrators: HashMap<String, OrchestratorFn>,
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

impl Registry {
    /// Registers an activity under its name.
    pub fn activity<A: Activity>(&mut self) {
        let f: ActivityFn = Arc::new(|ctx, input| {
            let input = decode::<A::Input>("activity", A::NAME, &input);
            Box::pin(async move {
                let output = A::run(ctx, input?).await?;
                encode("activity", A::NAME, &output)
            })
        });
        if self.activities.insert(A::NAME.to_string(), f).is_some() {
            self.duplicates.push(format!("activity `{}`", A::NAME));
        }
    }

    /// Registers an orchestrator under its name.
    pub fn orchestrator<O: Orchestrator>(&mut self) {
        let f: OrchestratorFn = Arc::new(|ctx, input| {
            let input = decode::<O::Input>("orchestrator", O::NAME, &input);
            Box::pin(async move {
                let output = O::run(ctx, input?).await?;
                encode("orchestrator", O::NAME, &output)
            })
        });
        if self.orchestrators.insert(O::NAME.to_string(), f).is_some() {
            self.duplicates.push(format!("orchestrator `{}`", O::NAME));
        }
    }

    /// The activity registered under `name`.
    pub fn get_activity(&self, name: &str) -> Option<&ActivityFn> {
        self.activities.get(name)
    }

    /// The orchestrator registered under `name`.
    pub fn orchestrator_named(&self, name: &str) -> Option<&OrchestratorFn> {
        self.orchestrators.get(name)
    }

    /// Names registered twice (an error when the runtime starts).
    pub(crate) fn duplicates(&self) -> &[String] {
        &self.duplicates
    }
}

//! Starting instances: `start`, `start_by_name` and the request they return.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use super::Client;
use crate::model::{Error, ErrorKind, InstanceId, validate_version};
use crate::store::{NewInstance, StoreError};

/// How to start an instance, besides its orchestrator and input.
#[derive(Default)]
pub(super) struct StartOptions {
    /// The id to use instead of a generated one.
    pub(super) instance_id: Option<String>,
    /// Start no earlier than this.
    pub(super) start_at: Option<DateTime<Utc>>,
    /// The version to start under instead of the client's default.
    pub(super) version: Option<String>,
    /// Replace a pending or running instance with the same id.
    pub(super) replace: bool,
}

impl Client {
    pub(super) async fn start_instance(
        &self,
        name: String,
        input: String,
        mut options: StartOptions,
        typed: bool,
    ) -> Result<InstanceId, Error> {
        options.version = options.version.or_else(|| self.default_version.clone());
        if let Some(version) = &options.version {
            validate_version(version)?;
        }
        let mut input = input;
        if let Some(registry) = &self.registry {
            if typed {
                // Serialized from the orchestrator's own input type: only the name can be
                // wrong (a handle of another host's code), and decoding it again would be work
                // on every start for nothing.
                if registry.orchestrator(&name).is_none() {
                    return Err(unregistered(&name));
                }
                return self.create(name, input, options).await;
            }
            // Durable Functions' JavaScript client sends the JSON string `""` when it has no
            // input: for an orchestrator that takes `()` or an `Option`, that is no input.
            if input == "\"\""
                && matches!(
                    registry.check_orchestrator_input(&name, &input),
                    Some(Err(_))
                )
                && matches!(
                    registry.check_orchestrator_input(&name, "null"),
                    Some(Ok(()))
                )
            {
                input = "null".to_string();
            }
            // Refused now rather than accepted and failed later, when the host has the code.
            match registry.check_orchestrator_input(&name, &input) {
                None => return Err(unregistered(&name)),
                Some(Err(mismatch)) => return Err(mismatch),
                Some(Ok(())) => {}
            }
        }
        self.create(name, input, options).await
    }

    async fn create(
        &self,
        name: String,
        input: String,
        options: StartOptions,
    ) -> Result<InstanceId, Error> {
        let id = match options.instance_id {
            Some(id) => validate_id(id)?,
            None => InstanceId::new(self.ids.next()),
        };
        let instance = NewInstance {
            instance_id: id.to_string(),
            name,
            input,
            execution_id: self.ids.next(),
            parent: None,
            created_at: self.clock.now(),
            start_at: options.start_at,
            replace_running: options.replace,
            version: options.version,
        };
        match &self.starter {
            Some(host) => host.start(instance).await,
            None => self.store.create_instance(instance).await,
        }
        .map_err(StoreError::into_error)?;
        Ok(id)
    }
}

fn unregistered(name: &str) -> Error {
    Error::new(
        ErrorKind::UnknownFunction,
        format!("no orchestrator named `{name}` is registered"),
    )
}

fn validate_id(id: String) -> Result<InstanceId, Error> {
    if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control()) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "an instance id must be 1 to 256 characters, none of them control characters",
        ));
    }
    if id.starts_with('@') {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "instance id `{id}` starts with `@`, which marks entities (`@name@key`); \
                 choose an id that does not"
            ),
        ));
    }
    Ok(InstanceId::new(id))
}

/// A request to start an orchestration; `.await` it to start.
#[must_use = "the orchestration is only started when the request is awaited"]
pub struct StartRequest<'a, O> {
    pub(super) client: &'a Client,
    pub(super) name: String,
    pub(super) input: Result<String, Error>,
    pub(super) instance_id: Option<String>,
    pub(super) start_at: Option<DateTime<Utc>>,
    pub(super) version: Option<String>,
    pub(super) replace: bool,
    /// Started through a typed handle, so the input fits the orchestrator's type.
    pub(super) typed: bool,
    pub(super) _marker: PhantomData<fn() -> O>,
}

impl<O> StartRequest<'_, O> {
    /// Uses this instance id instead of a generated one.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Starts no earlier than `at` (the instance is Pending until then). Events and
    /// suspensions sent to the instance before then wait, queued, and reach the orchestrator
    /// once it has started; a termination ends it at once.
    pub fn start_at(mut self, at: DateTime<Utc>) -> Self {
        self.start_at = Some(at);
        self
    }

    /// Starts the instance under this version instead of the client's
    /// [default](Client::default_version). A host runs it only if its version match strategy
    /// allows (see [`RuntimeBuilder::version_match`](crate::RuntimeBuilder::version_match));
    /// the orchestrator reads it with
    /// [`OrchestrationContext::version`](crate::OrchestrationContext::version). An empty or
    /// over-long version is refused when the request is awaited.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Replaces an instance with the same id even when it is pending or running.
    pub fn replace_existing(mut self) -> Self {
        self.replace = true;
        self
    }
}

impl<'a, O> IntoFuture for StartRequest<'a, O> {
    type Output = Result<InstanceId, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let input = self.input?;
            self.client
                .start_instance(
                    self.name,
                    input,
                    StartOptions {
                        instance_id: self.instance_id,
                        start_at: self.start_at,
                        version: self.version,
                        replace: self.replace,
                    },
                    self.typed,
                )
                .await
        })
    }
}

//! Starting instances: `start`, `start_by_name` and the request they return.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Client;
use crate::context::function::Orchestrator;
use crate::model::{Error, ErrorKind, InstanceId};
use crate::store::{NewInstance, StoreError};

impl Client {
    /// Starts an orchestration. Await the returned request to start it with a generated id, or
    /// configure it first with `.instance_id(..)`, `.start_at(..)` or `.replace_existing()`.
    ///
    /// Starting an id that is pending or running is refused with
    /// [`ErrorKind::InstanceAlreadyExists`] unless `.replace_existing()` is set.
    pub fn start<O: Orchestrator>(&self, orchestrator: O, input: O::Input) -> StartRequest<'_, O> {
        let _ = orchestrator;
        let input = Error::to_json(
            &input,
            format_args!("the input of orchestrator `{}`", O::NAME),
        );
        StartRequest {
            client: self,
            name: O::NAME.to_string(),
            input,
            instance_id: None,
            start_at: None,
            replace: false,
            _marker: PhantomData,
        }
    }

    /// Starts an orchestration by registered name with an untyped input (for tools and the HTTP
    /// API). When this client belongs to a host, an unregistered name is refused at once.
    pub fn start_by_name(&self, name: &str, input: impl Serialize) -> StartRequest<'_, ()> {
        let input = Error::to_json(&input, "the input");
        StartRequest {
            client: self,
            name: name.to_string(),
            input,
            instance_id: None,
            start_at: None,
            replace: false,
            _marker: PhantomData,
        }
    }

    pub(super) async fn start_instance(
        &self,
        name: String,
        input: String,
        instance_id: Option<String>,
        start_at: Option<DateTime<Utc>>,
        replace: bool,
    ) -> Result<InstanceId, Error> {
        if let Some(registry) = &self.registry
            && registry.orchestrator(&name).is_none()
        {
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!("no orchestrator named `{name}` is registered"),
            ));
        }
        let id = match instance_id {
            Some(id) => validate_id(id)?,
            None => InstanceId::random(),
        };
        self.store
            .create_instance(NewInstance {
                instance_id: id.to_string(),
                name,
                input,
                execution_id: uuid::Uuid::new_v4().simple().to_string(),
                parent: None,
                created_at: self.clock.now(),
                start_at,
                replace_running: replace,
            })
            .await
            .map_err(StoreError::into_error)?;
        Ok(id)
    }
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
    client: &'a Client,
    name: String,
    input: Result<String, Error>,
    instance_id: Option<String>,
    start_at: Option<DateTime<Utc>>,
    replace: bool,
    _marker: PhantomData<fn() -> O>,
}

impl<O> StartRequest<'_, O> {
    /// Uses this instance id instead of a generated one.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Starts no earlier than `at` (the instance is Pending until then).
    pub fn start_at(mut self, at: DateTime<Utc>) -> Self {
        self.start_at = Some(at);
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
                    self.instance_id,
                    self.start_at,
                    self.replace,
                )
                .await
        })
    }
}

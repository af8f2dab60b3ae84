//! Mocks: stand-ins for activities and sub-orchestrators, set up by their typed handles before
//! the test runtime starts, each recording the inputs it was called with.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use super::{ManualClock, TestRuntime};
use crate::context::{Activity, Orchestrator};
use crate::host::RuntimeBuilder;
use crate::model::{Error, ErrorKind};
use crate::registry::{ActivityFn, OrchestratorFn, Registry};

/// The calls a mock received: how many, and their inputs, typed. Cloning it gives another
/// view of the same record.
pub struct Calls<I> {
    inputs: Arc<Mutex<Vec<String>>>,
    input_type: PhantomData<fn() -> I>,
}

impl<I> Clone for Calls<I> {
    fn clone(&self) -> Self {
        Calls {
            inputs: self.inputs.clone(),
            input_type: PhantomData,
        }
    }
}

impl<I> std::fmt::Debug for Calls<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_list().entries(inputs.iter()).finish()
    }
}

impl<I: DeserializeOwned> Calls<I> {
    fn new() -> Self {
        Calls {
            inputs: Arc::new(Mutex::new(Vec::new())),
            input_type: PhantomData,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.inputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many times the mock was called. An activity runs at least once per scheduled
    /// call, so a retried activity counts each attempt.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The inputs of every call, in the order the calls came.
    pub fn inputs(&self) -> Vec<I> {
        self.lock()
            .iter()
            .map(|json| serde_json::from_str(json).expect("a recorded input decoded once already"))
            .collect()
    }

    /// The input of the latest call, if there was one.
    pub fn last_input(&self) -> Option<I> {
        self.inputs().pop()
    }

    /// Decodes a call's input; records it when it fits the function's input type.
    fn record(&self, kind: &str, name: &str, input: String) -> Result<I, Error> {
        let value = serde_json::from_str(&input).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("the input of mocked {kind} `{name}` does not fit its input type: {e}"),
            )
        })?;
        self.lock().push(input);
        Ok(value)
    }
}

/// A mock waiting for the runtime to start: what it stands in for, and how to install it.
struct Mock {
    kind: &'static str,
    name: &'static str,
    install: Box<dyn FnOnce(&mut Registry) + Send>,
}

impl Mock {
    /// Installs the mock, refusing one for a function that is also registered.
    fn install(self, registry: &mut Registry) -> Result<(), Error> {
        let registered = match self.kind {
            "activity" => registry.activity(self.name).is_some(),
            _ => registry.orchestrator(self.name).is_some(),
        };
        if registered {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{kind} `{name}` is both registered and mocked; a test either runs the real \
                     function or mocks it: remove `.register({name})` to use the mock",
                    kind = self.kind,
                    name = self.name
                ),
            ));
        }
        (self.install)(registry);
        Ok(())
    }

    /// A second mock of the same function is refused when the runtime starts.
    fn same_target(&self, other: &Mock) -> bool {
        self.kind == other.kind && self.name == other.name
    }

    fn describe(&self) -> String {
        format!("{} `{}`", self.kind, self.name)
    }
}

fn encode<T: serde::Serialize>(kind: &str, name: &str, output: &T) -> Result<String, Error> {
    Error::to_json(output, format_args!("the output of mocked {kind} `{name}`"))
}

/// Sets up a [`TestRuntime`] with mocks: made by [`TestRuntime::builder`], started with
/// [`start`](TestRuntimeBuilder::start).
#[must_use = "call .start().await to run the test runtime"]
pub struct TestRuntimeBuilder {
    builder: RuntimeBuilder,
    clock: ManualClock,
    mocks: Vec<Mock>,
}

impl TestRuntimeBuilder {
    pub(super) fn new(builder: RuntimeBuilder) -> Self {
        TestRuntimeBuilder {
            builder,
            clock: ManualClock::new(),
            mocks: Vec::new(),
        }
    }

    /// Runs on this manual clock (a fresh one by default).
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = clock;
        self
    }

    /// Mocks activity `handle` with a closure from its input to its result: the orchestrators
    /// under test call it instead of the activity's code, which need not be registered (and
    /// must not be). Returns the record of its calls.
    ///
    /// ```
    /// # use durable::prelude::*;
    /// # use durable::testing::TestRuntime;
    /// # #[activity]
    /// # async fn charge(_ctx: ActivityContext, cents: u64) -> Result<String, Error> { unreachable!() }
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// let mut test = TestRuntime::builder(Runtime::builder());
    /// let charges = test.mock_activity(charge, |cents: u64| {
    ///     if cents > 10_000 { Err("card declined".into()) } else { Ok(format!("r-{cents}")) }
    /// });
    /// let test = test.start().await?;
    /// # assert_eq!(charges.count(), 0);
    /// # Ok(()) }
    /// ```
    pub fn mock_activity<A: Activity>(
        &mut self,
        handle: A,
        respond: impl Fn(A::Input) -> Result<A::Output, Error> + Send + Sync + 'static,
    ) -> Calls<A::Input> {
        self.mock_activity_async(handle, move |input| std::future::ready(respond(input)))
    }

    /// Mocks activity `handle` with an async closure, for a mock that awaits (a channel the
    /// test controls, say). Otherwise as [`mock_activity`](Self::mock_activity).
    pub fn mock_activity_async<A, F, Fut>(&mut self, handle: A, respond: F) -> Calls<A::Input>
    where
        A: Activity,
        F: Fn(A::Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A::Output, Error>> + Send + 'static,
    {
        let _ = handle;
        let calls = Calls::<A::Input>::new();
        let record = calls.clone();
        let respond = Arc::new(respond);
        let f: ActivityFn = Arc::new(move |_ctx, input| {
            let input = record.record("activity", A::NAME, input);
            let respond = respond.clone();
            Box::pin(async move {
                let output = respond(input?).await?;
                encode("activity", A::NAME, &output)
            })
        });
        self.mocks.push(Mock {
            kind: "activity",
            name: A::NAME,
            install: Box::new(move |registry| registry.add_activity_fn::<A>(f)),
        });
        calls
    }

    /// Mocks orchestrator `handle` where it runs as a sub-orchestration (or is started by a
    /// client): each instance of it ends at once with the closure's result. Its code need not
    /// be registered (and must not be). Returns the record of its calls.
    ///
    /// The closure runs inside an orchestration turn, so it gets no async form: it answers
    /// from its input alone.
    pub fn mock_sub_orchestrator<O: Orchestrator>(
        &mut self,
        handle: O,
        respond: impl Fn(O::Input) -> Result<O::Output, Error> + Send + Sync + 'static,
    ) -> Calls<O::Input> {
        let _ = handle;
        let calls = Calls::<O::Input>::new();
        let record = calls.clone();
        let respond = Arc::new(respond);
        let f: OrchestratorFn = Arc::new(move |_ctx, input| {
            let result = record
                .record("orchestrator", O::NAME, input)
                .and_then(|input| respond(input))
                .and_then(|output| encode("orchestrator", O::NAME, &output));
            Box::pin(std::future::ready(result))
        });
        self.mocks.push(Mock {
            kind: "orchestrator",
            name: O::NAME,
            install: Box::new(move |registry| registry.add_orchestrator_fn::<O>(f)),
        });
        calls
    }

    /// Starts the runtime with the mocks installed. Fails when a mocked function is also
    /// registered, or mocked twice.
    pub async fn start(mut self) -> Result<TestRuntime, Error> {
        let mocks = std::mem::take(&mut self.mocks);
        for (i, mock) in mocks.iter().enumerate() {
            if mocks[..i].iter().any(|m| m.same_target(mock)) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{} is mocked twice; mock each function once",
                        mock.describe()
                    ),
                ));
            }
        }
        for mock in mocks {
            mock.install(&mut self.builder.registry)?;
        }
        TestRuntime::start_with_clock(self.builder, self.clock).await
    }
}

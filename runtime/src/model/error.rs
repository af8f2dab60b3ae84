//! The error type users see, and the failure details recorded in history.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What kind of failure an [`Error`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An error returned by user code (`Error::msg`, or a converted user error).
    Application,
    /// A scheduled activity failed; the message says which one and why.
    ActivityFailed {
        /// The activity's registered name.
        name: String,
    },
    /// A sub-orchestration failed; the message says which one and why.
    SubOrchestrationFailed {
        /// The sub-orchestrator's registered name.
        name: String,
        /// The sub-orchestration's instance id.
        instance_id: String,
    },
    /// An entity operation called from an orchestration failed; the message says which one and
    /// why. The operation's state change was rolled back.
    EntityOperationFailed {
        /// The entity (`@name@key`).
        entity_id: String,
        /// The operation.
        operation: String,
    },
    /// A rule of critical sections was broken; the message names the rule.
    CriticalSection,
    /// The orchestrator's code no longer matches its recorded history.
    Nondeterminism,
    /// The orchestrator awaited a future that is not durable (not one of its context's), with
    /// nothing durable outstanding: nothing could ever wake it.
    NonDurableWait,
    /// User code panicked.
    Panic,
    /// A payload could not be serialized or deserialized.
    Serialization,
    /// No orchestrator or activity of that name is registered.
    UnknownFunction,
    /// The instance does not exist.
    InstanceNotFound,
    /// An instance with that id is already pending or running.
    InstanceAlreadyExists,
    /// The instance is not in a state that accepts the operation (e.g. it has finished).
    InstanceNotRunning,
    /// A wait ran out of time.
    Timeout,
    /// The caller passed something invalid.
    InvalidArgument,
    /// The store failed.
    Store,
    /// The runtime is shutting down or has stopped.
    Shutdown,
}

impl ErrorKind {
    /// A short, stable name for the kind, as recorded in failure details.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Application => "Application",
            ErrorKind::ActivityFailed { .. } => "ActivityFailed",
            ErrorKind::SubOrchestrationFailed { .. } => "SubOrchestrationFailed",
            ErrorKind::EntityOperationFailed { .. } => "EntityOperationFailed",
            ErrorKind::CriticalSection => "CriticalSection",
            ErrorKind::Nondeterminism => "Nondeterminism",
            ErrorKind::NonDurableWait => "NonDurableWait",
            ErrorKind::Panic => "Panic",
            ErrorKind::Serialization => "Serialization",
            ErrorKind::UnknownFunction => "UnknownFunction",
            ErrorKind::InstanceNotFound => "InstanceNotFound",
            ErrorKind::InstanceAlreadyExists => "InstanceAlreadyExists",
            ErrorKind::InstanceNotRunning => "InstanceNotRunning",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::Store => "Store",
            ErrorKind::Shutdown => "Shutdown",
        }
    }
}

/// A failure as recorded in history and instance status: its kind and message, and the
/// failure that caused it, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    /// The kind of error ([`ErrorKind::as_str`]), or the user's error type name.
    pub error_type: String,
    /// The human-readable message.
    pub message: String,
    /// The failure that caused this one (an activity's failure inside an orchestration's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<FailureDetails>>,
}

impl fmt::Display for FailureDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The error type of durable functions and of every runtime and client call.
///
/// `Error::msg("text")` builds an application error; any `std::error::Error` converts into it
/// with `?`, so activities can use `?` on I/O and parsing errors directly. A failed activity
/// surfaces in the orchestrator as an `Error` of kind [`ErrorKind::ActivityFailed`] whose message
/// names the activity and the cause.
///
/// ```
/// use durable::{Error, ErrorKind};
///
/// let e = Error::msg("card declined");
/// assert_eq!(e.kind(), &ErrorKind::Application);
/// assert_eq!(e.to_string(), "card declined");
///
/// let parsed: Result<i32, Error> = "x".parse::<i32>().map_err(Error::from);
/// assert!(parsed.unwrap_err().to_string().contains("invalid digit"));
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    cause: Option<FailureDetails>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An application error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Application, message)
    }

    /// An error of the given kind with this message.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.to_string(),
                cause: None,
                source: None,
            }),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The recorded failure that caused this error (for a failed activity or sub-orchestration:
    /// the failure its code reported).
    pub fn cause(&self) -> Option<&FailureDetails> {
        self.inner.cause.as_ref()
    }

    /// Attaches the failure that caused this error.
    pub fn with_cause(mut self, cause: FailureDetails) -> Self {
        self.inner.cause = Some(cause);
        self
    }

    /// The failure details recorded in history for this error.
    pub fn to_failure(&self) -> FailureDetails {
        FailureDetails {
            error_type: self.inner.kind.as_str().to_string(),
            message: self.inner.message.clone(),
            cause: self.inner.cause.clone().map(Box::new),
        }
    }

    /// Rebuilds an application-level error from recorded failure details.
    pub fn from_failure(failure: &FailureDetails) -> Self {
        let kind = match failure.error_type.as_str() {
            "Nondeterminism" => ErrorKind::Nondeterminism,
            "NonDurableWait" => ErrorKind::NonDurableWait,
            "CriticalSection" => ErrorKind::CriticalSection,
            "Panic" => ErrorKind::Panic,
            "Serialization" => ErrorKind::Serialization,
            "UnknownFunction" => ErrorKind::UnknownFunction,
            "Timeout" => ErrorKind::Timeout,
            _ => ErrorKind::Application,
        };
        let mut e = Error::new(kind, &failure.message);
        e.inner.cause = failure.cause.as_deref().cloned();
        e
    }

    pub(crate) fn serialization(what: impl fmt::Display, err: serde_json::Error) -> Self {
        Error::new(ErrorKind::Serialization, format!("{what}: {err}"))
    }

    /// Serializes a payload to JSON text; `what` names it in the error ("the input of
    /// activity `x`"), which says it "is not serializable".
    pub(crate) fn to_json<T: serde::Serialize + ?Sized>(
        value: &T,
        what: impl fmt::Display,
    ) -> Result<String, Error> {
        serde_json::to_string(value)
            .map_err(|e| Error::serialization(format_args!("{what} is not serializable"), e))
    }

    /// Whether this error is of kind [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(cause) = &self.inner.cause {
            d.field("cause", cause);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

/// Any standard error converts into an application [`Error`], keeping it as the source; this
/// is what lets `?` work on I/O, parsing and HTTP errors inside activities.
impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Error {
            inner: Box::new(Inner {
                kind: ErrorKind::Application,
                message,
                cause: None,
                source: Some(Arc::new(err)),
            }),
        }
    }
}

/// A view of [`Error`] as a standard error, for code that works with `Box<dyn Error>`.
#[derive(Debug)]
struct StdError(Error);

impl fmt::Display for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(err: Error) -> Self {
        Box::new(StdError(err))
    }
}

impl From<Error> for Box<dyn std::error::Error + 'static> {
    fn from(err: Error) -> Self {
        Box::new(StdError(err))
    }
}

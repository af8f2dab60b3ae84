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
    /// The instance's version is one this host may not run, and the host's version failure
    /// strategy fails such instances (see [`VersionFailure`](crate::VersionFailure)).
    VersionMismatch,
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
            ErrorKind::VersionMismatch => "VersionMismatch",
        }
    }
}

/// A failure as recorded in history and instance status: its kind and message, and the
/// failure that caused it, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    /// The kind of error ([`ErrorKind::as_str`]), [`SOURCE`](FailureDetails::SOURCE) for a
    /// level of an error's source chain, or the user's error type name.
    pub error_type: String,
    /// The human-readable message.
    pub message: String,
    /// The failure that caused this one: an activity's failure inside an orchestration's, or
    /// the next level of an error's source chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<FailureDetails>>,
}

impl FailureDetails {
    /// The `error_type` of a cause recorded from an error's `source()`: one level of the
    /// chain of the error a durable function failed with. Its message is that level's own.
    pub const SOURCE: &'static str = "Source";
}

impl fmt::Display for FailureDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The error type of durable functions and of every runtime and client call.
///
/// `Error::msg(text)` builds an application error, and so does `.into()` on a `&str` or a
/// `String`: an activity fails with `Err("out of stock".into())`. Any
/// `std::error::Error + Send + Sync + 'static` converts into it with `?`, so activities can use
/// `?` on I/O and parsing errors directly; the error's message is followed by its sources'
/// (`top: source`), and each source is recorded as one level of [`cause`](Error::cause), so a
/// client reading the failed instance sees the chain. A failed activity surfaces in the
/// orchestrator as an `Error` of kind [`ErrorKind::ActivityFailed`] whose message names the
/// activity and the cause.
///
/// ```
/// use durable::{Error, ErrorKind};
///
/// let e = Error::msg("card declined");
/// assert_eq!(e.kind(), &ErrorKind::Application);
/// assert_eq!(e.to_string(), "card declined");
///
/// let e: Error = "out of stock".into();
/// assert_eq!(e.kind(), &ErrorKind::Application);
/// assert_eq!(e.to_string(), "out of stock");
///
/// fn parse(text: &str) -> Result<i32, Error> {
///     Ok(text.parse::<i32>()?)
/// }
/// assert!(parse("x").unwrap_err().to_string().contains("invalid digit"));
/// ```
///
/// # Conversions
///
/// The one `From` impl covers everything that converts into
/// `Box<dyn std::error::Error + Send + Sync>`: strings (`&str`, `String`, `Cow<str>`), every
/// standard error, boxed errors and `anyhow::Error`. A separate
/// `From<&str>` beside a blanket `From<E: std::error::Error>` would not compile (the standard
/// library may one day implement `Error` for `&str`), so this is the only way to accept both.
/// Its price: `Error` itself must not convert into
/// `Box<dyn std::error::Error + Send + Sync>`, or the impl would overlap with `From<T> for T`.
/// It does convert into the plain `Box<dyn std::error::Error>`, so
/// `main() -> Result<(), Box<dyn std::error::Error>>` can use `?` on it; for the `Send + Sync`
/// box, call [`Error::into_boxed`]. With the `anyhow` feature it also converts into
/// `anyhow::Error`.
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

    /// The recorded failure that caused this error: for a failed activity or
    /// sub-orchestration, the failure its code reported; for an error converted from a
    /// standard error, its first `source()` (each further source is that cause's cause).
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
            "VersionMismatch" => ErrorKind::VersionMismatch,
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

/// Anything that converts into `Box<dyn std::error::Error + Send + Sync>` converts into an
/// application [`Error`]: `&str`, `String` and `Cow<str>` (the message), every
/// `std::error::Error + Send + Sync + 'static` (kept as the source, its chain recorded as
/// causes), a boxed error, and an `anyhow::Error`. This is what lets an activity write
/// `Err("out of stock".into())`, and `?` on I/O, parsing and HTTP errors.
impl<E> From<E> for Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn from(err: E) -> Self {
        Error::from_boxed(err.into())
    }
}

impl Error {
    /// An application error from a boxed standard error: the message is the error's followed
    /// by each of its sources' (`top: source: source's source`), and each source becomes one
    /// level of [`cause`](Error::cause) (error type [`SOURCE`](FailureDetails::SOURCE)).
    fn from_boxed(err: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        let mut message = err.to_string();
        let mut levels = Vec::new();
        let mut source = err.source();
        while let Some(s) = source {
            let level = s.to_string();
            message.push_str(": ");
            message.push_str(&level);
            levels.push(level);
            source = s.source();
        }
        let cause = levels.into_iter().rev().fold(None, |cause, message| {
            Some(FailureDetails {
                error_type: FailureDetails::SOURCE.to_string(),
                message,
                cause: cause.map(Box::new),
            })
        });
        Error {
            inner: Box::new(Inner {
                kind: ErrorKind::Application,
                message,
                cause,
                source: Some(Arc::from(err)),
            }),
        }
    }

    /// This error as a boxed standard error, for code that collects errors as
    /// `Box<dyn std::error::Error + Send + Sync>`. Its `source()` is the error this one was
    /// converted from, or else the recorded cause.
    ///
    /// `Error` converts into the non-`Send` `Box<dyn std::error::Error>` with `?` (so a
    /// `main() -> Result<(), Box<dyn std::error::Error>>` can use `?` on it), but not into the
    /// `Send + Sync` box: that conversion would stop `&str`, `String` and every standard error
    /// from converting into `Error` (see [`Error`]'s docs).
    pub fn into_boxed(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        Box::new(StdError(self))
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
        let inner = &self.0.inner;
        match (&inner.source, &inner.cause) {
            (Some(source), _) => Some(source.as_ref() as &(dyn std::error::Error + 'static)),
            (None, Some(cause)) => Some(cause as &(dyn std::error::Error + 'static)),
            (None, None) => None,
        }
    }
}

/// A recorded failure is a standard error whose source is its cause, so a chain of recorded
/// failures reads as an error chain.
impl std::error::Error for FailureDetails {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// `?` on a `durable::Error` in a function returning `Result<_, Box<dyn std::error::Error>>`.
/// (Not `Box<dyn std::error::Error + Send + Sync>`: use [`Error::into_boxed`] for that.)
impl From<Error> for Box<dyn std::error::Error + 'static> {
    fn from(err: Error) -> Self {
        Box::new(StdError(err))
    }
}

/// With the `anyhow` feature: `?` on a `durable::Error` in a function returning
/// `anyhow::Result`. The recorded causes become the `anyhow::Error`'s chain. (The other way,
/// `anyhow::Error` into `durable::Error`, needs no feature: see [`Error`]'s `From` impl.)
#[cfg(feature = "anyhow")]
impl From<Error> for anyhow::Error {
    fn from(err: Error) -> Self {
        anyhow::Error::new(StdError(err))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A two-level error: "loading config" caused by an I/O error.
    #[derive(Debug)]
    struct Config(std::io::Error);

    impl fmt::Display for Config {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading config")
        }
    }

    impl std::error::Error for Config {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn config_error() -> Config {
        Config(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no file `app.toml`",
        ))
    }

    #[test]
    fn strings_convert_into_application_errors() {
        let errors: [Error; 3] = [
            "out of stock".into(),
            String::from("out of stock").into(),
            Cow::Borrowed("out of stock").into(),
        ];
        for e in errors {
            assert_eq!(e.kind(), &ErrorKind::Application);
            assert_eq!(e.message(), "out of stock");
            assert_eq!(e.cause(), None);
            assert_eq!(
                e.to_failure(),
                FailureDetails {
                    error_type: "Application".into(),
                    message: "out of stock".into(),
                    cause: None,
                }
            );
        }
    }

    #[test]
    fn question_mark_converts_standard_errors() {
        fn parse(text: &str) -> Result<u8, Error> {
            Ok(text.parse::<u8>()?)
        }
        let e = parse("x").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Application);
        assert_eq!(e.message(), "invalid digit found in string");
    }

    #[test]
    fn a_source_chain_is_kept_level_by_level() {
        let e = Error::from(config_error());
        // The message keeps the concatenated form.
        assert_eq!(e.message(), "loading config: no file `app.toml`");
        let failure = e.to_failure();
        assert_eq!(failure.error_type, "Application");
        assert_eq!(failure.message, "loading config: no file `app.toml`");
        let cause = failure.cause.as_deref().expect("the source is recorded");
        assert_eq!(cause.error_type, FailureDetails::SOURCE);
        assert_eq!(cause.message, "no file `app.toml`");
        assert_eq!(cause.cause, None);
        // Through history and back.
        let rebuilt = Error::from_failure(&failure);
        assert_eq!(rebuilt.cause(), Some(cause));
    }

    #[test]
    fn every_level_of_a_deep_chain_is_a_cause() {
        #[derive(Debug)]
        struct Level(&'static str, Option<Box<Level>>);
        impl fmt::Display for Level {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Level {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let chain = Level(
            "a",
            Some(Box::new(Level("b", Some(Box::new(Level("c", None)))))),
        );
        let failure = Error::from(chain).to_failure();
        assert_eq!(failure.message, "a: b: c");
        let mut levels = Vec::new();
        let mut cause = failure.cause.as_deref();
        while let Some(c) = cause {
            levels.push((c.error_type.as_str(), c.message.as_str()));
            cause = c.cause.as_deref();
        }
        assert_eq!(levels, [("Source", "b"), ("Source", "c")]);
    }

    #[test]
    fn the_chain_serializes_as_nested_causes() {
        let json = serde_json::to_value(Error::from(config_error()).to_failure()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "errorType": "Application",
                "message": "loading config: no file `app.toml`",
                "cause": {"errorType": "Source", "message": "no file `app.toml`"},
            })
        );
    }

    #[test]
    fn boxed_views_keep_the_source() {
        let boxed = Error::from(config_error()).into_boxed();
        assert_eq!(boxed.to_string(), "loading config: no file `app.toml`");
        let source = boxed.source().expect("the converted error");
        assert!(source.is::<Config>());
        assert_eq!(source.source().unwrap().to_string(), "no file `app.toml`");

        // A recorded cause is the source when there is no error object.
        let failed = Error::new(
            ErrorKind::ActivityFailed {
                name: "ship".into(),
            },
            "activity `ship` failed: out of stock",
        )
        .with_cause(Error::msg("out of stock").to_failure());
        let boxed: Box<dyn std::error::Error> = failed.into();
        assert_eq!(boxed.source().unwrap().to_string(), "out of stock");
    }

    #[test]
    fn main_can_return_a_durable_error() {
        fn main_like() -> Result<(), Box<dyn std::error::Error>> {
            Err(Error::msg("boom"))?;
            Ok(())
        }
        assert_eq!(main_like().unwrap_err().to_string(), "boom");
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn anyhow_errors_convert_both_ways_keeping_the_chain() {
        use anyhow::Context as _;

        // anyhow -> durable, with `?`.
        fn read() -> Result<(), Error> {
            Err(config_error()).context("starting the shop")?;
            Ok(())
        }
        let e = read().unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Application);
        assert_eq!(
            e.message(),
            "starting the shop: loading config: no file `app.toml`"
        );
        let failure = e.to_failure();
        let first = failure.cause.as_deref().unwrap();
        assert_eq!(first.message, "loading config");
        assert_eq!(
            first.cause.as_deref().unwrap().message,
            "no file `app.toml`"
        );

        // durable -> anyhow, with `?`.
        fn run() -> anyhow::Result<()> {
            read()?;
            Ok(())
        }
        let e = run().unwrap_err();
        let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
        assert_eq!(
            chain[0],
            "starting the shop: loading config: no file `app.toml`"
        );
        assert!(chain.iter().any(|level| level == "no file `app.toml`"));
    }
}

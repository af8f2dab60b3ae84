//! What can go wrong, as the user sees it: a one-line message and an exit code.

use std::fmt;
use std::process::ExitCode;

/// The exit codes the CLI documents in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The host or store refused the operation, or it did not work out.
    Failed = 1,
    /// A bad flag or value (clap reports its own usage errors with this code too).
    Usage = 2,
    /// No such instance or entity.
    NotFound = 3,
    /// The host cannot be reached, or the store cannot be opened.
    Unreachable = 4,
    /// Ctrl-C.
    Interrupted = 130,
}

/// An error to report on stderr as `error: MESSAGE`, exiting with its code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong, on one line.
    pub message: String,
}

impl CliError {
    /// An error with this exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }

    /// The operation failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }

    /// A usage error found after parsing (a combination clap cannot check).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// No such instance or entity.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exit::NotFound, message)
    }

    /// The instance `id` does not exist (the host's wording).
    pub fn no_instance(id: &str) -> Self {
        Self::not_found(format!("no instance with id `{id}`"))
    }

    /// The process's exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A runtime error from working straight on a store.
impl From<durable::Error> for CliError {
    fn from(e: durable::Error) -> Self {
        let exit = match e.kind() {
            durable::ErrorKind::InstanceNotFound => Exit::NotFound,
            _ => Exit::Failed,
        };
        CliError::new(exit, e.message())
    }
}

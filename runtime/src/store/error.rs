//! The errors a store reports.

use crate::model::{Error, ErrorKind};

/// Errors a store reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No instance with this id exists.
    #[error("no instance with id `{0}`")]
    InstanceNotFound(String),
    /// An instance with this id is pending or running.
    #[error("an instance with id `{0}` is already pending or running")]
    InstanceAlreadyExists(String),
    /// The lease behind a lock token expired and the work was handed to someone else.
    #[error("the lease on this work item was lost (it expired and the work was taken over)")]
    LeaseLost,
    /// A continuation token that this store did not issue.
    #[error("invalid continuation token `{0}`")]
    InvalidContinuation(String),
    /// The backend failed.
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// The error a client call reports for this store failure: a missing or duplicate
    /// instance and a continuation token the store did not issue are the caller's to fix (and
    /// keep their kinds); anything else is a store failure.
    pub(crate) fn into_error(self) -> Error {
        match self {
            StoreError::InstanceNotFound(id) => Error::new(
                ErrorKind::InstanceNotFound,
                format!("no instance with id `{id}`"),
            ),
            StoreError::InstanceAlreadyExists(id) => Error::new(
                ErrorKind::InstanceAlreadyExists,
                format!(
                    "an instance with id `{id}` is already pending or running; wait for it, \
                     terminate it, or start with `.replace_existing()`"
                ),
            ),
            StoreError::InvalidContinuation(token) => Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "invalid continuation token `{token}`; pass the token a previous page \
                     returned, or none for the first page"
                ),
            ),
            other => Error::new(ErrorKind::Store, other.to_string()),
        }
    }
}

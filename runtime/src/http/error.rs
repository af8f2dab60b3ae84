//! Error answers: a status code chosen by the error's kind, never by its text, and a JSON body.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::api::ErrorBody;
use crate::model::{Error, ErrorKind};

/// An error response: a status code and a JSON body saying what was wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: ErrorBody,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(error, message),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// Maps a client error; `wrong_state` is the status for an instance in the wrong state.
    ///
    /// A server-side failure (a store error, anything answered with a 5xx) is logged in full,
    /// once, at error level; the answer names only its kind, never the message (which can hold
    /// file paths, SQL or other internals).
    pub(super) fn from_error(e: Error, wrong_state: StatusCode) -> Self {
        let status = match e.kind() {
            ErrorKind::InstanceNotFound => StatusCode::NOT_FOUND,
            ErrorKind::UnknownFunction => StatusCode::BAD_REQUEST,
            ErrorKind::InstanceNotRunning => wrong_state,
            ErrorKind::InstanceAlreadyExists => StatusCode::CONFLICT,
            ErrorKind::InvalidArgument | ErrorKind::Serialization => StatusCode::BAD_REQUEST,
            ErrorKind::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let kind = e.kind().as_str();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Self::new(
                status,
                kind,
                "the host is shutting down; send the request again to a running host",
            );
        }
        if status.is_server_error() {
            tracing::error!(error = ?e.to_string(), kind, "an HTTP request failed on the host");
            let message = if matches!(e.kind(), ErrorKind::Store) {
                "the store failed; see the host's log".to_string()
            } else {
                format!("the host failed ({kind}); see the host's log")
            };
            return Self::new(status, kind, message);
        }
        Self::new(status, kind, e.message())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::from_error(e, StatusCode::GONE)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;
pub(super) type Params = Query<HashMap<String, String>>;

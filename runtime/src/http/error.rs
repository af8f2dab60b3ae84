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

    /// Maps a client error; `finished` is the status for an instance in the wrong state.
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
        Self::new(status, e.kind().as_str(), e.message())
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

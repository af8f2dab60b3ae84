//! The dashboard's actions: `POST`s with a JSON body, answered in JSON with what happened
//! (`{"ok": true, "message": ..., "location": ...}`) or why not (`{"ok": false, "message"}`).
//! They do what the API's endpoints do, through the same client calls.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::BASE;
use super::html::{entity_url, instance_url, secure_headers};
use crate::http::state::AppState;
use crate::model::{EntityId, Error, ErrorKind};

/// An answer saying the action was refused, and why.
pub(super) fn refused(status: StatusCode, message: String) -> Response {
    answer(status, json!({"ok": false, "message": message}))
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    secure_headers(response.headers_mut());
    response
}

fn done(message: String, location: Option<String>) -> Response {
    answer(
        StatusCode::OK,
        json!({"ok": true, "message": message, "location": location}),
    )
}

/// A client error as an answer: the caller's mistakes and wrong states with their message; a
/// failure of the host by its kind only (logged in full).
fn failed(e: Error) -> Response {
    let status = match e.kind() {
        ErrorKind::InstanceNotFound => StatusCode::NOT_FOUND,
        ErrorKind::InstanceNotRunning => StatusCode::CONFLICT,
        ErrorKind::InstanceAlreadyExists => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument | ErrorKind::Serialization | ErrorKind::UnknownFunction => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
        _ => {
            tracing::error!(error = %e, "a dashboard action failed");
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the host failed ({}); see the host's log",
                    e.kind().as_str()
                ),
            );
        }
    };
    refused(status, e.message().to_string())
}

/// What the page sends: only the fields its action reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Form {
    name: String,
    body: String,
    reason: String,
    operation: String,
    input: String,
}

/// Reads the body; the error is the message of a `400`.
fn read_form(body: &str) -> Result<Form, String> {
    if body.trim().is_empty() {
        return Ok(Form::default());
    }
    serde_json::from_str(body)
        .map_err(|e| format!("the action's body is not the JSON the dashboard sends: {e}"))
}

/// A JSON text typed by a person: empty is null; anything else must be JSON. The error is the
/// message of a `400`.
fn json_text(text: &str, what: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| {
        format!("the {what} is not JSON ({e}); write e.g. true, 42, \"text\" or {{\"key\": 1}}")
    })
}

fn reason(form: &Form) -> String {
    if form.reason.trim().is_empty() {
        "from the dashboard".to_string()
    } else {
        form.reason.clone()
    }
}

/// `POST /durable/api/instances/{id}/{action}`: `raise-event` (`name`, `body`), `terminate`,
/// `suspend`, `resume`, `rewind` (`reason`), `restart`, `purge`.
pub(super) async fn instance(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: String,
) -> Response {
    let form = match read_form(&body) {
        Ok(form) => form,
        Err(message) => return refused(StatusCode::BAD_REQUEST, message),
    };
    let client = &state.client;
    let result = match action.as_str() {
        "raise-event" => {
            let name = form.name.trim();
            if name.is_empty() {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "name the event to raise".to_string(),
                );
            }
            let payload = match json_text(&form.body, "event body") {
                Ok(payload) => payload,
                Err(message) => return refused(StatusCode::BAD_REQUEST, message),
            };
            client
                .raise_event(&id, name, &payload)
                .await
                .map(|()| format!("Raised event `{name}` on `{id}`."))
        }
        "terminate" => client
            .terminate(&id, reason(&form))
            .await
            .map(|()| format!("Asked `{id}` to terminate.")),
        "suspend" => client
            .suspend(&id, &reason(&form))
            .await
            .map(|()| format!("Asked `{id}` to suspend.")),
        "resume" => client
            .resume(&id, &reason(&form))
            .await
            .map(|()| format!("Asked `{id}` to resume.")),
        "rewind" => client
            .rewind(&id, &reason(&form))
            .await
            .map(|()| format!("Asked `{id}` to rewind.")),
        "restart" => {
            return match client.restart(&id, false).await {
                Ok(new) => done(
                    format!("Restarted `{id}` with its original input."),
                    Some(instance_url(&new)),
                ),
                Err(e) => failed(e),
            };
        }
        "purge" => {
            return match client.purge(&id).await {
                Ok(true) => done(format!("Purged `{id}`."), Some(format!("{BASE}/"))),
                Ok(false) => refused(
                    StatusCode::NOT_FOUND,
                    format!("there is no instance `{id}` to purge"),
                ),
                Err(e) => failed(e),
            };
        }
        other => {
            return refused(
                StatusCode::NOT_FOUND,
                format!(
                    "`{other}` is not an action; use raise-event, terminate, suspend, resume, \
                     rewind, restart or purge"
                ),
            );
        }
    };
    match result {
        Ok(message) => done(message, None),
        Err(e) => failed(e),
    }
}

/// `POST /durable/api/entities/{name}/{key}/{action}`: `signal` (`operation`, `input`),
/// `delete`.
pub(super) async fn entity(
    State(state): State<AppState>,
    Path((name, key, action)): Path<(String, String, String)>,
    body: String,
) -> Response {
    let form = match read_form(&body) {
        Ok(form) => form,
        Err(message) => return refused(StatusCode::BAD_REQUEST, message),
    };
    let id = EntityId::new(&name, key);
    let (operation, input) = match action.as_str() {
        "signal" => {
            let operation = form.operation.trim().to_string();
            if operation.is_empty() {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "name the operation to signal".to_string(),
                );
            }
            match json_text(&form.input, "operation's input") {
                Ok(input) => (operation, input),
                Err(message) => return refused(StatusCode::BAD_REQUEST, message),
            }
        }
        "delete" => ("delete".to_string(), Value::Null),
        other => {
            return refused(
                StatusCode::NOT_FOUND,
                format!("`{other}` is not an entity action; use signal or delete"),
            );
        }
    };
    match state
        .client
        .signal_entity_by_id(&id, &operation, &input)
        .await
    {
        Ok(()) => done(
            format!("Signalled `{operation}` to `{id}`."),
            (operation == "delete").then(|| entity_url(id.name(), id.key())),
        ),
        Err(e) => failed(e),
    }
}

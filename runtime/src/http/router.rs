//! The API's routes, and the answers to unknown endpoints and methods.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::authorize;
use super::entities::{
    delete_entity, list_all_entities, list_entities, read_entity, signal_entity,
};
use super::error::ApiError;
use super::history::instance_history;
use super::instances::{
    instance_operation, instance_status, purge_one, purge_where, query_instances, raise_event,
    start, start_with_id,
};
use super::params::check_query;
use super::state::AppState;
use super::{BASE_PATH, HttpOptions};
use crate::client::Client;

/// The API's routes for `client`, under [`BASE_PATH`]. Mount it in an axum application, or let
/// the host serve it with [`RuntimeBuilder::http`](crate::RuntimeBuilder::http).
pub fn router(client: Client, options: Arc<HttpOptions>) -> Router {
    let state = AppState { client, options };
    let api = Router::new()
        .route("/orchestrators/{name}", post(start))
        .route("/orchestrators/{name}/{instance_id}", post(start_with_id))
        .route("/instances", get(query_instances).delete(purge_where))
        // Durable Functions' clients also write the collections with a trailing slash.
        .route("/instances/", get(query_instances).delete(purge_where))
        .route("/instances/{id}", get(instance_status).delete(purge_one))
        .route("/instances/{id}/history", get(instance_history))
        .route("/instances/{id}/raiseEvent/{event}", post(raise_event))
        .route("/instances/{id}/{operation}", post(instance_operation))
        .route("/entities", get(list_all_entities))
        .route("/entities/", get(list_all_entities))
        .route("/entities/{name}", get(list_entities))
        .route("/entities/{name}/", get(list_entities))
        .route(
            "/entities/{name}/{key}",
            get(read_entity).post(signal_entity).delete(delete_entity),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    Router::new()
        .nest(BASE_PATH, api)
        .fallback(unknown_endpoint)
        .layer(middleware::from_fn(utf8_query))
        .layer(middleware::map_response(json_errors))
}

/// Refuses, before any route or the key check reads it, a query that is not UTF-8 once
/// percent-decoded (see [`check_query`]).
async fn utf8_query(request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query()
        && let Err(refused) = check_query(query)
    {
        return refused.into_response();
    }
    next.run(request).await
}

/// The most of a non-JSON error body that is kept (as the detail of the JSON error).
const DETAIL_LIMIT: usize = 1024;

/// Rewrites every error answer that is not the API's JSON error — the rejections of axum's
/// extractors (a path segment that is not UTF-8, say), which are plain text,
/// and bare status codes — into `{"error", "message"}`, keeping the text as the detail.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, DETAIL_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let mut answer = rejection(status, &text).into_response();
    // Keep what the inner layer said about the answer (`Allow`, `Retry-After`, ...).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The JSON error for a status an inner layer chose, with what to send instead.
pub(super) fn rejection(status: StatusCode, detail: &str) -> ApiError {
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    match status {
        StatusCode::BAD_REQUEST => ApiError::bad_request(format!(
            "the request could not be read{detail}; send path segments and query values as \
             percent-encoded UTF-8, e.g. `instances/my%20id?reason=some%20text`"
        )),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "PayloadTooLarge",
            format!("the request body is too large{detail}; send a smaller body"),
        ),
        s if s.is_server_error() => {
            tracing::error!(status = s.as_u16(), detail = ?detail, "an HTTP request failed");
            ApiError::new(
                s,
                "Internal",
                "the host failed to answer; see the host's log",
            )
        }
        s => ApiError::new(
            s,
            &s.canonical_reason().unwrap_or("Error").replace(' ', ""),
            format!(
                "the request was refused{detail}; see `{BASE_PATH}/` for the endpoints and what \
                 they take"
            ),
        ),
    }
}

pub(super) async fn unknown_endpoint(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "no endpoint at `{}`; the API lives under `{BASE_PATH}/` (orchestrators/{{name}}, \
             instances, instances/{{id}}, entities/{{name}}/{{key}})",
            request.uri().path()
        ),
    )
}

pub(super) async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!(
            "`{}` does not accept {}",
            request.uri().path(),
            request.method()
        ),
    )
}

//! The API's routes, and the answers to unknown endpoints and methods.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self};
use axum::routing::{get, post};

use super::auth::authorize;
use super::entities::{
    delete_entity, list_all_entities, list_entities, read_entity, signal_entity,
};
use super::error::ApiError;
use super::instances::{
    instance_operation, instance_status, purge_one, purge_where, query_instances, raise_event,
    start, start_with_id,
};
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

//! Entities: read, signal, delete, list.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;

use super::api::{EntityListItem, json_value};
use super::error::{ApiError, ApiResult, Params};
use super::params::{check_task_hub, continuation, flag, json_body, page_response, time, top};
use super::state::AppState;
use crate::model::{EntityId, EntityQuery};

pub(super) async fn read_entity(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let id = EntityId::new(&name, key);
    match state.client.entity_metadata(&id, true).await? {
        Some(meta) if meta.has_state => {
            Ok(axum::Json(json_value(meta.state.as_deref())).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "EntityNotFound",
            format!("entity `{id}` does not exist (it has no state)"),
        )),
    }
}

pub(super) async fn signal_entity(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
    Query(params): Params,
    body: Body,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let Some(op) = params.get("op").filter(|op| !op.is_empty()) else {
        return Err(ApiError::bad_request(
            "name the operation to signal: add `?op=NAME` to the URL",
        ));
    };
    let input = json_body(body, &state).await?;
    let id = EntityId::new(&name, key);
    state.client.signal_entity_by_id(&id, op, input).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(super) async fn delete_entity(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let id = EntityId::new(&name, key);
    state
        .client
        .signal_entity_by_id(&id, "delete", Value::Null)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(super) async fn list_all_entities(
    state: State<AppState>,
    params: Params,
    headers: HeaderMap,
) -> ApiResult {
    list(state.0, None, params.0, headers).await
}

pub(super) async fn list_entities(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
    list(state, Some(name), params, headers).await
}

pub(super) async fn list(
    state: AppState,
    name: Option<String>,
    params: HashMap<String, String>,
    headers: HeaderMap,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let fetch_state = flag(&params, "fetchState", false)?;
    let from = time(&params, "lastOperationTimeFrom")?;
    let to = time(&params, "lastOperationTimeTo")?;
    let query = EntityQuery {
        name_prefix: name.clone(),
        include_state: fetch_state,
        include_stateless: false,
        page_size: top(&params)?,
        continuation_token: continuation(&headers),
    };
    let page = state.client.list_entities(&query).await?;
    let body: Vec<EntityListItem> = page
        .entities
        .iter()
        .filter(|m| {
            name.as_deref()
                .is_none_or(|n| m.id.name().eq_ignore_ascii_case(n))
                && from.is_none_or(|t| m.last_modified_at >= t)
                && to.is_none_or(|t| m.last_modified_at <= t)
        })
        .map(|m| EntityListItem::from_metadata(m, fetch_state))
        .collect();
    Ok(page_response(body, page.continuation_token))
}

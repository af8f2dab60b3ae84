//! Orchestration instances: start, status, query, events, operations, purge.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::BASE_PATH;
use super::api::{Purged, Show, Status, json_value};
use super::error::{ApiError, ApiResult, Params};
use super::links::{accepted_with_links, base_url, set_location};
use super::params::{
    check_task_hub, continuation, flag, json_body, page_response, statuses, time, top, version,
};
use super::state::{AppState, RETRY_AFTER_POLL};
use crate::model::EntityId;
use crate::model::ErrorKind;
use crate::model::{InstanceQuery, PurgeFilter, RuntimeStatus};

pub(super) async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    start_instance(state, name, None, params, headers, body).await
}

pub(super) async fn start_with_id(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    start_instance(state, name, Some(id), params, headers, body).await
}

pub(super) async fn start_instance(
    state: AppState,
    name: String,
    id: Option<String>,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let wait = wait_for(&params)?;
    let input = json_body(body, &state).await?;
    let mut request = state.client.start_by_name(&name, input);
    if let Some(id) = id {
        request = request.instance_id(id);
    }
    if let Some(version) = version(&params)? {
        request = request.version(version);
    }
    let id = request.await?;
    started(&state, id.as_str(), wait, &params, &headers).await
}

/// Refuses an entity's id (`@name@key`) on an instance route: entities have endpoints of
/// their own, and the instance operations would otherwise do nothing and answer `202`.
fn not_an_entity(id: &str) -> Result<(), ApiError> {
    if EntityId::is_entity_instance(id) {
        return Err(ApiError::bad_request(format!(
            "`{id}` is an entity id (ids starting with `@` are entities), not an orchestration \
             instance; use the entity endpoints: GET entities/{{name}}/{{key}} to read one, \
             POST entities/{{name}}/{{key}}?op=NAME to signal it, DELETE \
             entities/{{name}}/{{key}} to delete it"
        )));
    }
    Ok(())
}

/// `?timeout=SECS` (with Durable Functions' `pollingInterval=SECS`, which a host that is told
/// of every change does not need): how long a start or restart waits for the instance to end.
pub(super) fn wait_for(params: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    let seconds = |name: &str| -> Result<Option<f64>, ApiError> {
        match params.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(secs) if secs.is_finite() && (0.0..=3600.0).contains(&secs) => Ok(Some(secs)),
                _ => Err(ApiError::bad_request(format!(
                    "`{name}={v}` is not a number of seconds from 0 to 3600"
                ))),
            },
        }
    };
    let timeout = seconds("timeout")?;
    let polling = seconds("pollingInterval")?;
    match (timeout, polling) {
        (Some(t), Some(p)) if p > t => Err(ApiError::bad_request(
            "`pollingInterval` must not be longer than `timeout`",
        )),
        (t, _) => Ok(t.map(Duration::from_secs_f64)),
    }
}

/// The answer to a start or restart: `202` with the check-status body, or — when asked to
/// wait and the instance ended in time — `200` with its output (a failed or terminated
/// instance answers with its status, as a status request would).
pub(super) async fn started(
    state: &AppState,
    id: &str,
    wait: Option<Duration>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult {
    if let Some(timeout) = wait {
        match state.client.wait_for_completion(id, timeout).await {
            Ok(status) if status.runtime_status == RuntimeStatus::Completed => {
                let output = json_value(status.output.as_deref());
                return Ok(axum::Json(output).into_response());
            }
            Ok(status) => {
                let show = Show {
                    input: true,
                    ..Show::default()
                };
                let code = match status.runtime_status {
                    RuntimeStatus::Failed
                        if flag(params, "returnInternalServerErrorOnFailure", false)? =>
                    {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                    _ => StatusCode::OK,
                };
                let body = Status::from_instance(&status, show);
                return Ok((code, axum::Json(body)).into_response());
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(accepted_with_links(id, headers, state))
}

pub(super) async fn instance_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult {
    not_an_entity(&id)?;
    check_task_hub(&params, &state)?;
    let show = Show {
        input: flag(&params, "showInput", true)?,
        history: flag(&params, "showHistory", false)?,
        history_output: flag(&params, "showHistoryOutput", false)?,
    };
    let error_on_failure = flag(&params, "returnInternalServerErrorOnFailure", false)?;
    let status = if show.history {
        state.client.status_with_history(&id).await?
    } else {
        state.client.status(&id).await?
    };
    let Some(status) = status.filter(|s| !EntityId::is_entity_instance(&s.instance_id)) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::InstanceNotFound.as_str(),
            format!("no instance with id `{id}`"),
        ));
    };
    let code = match status.runtime_status {
        RuntimeStatus::Pending
        | RuntimeStatus::Running
        | RuntimeStatus::ContinuedAsNew
        | RuntimeStatus::Suspended => StatusCode::ACCEPTED,
        RuntimeStatus::Failed if error_on_failure => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    let body = Status::from_instance(&status, show);
    let mut response = (code, axum::Json(body)).into_response();
    if code == StatusCode::ACCEPTED {
        // Poll again at the very URL that was asked, with its flags.
        let host = base_url(&headers, &state);
        let host = host.strip_suffix(BASE_PATH).unwrap_or(&host);
        let url = format!("{host}{}", uri.path_and_query().map_or("", |p| p.as_str()));
        set_location(&mut response, &url, RETRY_AFTER_POLL);
    }
    Ok(response)
}

pub(super) async fn query_instances(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let show = Show {
        input: flag(&params, "showInput", false)?,
        ..Show::default()
    };
    let query = InstanceQuery {
        runtime_status: statuses(&params, false)?,
        created_from: time(&params, "createdTimeFrom")?,
        created_to: time(&params, "createdTimeTo")?,
        instance_id_prefix: params
            .get("instanceIdPrefix")
            .filter(|p| !p.is_empty())
            .cloned(),
        version: version(&params)?,
        page_size: top(&params)?,
        continuation_token: continuation(&headers),
    };
    if query
        .instance_id_prefix
        .as_deref()
        .is_some_and(|p| p.starts_with('@'))
    {
        return Err(ApiError::bad_request(
            "ids starting with `@` are entities; list them with GET entities/{name}",
        ));
    }
    let page = state.client.query(&query).await?;
    let body: Vec<Status> = page
        .instances
        .iter()
        .map(|s| Status::from_instance(s, show))
        .collect();
    Ok(page_response(body, page.continuation_token))
}

pub(super) async fn raise_event(
    State(state): State<AppState>,
    Path((id, event)): Path<(String, String)>,
    Query(params): Params,
    body: Body,
) -> ApiResult {
    not_an_entity(&id)?;
    check_task_hub(&params, &state)?;
    // As in Durable Functions: an unknown or finished instance is reported before the body.
    match state.client.status(&id).await? {
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorKind::InstanceNotFound.as_str(),
                format!("no instance with id `{id}`"),
            ));
        }
        Some(s) if s.runtime_status.is_terminal() => {
            return Err(ApiError::new(
                StatusCode::GONE,
                ErrorKind::InstanceNotRunning.as_str(),
                format!(
                    "instance `{id}` is {} and takes no more events",
                    s.runtime_status
                ),
            ));
        }
        Some(_) => {}
    }
    let payload = json_body(body, &state).await?;
    state.client.raise_event(&id, &event, payload).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST instances/{id}/{operation}`: terminate, suspend, resume, rewind or restart (the
/// operation's name is matched case-insensitively, as Durable Functions does).
pub(super) async fn instance_operation(
    State(state): State<AppState>,
    Path((id, operation)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
    not_an_entity(&id)?;
    check_task_hub(&params, &state)?;
    let client = &state.client;
    let reason = params.get("reason").cloned().unwrap_or_default();
    match operation.to_ascii_lowercase().as_str() {
        "terminate" => client.terminate(&id, reason).await?,
        "suspend" => client.suspend(&id, &reason).await?,
        "resume" => client.resume(&id, &reason).await?,
        "rewind" => {
            // Durable Functions documents 410 for a finished instance that did not fail, and
            // answers 412 for one that is still running.
            let running = client
                .status(&id)
                .await?
                .is_some_and(|s| !s.runtime_status.is_terminal());
            let wrong_state = if running {
                StatusCode::PRECONDITION_FAILED
            } else {
                StatusCode::GONE
            };
            client
                .rewind(&id, &reason)
                .await
                .map_err(|e| ApiError::from_error(e, wrong_state))?;
        }
        "restart" => {
            let new_id = flag(&params, "restartWithNewInstanceId", true)?;
            let wait = wait_for(&params)?;
            let id = client.restart(&id, new_id).await?;
            return started(&state, id.as_str(), wait, &params, &headers).await;
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "no operation `{operation}` on instances; use terminate, suspend, resume, \
                     rewind, restart or raiseEvent/{{event}}"
                ),
            ));
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(super) async fn purge_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    not_an_entity(&id)?;
    check_task_hub(&params, &state)?;
    let purged = state
        .client
        .purge(&id)
        .await
        .map_err(|e| ApiError::from_error(e, StatusCode::PRECONDITION_FAILED))?;
    if !purged {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::InstanceNotFound.as_str(),
            format!("no instance with id `{id}`"),
        ));
    }
    Ok(axum::Json(Purged {
        instances_deleted: 1,
    })
    .into_response())
}

pub(super) async fn purge_where(State(state): State<AppState>, Query(params): Params) -> ApiResult {
    check_task_hub(&params, &state)?;
    let Some(from) = time(&params, "createdTimeFrom")? else {
        return Err(ApiError::bad_request(
            "purging by filter needs `createdTimeFrom` (RFC 3339, e.g. \
             `createdTimeFrom=2026-01-01T00:00:00Z`); add `createdTimeTo` and `runtimeStatus` \
             to narrow it",
        ));
    };
    let filter = PurgeFilter {
        created_from: Some(from),
        created_to: time(&params, "createdTimeTo")?,
        runtime_status: statuses(&params, true)?,
    };
    let deleted = state.client.purge_where(&filter).await?;
    let status = if deleted == 0 {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(Purged {
            instances_deleted: deleted,
        }),
    )
        .into_response())
}

//! The routes and handlers of the HTTP management API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::api::{CheckStatus, EntityListItem, ErrorBody, Purged, Show, Status, json_value};
use super::{BASE_PATH, HttpOptions};
use crate::client::Client;
use crate::entity::{EntityId, EntityQuery};
use crate::model::{Error, ErrorKind};
use crate::model::{InstanceQuery, PurgeFilter, RuntimeStatus};

/// How long a poller should wait before asking again, in seconds: `Retry-After` on the `202`
/// of a start, and on the `202` of a status poll (the values Durable Functions sends).
const RETRY_AFTER_START: u32 = 10;
const RETRY_AFTER_POLL: u32 = 5;

/// The continuation header of paged listings, in requests and responses.
const CONTINUATION: &str = "x-ms-continuation-token";

/// What may stay unescaped in a path segment or query value of a generated URL.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Clone)]
struct AppState {
    client: Client,
    options: Arc<HttpOptions>,
}

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

/// An error response: a status code and a JSON body saying what was wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.to_string(),
                message: message.into(),
            },
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// Maps a client error; `finished` is the status for an instance in the wrong state.
    fn from_error(e: Error, wrong_state: StatusCode) -> Self {
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

type ApiResult = Result<Response, ApiError>;
type Params = Query<HashMap<String, String>>;

async fn authorize(
    State(state): State<AppState>,
    Query(params): Params,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.options.key {
        let given = params.get("code").map(String::as_str).or_else(|| {
            request
                .headers()
                .get("x-functions-key")
                .and_then(|v| v.to_str().ok())
        });
        if given != Some(key.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "this API requires a key: add `?code=KEY` to the URL or send the header \
                 `x-functions-key: KEY`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn unknown_endpoint(request: Request) -> ApiError {
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

async fn method_not_allowed(request: Request) -> ApiError {
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

// ---- request parsing -------------------------------------------------------------------

/// Reads a JSON body: empty means null; a JSON string holding JSON (as the Python client
/// sends it) is unwrapped.
async fn json_body(body: Body, state: &AppState) -> Result<Value, ApiError> {
    let limit = state.options.max_body;
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON ({e}); send a JSON value such as `42`, \
             `\"text\"` or `{{\"key\": 1}}`, or no body for null"
        ))
    })?;
    if let Value::String(text) = &value
        && let Ok(inner) = serde_json::from_str::<Value>(text)
    {
        return Ok(inner);
    }
    Ok(value)
}

fn flag(params: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "`{name}={v}` is not a flag; use `{name}=true` or `{name}=false`"
        ))),
    }
}

fn time(params: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = params.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Some(t) = super::api::parse_time(v) {
        return Ok(Some(t));
    }
    Err(ApiError::bad_request(format!(
        "`{name}={v}` is not a time; use RFC 3339, e.g. `{name}=2026-01-31T12:00:00Z`"
    )))
}

fn statuses(
    params: &HashMap<String, String>,
    only_finished: bool,
) -> Result<Vec<RuntimeStatus>, ApiError> {
    let Some(list) = params.get("runtimeStatus") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(status) = RuntimeStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
        else {
            return Err(ApiError::bad_request(format!(
                "`runtimeStatus` has an unknown status `{name}`; use a comma-separated list of \
                 Pending, Running, Completed, ContinuedAsNew, Failed, Terminated, Suspended"
            )));
        };
        if only_finished && !status.is_terminal() {
            return Err(ApiError::bad_request(format!(
                "only finished instances are purged: `runtimeStatus` may list Completed, \
                 Failed and Terminated, not {name}"
            )));
        }
        out.push(status);
    }
    Ok(out)
}

fn top(params: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    match params.get("top").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n.min(1000))),
            _ => Err(ApiError::bad_request(format!(
                "`top={v}` is not a page size; use a whole number from 1 to 1000"
            ))),
        },
    }
}

fn continuation(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTINUATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A page of a listing: the JSON array, and the next page's token in the continuation header.
fn page_response<T: serde::Serialize>(items: Vec<T>, next: Option<String>) -> Response {
    let mut response = axum::Json(items).into_response();
    if let Some(v) = next.and_then(|token| HeaderValue::from_str(&token).ok()) {
        response.headers_mut().insert(CONTINUATION, v);
    }
    response
}

fn check_task_hub(params: &HashMap<String, String>, state: &AppState) -> Result<(), ApiError> {
    match params.get("taskHub") {
        Some(hub) if !hub.is_empty() && hub != state.client.store().task_hub() => {
            Err(ApiError::bad_request(format!(
                "this host serves task hub `{}`, not `{hub}`",
                state.client.store().task_hub()
            )))
        }
        _ => Ok(()),
    }
}

// ---- URLs ------------------------------------------------------------------------------

fn base_url(headers: &HeaderMap, state: &AppState) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| state.options.addr.to_string());
    format!("http://{host}{BASE_PATH}")
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

fn check_status(id: &str, headers: &HeaderMap, state: &AppState) -> CheckStatus {
    let instance = format!("{}/instances/{}", base_url(headers, state), encode(id));
    let mut common = format!(
        "taskHub={}&connection=Storage",
        encode(state.client.store().task_hub())
    );
    if let Some(key) = &state.options.key {
        common.push_str(&format!("&code={}", encode(key)));
    }
    let with_reason = |action: &str| format!("{instance}/{action}?reason={{text}}&{common}");
    CheckStatus {
        id: id.to_string(),
        status_query_get_uri: format!("{instance}?{common}"),
        send_event_post_uri: format!("{instance}/raiseEvent/{{eventName}}?{common}"),
        terminate_post_uri: with_reason("terminate"),
        rewind_post_uri: with_reason("rewind"),
        purge_history_delete_uri: format!("{instance}?{common}"),
        restart_post_uri: format!("{instance}/restart?{common}"),
        suspend_post_uri: with_reason("suspend"),
        resume_post_uri: with_reason("resume"),
    }
}

fn accepted_with_links(id: &str, headers: &HeaderMap, state: &AppState) -> Response {
    let body = check_status(id, headers, state);
    let mut response = (StatusCode::ACCEPTED, axum::Json(&body)).into_response();
    set_location(&mut response, &body.status_query_get_uri, RETRY_AFTER_START);
    response
}

fn set_location(response: &mut Response, url: &str, retry_after: u32) {
    if let Ok(v) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
}

// ---- orchestrations --------------------------------------------------------------------

async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    start_instance(state, name, None, params, headers, body).await
}

async fn start_with_id(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    start_instance(state, name, Some(id), params, headers, body).await
}

async fn start_instance(
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
    let id = request.await?;
    started(&state, id.as_str(), wait, &params, &headers).await
}

/// `?timeout=SECS` (with Durable Functions' `pollingInterval=SECS`, which a host that is told
/// of every change does not need): how long a start or restart waits for the instance to end.
fn wait_for(params: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
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
async fn started(
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

async fn instance_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult {
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

async fn query_instances(
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
    let page = state
        .client
        .query(&query)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Store if e.message().contains("continuation") => ApiError::bad_request(
                format!("the `{CONTINUATION}` header holds a token this host did not issue"),
            ),
            _ => e.into(),
        })?;
    let body: Vec<Status> = page
        .instances
        .iter()
        .map(|s| Status::from_instance(s, show))
        .collect();
    Ok(page_response(body, page.continuation_token))
}

async fn raise_event(
    State(state): State<AppState>,
    Path((id, event)): Path<(String, String)>,
    Query(params): Params,
    body: Body,
) -> ApiResult {
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
async fn instance_operation(
    State(state): State<AppState>,
    Path((id, operation)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
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

async fn purge_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    if EntityId::is_entity_instance(&id) {
        return Err(ApiError::bad_request(
            "ids starting with `@` are entities, which are not purged one by one",
        ));
    }
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

async fn purge_where(State(state): State<AppState>, Query(params): Params) -> ApiResult {
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

// ---- entities --------------------------------------------------------------------------

async fn read_entity(
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

async fn signal_entity(
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

async fn delete_entity(
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

async fn list_all_entities(
    state: State<AppState>,
    params: Params,
    headers: HeaderMap,
) -> ApiResult {
    list(state.0, None, params.0, headers).await
}

async fn list_entities(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
    list(state, Some(name), params, headers).await
}

async fn list(
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

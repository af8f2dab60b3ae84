//! `GET instances/{id}/history`: an instance's whole history in the exported format
//! ([`HistoryFile`]), for `durable history export` and other tools. Durable Functions'
//! `showHistory=true` view is made for reading: it leaves out the turn markers and step ids and
//! shows a finished step once, without its input, so it cannot be replayed; this one can.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::error::{ApiError, ApiResult, Params};
use super::params::check_task_hub;
use super::state::AppState;
use crate::model::history::HistoryFile;
use crate::model::{EntityId, ErrorKind};

pub(super) async fn instance_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    check_task_hub(&params, &state)?;
    let status = state
        .client
        .status_with_history(&id)
        .await?
        .filter(|s| !EntityId::is_entity_instance(&s.instance_id));
    let Some(mut status) = status else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::InstanceNotFound.as_str(),
            format!("no instance with id `{id}`"),
        ));
    };
    let history = status.history.take().unwrap_or_default();
    Ok(axum::Json(HistoryFile::new(&status, history)).into_response())
}

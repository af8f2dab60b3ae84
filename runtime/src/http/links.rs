//! The URLs the API answers with: check-status links and `Location` headers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::BASE_PATH;
use super::api::CheckStatus;
use super::state::{AppState, RETRY_AFTER_START};

/// What may stay unescaped in a path segment or query value of a generated URL.
pub(super) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn base_url(headers: &HeaderMap, state: &AppState) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| state.options.addr.to_string());
    format!("http://{host}{BASE_PATH}")
}

pub(super) fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

pub(super) fn check_status(id: &str, headers: &HeaderMap, state: &AppState) -> CheckStatus {
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

pub(super) fn accepted_with_links(id: &str, headers: &HeaderMap, state: &AppState) -> Response {
    let body = check_status(id, headers, state);
    let mut response = (StatusCode::ACCEPTED, axum::Json(&body)).into_response();
    set_location(&mut response, &body.status_query_get_uri, RETRY_AFTER_START);
    response
}

pub(super) fn set_location(response: &mut Response, url: &str, retry_after: u32) {
    if let Ok(v) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
}

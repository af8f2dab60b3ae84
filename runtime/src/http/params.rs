//! Reading requests: JSON bodies, flags, times, statuses, page sizes, continuation tokens.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;
use crate::model::RuntimeStatus;

/// The continuation header of paged listings, in requests and responses.
pub(super) const CONTINUATION: &str = "x-ms-continuation-token";

/// Reads a JSON body: empty means null; a JSON string holding JSON (as the Python client
/// sends it) is unwrapped.
pub(super) async fn json_body(body: Body, state: &AppState) -> Result<Value, ApiError> {
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

/// Refuses a query whose parameter names or values are not UTF-8 once percent-decoded (a form
/// decoder would quietly turn them into U+FFFD, and store a `reason` nobody sent), naming the
/// parameter.
pub(super) fn check_query(query: &str) -> Result<(), ApiError> {
    let utf8 = |s: &str| std::str::from_utf8(&percent_decode_str(s).collect::<Vec<u8>>()).is_ok();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let what = if !utf8(name) {
            format!("the name of the query parameter `{name}`")
        } else if !utf8(value) {
            let name = percent_decode_str(name)
                .decode_utf8_lossy()
                .replace('+', " ");
            format!("the value of the query parameter `{name}`")
        } else {
            continue;
        };
        return Err(ApiError::bad_request(format!(
            "{what} is not UTF-8 once percent-decoded; send query names and values as \
             percent-encoded UTF-8, e.g. `?reason=caf%C3%A9`"
        )));
    }
    Ok(())
}

pub(super) fn flag(
    params: &HashMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "`{name}={v}` is not a flag; use `{name}=true` or `{name}=false`"
        ))),
    }
}

pub(super) fn time(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
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

/// `?version=`: an orchestration version (absent or empty: none), checked as the client
/// checks it.
pub(super) fn version(params: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    let Some(v) = params.get("version").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    crate::model::validate_version(v)
        .map_err(|e| ApiError::bad_request(format!("`version`: {}", e.message())))?;
    Ok(Some(v.clone()))
}

pub(super) fn statuses(
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

pub(super) fn top(params: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
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

pub(super) fn continuation(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTINUATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A page of a listing: the JSON array, and the next page's token in the continuation header.
pub(super) fn page_response<T: serde::Serialize>(items: Vec<T>, next: Option<String>) -> Response {
    let mut response = axum::Json(items).into_response();
    if let Some(v) = next.and_then(|token| HeaderValue::from_str(&token).ok()) {
        response.headers_mut().insert(CONTINUATION, v);
    }
    response
}

pub(super) fn check_task_hub(
    params: &HashMap<String, String>,
    state: &AppState,
) -> Result<(), ApiError> {
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

#[cfg(test)]
mod tests {
    use super::check_query;

    #[test]
    fn queries_must_decode_to_utf8() {
        for good in [
            "",
            "a=1&b",
            "reason=caf%C3%A9",
            "r=+%20x",
            "&&=",
            "x=%zz",
            "%E2%82%AC=1",
        ] {
            assert!(check_query(good).is_ok(), "{good}");
        }
        let message = |q: &str| check_query(q).unwrap_err().body.message;
        assert!(message("reason=%FF").contains("`reason`"));
        assert!(message("a=1&op=x%C3%28").contains("`op`"));
        assert!(message("%FF=%FE").contains("name of the query parameter `%FF`"));
        assert!(message("my+key=%80").contains("`my key`"));
        assert_eq!(check_query("x=%FF").unwrap_err().status.as_u16(), 400);
    }
}

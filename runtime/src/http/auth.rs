//! The optional key: `?code=` or the `x-functions-key` header.

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Params};
use super::state::AppState;

pub(super) async fn authorize(
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

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
        if !given.is_some_and(|given| same_key(given.as_bytes(), key.as_bytes())) {
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

/// Compares a given key with the expected one in time that depends only on the expected key's
/// length: every byte is looked at, with no early exit, and the differences are folded
/// together (a `==` on strings stops at the first difference, which tells a caller timing the
/// answers how much of its guess was right).
pub(super) fn same_key(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!e);
        diff |= std::hint::black_box(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn keys_match_only_when_equal() {
        assert!(same_key(b"s3cret", b"s3cret"));
        assert!(!same_key(b"s3creT", b"s3cret"));
        assert!(!same_key(b"s3cre", b"s3cret"));
        assert!(!same_key(b"s3crets", b"s3cret"));
        assert!(!same_key(b"", b"s3cret"));
        assert!(!same_key(b"x", b""));
        assert!(same_key(b"", b""));
    }
}

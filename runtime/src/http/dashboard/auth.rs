//! The key, for people: the same rule as the API (`?code=KEY` or the `x-functions-key`
//! header), plus a cookie set by signing in, so that a browser can carry the key.
//!
//! - Signing in posts the key to `login`; the answer sets it in a cookie that is `HttpOnly`
//!   (scripts cannot read it), `SameSite=Strict` (other sites' pages do not send it) and
//!   scoped to the dashboard's path. Opening a dashboard URL with `?code=KEY` signs in too,
//!   and redirects to the URL without the key.
//! - Actions are `POST`s that must also carry the header [`ACTION_HEADER`]: a page on another
//!   site cannot send a custom header without the host's permission (it answers no CORS
//!   preflight), so it cannot make a signed-in browser act — with or without a key.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::html::{self, Nav, PageContext, esc};
use super::{BASE, actions};
use crate::http::auth::same_key;
use crate::http::links::encode;
use crate::http::state::AppState;

/// The cookie that carries the key.
pub(super) const COOKIE: &str = "durable_key";

/// The header every action must carry (any value).
pub(super) const ACTION_HEADER: &str = "x-durable-dashboard";

/// The key a request carries: `?code=`, `x-functions-key`, or the cookie.
fn given_key<'a>(params: &'a HashMap<String, String>, headers: &'a HeaderMap) -> Option<String> {
    if let Some(code) = params.get("code") {
        return Some(code.clone());
    }
    if let Some(key) = headers.get("x-functions-key").and_then(|v| v.to_str().ok()) {
        return Some(key.to_string());
    }
    cookie(headers, COOKIE)
}

/// A cookie's value, percent-decoded.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
}

/// The `Set-Cookie` value that stores `key` (or, with `None`, removes it).
fn set_cookie(key: Option<&str>) -> HeaderValue {
    let value = match key {
        Some(key) => format!(
            "{COOKIE}={}; Path={BASE}; HttpOnly; SameSite=Strict",
            encode(key)
        ),
        None => format!("{COOKIE}=; Path={BASE}; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Lets a request through when no key is set or it carries the key; otherwise answers the
/// sign-in page (pages) or `401` (actions). Actions must also carry [`ACTION_HEADER`].
pub(super) async fn authorize(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let is_action = request.method() == Method::POST;
    if is_action && !request.headers().contains_key(ACTION_HEADER) {
        return actions::refused(
            StatusCode::FORBIDDEN,
            format!("dashboard actions must carry the `{ACTION_HEADER}` header"),
        );
    }
    let Some(key) = &state.options.key else {
        return next.run(request).await;
    };
    let given = given_key(&params, request.headers());
    if !given.is_some_and(|g| same_key(g.as_bytes(), key.as_bytes())) {
        if is_action {
            return actions::refused(
                StatusCode::UNAUTHORIZED,
                "sign in again: the dashboard's key is missing or wrong".to_string(),
            );
        }
        let next_url = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        return login_page(&state, &next_url, params.contains_key("code"));
    }
    // A key in the URL: keep it in the cookie and drop it from the address bar (and history).
    if request.method() == Method::GET && params.contains_key("code") {
        let rest: Vec<String> = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("code="))
            .map(str::to_string)
            .collect();
        let mut location = request.uri().path().to_string();
        if !rest.is_empty() {
            location = format!("{location}?{}", rest.join("&"));
        }
        return redirect(
            &location,
            Some(set_cookie(params.get("code").map(String::as_str))),
        );
    }
    next.run(request).await
}

fn redirect(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    html::secure_headers(response.headers_mut());
    response
}

/// Where to go after signing in: a dashboard path, never another site.
fn safe_next(next: &str) -> String {
    if next.starts_with(&format!("{BASE}/")) && !next.contains("//") && !next.contains('\\') {
        next.to_string()
    } else {
        format!("{BASE}/")
    }
}

fn login_page(state: &AppState, next: &str, wrong: bool) -> Response {
    let error = if wrong {
        "<p class=\"error\" role=\"alert\">That key is not the host's key.</p>"
    } else {
        ""
    };
    let body = format!(
        "<section class=\"card narrow\"><h1>Sign in</h1>\
         <p>This host requires its key for the dashboard, as for the HTTP API.</p>{error}\
         <form method=\"post\" action=\"{BASE}/login\" class=\"stack\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Key <input type=\"password\" name=\"key\" id=\"login-key\" autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form>\
         <p class=\"muted\">The key is kept in a cookie that scripts cannot read and other sites \
         cannot send; sign out to remove it.</p></section>",
        esc(&safe_next(next))
    );
    let context = PageContext {
        hub: state.client.store().task_hub().to_string(),
        keyed: false,
    };
    html::html_response(
        StatusCode::UNAUTHORIZED,
        html::page("Sign in", Nav::None, &context, &body),
    )
}

/// `POST login` (a form: `key`, `next`): sets the cookie and goes on, or says the key is wrong.
pub(super) async fn login(State(state): State<AppState>, body: String) -> Response {
    let form = form_fields(&body);
    let next = form.get("next").cloned().unwrap_or_default();
    let given = form.get("key").cloned().unwrap_or_default();
    match &state.options.key {
        Some(key) if !same_key(given.as_bytes(), key.as_bytes()) => login_page(&state, &next, true),
        _ => redirect(&safe_next(&next), Some(set_cookie(Some(&given)))),
    }
}

/// `POST logout`: removes the cookie.
pub(super) async fn logout() -> Response {
    redirect(&format!("{BASE}/"), Some(set_cookie(None)))
}

/// The fields of an `application/x-www-form-urlencoded` body.
fn form_fields(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed_after_signing_in() {
        assert_eq!(safe_next("/durable/entities?x=1"), "/durable/entities?x=1");
        assert_eq!(safe_next("https://evil.example/"), "/durable/");
        assert_eq!(safe_next("/durable//evil.example"), "/durable/");
        assert_eq!(safe_next("/other"), "/durable/");
    }

    #[test]
    fn forms_and_cookies_decode() {
        let form = form_fields("key=a%26b+c&next=%2Fdurable%2F");
        assert_eq!(form["key"], "a&b c");
        assert_eq!(form["next"], "/durable/");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; durable_key=s3%3Bcret"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("s3;cret"));
        assert_eq!(cookie(&headers, "other"), None);
    }
}

//! Writing HTML by hand: escaping, the page around every view, and the small pieces views
//! share (status badges, times, durations, JSON blocks, links).
//!
//! Every text that comes from the store (ids, names, inputs, outputs, messages) goes through
//! [`esc`]; links are built from percent-encoded segments and escaped again as attributes.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::BASE;
use crate::http::links::encode;
use crate::model::RuntimeStatus;

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The dashboard URL of an instance.
pub(super) fn instance_url(id: &str) -> String {
    format!("{BASE}/instances/{}", encode(id))
}

/// The dashboard URL of an entity.
pub(super) fn entity_url(name: &str, key: &str) -> String {
    format!("{BASE}/entities/{}/{}", encode(name), encode(key))
}

/// A link to an instance (an entity's page for an entity id), its id as the text.
pub(super) fn instance_link(id: &str) -> String {
    let href = match id.parse::<crate::model::EntityId>() {
        Ok(entity) if id.starts_with('@') => entity_url(entity.name(), entity.key()),
        _ => instance_url(id),
    };
    format!("<a class=\"id\" href=\"{}\">{}</a>", esc(&href), esc(id))
}

/// A query string from pairs, leaving out empty values (`?a=1&b=2`, or nothing).
pub(super) fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A status as a coloured badge.
pub(super) fn badge(status: RuntimeStatus) -> String {
    format!(
        "<span class=\"badge s-{}\">{}</span>",
        status.as_str().to_lowercase(),
        status.as_str()
    )
}

/// A time as the dashboard shows it: UTC, to the second, with the exact instant as a tooltip.
pub(super) fn time(t: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\" title=\"{}\">{}</time>",
        t.to_rfc3339_opts(SecondsFormat::Millis, true),
        t.to_rfc3339_opts(SecondsFormat::Millis, true),
        t.format("%Y-%m-%d %H:%M:%S")
    )
}

/// A duration in the unit that reads best: `850 ms`, `12.5 s`, `4 min 10 s`, `3 h 5 min`,
/// `2 d 4 h`.
pub(super) fn duration(d: chrono::TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Stored JSON text, pretty-printed and escaped, in a `<pre>` (text that is not JSON is shown
/// as it is; nothing at all as a dash).
pub(super) fn json_block(text: Option<&str>) -> String {
    match text {
        None => "<p class=\"muted\">—</p>".to_string(),
        Some(text) => {
            let pretty = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| text.to_string());
            format!("<pre class=\"json\">{}</pre>", esc(&pretty))
        }
    }
}

/// The first `max` characters of stored JSON text on one line, for tables.
pub(super) fn json_preview(text: Option<&str>, max: usize) -> String {
    let Some(text) = text else {
        return String::new();
    };
    let compact = serde_json::from_str::<Value>(text)
        .ok()
        .map(|v| v.to_string())
        .unwrap_or_else(|| text.to_string());
    let mut shown: String = compact.chars().take(max).collect();
    if compact.chars().count() > max {
        shown.push('…');
    }
    format!("<code>{}</code>", esc(&shown))
}

/// Which section of the navigation is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Instances,
    Entities,
    Attention,
    None,
}

/// What every page needs to know about the request.
pub(super) struct PageContext {
    /// The task hub the host serves.
    pub(super) hub: String,
    /// Whether a key is required (then the page offers to sign out).
    pub(super) keyed: bool,
}

/// A whole page: the head, the navigation, `body`, and the scripts.
pub(super) fn page(title: &str, nav: Nav, context: &PageContext, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let item = |section: Nav, href: &str, text: &str| {
        let current = if section == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{BASE}{href}\"{current}>{text}</a>")
    };
    let sign_out = if context.keyed {
        format!(
            "<form method=\"post\" action=\"{BASE}/logout\" class=\"inline\">\
             <button type=\"submit\" class=\"link\">Sign out</button></form>"
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title} · durable</title>\
         <link rel=\"stylesheet\" href=\"{BASE}/assets/app.css\">\
         <script src=\"{BASE}/assets/app.js\" defer></script></head><body>\
         <header class=\"top\"><a class=\"brand\" href=\"{BASE}/\">durable</a>\
         <nav>{}{}{}</nav><span class=\"hub\" title=\"task hub\">{}</span>\
         <button type=\"button\" class=\"link\" id=\"theme\" aria-label=\"Switch light or dark\">◐</button>\
         {sign_out}</header><main>{body}</main>\
         <div id=\"toast\" role=\"status\" aria-live=\"polite\"></div>\
         <dialog id=\"confirm\"><form method=\"dialog\"><p id=\"confirm-text\"></p>\
         <div class=\"row\"><button value=\"cancel\" type=\"submit\">Cancel</button>\
         <button value=\"ok\" type=\"submit\" class=\"primary\" id=\"confirm-ok\">Confirm</button>\
         </div></form></dialog></body></html>",
        item(Nav::Instances, "/", "Instances"),
        item(Nav::Entities, "/entities", "Entities"),
        item(Nav::Attention, "/attention", "Attention"),
        esc(&context.hub),
        title = esc(title),
    );
    out
}

/// An HTML answer with the headers every page carries: no caching, no framing, scripts only
/// from the host.
pub(super) fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

/// The headers every dashboard answer carries.
pub(super) fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
             form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A page saying something was not found (or another error), with a way back.
pub(super) fn message_page(
    status: StatusCode,
    title: &str,
    message: &str,
    context: &PageContext,
) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"{BASE}/\">Back to the instances</a></p>",
        esc(title),
        esc(message)
    );
    html_response(status, page(title, Nav::None, context, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let link = instance_link("a\"><img src=x onerror=alert(1)>");
        assert!(!link.contains("<img"), "{link}");
        assert!(link.contains("/durable/instances/a%22%3E%3Cimg"), "{link}");
    }

    #[test]
    fn entity_ids_link_to_the_entity_page() {
        assert!(instance_link("@counter@a b").contains("/durable/entities/counter/a%20b"));
        assert!(instance_link("plain/id").contains("/durable/instances/plain%2Fid"));
    }

    #[test]
    fn durations_read_in_their_unit() {
        let d = chrono::TimeDelta::milliseconds;
        assert_eq!(duration(d(850)), "850 ms");
        assert_eq!(duration(d(12_500)), "12.5 s");
        assert_eq!(duration(d(250_000)), "4 min 10 s");
        assert_eq!(duration(d(3 * 3_600_000 + 300_000)), "3 h 5 min");
        assert_eq!(duration(d(2 * 86_400_000 + 4 * 3_600_000)), "2 d 4 h");
        assert_eq!(duration(d(-5)), "0 ms");
    }

    #[test]
    fn json_is_pretty_and_escaped() {
        let block = json_block(Some(r#"{"a":"<b>"}"#));
        assert!(
            block.contains("&quot;a&quot;: &quot;&lt;b&gt;&quot;"),
            "{block}"
        );
        assert_eq!(
            json_preview(Some(r#""abcdef""#), 4),
            "<code>&quot;abc…</code>"
        );
        assert_eq!(query_string(&[("a", "x y"), ("b", "")]), "?a=x%20y");
    }
}

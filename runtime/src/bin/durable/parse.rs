//! Parsers for flag values; clap reports their errors as usage errors naming the flag.

use std::time::Duration;

use chrono::{DateTime, Utc};
use durable::RuntimeStatus;
use reqwest::Url;
use serde_json::Value;

/// A host URL: `http://host:port[/path]`; a bare `host:port` means `http://host:port`.
pub fn host(text: &str) -> Result<Url, String> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| format!("not a URL ({e}); use e.g. http://127.0.0.1:7071"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "this build of durable speaks plain http only; reach an https host \
                        through a local proxy or tunnel"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "`{other}` URLs are not supported; use http://HOST:PORT"
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host; use e.g. http://127.0.0.1:7071".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "give the host's root URL without `?` or `#` parts (the key goes in --key)".into(),
        );
    }
    Ok(url)
}

/// A time: RFC 3339 (`2026-01-31T12:00:00Z`, `2026-01-31T13:00:00+01:00`), or a date or date
/// and time without an offset, taken as UTC (`2026-01-31`, `2026-01-31T12:00:00`).
pub fn time(text: &str) -> Result<DateTime<Utc>, String> {
    durable::http::api::parse_time(text).ok_or_else(|| {
        "not a time; use RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31, UTC)".into()
    })
}

/// A JSON value, or `@FILE` for a file holding one.
pub fn json(text: &str) -> Result<Value, String> {
    let (source, what) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?,
            format!("`{path}` does not hold"),
        ),
        None => (text.to_string(), "not".to_string()),
    };
    serde_json::from_str(&source).map_err(|e| {
        format!(
            "{what} valid JSON ({e}); give a JSON value such as 42, true, '\"text\"' (quotes \
             included) or '{{\"key\": 1}}', or @FILE"
        )
    })
}

/// A number of seconds, such as `30` or `0.5`.
pub fn seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| "not a number of seconds; use e.g. 30 or 0.5".to_string())
}

/// A runtime status name, in any case.
pub fn status(text: &str) -> Result<RuntimeStatus, String> {
    text.trim()
        .parse::<RuntimeStatus>()
        .map_err(|_| format!("unknown status; use {}", status_names(&RuntimeStatus::ALL)))
}

/// A finished status (Completed, Failed or Terminated): the only ones purged.
pub fn finished_status(text: &str) -> Result<RuntimeStatus, String> {
    let finished: Vec<RuntimeStatus> = RuntimeStatus::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
    match status(text) {
        Ok(s) if s.is_terminal() => Ok(s),
        Ok(s) => Err(format!(
            "only finished instances are purged, and {s} is not finished; use {}",
            status_names(&finished)
        )),
        Err(_) => Err(format!("unknown status; use {}", status_names(&finished))),
    }
}

fn status_names(statuses: &[RuntimeStatus]) -> String {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_accept_rfc3339_and_bare_dates() {
        let noon = time("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(time("2026-01-31T13:00:00+01:00").unwrap(), noon);
        assert_eq!(time("2026-01-31T12:00:00").unwrap(), noon);
        assert_eq!(time("2026-01-31 12:00").unwrap(), noon);
        assert_eq!(
            time("2026-01-31").unwrap(),
            time("2026-01-31T00:00:00Z").unwrap()
        );
        assert!(time("yesterday").is_err());
    }

    #[test]
    fn hosts_default_to_http_and_refuse_other_schemes() {
        assert_eq!(
            host("127.0.0.1:7071").unwrap().as_str(),
            "http://127.0.0.1:7071/"
        );
        assert!(
            host("https://example.com")
                .unwrap_err()
                .contains("http only")
        );
        assert!(host("ftp://example.com").is_err());
        assert!(host("http://h:1/?code=k").is_err());
    }

    #[test]
    fn json_names_what_to_send_instead() {
        assert_eq!(json("\"Tokyo\"").unwrap(), Value::String("Tokyo".into()));
        assert!(json("Tokyo").unwrap_err().contains("quotes included"));
    }

    #[test]
    fn purges_take_only_finished_statuses() {
        assert_eq!(finished_status("failed").unwrap(), RuntimeStatus::Failed);
        assert!(
            finished_status("Running")
                .unwrap_err()
                .contains("not finished")
        );
        assert!(status("Runing").is_err());
    }
}

//! The backend that talks to a host's HTTP management API.

use std::time::Duration;

use durable::history::HistoryFile;
use durable::http::api::{CheckStatus, EntityListItem, ErrorBody, Status, timestamp};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Backend, Control, InstanceFilter, Page, PageRequest};
use crate::error::{CliError, Exit};

/// The header that carries continuation tokens of paged listings.
const CONTINUATION: &str = "x-ms-continuation-token";

/// Where the API lives under the host's URL.
const BASE_SEGMENTS: [&str; 3] = ["runtime", "webhooks", "durabletask"];

/// The command that starts a host to talk to, for the "cannot reach" hint.
const START_A_HOST: &str = "cargo run -p durable-examples --bin durable-demo";

/// A host's HTTP management API.
pub struct HttpBackend {
    http: reqwest::Client,
    url: Url,
    /// The URL as the user would write it, for messages.
    host: String,
    key: Option<String>,
    task_hub: Option<String>,
}

impl HttpBackend {
    /// The API of the host at `host`, sending `key` when set, and `taskHub=NAME` when
    /// `task_hub` is set (the host refuses a hub it does not serve).
    pub fn new(host: Url, key: Option<String>, task_hub: Option<String>) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("durable-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::failed(format!("cannot set up the HTTP client: {e}")))?;
        Ok(HttpBackend {
            http,
            host: host.as_str().trim_end_matches('/').to_string(),
            url: host,
            key,
            task_hub,
        })
    }

    /// A request to the API path made of `segments` (each percent-encoded as needed).
    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(BASE_SEGMENTS).extend(segments);
        }
        let mut request = self.http.request(method, url);
        if let Some(key) = &self.key {
            request = request.header("x-functions-key", key);
        }
        if let Some(hub) = &self.task_hub {
            request = request.query(&[("taskHub", hub)]);
        }
        request
    }

    /// Sends a request; a non-success status becomes the error the host described.
    async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(self.status_error(status, &text))
    }

    /// Sends a request and reads its JSON body.
    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, CliError> {
        let response = self.send(request).await?;
        self.body(response).await
    }

    async fn body<T: DeserializeOwned>(&self, response: Response) -> Result<T, CliError> {
        let url = response.url().clone();
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(&e))?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::failed(format!(
                "the host at {} answered {} with a body this CLI does not understand ({e})",
                self.host,
                url.path()
            ))
        })
    }

    /// A listing page: the JSON array and the continuation header.
    async fn page<T: DeserializeOwned>(
        &self,
        mut request: RequestBuilder,
        page: &PageRequest,
    ) -> Result<Page<T>, CliError> {
        if let Some(size) = page.size {
            request = request.query(&[("top", size)]);
        }
        if let Some(token) = &page.continuation {
            request = request.header(CONTINUATION, token);
        }
        let response = self.send(request).await?;
        let continuation = response
            .headers()
            .get(CONTINUATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        Ok(Page {
            items: self.body(response).await?,
            continuation,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> CliError {
        let host = &self.host;
        if e.is_connect() {
            CliError::new(
                Exit::Unreachable,
                format!(
                    "cannot connect to {host} ({}); is a host running at {host}? start one with \
                     `{START_A_HOST}`",
                    root_cause(e)
                ),
            )
        } else if e.is_timeout() {
            CliError::new(
                Exit::Unreachable,
                format!("the host at {host} did not answer in time"),
            )
        } else {
            CliError::new(
                Exit::Unreachable,
                format!("talking to the host at {host} failed: {}", root_cause(e)),
            )
        }
    }

    fn status_error(&self, status: StatusCode, text: &str) -> CliError {
        let body: Option<ErrorBody> = serde_json::from_str(text).ok();
        let message = match &body {
            Some(body) => body.message.clone(),
            None => format!(
                "the host at {} answered {status}: {}",
                self.host,
                text.trim()
            ),
        };
        match status {
            StatusCode::UNAUTHORIZED => CliError::failed(if self.key.is_some() {
                format!("the host at {} refused the key given with --key", self.host)
            } else {
                format!(
                    "the host at {} requires a key: pass --key KEY or set DURABLE_KEY",
                    self.host
                )
            }),
            // An unknown path means the URL is not a durable host (or not its root).
            StatusCode::NOT_FOUND if body.as_ref().is_none_or(|b| b.error == "NotFound") => {
                CliError::failed(format!(
                    "{} does not serve the durable management API here ({message}); give \
                     --host the host's root URL, such as http://127.0.0.1:7071",
                    self.host
                ))
            }
            StatusCode::NOT_FOUND => CliError::not_found(message),
            _ => CliError::failed(message),
        }
    }
}

/// The innermost error's words (reqwest wraps hyper's, which wraps the OS error), without
/// the OS error number: "connection refused".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = cause.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A JSON body. The host unwraps a JSON string that itself holds JSON (as Durable Functions'
/// Python client sends input), so such a string is wrapped once more to arrive unchanged.
fn json_body(request: RequestBuilder, value: &Value) -> RequestBuilder {
    match value {
        Value::String(s) if serde_json::from_str::<Value>(s).is_ok() => {
            request.json(&Value::String(value.to_string()))
        }
        _ => request.json(value),
    }
}

impl Backend for HttpBackend {
    async fn start(
        &self,
        name: &str,
        id: Option<&str>,
        version: Option<&str>,
        input: &Value,
    ) -> Result<String, CliError> {
        let mut segments = vec!["orchestrators", name];
        segments.extend(id);
        let mut request = self.request(Method::POST, &segments);
        if let Some(version) = version {
            request = request.query(&[("version", version)]);
        }
        let request = json_body(request, input);
        let body: CheckStatus = self.json(request).await?;
        Ok(body.id)
    }

    async fn status(&self, id: &str, history: bool) -> Result<Status, CliError> {
        let mut request = self.request(Method::GET, &["instances", id]);
        if history {
            request = request.query(&[("showHistory", "true"), ("showHistoryOutput", "true")]);
        }
        self.json(request).await
    }

    async fn export(&self, id: &str) -> Result<HistoryFile, CliError> {
        let request = self.request(Method::GET, &["instances", id, "history"]);
        let response = self.send(request).await?;
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(&e))?;
        HistoryFile::from_json(&text).map_err(|e| {
            CliError::failed(format!(
                "the host at {} sent a history this CLI cannot read: {e}",
                self.host
            ))
        })
    }

    async fn import(&self, file: HistoryFile, _replace: bool) -> Result<(), CliError> {
        Err(CliError::usage(format!(
            "cannot import `{}` through a host: `history import` writes into a store; give \
             --store with a SQLite file or a postgres:// URL",
            file.instance.instance_id
        )))
    }

    async fn query(
        &self,
        filter: &InstanceFilter,
        page: &PageRequest,
    ) -> Result<Page<Status>, CliError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if !filter.statuses.is_empty() {
            let names: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
            params.push(("runtimeStatus", names.join(",")));
        }
        if let Some(from) = filter.from {
            params.push(("createdTimeFrom", timestamp(from)));
        }
        if let Some(to) = filter.to {
            params.push(("createdTimeTo", timestamp(to)));
        }
        if let Some(prefix) = &filter.prefix {
            params.push(("instanceIdPrefix", prefix.clone()));
        }
        if let Some(version) = &filter.version {
            params.push(("version", version.clone()));
        }
        let request = self.request(Method::GET, &["instances"]).query(&params);
        self.page(request, page).await
    }

    async fn raise_event(&self, id: &str, event: &str, data: &Value) -> Result<(), CliError> {
        let request = self.request(Method::POST, &["instances", id, "raiseEvent", event]);
        self.send(json_body(request, data)).await.map(drop)
    }

    async fn control(&self, id: &str, control: Control, reason: &str) -> Result<(), CliError> {
        let request = self
            .request(Method::POST, &["instances", id, control.verb()])
            .query(&[("reason", reason)]);
        self.send(request).await.map(drop)
    }

    async fn restart(&self, id: &str, new_id: bool) -> Result<String, CliError> {
        let request = self
            .request(Method::POST, &["instances", id, "restart"])
            .query(&[("restartWithNewInstanceId", new_id)]);
        let body: CheckStatus = self.json(request).await?;
        Ok(body.id)
    }

    async fn purge(&self, id: &str) -> Result<(), CliError> {
        let request = self.request(Method::DELETE, &["instances", id]);
        self.send(request).await.map(drop)
    }

    async fn entity_state(&self, name: &str, key: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::GET, &["entities", name, key]))
            .await
    }

    async fn signal_entity(
        &self,
        name: &str,
        key: &str,
        op: &str,
        input: &Value,
    ) -> Result<(), CliError> {
        let request = self
            .request(Method::POST, &["entities", name, key])
            .query(&[("op", op)]);
        self.send(json_body(request, input)).await.map(drop)
    }

    async fn list_entities(
        &self,
        name: Option<&str>,
        state: bool,
        page: &PageRequest,
    ) -> Result<Page<EntityListItem>, CliError> {
        let mut segments = vec!["entities"];
        segments.extend(name);
        let mut request = self.request(Method::GET, &segments);
        if state {
            request = request.query(&[("fetchState", "true")]);
        }
        self.page(request, page).await
    }
}

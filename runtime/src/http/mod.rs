//! The HTTP management API, compatible with Durable Functions' built-in HTTP API (feature
//! `http`).
//!
//! Every endpoint lives under [`BASE_PATH`]:
//!
//! | Method and path | Does |
//! |---|---|
//! | `POST orchestrators/{name}[/{instanceId}]` | start; `202` + `Location` + the check-status body (with `?timeout=SECS`: `200` + the output if it completes in time) |
//! | `GET instances/{id}` | status: `202` while pending or running, `200` when done, `404` unknown |
//! | `GET instances/{id}/history` | the whole history, replayable, in the exported format (`durable::history::HistoryFile`); not part of Durable Functions' API |
//! | `GET instances` | query (`runtimeStatus`, `createdTimeFrom`, `createdTimeTo`, `instanceIdPrefix`, `top`, `x-ms-continuation-token`) |
//! | `POST instances/{id}/raiseEvent/{event}` | raise an event; `410` when the instance has finished |
//! | `POST instances/{id}/terminate`, `/suspend`, `/resume`, `/rewind` | `?reason=`; `202`, `404`, `410` |
//! | `POST instances/{id}/restart` | `?restartWithNewInstanceId=`; `202` + check-status body |
//! | `DELETE instances/{id}` | purge one finished instance |
//! | `DELETE instances` | purge finished instances by `createdTimeFrom`, `createdTimeTo`, `runtimeStatus` |
//! | `GET entities/{name}/{key}` | an entity's state; `404` when it has none |
//! | `POST entities/{name}/{key}?op=` | signal an operation; `202` |
//! | `GET entities[/{name}]` | list entities (`fetchState`, `top`, `x-ms-continuation-token`) |
//!
//! With the `dashboard` feature, the same server also serves the web dashboard at
//! [`dashboard::BASE`] (`/durable/`), under the same key.
//!
//! Serve it with the host — [`RuntimeBuilder::http`](crate::RuntimeBuilder::http) — or mount
//! [`router`] in an axum application of your own.
//!
//! ```no_run
//! # use durable::prelude::*;
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! let runtime = Runtime::builder()
//!     .store(durable::store::Memory::new())
//!     .http("127.0.0.1:7071".parse().unwrap())
//!     .start()
//!     .await?;
//! println!("listening on {}", runtime.http_addr().unwrap());
//! # Ok(()) }
//! ```

pub mod api;
mod auth;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod entities;
mod error;
mod history;
mod instances;
mod links;
mod params;
mod router;
mod serve;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::model::{Error, ErrorKind};

pub use router::router;
pub use serve::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};

/// Where every endpoint lives.
pub const BASE_PATH: &str = "/runtime/webhooks/durabletask";

/// The largest request body accepted by default (bytes).
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// How long a client may take to send a request head, by default.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay open with no request in progress, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the HTTP API is served.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub(crate) addr: SocketAddr,
    pub(crate) key: Option<String>,
    pub(crate) max_body: usize,
    pub(crate) head_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

/// Loopback, port 7071 (where Durable Functions' local host listens), no key.
impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::new(std::net::SocketAddr::from(([127, 0, 0, 1], 7071)))
    }
}

impl HttpOptions {
    /// Serve on `addr`. Use a loopback address (`127.0.0.1:7071`) unless the API must be
    /// reachable from other machines, and then set a key.
    pub fn new(addr: SocketAddr) -> Self {
        HttpOptions {
            addr,
            key: None,
            max_body: DEFAULT_MAX_BODY,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Require this key on every request, as `?code=KEY` or the `x-functions-key` header (the
    /// way Durable Functions' clients send it). Requests without it get `401`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Refuse request bodies larger than this many bytes with `413` (default 4 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long a client may take to send a request head (the request line and headers),
    /// counted from its first byte (default 10 s). A head still incomplete then is answered
    /// `408` with the API's JSON error and the connection is closed, so a client trickling
    /// header bytes cannot hold a connection open.
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// How long a connection may stay open with no request in progress — before its first
    /// request, or between keep-alive requests (default 60 s). It is then closed, without an
    /// answer. A request the host is still answering (one waiting with `?timeout=`, say) is
    /// not idle.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The address to serve on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A running HTTP server; stops when [`HttpServer::shutdown`] is called or it is dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `options.addr` and serves the API for `client` until shut down.
    pub async fn start(client: Client, options: HttpOptions) -> Result<HttpServer, Error> {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("cannot listen on {}: {e}", options.addr),
                )
            })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::new(ErrorKind::InvalidArgument, format!("no local address: {e}"))
        })?;
        if !addr.ip().is_loopback() && options.key.is_none() {
            tracing::warn!(
                %addr,
                "the HTTP management API is reachable from other machines and requires no key"
            );
        }
        let timeouts = serve::Timeouts {
            head: options.head_timeout,
            idle: options.idle_timeout,
        };
        let options = Arc::new(options);
        #[cfg(feature = "dashboard")]
        let app: Router =
            router(client.clone(), options.clone()).merge(dashboard::router(client, options));
        #[cfg(not(feature = "dashboard"))]
        let app: Router = router(client, options);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve::serve(listener, app, timeouts, stopped));
        tracing::info!(%addr, "HTTP management API listening");
        #[cfg(feature = "dashboard")]
        tracing::info!(url = %format!("http://{addr}{}/", dashboard::BASE), "dashboard");
        Ok(HttpServer {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// The address it listens on (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for requests in progress to finish.
    pub async fn shutdown(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

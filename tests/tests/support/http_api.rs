//! What the HTTP API tests share: a host with the functions they call, and the API as a client
//! sees it in two transports — in process (the axum router called directly) and over a real
//! loopback socket (the host's server) — plus raw-socket requests and a log capture.
#![allow(dead_code)] // each test file uses a part

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use durable::http::{HttpOptions, api};
use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_tests::WAIT;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt;

pub const BASE: &str = "/runtime/webhooks/durabletask";

#[activity]
pub async fn greet(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

#[orchestrator]
pub async fn hello(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for city in ["Tokyo", "London"] {
        out.push(ctx.call_activity(greet, city.to_string()).await?);
    }
    Ok(out)
}

#[orchestrator]
pub async fn approval(ctx: OrchestrationContext, who: String) -> Result<String, Error> {
    ctx.set_custom_status("waiting");
    let ok: bool = ctx.wait_for_event("Approval").await?;
    Ok(format!(
        "{who}: {}",
        if ok { "approved" } else { "rejected" }
    ))
}

#[orchestrator]
pub async fn echo(_ctx: OrchestrationContext, input: Value) -> Result<Value, Error> {
    Ok(input)
}

#[orchestrator]
pub async fn broken(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    Err(Error::msg("broken on purpose"))
}

/// Fails on its first call in each test run, then succeeds.
pub static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[activity]
pub async fn flaky_step(_ctx: ActivityContext, _input: ()) -> Result<String, Error> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
        return Err(Error::msg("the first attempt fails"));
    }
    Ok("second time lucky".to_string())
}

#[orchestrator]
pub async fn flaky(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ctx.call_activity(flaky_step, ()).await
}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    pub value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    pub fn get(&self) -> i64 {
        self.value
    }
}

pub fn builder() -> durable::RuntimeBuilder {
    Runtime::builder()
        .register(greet)
        .register(hello)
        .register(approval)
        .register(echo)
        .register(broken)
        .register(flaky_step)
        .register(flaky)
        .register_entity::<Counter>()
}

/// A response: status, headers and the body parsed as JSON (null when empty).
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status only.
    #[track_caller]
    pub fn expect_code(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts the status and, for an error, that the body is the JSON error shape.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        if status >= 400 {
            let error: api::ErrorBody = serde_json::from_value(self.body.clone())
                .unwrap_or_else(|e| panic!("error body is not JSON {{error, message}}: {e}"));
            assert!(!error.message.is_empty());
            // Durable Functions' clients read `Message` and `ExceptionMessage`.
            assert_eq!(error.message_compat, error.message, "{}", self.body);
            assert_eq!(error.exception_message, error.message, "{}", self.body);
        }
        self
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

pub enum Transport {
    InProcess(axum::Router),
    Socket(reqwest::Client, String),
}

/// The API as a client sees it, in one of the two transports.
pub struct Api {
    pub transport: Transport,
    pub host: String,
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{BASE}/{path}")
        };
        match &self.transport {
            Transport::InProcess(router) => {
                let mut request = axum::http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("host", &self.host);
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                let request = request
                    .body(Body::from(body.unwrap_or_default().to_string()))
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let headers = header_list(response.headers());
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                Reply {
                    status,
                    headers,
                    body: parse(&bytes),
                }
            }
            Transport::Socket(client, base) => {
                let mut request = client.request(method.parse().unwrap(), format!("{base}{url}"));
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                if let Some(body) = body {
                    request = request.body(body.to_string());
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let headers = header_list(response.headers());
                let bytes = response.bytes().await.unwrap();
                Reply {
                    status,
                    headers,
                    body: parse(&bytes),
                }
            }
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Option<&str>) -> Reply {
        self.call("POST", path, body, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, &[]).await
    }

    /// Starts `name` with `input` and returns the instance id.
    pub async fn start(&self, name: &str, input: Option<&str>) -> String {
        let reply = self.post(&format!("orchestrators/{name}"), input).await;
        reply.expect(202);
        reply.body["id"].as_str().unwrap().to_string()
    }
}

pub fn header_list(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect()
}

pub fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
    }
}

/// Runs `scenario` in process and over a socket, each on a fresh host.
pub async fn both<F, Fut>(options: impl Fn(HttpOptions) -> HttpOptions, scenario: F)
where
    F: Fn(Api, Arc<TestRuntime>) -> Fut,
    Fut: Future<Output = ()>,
{
    let loopback = "127.0.0.1:0".parse().unwrap();
    // In process: the router alone, on the host's client.
    let rt = Arc::new(TestRuntime::start(builder()).await.unwrap());
    let opts = options(HttpOptions::default());
    assert_eq!(
        opts.addr().to_string(),
        "127.0.0.1:7071",
        "loopback by default"
    );
    let router = durable::http::router(rt.client(), Arc::new(opts));
    println!("--- in process");
    scenario(
        Api {
            transport: Transport::InProcess(router),
            host: "localhost:7071".to_string(),
        },
        rt.clone(),
    )
    .await;
    rt.shutdown().await;
    // Over a real socket: the host serves it.
    let rt = Arc::new(
        TestRuntime::start(builder().http_options(options(HttpOptions::new(loopback))))
            .await
            .unwrap(),
    );
    let addr = rt.http_addr().expect("the host listens");
    assert!(addr.ip().is_loopback());
    println!("--- over a socket at {addr}");
    scenario(
        Api {
            transport: Transport::Socket(reqwest::Client::new(), format!("http://{addr}")),
            host: addr.to_string(),
        },
        rt.clone(),
    )
    .await;
    rt.shutdown().await;
}

pub fn plain(o: HttpOptions) -> HttpOptions {
    o
}

pub async fn done(rt: &TestRuntime, id: &str) {
    rt.client().wait_for_completion(id, WAIT).await.unwrap();
}

/// Sends raw bytes to the host and reads the answer to the end (the requests ask the server to
/// close): the status and the body, parsed as JSON.
pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, parse(body.as_bytes()))
}

#[track_caller]
pub fn assert_json_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "body: {body}");
    let error: api::ErrorBody = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("error body is not JSON {{error, message}}: {e}: {body}"));
    assert!(
        !error.error.is_empty() && !error.message.is_empty(),
        "{body}"
    );
}

/// A writer into a shared buffer, for reading what was logged.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Logs into this buffer on the current thread (the test's runtime is single-threaded).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

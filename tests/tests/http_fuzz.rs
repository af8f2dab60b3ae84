//! A bounded fuzz test of the HTTP API over a loopback socket: a few hundred requests with
//! random and hostile methods, paths, queries, headers and bodies, sent as raw bytes (so even
//! what an HTTP client would refuse to send gets through). No answer may be a 5xx, every error
//! must be the JSON error, and the host must still start an instance afterwards.
//!
//! The seed is printed; `DURABLE_FUZZ_SEED=N` replays a run.

use std::net::SocketAddr;
use std::time::Duration;

use durable::http::HttpOptions;
use durable::prelude::*;
use durable::testing::TestRuntime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BASE: &str = "/runtime/webhooks/durabletask";
const REQUESTS: usize = 300;

#[orchestrator]
async fn echo(_ctx: OrchestrationContext, input: Value) -> Result<Value, Error> {
    Ok(input)
}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }
}

/// xorshift64*: a few lines, enough to pick test cases reproducibly (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const SEGMENTS: &[&str] = &[
    "x",
    "@counter@k",
    "@",
    "..",
    "%2e%2e",
    "%FF",
    "%C3%28",
    "%00",
    "%0a",
    "%",
    "%zz",
    "a%20b",
    "terminate",
    "raiseEvent",
    "restart",
    "rewind",
    "suspend",
    "resume",
    "echo",
    "counter",
    "",
    "%E2%82%AC",
    "\u{00e9}",
];

const PREFIXES: &[&str] = &[
    "orchestrators",
    "instances",
    "entities",
    "instances/x",
    "instances/@counter@k",
    "orchestrators/echo",
    "entities/counter",
    "..",
];

const QUERIES: &[&str] = &[
    "",
    "?timeout=abc",
    "?timeout=1e308",
    "?timeout=-1",
    "?top=0",
    "?top=999999999999999999999",
    "?runtimeStatus=Nope",
    "?createdTimeFrom=yesterday",
    "?showHistory=maybe",
    "?op=",
    "?op=add",
    "?op=%0aforged",
    "?code=x",
    "?taskHub=other",
    "?restartWithNewInstanceId=perhaps",
    "?a=1&a=2&&=",
    "?reason=caf%C3%A9+%E2%82%AC",
];

/// Queries whose names or values are not UTF-8 once percent-decoded: always `400`.
const BAD_QUERIES: &[&str] = &[
    "?reason=%FF",
    "?%FF=%FE",
    "?op=add%C3%28",
    "?runtimeStatus=Running%80",
    "?code=%ED%A0%80",
    "?top=1&instanceIdPrefix=%E2%82",
    "?timeout=1&reason=%F8%88%80%80%80",
];

const BODIES: &[&str] = &[
    "",
    "42",
    "\"text\"",
    "{\"a\":",
    "[[[[[[[[[[[[[[[[[[[[",
    "null",
    "\"{\\\"nested\\\": 1}\"",
    "\u{feff}{}",
    "{\"a\": 1e999}",
];

const HEADERS: &[&str] = &[
    "x-ms-continuation-token: %%%",
    "x-ms-continuation-token: eyJub3Bl",
    "x-functions-key: wrong",
    "Content-Type: text/plain",
    "Accept: */*",
    "Expect: 100-continue",
    "Transfer-Encoding: gzip",
    "Content-Length: abc",
    "Bad Header: x",
    "X-Empty:",
];

/// A request, and whether it must be refused for its query alone (whatever else is wrong
/// with it, it gets a `400` — or a `414` when its URL is too long).
fn request(rng: &mut Rng) -> (Vec<u8>, bool) {
    let method = rng.pick(&[
        "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "G@T",
    ]);
    let mut path = format!("{BASE}/{}", rng.pick(PREFIXES));
    for _ in 0..rng.below(4) {
        path.push('/');
        if rng.below(12) == 0 {
            path.push_str(&"a".repeat(rng.below(40_000)));
        } else {
            path.push_str(rng.pick(SEGMENTS));
        }
    }
    if rng.below(20) == 0 {
        path = rng
            .pick(&["/", "*", "/../../etc/passwd", "//", "/runtime"])
            .to_string();
    }
    let bad_query = rng.below(4) == 0;
    path.push_str(if bad_query {
        rng.pick(BAD_QUERIES)
    } else {
        rng.pick(QUERIES)
    });
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    for _ in 0..rng.below(3) {
        head.push_str(rng.pick(HEADERS));
        head.push_str("\r\n");
    }
    let body: Vec<u8> = if rng.below(4) == 0 {
        rng.bytes(64)
    } else {
        rng.pick(BODIES).as_bytes().to_vec()
    };
    let mut bytes = head.into_bytes();
    if rng.below(10) == 0 {
        // Chunked, sometimes also with a Content-Length.
        if rng.below(2) == 0 {
            bytes.extend_from_slice(b"Content-Length: 5\r\n");
        }
        bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(&body);
    }
    if rng.below(25) == 0 {
        // Raw garbage instead of a request. It starts with a byte that is not a line end: a
        // server rightly skips empty lines before a request and then waits for one (until
        // its idle timeout), which is not an answer this test can wait for.
        bytes = vec![b'#'];
        bytes.extend(rng.bytes(200));
        bytes.extend_from_slice(b"\r\n\r\n");
        return (bytes, false);
    }
    (bytes, bad_query)
}

/// Sends `bytes` and reads until the server closes. `None` when the server closed without
/// an answer (allowed only for garbage it cannot take for a request).
async fn send(addr: SocketAddr, bytes: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything; a reset then is fine.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers within 10 s");
    if read.is_err() && answer.is_empty() {
        return None;
    }
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    // Only the first answer: garbage after a request (a stray chunk, say) is answered next.
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok());
    let body = &answer[split + 4..];
    let body = length.map_or(body, |n| &body[..n.min(body.len())]);
    Some((status, head, body.to_vec()))
}

#[tokio::test]
async fn hostile_requests_get_clean_answers() {
    let seed = std::env::var("DURABLE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("DURABLE_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(echo)
            .register_entity::<Counter>()
            .http_options(HttpOptions::new(loopback)),
    )
    .await
    .unwrap();
    let addr = rt.http_addr().unwrap();
    assert!(addr.ip().is_loopback());
    for i in 0..REQUESTS {
        let (bytes, bad_query) = request(&mut rng);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        let Some((status, head, body)) = send(addr, &bytes).await else {
            panic!("request {i} got no answer (seed {seed}): {shown:?}");
        };
        assert!(
            status < 500,
            "request {i} got {status} (seed {seed}): {shown:?}"
        );
        assert!(
            // A head too long to read is refused before its query is looked at.
            !bad_query || status == 400 || status == 414 || status == 431,
            "request {i}: a query that is not UTF-8 got {status} (seed {seed}): {shown:?}"
        );
        let is_head = bytes.starts_with(b"HEAD ");
        if status >= 400 && !is_head {
            let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "request {i}: error {status} is not JSON (seed {seed}): {shown:?} -> {head} {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert!(
                json["error"].as_str().is_some_and(|s| !s.is_empty())
                    && json["message"].as_str().is_some_and(|s| !s.is_empty()),
                "request {i}: error body lacks error/message (seed {seed}): {shown:?} -> {json}"
            );
        }
    }
    // The host still serves a normal start.
    let start = format!(
        "POST {BASE}/orchestrators/echo HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\
         Content-Length: 2\r\n\r\n42"
    );
    let (status, _, body) = send(addr, start.as_bytes()).await.unwrap();
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let links: Value = serde_json::from_slice(&body).unwrap();
    let id = links["id"].as_str().unwrap();
    let done = rt
        .client()
        .wait_for_completion(id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.output.as_deref(), Some("42"));
    rt.shutdown().await;
}

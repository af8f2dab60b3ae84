//! The HTTP management API against bad input: bad paths and ids, queries that are not UTF-8,
//! requests hyper itself would answer, slow senders, and failures that must not leak
//! internals or forge log lines.

use std::sync::Arc;

use durable::http::HttpOptions;
use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_tests::WAIT;

#[path = "support/http_api.rs"]
mod http_api;

use http_api::*;

#[tokio::test]
async fn bad_paths_and_entity_ids_on_instance_routes_answer_400_in_json() {
    both(plain, |api, _rt| async move {
        // Percent-escapes that do not decode to UTF-8 in a path segment.
        let bad = api.get("instances/%FF%FE").await;
        bad.expect(400);
        assert!(bad.message().contains("UTF-8"), "{}", bad.message());
        api.get("entities/%C3%28/k").await.expect(400);
        // Entity ids on every instance route point at the entity endpoints.
        for (method, path) in [
            ("GET", "instances/@counter@k"),
            ("DELETE", "instances/@counter@k"),
            ("POST", "instances/@counter@k/terminate"),
            ("POST", "instances/@counter@k/suspend"),
            ("POST", "instances/@counter@k/resume"),
            ("POST", "instances/@counter@k/rewind"),
            ("POST", "instances/@counter@k/restart"),
            ("POST", "instances/@counter@k/raiseEvent/x"),
        ] {
            let reply = api.call(method, path, None, &[]).await;
            reply.expect(400);
            assert!(
                reply.message().contains("entities/{name}/{key}"),
                "{method} {path}: {}",
                reply.message()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn query_values_and_names_that_are_not_utf8_answer_400_naming_them() {
    both(
        |o| o.key("s3cret"),
        |api, rt| async move {
            let id = api.start("approval?code=s3cret", Some("\"ann\"")).await;
            // A form decoder would store U+FFFD as the reason; the request is refused instead,
            // and the instance is left running.
            let refused = api
                .post(
                    &format!("instances/{id}/terminate?code=s3cret&reason=%FF"),
                    None,
                )
                .await;
            refused.expect(400);
            assert!(
                refused.message().contains("`reason`"),
                "{}",
                refused.message()
            );
            assert!(refused.message().contains("UTF-8"), "{}", refused.message());
            let status = rt.client().status(&id).await.unwrap().unwrap();
            assert_ne!(status.runtime_status, RuntimeStatus::Terminated);
            for (method, path, named) in [
                (
                    "GET",
                    "instances?code=s3cret&runtimeStatus=Running%C3%28",
                    "`runtimeStatus`",
                ),
                (
                    "GET",
                    "instances?code=s3cret&instanceIdPrefix=%80",
                    "`instanceIdPrefix`",
                ),
                ("POST", "entities/counter/k?code=s3cret&op=add%FE", "`op`"),
                (
                    "POST",
                    "orchestrators/echo?code=s3cret&%FF=1",
                    "name of the query parameter",
                ),
                (
                    "DELETE",
                    "instances?code=s3cret&createdTimeFrom=%E2%82",
                    "`createdTimeFrom`",
                ),
                (
                    "GET",
                    "instances/x?code=s3cret&show+history=%ED%A0%80",
                    "`show history`",
                ),
                // Before the key is checked, too: a key that is not UTF-8 is no key.
                ("GET", "instances?code=%FF", "`code`"),
                ("GET", "nowhere?x=%FF", "`x`"),
            ] {
                let reply = api.call(method, path, None, &[]).await;
                reply.expect(400);
                assert!(
                    reply.message().contains(named),
                    "{method} {path}: {}",
                    reply.message()
                );
            }
            // Well-formed UTF-8 passes.
            api.get("instances?code=s3cret&instanceIdPrefix=caf%C3%A9")
                .await
                .expect(200);
        },
    )
    .await;
}

#[tokio::test]
async fn hyper_level_errors_and_ambiguous_framing_answer_in_json() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let rt = TestRuntime::start(builder().http_options(HttpOptions::new(loopback)))
        .await
        .unwrap();
    let addr = rt.http_addr().unwrap();
    let close = "Host: x\r\nConnection: close\r\n";
    // Both Content-Length and Transfer-Encoding: hyper alone would take the chunked body.
    let smuggle = format!(
        "POST {BASE}/orchestrators/echo HTTP/1.1\r\n{close}Content-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n4\r\n\"ab\"\r\n0\r\n\r\n"
    );
    let (status, body) = raw(addr, smuggle.as_bytes()).await;
    assert_json_error(status, &body, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Transfer-Encoding")
    );
    // Headers too large, a URI too long, a malformed header, a bad request line.
    let big = format!(
        "GET {BASE}/instances HTTP/1.1\r\n{close}x-big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let (status, body) = raw(addr, big.as_bytes()).await;
    assert_json_error(status, &body, 431);
    let long = format!(
        "GET {BASE}/instances/{} HTTP/1.1\r\n{close}\r\n",
        "a".repeat(20_000)
    );
    let (status, body) = raw(addr, long.as_bytes()).await;
    assert_json_error(status, &body, 414);
    let malformed = format!("GET {BASE}/instances HTTP/1.1\r\n{close}bad header\r\n\r\n");
    let (status, body) = raw(addr, malformed.as_bytes()).await;
    assert_json_error(status, &body, 400);
    let (status, body) = raw(addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_json_error(status, &body, 400);
    // Invalid UTF-8 in a path segment, sent raw.
    let utf8 = format!("GET {BASE}/instances/%FF HTTP/1.1\r\n{close}\r\n");
    let (status, body) = raw(addr, utf8.as_bytes()).await;
    assert_json_error(status, &body, 400);
    // A good request after a pipelined one is answered; a bad one after it is refused in JSON
    // once the first is answered.
    let pipelined = format!(
        "GET {BASE}/instances HTTP/1.1\r\nHost: x\r\n\r\n\
         POST {BASE}/orchestrators/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let second = answer.rfind("HTTP/1.1 ").unwrap();
    assert!(answer[second..].starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with('}'), "{answer}");
    // The host still serves.
    let ok =
        format!("POST {BASE}/orchestrators/echo HTTP/1.1\r\n{close}Content-Length: 2\r\n\r\n42");
    let (status, body) = raw(addr, ok.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    rt.shutdown().await;
}

#[tokio::test]
async fn slow_heads_get_408_and_idle_connections_are_closed() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let loopback = "127.0.0.1:0".parse().unwrap();
    let options = HttpOptions::new(loopback)
        .head_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(300));
    let rt = TestRuntime::start(builder().http_options(options))
        .await
        .unwrap();
    let addr = rt.http_addr().unwrap();
    // Reads until the server closes (a reset after its answer keeps what was read).
    let read_all = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        let read = async {
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("the server closes the connection");
        String::from_utf8_lossy(&answer).into_owned()
    };
    // A head trickled a byte at a time, never finished: the time counts from its first byte,
    // however often bytes arrive.
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {BASE}/instances HTTP/1.1\r\nHost: x\r\nx-slow: ");
    for byte in head.bytes().chain(std::iter::repeat(b'a')) {
        assert!(started.elapsed() < WAIT, "a trickled head is answered");
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        let mut peek = [0u8; 1];
        let answered =
            tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut peek)).await;
        if answered.is_ok() {
            break;
        }
    }
    let answer = read_all(stream).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(head.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_json_error(408, &parse(body.as_bytes()), 408);
    assert!(body.contains("200 ms"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that sends nothing is closed without an answer.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_all(stream).await, "");
    // So is a kept-alive connection once its request is answered, and it is idle.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let get = format!("GET {BASE}/instances HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(get.as_bytes()).await.unwrap();
    let answer = read_all(stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    // A request answered slowly (waiting longer than the idle timeout for its instance) is not
    // idle: its answer arrives.
    let wait = format!(
        "POST {BASE}/orchestrators/approval?timeout=1 HTTP/1.1\r\nHost: x\r\n\
         Content-Length: 5\r\n\r\n\"ann\""
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(wait.as_bytes()).await.unwrap();
    let answer = read_all(stream).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    // The host still serves.
    let ok = format!(
        "POST {BASE}/orchestrators/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: 2\r\n\r\n42"
    );
    let (status, body) = raw(addr, ok.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    rt.shutdown().await;
}

#[tokio::test]
async fn store_failures_answer_without_internals_and_are_logged_once() {
    use durable_tests::hooked::HookedStore;
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let secret = "unable to open database file: /var/lib/secret/durable.db\nINFO forged line";
    let store = HookedStore::new(durable::store::Memory::new(), Arc::new(|_, _| Ok(())))
        .failing_reads(secret);
    let rt = TestRuntime::start(builder().store(store)).await.unwrap();
    let router = durable::http::router(rt.client(), Arc::new(HttpOptions::default()));
    let api = Api {
        transport: Transport::InProcess(router),
        host: "localhost:7071".to_string(),
    };
    let failed = api.get("instances/some-id").await;
    failed.expect(500);
    assert_eq!(failed.body["error"], "Store");
    assert_eq!(failed.message(), "the store failed; see the host's log");
    assert!(
        !failed.body.to_string().contains("/var/lib"),
        "{}",
        failed.body
    );
    api.get("instances").await.expect(500);
    let text = logs.text();
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("/var/lib/secret"))
        .collect();
    assert_eq!(logged.len(), 2, "once per failed request: {text}");
    assert!(logged.iter().all(|l| l.contains("ERROR")), "{text}");
    // The newline in the message is escaped: no forged line.
    assert!(
        !text.lines().any(|l| l.starts_with("INFO forged")),
        "{text}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn names_and_ids_with_newlines_stay_on_one_log_line() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let rt = TestRuntime::start(builder()).await.unwrap();
    let router = durable::http::router(rt.client(), Arc::new(HttpOptions::default()));
    let api = Api {
        transport: Transport::InProcess(router),
        host: "localhost:7071".to_string(),
    };
    // An operation the entity does not have fails, and the failure is logged with its name.
    api.post(
        "entities/counter/k%0aWARN%20forged?op=nope%0aWARN%20forged",
        None,
    )
    .await
    .expect(202);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !logs.text().contains("entity operation failed") {
        assert!(tokio::time::Instant::now() < deadline, "{}", logs.text());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let text = logs.text();
    assert!(
        !text.lines().any(|l| l.starts_with("WARN forged")),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("entity operation failed"))
        .unwrap();
    // Operation names are matched case-insensitively, so it is logged lower-cased.
    assert!(line.contains(r"nope\nwarn forged"), "{line}");
    assert!(line.contains(r"@counter@k\nWARN forged"), "{line}");
    rt.shutdown().await;
}

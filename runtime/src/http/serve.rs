//! Serving the router over TCP, with a guard in front of hyper's HTTP/1 parser.
//!
//! hyper answers the requests it cannot parse itself, before any handler runs: a head larger
//! than its buffer gets `431`, a URI longer than 65534 bytes `414`, a malformed request line
//! or header `400` — all with empty bodies, and none of them can be customised. And a request
//! with both `Content-Length` and `Transfer-Encoding` is accepted (hyper drops the
//! `Content-Length`), so a handler cannot see it to refuse it.
//!
//! So every connection reads through a [`Guarded`] stream. It holds each request head back
//! until the whole head has arrived, checks it the way hyper would (with tighter limits), and
//! hands hyper only heads hyper will accept. A head it refuses is never given to hyper: hyper
//! sees the connection end there, finishes the answers already in progress, and the guard then
//! writes the API's JSON error for the refused head and closes the connection. To find where
//! the next head begins it follows each request's body framing (`Content-Length` or chunked).
//!
//! The guard also times the connection, since it alone sees where a head begins (hyper's own
//! `header_read_timeout` would see only whole heads, and closes without an answer). A head
//! must arrive whole within [`HttpOptions::head_timeout`](super::HttpOptions::head_timeout) of
//! its first byte, or it is refused like a bad head, with a `408` JSON error. A connection with
//! no head arriving and no request being answered is closed after
//! [`HttpOptions::idle_timeout`](super::HttpOptions::idle_timeout); requests being answered
//! are counted as hyper calls the service and as their answers are ready, so a request that
//! waits long (`?timeout=`) does not make its connection idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use super::error::ApiError;

/// The largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// The most header fields a request may have.
pub const MAX_HEADERS: usize = 100;

/// How long a connection may take over a request head, and may stay idle.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub(super) head: Duration,
    pub(super) idle: Duration,
}

/// Accepts connections until `stopped` turns true, then waits for the requests in progress.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut stop = stopped.clone();
    let stop = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(
                        stream,
                        app.clone(),
                        timeouts,
                        stopped.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = ?e.to_string(), "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    app: Router,
    timeouts: Timeouts,
    mut stopped: watch::Receiver<bool>,
) {
    let answering = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(Guarded::new(stream, timeouts, answering.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A client that closes its side after sending still gets its answer.
    builder.half_close(true).max_headers(MAX_HEADERS);
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |request| {
        let answer = Answering::start(&answering);
        let response = hyper::service::Service::call(&app, request);
        async move {
            let response = response.await;
            drop(answer);
            response
        }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stop = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => Some(result),
        () = stop => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = ?e.to_string(), "an HTTP connection ended with an error");
    }
}

/// A request being answered: counted from the service's call until its answer is ready (or the
/// call is dropped).
struct Answering(Arc<AtomicUsize>);

impl Answering {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Answering(count.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the guard's timer is timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timing {
    /// A request head, from its first byte.
    Head,
    /// A connection with no head arriving and no request being answered.
    Idle,
}

/// Where the guard is in the stream of requests.
#[derive(Debug)]
enum Framing {
    /// Reading a request head.
    Head,
    /// Inside a body of this many more bytes.
    Body(u64),
    /// Inside a chunked body: reading a chunk-size line.
    ChunkSize,
    /// Inside a chunk of this many more bytes.
    ChunkData(u64),
    /// After a chunk's data: reading its line end.
    ChunkEnd,
    /// After the last chunk: reading trailer lines until an empty one.
    Trailers,
    /// The framing could not be followed (a malformed chunk size): hyper fails the body and
    /// closes the connection, so what follows is handed on unchecked.
    PassThrough,
}

/// A TCP stream that hands hyper only request heads hyper will accept, and answers the others
/// in JSON itself.
pub(super) struct Guarded {
    io: TcpStream,
    framing: Framing,
    /// The head (or chunk line) being read, not yet handed on.
    line: Vec<u8>,
    /// Bytes checked and ready for hyper.
    ready: Vec<u8>,
    /// The answer to a refused head; once set, hyper reads the end of the stream.
    refusal: Option<Vec<u8>>,
    /// How much of the refusal has been written.
    written: usize,
    eof: bool,
    timeouts: Timeouts,
    /// How many requests hyper is answering.
    answering: Arc<AtomicUsize>,
    /// What the timer is set for, if anything.
    timing: Option<Timing>,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(io: TcpStream, timeouts: Timeouts, answering: Arc<AtomicUsize>) -> Self {
        Guarded {
            io,
            framing: Framing::Head,
            line: Vec::new(),
            ready: Vec::new(),
            refusal: None,
            written: 0,
            eof: false,
            timeouts,
            answering,
            timing: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// What should be timed now: a head once its first byte is in, or an idle connection.
    fn timing_now(&self) -> Option<Timing> {
        if !matches!(self.framing, Framing::Head) || !self.ready.is_empty() {
            None
        } else if !self.line.is_empty() {
            Some(Timing::Head)
        } else if self.answering.load(Ordering::SeqCst) == 0 {
            Some(Timing::Idle)
        } else {
            None
        }
    }

    /// Sets the timer for what is timed now, and says whether its time is up.
    fn poll_timeout(&mut self, cx: &mut Context<'_>) -> Option<Timing> {
        let timing = self.timing_now();
        if timing != self.timing {
            self.timing = timing;
            let limit = match timing {
                Some(Timing::Head) => self.timeouts.head,
                Some(Timing::Idle) => self.timeouts.idle,
                None => return None,
            };
            self.timer.as_mut().reset(Instant::now() + limit);
        }
        match timing {
            Some(timing) if self.timer.as_mut().poll(cx).is_ready() => Some(timing),
            _ => None,
        }
    }

    /// Follows `data` through the framing, moving what is checked to `ready`.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.refusal.is_none() {
            match self.framing {
                Framing::Head => {
                    let (byte, rest) = (data[0], &data[1..]);
                    data = rest;
                    self.line.push(byte);
                    if byte == b'\n' && head_complete(&self.line) {
                        match check_head(&self.line) {
                            Ok(framing) => {
                                self.ready.append(&mut self.line);
                                self.framing = framing;
                                self.timing = None;
                            }
                            Err(answer) => self.refuse(answer),
                        }
                    } else if self.line.len() > MAX_HEAD_BYTES {
                        self.refuse(ApiError::new(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            "HeadersTooLarge",
                            format!(
                                "the request line and headers are larger than {MAX_HEAD_BYTES} \
                                 bytes; send shorter headers and put large values in the body"
                            ),
                        ));
                    }
                }
                Framing::Body(left) | Framing::ChunkData(left) => {
                    let take = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.ready.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let left = left - take as u64;
                    self.framing = match (&self.framing, left) {
                        (Framing::Body(_), 0) => Framing::Head,
                        (Framing::Body(_), n) => Framing::Body(n),
                        (_, 0) => Framing::ChunkEnd,
                        (_, n) => Framing::ChunkData(n),
                    };
                }
                Framing::ChunkSize | Framing::ChunkEnd | Framing::Trailers => {
                    let (byte, rest) = (data[0], &data[1..]);
                    data = rest;
                    self.line.push(byte);
                    self.ready.push(byte);
                    if byte != b'\n' {
                        if self.line.len() > MAX_HEAD_BYTES {
                            self.framing = Framing::PassThrough;
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    self.framing = match self.framing {
                        Framing::ChunkEnd => Framing::ChunkSize,
                        Framing::Trailers if trim_line(&line).is_empty() => Framing::Head,
                        Framing::Trailers => Framing::Trailers,
                        _ => match chunk_size(&line) {
                            Some(0) => Framing::Trailers,
                            Some(n) => Framing::ChunkData(n),
                            None => Framing::PassThrough,
                        },
                    };
                }
                Framing::PassThrough => {
                    self.ready.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }

    fn refuse(&mut self, answer: ApiError) {
        let body = serde_json::to_vec(&answer.body).unwrap_or_default();
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            answer.status.as_u16(),
            answer.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        self.refusal = Some(bytes);
        self.line.clear();
    }

    /// Writes what is left of the refusal.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(refusal) = &self.refusal {
            while self.written < refusal.len() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &refusal[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
            }
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                // hyper sees the stream end before the refused head.
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // A partial head at the end: hand it on, for hyper to drop.
                if !this.line.is_empty() {
                    this.ready.append(&mut this.line);
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(result) => result?,
                Poll::Pending => match this.poll_timeout(cx) {
                    None => return Poll::Pending,
                    Some(Timing::Head) => {
                        let limit = this.timeouts.head;
                        this.refuse(ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "RequestTimeout",
                            format!(
                                "the request line and headers did not arrive within {} ms of \
                                 their first byte; send the whole head at once",
                                limit.as_millis()
                            ),
                        ));
                        continue;
                    }
                    Some(Timing::Idle) => {
                        // hyper sees the client close: nothing is owed, so it closes too.
                        this.eof = true;
                        continue;
                    }
                },
            }
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                let data = read.filled().to_vec();
                this.feed(&data);
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // hyper has written every answer it owes: the refusal comes last.
        ready!(this.poll_refusal(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Whether `head` (ending in a line feed) is a whole request head: it ends with an empty
/// line, after at least one line that is not empty (empty lines before a request are skipped).
fn head_complete(head: &[u8]) -> bool {
    let ends_empty = head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n");
    ends_empty && head.iter().any(|b| *b != b'\r' && *b != b'\n')
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|b| *b == b';').next()?.trim_ascii();
    let size = std::str::from_utf8(size).ok()?;
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

fn bad_head(what: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the request is malformed: {what}; send a request line `METHOD /path HTTP/1.1`, then \
         `Name: value` header lines, then an empty line"
    ))
}

/// Checks a whole request head as hyper would, and says how its body is framed.
fn check_head(head: &[u8]) -> Result<Framing, ApiError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad_head("the head is incomplete")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HeadersTooLarge",
                format!(
                    "the request has more than {MAX_HEADERS} header fields; send fewer headers"
                ),
            ));
        }
        Err(e) => return Err(bad_head(e)),
    }
    let target = request.path.unwrap_or_default();
    if target.len() > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "UriTooLong",
            format!(
                "the URL's path and query are longer than {MAX_URI_BYTES} bytes; use shorter \
                 ids and names, and send large values in the body"
            ),
        ));
    }
    let method = request.method.unwrap_or_default();
    Method::from_bytes(method.as_bytes()).map_err(|_| bad_head("the method is not valid"))?;
    Uri::try_from(target).map_err(|_| bad_head("the request target is not a valid URL path"))?;
    let http_10 = request.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
            bad_head(format_args!(
                "the header name {:?} is not valid",
                header.name
            ))
        })?;
        HeaderValue::from_bytes(header.value)
            .map_err(|_| bad_head(format_args!("the value of `{name}` is not valid")))?;
        if name == axum::http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(header.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad_head("`Content-Length` is not a number of bytes"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad_head(
                    "`Content-Length` is given twice, with different values",
                ));
            }
            length = Some(n);
        } else if name == axum::http::header::TRANSFER_ENCODING {
            let last = header
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        }
    }
    match (length, chunked) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "the request has both `Content-Length` and `Transfer-Encoding`, which could be read \
             two ways; send only one of them",
        )),
        (_, Some(_)) if http_10 => Err(bad_head("HTTP/1.0 has no `Transfer-Encoding`")),
        (_, Some(false)) => Err(bad_head(
            "`Transfer-Encoding` must end with `chunked`; or send `Content-Length` instead",
        )),
        (_, Some(true)) => Ok(Framing::ChunkSize),
        (Some(n), None) if n > 0 => Ok(Framing::Body(n)),
        _ => Ok(Framing::Head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_checked_as_hyper_would() {
        let ok = |h: &str| check_head(h.as_bytes()).map(|f| format!("{f:?}"));
        let status = |h: &str| check_head(h.as_bytes()).unwrap_err().status.as_u16();
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(), "Head");
        assert_eq!(
            ok("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n").unwrap(),
            "Body(3)"
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap(),
            "ChunkSize"
        );
        let both = "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(both), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            status("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(status(&long), 414);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: y\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(chunk_size(b"0;ext=1\r\n"), Some(0));
        assert_eq!(chunk_size(b"zz\r\n"), None);
        assert!(head_complete(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!head_complete(b"\r\n\r\n"));
    }
}

//! The reference receiver of segment reports, for development, tests and the demo
//! (`prescreen ingest`).
//!
//! It serves one route, `POST /v1/reports`, and answers in plain text:
//!
//! | answer | when |
//! |---|---|
//! | 201 Created | a new report: it was valid and is now stored as `DIR/<report_id>.json` |
//! | 200 OK | a report already stored (a retry or a re-queued copy); it is not stored again |
//! | 400 Bad Request | not JSON, not matching the report's JSON Schema, refused by the runtime's own checks ([`Report::from_json`]), or an `Idempotency-Key` header different from `report_id` |
//! | 404 / 405 | another path / another method |
//! | 413 Payload Too Large | a body over [`MAX_BODY_BYTES`] |
//! | 500 | the report could not be stored (the client will try again) |
//!
//! Reports are deduplicated by `report_id`, also across restarts (the stored file is the
//! record), and written atomically (temporary file, fsync, rename), so `DIR` only ever holds
//! complete reports. Reasons given to clients never echo the body.
//!
//! It speaks the part of HTTP/1.1 that report uploads need (one request per connection, a
//! `Content-Length` body) on plain `std::net`, so that every resource is bounded
//! ([`ReceiverOptions`]): a fixed pool of workers serves connections concurrently, a connection
//! past the cap is answered 503 at once, and a client that stalls (headers and a few body bytes,
//! then nothing) is cut off after the read timeout or the request deadline. One slow client never
//! holds up the others.
//!
//! | also answered | when |
//! |---|---|
//! | 400 | a malformed request line or header, a body shorter than its `Content-Length` |
//! | 408 | the client sent its request too slowly (read timeout or request deadline) |
//! | 411 | a POST without `Content-Length` (chunked bodies are not read) |
//! | 431 | request headers over [`MAX_HEAD_BYTES`] |
//! | 503 | more connections than [`ReceiverOptions::max_connections`] |

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use prescreen_runtime::reporting::report::{Report, JSON_SCHEMA};

/// The one route.
pub const REPORTS_PATH: &str = "/v1/reports";

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Largest request line plus headers accepted.
pub const MAX_HEAD_BYTES: usize = 16 << 10;

/// Most headers in a request.
const MAX_HEADERS: usize = 64;

/// Limits of a [`Receiver`].
#[derive(Clone, Copy, Debug)]
pub struct ReceiverOptions {
    /// Connections served at the same time (worker threads).
    pub workers: usize,
    /// Connections open at once, served or waiting for a worker; one more is answered 503.
    pub max_connections: usize,
    /// Longest wait for the client's next bytes.
    pub read_timeout: Duration,
    /// Longest time from accepting a connection to having read its whole request.
    pub request_deadline: Duration,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        Self {
            workers: 4,
            max_connections: 64,
            read_timeout: Duration::from_secs(5),
            request_deadline: Duration::from_secs(30),
        }
    }
}

/// Counters of a [`Receiver`] since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Requests answered.
    pub requests: u64,
    /// Request body bytes read.
    pub body_bytes: u64,
    /// Reports stored (answered 201).
    pub new_reports: u64,
    /// Reports already stored (answered 200).
    pub duplicates: u64,
    /// Requests refused (any 4xx answer).
    pub rejected: u64,
    /// Connections turned away (503) because `max_connections` were open.
    pub turned_away: u64,
}

/// Called on a worker thread with each newly stored report (workers may call it concurrently).
pub type OnNew = Box<dyn Fn(&Report) + Send + Sync>;

/// A running receiver: an accepting thread and a pool of workers, until [`Receiver::stop`] or
/// drop.
pub struct Receiver {
    addr: SocketAddr,
    ingest: Arc<Ingest>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Listens on `listen` (`host:port`; port 0 picks a free one, see [`Receiver::addr`]) and
    /// stores reports in `dir`, created if needed. `on_new` is told about each new report.
    /// Default limits ([`ReceiverOptions::default`]).
    pub fn start(listen: &str, dir: &Path, on_new: Option<OnNew>) -> anyhow::Result<Receiver> {
        Self::start_with(listen, dir, on_new, ReceiverOptions::default())
    }

    /// [`Receiver::start`] with explicit limits.
    pub fn start_with(
        listen: &str,
        dir: &Path,
        on_new: Option<OnNew>,
        options: ReceiverOptions,
    ) -> anyhow::Result<Receiver> {
        if options.workers == 0 || options.max_connections < options.workers {
            anyhow::bail!("a receiver needs at least one worker and max_connections >= workers");
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        remove_partial_writes(dir)?;
        let listener =
            TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        let ingest = Arc::new(Ingest {
            dir: dir.to_path_buf(),
            checker: ReportChecker::new()?,
            on_new,
            stats: Mutex::default(),
            counter: AtomicU64::new(0),
            storing: Mutex::new(()),
            open: Mutex::default(),
            options,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<(u64, TcpStream)>(options.max_connections);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(options.workers);
        for i in 0..options.workers {
            let (ingest, rx) = (ingest.clone(), rx.clone());
            let worker = std::thread::Builder::new()
                .name(format!("prescreen-ingest-{i}"))
                .spawn(move || loop {
                    let next = lock(&rx).recv();
                    let Ok((id, stream)) = next else { return };
                    ingest.connection(stream);
                    lock(&ingest.open).remove(&id);
                })
                .context("starting a receiver worker")?;
            workers.push(worker);
        }
        // Connections over the cap are answered 503 by one thread of their own, so the
        // accepting thread never waits on a client.
        let (refuse_tx, refuse_rx) = mpsc::sync_channel::<TcpStream>(options.max_connections);
        workers.push(
            std::thread::Builder::new()
                .name("prescreen-ingest-503".into())
                .spawn(move || {
                    for stream in refuse_rx {
                        turn_away(stream);
                    }
                })
                .context("starting the receiver's refusing thread")?,
        );
        let (accepting, stopping) = (ingest.clone(), stop.clone());
        let acceptor = std::thread::Builder::new()
            .name("prescreen-ingest".into())
            .spawn(move || accept(listener, tx, refuse_tx, &accepting, &stopping))
            .context("starting the receiver thread")?;
        log::info!("ingest: listening on {addr}, storing in {}", dir.display());
        Ok(Receiver {
            addr,
            ingest,
            stop,
            acceptor: Some(acceptor),
            workers,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients POST reports to.
    pub fn url(&self) -> String {
        format!("http://{}{REPORTS_PATH}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ReceiverStats {
        *lock(&self.ingest.stats)
    }

    /// Connections open now (being served or waiting for a worker).
    pub fn open_connections(&self) -> usize {
        lock(&self.ingest.open).len()
    }

    /// Stops accepting, cuts off open connections, and waits for the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            // Wake the accepting thread with a connection of our own.
            let mut wake = self.addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(if wake.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
            if acceptor.join().is_err() {
                log::error!("ingest: the receiver thread panicked");
            }
        }
        for stream in lock(&self.ingest.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                log::error!("ingest: a receiver worker panicked");
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Temporary files are named `.<id>.json.<n>.tmp`; one left by a crash is removed.
fn remove_partial_writes(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Accepts connections and hands them to the workers, or past the cap to the refusing thread
/// (a connection that finds that thread's queue full too is closed at once).
fn accept(
    listener: TcpListener,
    workers: SyncSender<(u64, TcpStream)>,
    refuse: SyncSender<TcpStream>,
    ingest: &Ingest,
    stop: &AtomicBool,
) {
    let turn_away = |stream: TcpStream| {
        lock(&ingest.stats).turned_away += 1;
        let _ = refuse.try_send(stream);
    };
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                log::warn!("ingest: accepting a connection failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        next_id += 1;
        let admitted = {
            let mut open = lock(&ingest.open);
            if open.len() >= ingest.options.max_connections {
                false
            } else {
                match stream.try_clone() {
                    Ok(handle) => {
                        open.insert(next_id, handle);
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        if !admitted {
            turn_away(stream);
            continue;
        }
        match workers.try_send((next_id, stream)) {
            Ok(()) => {}
            Err(TrySendError::Full((id, stream)) | TrySendError::Disconnected((id, stream))) => {
                lock(&ingest.open).remove(&id);
                turn_away(stream);
            }
        }
    }
}

/// Answers 503 to a connection over the cap, without reading its request.
fn turn_away(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if write_response(
        &mut stream,
        503,
        "too many connections; try again later",
        false,
    )
    .is_ok()
    {
        close_gently(&mut stream);
    }
}

/// Half-closes and drains what the client still sends (at most 1 MiB, 200 ms between reads), so
/// that closing with unread bytes does not reset the connection before the client has read the
/// answer.
fn close_gently(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 16 << 10];
    let mut drained = 0;
    while drained < 1 << 20 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// A parsed request line and the headers that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// Whether a `Transfer-Encoding` was given (bodies without a length are not read).
    pub chunked: bool,
    /// `Idempotency-Key`, trimmed.
    pub idempotency_key: Option<String>,
    /// Whether the client waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
}

/// Parses a request head (request line and headers, without the blank line that ends it).
/// Errors are an HTTP status and a reason.
pub fn parse_head(head: &[u8]) -> Result<RequestHead, (u16, String)> {
    let bad = |why: &str| (400, format!("malformed request: {why}"));
    let text = std::str::from_utf8(head).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("method"));
    }
    if !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(bad("request line"));
    }
    let mut head = RequestHead {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or_default().to_string(),
        content_length: None,
        chunked: false,
        idempotency_key: None,
        expect_continue: false,
    };
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err((431, format!("more than {MAX_HEADERS} headers")));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad("header line"))?;
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad("header name"));
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| bad("Content-Length"))?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err(bad("two different Content-Length headers"));
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("idempotency-key") {
            head.idempotency_key = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    Ok(head)
}

/// Why a request could not be read.
enum ReadError {
    /// Answer with this status and reason.
    Answer(u16, String),
    /// The client is gone (closed, reset): nobody to answer.
    Gone,
}

/// Reads from `stream` into `buf` until it holds `want` bytes, within the deadline.
fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
    deadline: Instant,
    until: impl Fn(&[u8]) -> bool,
) -> Result<(), ReadError> {
    let mut chunk = [0u8; 16 << 10];
    while buf.len() < want && !until(buf) {
        if Instant::now() >= deadline {
            return Err(ReadError::Answer(
                408,
                "the request took too long to arrive".into(),
            ));
        }
        let room = (want - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ReadError::Answer(408, "the client stopped sending".into()))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Gone),
        }
    }
    Ok(())
}

fn end_of_head(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Writes a plain-text answer and says the connection closes.
fn write_response(
    stream: &mut TcpStream,
    status: u16,
    text: &str,
    allow_post: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let body = format!("{text}\n");
    let allow = if allow_post { "Allow: POST\r\n" } else { "" };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes())?;
    stream.flush()
}

/// Checks report bodies the way the receiver does: JSON, the report's JSON Schema, the runtime's
/// own checks ([`Report::from_json`]) and the idempotency key.
pub struct ReportChecker {
    validator: jsonschema::Validator,
}

impl ReportChecker {
    /// Compiles the report JSON Schema.
    pub fn new() -> anyhow::Result<Self> {
        let schema: serde_json::Value =
            serde_json::from_str(JSON_SCHEMA).context("parsing the report JSON Schema")?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| anyhow!("compiling the report JSON Schema: {e}"))?;
        Ok(Self { validator })
    }

    /// Validates a body; the reason of a refusal names what is wrong, never the content.
    pub fn check(&self, body: &[u8], key: Option<&str>) -> Result<Report, String> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "the body is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if let Err(e) = self.validator.validate(&value) {
            let at = e.instance_path().to_string();
            return Err(format!(
                "the report does not match the schema: `{}` fails at {}",
                e.kind().keyword(),
                if at.is_empty() { "the top level" } else { &at }
            ));
        }
        let report = Report::from_json(body).map_err(|e| {
            let why: String = e.to_string().chars().filter(|c| !c.is_control()).collect();
            format!("the report fails the runtime's checks: {}", cut(&why, 160))
        })?;
        if key.is_some_and(|k| k != report.report_id) {
            return Err("the Idempotency-Key header differs from report_id".into());
        }
        Ok(report)
    }

    /// Whether the report JSON Schema accepts `value`.
    pub fn schema_accepts(&self, value: &serde_json::Value) -> bool {
        self.validator.is_valid(value)
    }
}

struct Ingest {
    dir: PathBuf,
    checker: ReportChecker,
    on_new: Option<OnNew>,
    stats: Mutex<ReceiverStats>,
    counter: AtomicU64,
    /// Held from "is it stored?" to the rename, so two copies of one report arriving together are
    /// stored (and counted new) once.
    storing: Mutex<()>,
    /// Open connections by id (clones of their streams, to cut them off at stop).
    open: Mutex<HashMap<u64, TcpStream>>,
    options: ReceiverOptions,
}

impl Ingest {
    /// Serves one connection: one request, one answer, then the connection closes.
    fn connection(&self, mut stream: TcpStream) {
        let deadline = Instant::now() + self.options.request_deadline;
        let _ = stream.set_read_timeout(Some(self.options.read_timeout));
        let _ = stream.set_write_timeout(Some(self.options.read_timeout));
        let (status, text, allow_post) = match self.read_and_answer(&mut stream, deadline) {
            Ok(answer) => answer,
            Err(ReadError::Answer(status, text)) => {
                log::info!("ingest: refused a request: {text}");
                (status, text, false)
            }
            Err(ReadError::Gone) => {
                log::debug!("ingest: the client left before sending its request");
                return;
            }
        };
        {
            let mut stats = lock(&self.stats);
            stats.requests += 1;
            match status {
                201 => stats.new_reports += 1,
                200 => stats.duplicates += 1,
                400..=499 => stats.rejected += 1,
                _ => {}
            }
        }
        if let Err(e) = write_response(&mut stream, status, &text, allow_post) {
            log::debug!("ingest: the client left before the answer: {e}");
            return;
        }
        // Let the client read the answer even if it is still sending a body that was not read
        // (a 413).
        close_gently(&mut stream);
    }

    /// Reads the request and works out the answer: status, text, and whether to add `Allow`.
    fn read_and_answer(
        &self,
        stream: &mut TcpStream,
        deadline: Instant,
    ) -> Result<(u16, String, bool), ReadError> {
        let mut buf = Vec::new();
        fill(stream, &mut buf, MAX_HEAD_BYTES + 4, deadline, |b| {
            end_of_head(b).is_some()
        })?;
        let Some(end) = end_of_head(&buf) else {
            return Err(ReadError::Answer(
                431,
                format!("request headers over {MAX_HEAD_BYTES} bytes"),
            ));
        };
        let head = parse_head(&buf[..end]).map_err(|(s, t)| ReadError::Answer(s, t))?;
        if head.path != REPORTS_PATH {
            return Ok((
                404,
                format!("not found; reports go to POST {REPORTS_PATH}"),
                false,
            ));
        }
        if head.method != "POST" {
            return Ok((405, "only POST is allowed".into(), true));
        }
        let Some(length) = head.content_length.filter(|_| !head.chunked) else {
            return Ok((411, "a report is sent with a Content-Length".into(), false));
        };
        if length > MAX_BODY_BYTES {
            return Ok((
                413,
                format!("a report may have at most {MAX_BODY_BYTES} bytes"),
                false,
            ));
        }
        let mut body = buf.split_off(end + 4);
        if body.len() > length {
            return Ok((400, "more bytes than Content-Length".into(), false));
        }
        if head.expect_continue && body.len() < length {
            let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        match fill(stream, &mut body, length, deadline, |_| false) {
            Ok(()) => {}
            Err(ReadError::Gone) => {
                return Ok((
                    400,
                    "the body is shorter than its Content-Length".into(),
                    false,
                ))
            }
            Err(e) => return Err(e),
        }
        lock(&self.stats).body_bytes += body.len() as u64;
        let (status, text) = self.answer(&body, head.idempotency_key.as_deref());
        Ok((status, text, false))
    }

    /// The status and plain-text answer to a complete report upload.
    fn answer(&self, body: &[u8], key: Option<&str>) -> (u16, String) {
        let report = match self.checker.check(body, key) {
            Ok(report) => report,
            Err(reason) => {
                log::info!("ingest: refused a request: {reason}");
                return (400, reason);
            }
        };
        let id = report.report_id.clone();
        match self.store(&id, body) {
            Ok(true) => {
                log::info!("ingest: stored report {id}");
                if let Some(on_new) = &self.on_new {
                    on_new(&report);
                }
                (201, format!("stored {id}"))
            }
            Ok(false) => {
                log::info!("ingest: report {id} was already stored");
                (200, format!("already stored {id}"))
            }
            Err(e) => {
                log::error!("ingest: cannot store report {id}: {e:#}");
                (
                    500,
                    format!("report {id} could not be stored; try again later"),
                )
            }
        }
    }

    /// Stores the body as received, unless a report with its id is already stored; returns
    /// whether it was new. `id` is a checked report id (32 hex digits): safe as a file name.
    fn store(&self, id: &str, body: &[u8]) -> anyhow::Result<bool> {
        let name = format!("{id}.json");
        let target = self.dir.join(&name);
        let _storing = lock(&self.storing);
        if target.try_exists()? {
            return Ok(false);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let tmp = self.dir.join(format!(".{name}.{n}.tmp"));
        let written = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &target)?;
            #[cfg(unix)]
            File::open(&self.dir)?.sync_all()?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e).context(format!("writing {name}"));
        }
        Ok(true)
    }
}

fn cut(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}

/// A callback for [`Receiver::start`] that prints one line per new report stored in `dir`: id,
/// stream, label (with its category), start-end, confidence, thumbnails and size.
pub fn print_new_reports(dir: &Path) -> OnNew {
    let folder = dir.to_path_buf();
    Box::new(move |r: &Report| {
        // Ids and labels come from the network: print them without control characters.
        let printable = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
        let (stream, mut label) = (printable(&r.stream_id), printable(&r.label));
        if let Some(c) = r.category {
            label = format!("{label} ({c})");
        }
        let bytes =
            std::fs::metadata(folder.join(format!("{}.json", r.report_id))).map_or(0, |m| m.len());
        println!(
            "received {}  stream {stream}  {label}  {}-{} ms  confidence {:.1}%  {} thumbnails  {bytes} bytes",
            r.report_id,
            r.start_timestamp_millis,
            r.end_timestamp_millis,
            r.confidence,
            r.thumbnails()
        );
    })
}

//! The reference receiver of segment reports, for development, tests and the demo
//! (`prescreen ingest`).
//!
//! It serves one route, `POST /v1/reports`, one request at a time, and answers in plain text:
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

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};
use prescreen_runtime::report::{Report, JSON_SCHEMA};

/// The one route.
pub const REPORTS_PATH: &str = "/v1/reports";

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How often the serving thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

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
}

/// Called on the serving thread with each newly stored report.
pub type OnNew = Box<dyn Fn(&Report) + Send>;

/// A running receiver: a thread serving HTTP until [`Receiver::stop`] or drop.
pub struct Receiver {
    addr: SocketAddr,
    stats: Arc<Mutex<ReceiverStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
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
    pub fn start(listen: &str, dir: &Path, on_new: Option<OnNew>) -> anyhow::Result<Receiver> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        remove_partial_writes(dir)?;
        let schema: serde_json::Value =
            serde_json::from_str(JSON_SCHEMA).context("parsing the report JSON Schema")?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| anyhow!("compiling the report JSON Schema: {e}"))?;
        let server =
            tiny_http::Server::http(listen).map_err(|e| anyhow!("listening on {listen}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("{listen} is not an IP address"))?;
        let stats = Arc::new(Mutex::new(ReceiverStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = Ingest {
            dir: dir.to_path_buf(),
            validator,
            on_new,
            stats: stats.clone(),
            counter: 0,
        };
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("prescreen-ingest".into())
            .spawn(move || serve(server, ingest, &stopping))
            .context("starting the receiver thread")?;
        log::info!("ingest: listening on {addr}, storing in {}", dir.display());
        Ok(Receiver {
            addr,
            stats,
            stop,
            thread: Some(thread),
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
        *lock(&self.stats)
    }

    /// Stops serving (after the request in progress, if any) and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("ingest: the receiver thread panicked");
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

fn serve(server: tiny_http::Server, mut ingest: Ingest, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(POLL) {
            Ok(Some(request)) => ingest.serve(request),
            Ok(None) => {}
            Err(e) => {
                log::warn!("ingest: accepting a connection failed: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

struct Ingest {
    dir: PathBuf,
    validator: jsonschema::Validator,
    on_new: Option<OnNew>,
    stats: Arc<Mutex<ReceiverStats>>,
    counter: u64,
}

impl Ingest {
    fn serve(&mut self, mut request: tiny_http::Request) {
        let (status, text) = self.answer(&mut request);
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
        let mut response =
            tiny_http::Response::from_string(format!("{text}\n")).with_status_code(status);
        add_header(&mut response, "Content-Type", "text/plain; charset=utf-8");
        if status == 405 {
            add_header(&mut response, "Allow", "POST");
        }
        if let Err(e) = request.respond(response) {
            log::debug!("ingest: the client left before the answer: {e}");
        }
    }

    /// The status and plain-text answer to a request.
    fn answer(&mut self, request: &mut tiny_http::Request) -> (u16, String) {
        let path = request.url().split('?').next().unwrap_or_default();
        if path != REPORTS_PATH {
            return (404, format!("not found; reports go to POST {REPORTS_PATH}"));
        }
        if *request.method() != tiny_http::Method::Post {
            return (405, "only POST is allowed".into());
        }
        if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
            return (
                413,
                format!("a report may have at most {MAX_BODY_BYTES} bytes"),
            );
        }
        let mut body = Vec::new();
        let read = request
            .as_reader()
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body);
        lock(&self.stats).body_bytes += body.len() as u64;
        if read.is_err() {
            return (400, "the body could not be read".into());
        }
        if body.len() > MAX_BODY_BYTES {
            return (
                413,
                format!("a report may have at most {MAX_BODY_BYTES} bytes"),
            );
        }
        let key = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Idempotency-Key"))
            .map(|h| h.value.as_str().trim().to_string());
        let report = match self.check(&body, key.as_deref()) {
            Ok(report) => report,
            Err(reason) => {
                log::info!("ingest: refused a request: {reason}");
                return (400, reason);
            }
        };
        let id = report.report_id.clone();
        match self.store(&id, &body) {
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

    /// Validates a body; the reason of a refusal names what is wrong, never the content.
    fn check(&self, body: &[u8], key: Option<&str>) -> Result<Report, String> {
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

    /// Stores the body as received, unless a report with its id is already stored; returns
    /// whether it was new. `id` is a checked report id (32 hex digits): safe as a file name.
    fn store(&mut self, id: &str, body: &[u8]) -> anyhow::Result<bool> {
        let name = format!("{id}.json");
        let target = self.dir.join(&name);
        if target.try_exists()? {
            return Ok(false);
        }
        self.counter += 1;
        let tmp = self.dir.join(format!(".{name}.{}.tmp", self.counter));
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

fn add_header<R: Read>(response: &mut tiny_http::Response<R>, name: &str, value: &str) {
    // Only constant ASCII headers are added here; `from_bytes` fails on nothing else.
    if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        response.add_header(h);
    }
}

/// A callback for [`Receiver::start`] that prints one line per new report stored in `dir`: id,
/// stream, label, start-end, confidence, thumbnails and size.
pub fn print_new_reports(dir: &Path) -> OnNew {
    let folder = dir.to_path_buf();
    Box::new(move |r: &Report| {
        // Ids and labels come from the network: print them without control characters.
        let printable = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
        let (stream, label) = (printable(&r.stream_id), printable(&r.label));
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

//! The uploader against real HTTP on loopback: a refused connection, scripted servers (503, 429
//! with Retry-After, a server that never answers, 400) and the reference receiver. Every test ends
//! with nothing lost: each report is received once, still pending, or dead-lettered.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prescreen::ingest::{Receiver, ReceiverOptions, ReceiverStats, REPORTS_PATH};
use prescreen_runtime::reporting::outbox::{Outbox, OutboxOptions};
use prescreen_runtime::reporting::report::Report;
use prescreen_runtime::reporting::upload::{
    RetryPolicy, Transport, UploadConfig, Uploader, UreqTransport,
};
use prescreen_runtime::stream::engine::Thumbnail;
use prescreen_runtime::stream::segmenter::Segment;

const MS: Duration = Duration::from_millis(1);

/// A report of segment `n` of stream `stream-1`, with one 16x12 thumbnail.
fn report(n: u64) -> Report {
    let context = common::report_context("stream-1");
    let start = 5_000_000 + n as i64 * 10_000_000;
    let best = start + 1_000_000;
    let segment = Segment {
        id: n,
        label: "nsfw".into(),
        stream_start_us: 5_000_000,
        start_us: start,
        end_us: start + 3_000_000,
        crossed_us: start + 500_000,
        peak: 0.95,
        peak_us: best,
        mean: 0.85,
        frames_scored: 12,
        evidence: vec![(best, 0.95), (start + 2_000_000, 0.9)],
    };
    let thumbnail = Thumbnail {
        timestamp_us: best,
        width: 16,
        height: 12,
        rgb: vec![128; 16 * 12 * 3],
    };
    context
        .build(&segment, &[thumbnail], 1_700_000_000_000 + n)
        .expect("the report builds")
}

/// An outbox in a fresh temporary folder holding reports `1..=n`, oldest first.
fn outbox(n: u64) -> (tempfile::TempDir, Outbox, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
    let ids = (1..=n)
        .map(|i| {
            let r = report(i);
            outbox.put(&r).unwrap();
            r.report_id
        })
        .collect();
    (dir, outbox, ids)
}

fn config(url: &str, timeout: Duration, max_attempts: u32) -> UploadConfig {
    UploadConfig {
        endpoint: url.to_string(),
        timeout,
        retry: RetryPolicy {
            initial_backoff: 10 * MS,
            max_backoff: 50 * MS,
            max_attempts,
            max_retry_after: Duration::from_secs(2),
        },
    }
}

fn pending(outbox: &Outbox) -> Vec<String> {
    outbox.pending().into_iter().map(|p| p.report_id).collect()
}

/// Nothing lost: every id is exactly one of received, pending, dead-lettered.
fn assert_accounted(ids: &[String], received: &[String], outbox: &Outbox) {
    let received: BTreeSet<&String> = received.iter().collect();
    let pending = pending(outbox);
    let dead = outbox.dead_letters().unwrap();
    for id in ids {
        let places = [
            received.contains(id),
            pending.contains(id),
            dead.contains(id),
        ];
        assert_eq!(
            places.iter().filter(|&&p| p).count(),
            1,
            "report {id}: received {}, pending {}, dead-lettered {}",
            places[0],
            places[1],
            places[2]
        );
    }
}

/// What a scripted server answers to one request.
#[derive(Clone, Debug)]
enum Answer {
    /// This status, with these headers.
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Nothing, while the client waits (the connection stays open until the server stops).
    Hang,
}

/// A request a scripted server saw.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    key: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// An HTTP server on 127.0.0.1 answering from a script (500 once it runs out).
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    fn start(script: Vec<Answer>) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut script = script.into_iter();
            let mut held = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let Ok(Some(mut request)) = server.recv_timeout(20 * MS) else {
                    continue;
                };
                let header = |name: &'static str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.as_str().to_string())
                };
                let (key, content_type) = (header("Idempotency-Key"), header("Content-Type"));
                let mut body = Vec::new();
                request.as_reader().read_to_end(&mut body).unwrap();
                log.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    key,
                    content_type,
                    body,
                });
                match script.next() {
                    Some(Answer::Hang) => held.push(request),
                    Some(Answer::Status(status, headers)) => {
                        let mut response =
                            tiny_http::Response::from_string(format!("scripted {status}"))
                                .with_status_code(status);
                        for (name, value) in headers {
                            response.add_header(
                                tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                    .unwrap(),
                            );
                        }
                        let _ = request.respond(response);
                    }
                    None => {
                        let response =
                            tiny_http::Response::from_string("script ended").with_status_code(500);
                        let _ = request.respond(response);
                    }
                }
            }
        });
        Self {
            url: format!("http://{addr}{REPORTS_PATH}"),
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `Idempotency-Key` of every request seen, in order.
    fn keys(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .map(|s| s.key.unwrap_or_default())
            .collect()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn refused_connection_leaves_reports_pending() {
    let (_dir, outbox, ids) = outbox(2);
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}{REPORTS_PATH}");
    let mut up = Uploader::new(config(&url, Duration::from_secs(2), 3)).unwrap();
    let started = Instant::now();
    let s = up.deliver(&outbox);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(s.delivered.is_empty() && s.dead_lettered.is_empty());
    assert_eq!((s.deferred, s.attempts), (2, 3), "{s:?}");
    assert!(s.last_error.is_some());
    assert_eq!(pending(&outbox), ids);
    assert_accounted(&ids, &[], &outbox);
}

#[test]
fn server_error_then_success_is_delivered_once_acknowledged() {
    let (_dir, outbox, ids) = outbox(1);
    let server = Scripted::start(vec![
        Answer::Status(503, vec![]),
        Answer::Status(200, vec![]),
    ]);
    let mut up = Uploader::new(config(&server.url, Duration::from_secs(2), 3)).unwrap();
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    assert_eq!((s.attempts, s.deferred), (2, 0));
    assert_eq!(s.last_error.as_deref(), Some("HTTP 503"));
    let seen = server.seen();
    assert_eq!(
        server.keys(),
        [&*ids[0], &ids[0]],
        "same Idempotency-Key twice"
    );
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    let sent = Report::from_json(&seen[1].body).unwrap();
    assert_eq!(sent.report_id, ids[0]);
    assert_eq!(sent.thumbnails(), 1);
    assert_eq!(s.bytes_sent, 2 * seen[0].body.len() as u64);
    assert!(pending(&outbox).is_empty());
    assert_eq!(outbox.metrics().acked, 1);
    assert_accounted(&ids, &ids, &outbox);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let (_dir, outbox, ids) = outbox(1);
    let server = Scripted::start(vec![
        Answer::Status(429, vec![("Retry-After", "1")]),
        Answer::Status(201, vec![]),
    ]);
    let mut up = Uploader::new(config(&server.url, Duration::from_secs(2), 3)).unwrap();
    let started = Instant::now();
    let s = up.deliver(&outbox);
    let elapsed = started.elapsed();
    assert_eq!(s.delivered, ids);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= 900 * MS, "the client came back after {gap:?}");
    assert!(
        elapsed >= 900 * MS && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_accounted(&ids, &ids, &outbox);
}

#[test]
fn a_server_that_never_answers_times_out_and_is_retried() {
    let (_dir, outbox, ids) = outbox(2);
    // Round 1: two tries, neither answered: the report stays pending and the round stops.
    // Round 2: the server answers: both reports are delivered.
    let server = Scripted::start(vec![
        Answer::Hang,
        Answer::Hang,
        Answer::Status(201, vec![]),
        Answer::Status(201, vec![]),
    ]);
    let mut up = Uploader::new(config(&server.url, 300 * MS, 2)).unwrap();
    let started = Instant::now();
    let s = up.deliver(&outbox);
    let elapsed = started.elapsed();
    assert!(s.delivered.is_empty(), "{s:?}");
    assert_eq!((s.attempts, s.deferred), (2, 2), "{s:?}");
    let error = s.last_error.unwrap_or_default().to_lowercase();
    assert!(
        error.contains("timeout") || error.contains("timed out"),
        "{error}"
    );
    assert!(
        elapsed >= 600 * MS && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(pending(&outbox), ids);
    assert_accounted(&ids, &[], &outbox);

    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    assert_eq!(server.keys(), [&*ids[0], &ids[0], &ids[0], &ids[1]]);
    assert_accounted(&ids, &ids, &outbox);
}

#[test]
fn bad_request_is_dead_lettered_with_its_reason() {
    let (dir, outbox, ids) = outbox(2);
    let server = Scripted::start(vec![
        Answer::Status(400, vec![]),
        Answer::Status(201, vec![]),
    ]);
    let mut up = Uploader::new(config(&server.url, Duration::from_secs(2), 3)).unwrap();
    let s = up.deliver(&outbox);
    assert_eq!(s.dead_lettered, &ids[..1]);
    assert_eq!(s.delivered, &ids[1..]);
    assert_eq!((s.attempts, s.deferred), (2, 0));
    assert!(pending(&outbox).is_empty());
    assert_eq!(outbox.dead_letters().unwrap(), &ids[..1]);
    let dead = dir.path().join("dead-letter");
    let reason = std::fs::read_to_string(dead.join(format!("{}.reason.txt", ids[0]))).unwrap();
    assert_eq!(reason, "HTTP 400: scripted 400");
    let kept = std::fs::read(dead.join(format!("{}.json", ids[0]))).unwrap();
    assert_eq!(Report::from_json(&kept).unwrap(), report(1));
    assert_accounted(&ids, &ids[1..], &outbox);
}

/// The files in a receiver's folder.
fn stored(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Sends raw HTTP/1.1 and returns the status of the answer.
fn raw_status(addr: std::net::SocketAddr, request: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // The status line is all that is needed; stop at the end of the headers.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn reference_receiver_stores_once_and_refuses_invalid_reports() {
    let store = tempfile::tempdir().unwrap();
    let announced = Arc::new(AtomicUsize::new(0));
    let counter = announced.clone();
    let receiver = Receiver::start(
        "127.0.0.1:0",
        store.path(),
        Some(Box::new(move |r: &Report| {
            assert_eq!(r.stream_id, "stream-1");
            counter.fetch_add(1, Ordering::Relaxed);
        })),
    )
    .unwrap();
    let (_dir, outbox, ids) = outbox(3);
    let mut up = Uploader::new(config(&receiver.url(), Duration::from_secs(2), 3)).unwrap();

    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    let mut files: Vec<String> = ids.iter().map(|id| format!("{id}.json")).collect();
    files.sort();
    assert_eq!(stored(store.path()), files);
    for id in &ids {
        let bytes = std::fs::read(store.path().join(format!("{id}.json"))).unwrap();
        assert_eq!(Report::from_json(&bytes).unwrap().report_id, *id);
    }
    assert_eq!(announced.load(Ordering::Relaxed), 3);

    // A copy queued again (a retry after a lost acknowledgement) is accepted, not stored twice.
    outbox.put(&report(2)).unwrap();
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, &ids[1..2]);
    assert!(pending(&outbox).is_empty());
    assert_eq!(stored(store.path()), files);
    assert_eq!(announced.load(Ordering::Relaxed), 3);
    let stats = receiver.stats();
    assert_eq!(
        (
            stats.requests,
            stats.new_reports,
            stats.duplicates,
            stats.rejected
        ),
        (4, 3, 1, 0)
    );
    assert_eq!(
        stats.body_bytes,
        s.bytes_sent + {
            let sizes: u64 = ids
                .iter()
                .map(|id| {
                    std::fs::metadata(store.path().join(format!("{id}.json")))
                        .unwrap()
                        .len()
                })
                .sum();
            sizes
        }
    );

    // The statuses themselves: 201 new, 200 duplicate.
    let mut http = UreqTransport::new(Duration::from_secs(2));
    let fourth = report(4);
    let url = receiver.url();
    assert_eq!(
        http.post(&url, &fourth.report_id, &fourth.to_json())
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        http.post(&url, &fourth.report_id, &fourth.to_json())
            .unwrap()
            .status,
        200
    );
    files.push(format!("{}.json", fourth.report_id));
    files.sort();

    // Invalid bodies: 400, a short reason, nothing stored.
    let valid: serde_json::Value = serde_json::from_slice(&report(5).to_json()).unwrap();
    let id5 = report(5).report_id;
    let mutated = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = valid.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"{\"schema\": secret".to_vec(), "not JSON"),
        (
            "out of the schema",
            mutated(&|v| v["confidence"] = serde_json::json!(150.0)),
            "schema",
        ),
        (
            "an unknown field",
            mutated(&|v| v["user_name"] = serde_json::json!("secret")),
            "schema",
        ),
        (
            "inconsistent times",
            mutated(&|v| v["duration_millis"] = serde_json::json!(1)),
            "checks",
        ),
    ];
    for (what, body, expected) in &cases {
        let reply = http.post(&url, &id5, body).unwrap();
        assert_eq!(reply.status, 400, "{what}: {}", reply.message);
        assert!(
            reply.message.contains(expected),
            "{what}: {}",
            reply.message
        );
        assert!(
            !reply.message.contains("secret"),
            "{what}: {}",
            reply.message
        );
    }
    let other_key = report(6).report_id;
    let reply = http.post(&url, &other_key, &report(5).to_json()).unwrap();
    assert_eq!(reply.status, 400);
    assert!(
        reply.message.contains("Idempotency-Key"),
        "{}",
        reply.message
    );

    // Other paths and methods, and an oversized body.
    let other = url.replace(REPORTS_PATH, "/v1/other");
    assert_eq!(
        http.post(&other, &id5, &report(5).to_json())
            .unwrap()
            .status,
        404
    );
    let addr = receiver.addr();
    let get = format!("GET {REPORTS_PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(addr, &get), 405);
    let huge = format!(
        "POST {REPORTS_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        (16 << 20) + 1
    );
    assert_eq!(raw_status(addr, &huge), 413);
    assert_eq!(stored(store.path()), files);

    let stats = receiver.stats();
    assert_eq!(
        ReceiverStats {
            body_bytes: 0,
            ..stats
        },
        ReceiverStats {
            requests: 4 + 2 + 5 + 3,
            body_bytes: 0,
            new_reports: 4,
            duplicates: 2,
            rejected: 8,
            turned_away: 0,
        }
    );
    receiver.stop();

    // Deduplication survives a restart: the stored file is the record.
    let receiver = Receiver::start("127.0.0.1:0", store.path(), None).unwrap();
    let first = report(1);
    let reply = http
        .post(&receiver.url(), &first.report_id, &first.to_json())
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(receiver.stats().duplicates, 1);
    assert_eq!(stored(store.path()), files);
}

/// Waits (bounded) until `done` holds: for the receiver to have taken a connection in.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(MS);
    }
}

/// A client that sends the head of an upload and a few body bytes, then nothing.
fn stalled_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {REPORTS_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"sch"
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// One client stalls mid-body with the receiver's generous timeouts: the others are served
/// meanwhile. Past the connection cap a connection is answered 503 at once instead of waiting or
/// costing a thread. Stopping cuts the stalled client off instead of waiting for it.
#[test]
fn a_stalled_client_never_holds_up_the_receiver() {
    let store = tempfile::tempdir().unwrap();
    let options = ReceiverOptions {
        workers: 2,
        max_connections: 4,
        read_timeout: Duration::from_secs(600),
        request_deadline: Duration::from_secs(600),
    };
    let receiver = Receiver::start_with("127.0.0.1:0", store.path(), None, options).unwrap();
    let addr = receiver.addr();
    let _stalled = stalled_client(addr);
    eventually("the stalled client is being served", || {
        receiver.open_connections() == 1
    });
    let (_dir, outbox, ids) = outbox(3);
    let mut up = Uploader::new(config(&receiver.url(), Duration::from_secs(10), 3)).unwrap();
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids, "{:?}", s.last_error);
    assert_eq!(receiver.stats().new_reports, 3);
    // Fill the cap: one more stalled client (now both workers wait) and two waiting for a worker.
    let _more: Vec<TcpStream> = (0..3).map(|_| stalled_client(addr)).collect();
    eventually("four connections open", || receiver.open_connections() == 4);
    assert_eq!(raw_status(addr, "POST /v1/reports HTTP/1.1\r\n\r\n"), 503);
    assert_eq!(receiver.stats().turned_away, 1);
    receiver.stop();
}

/// A client that stops sending is answered 408 after the read timeout, and the worker is free
/// again: the next upload is stored.
#[test]
fn a_client_that_stops_sending_is_cut_off_after_the_read_timeout() {
    let store = tempfile::tempdir().unwrap();
    let options = ReceiverOptions {
        workers: 1,
        max_connections: 4,
        read_timeout: Duration::from_millis(200),
        ..ReceiverOptions::default()
    };
    let receiver = Receiver::start_with("127.0.0.1:0", store.path(), None, options).unwrap();
    let mut stalled = stalled_client(receiver.addr());
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    let (_dir, outbox, ids) = outbox(1);
    let mut up = Uploader::new(config(&receiver.url(), Duration::from_secs(10), 3)).unwrap();
    assert_eq!(up.deliver(&outbox).delivered, ids);
    let stats = receiver.stats();
    assert_eq!((stats.new_reports, stats.rejected), (1, 1));
}

/// Malformed heads are refused with a status, not a panic or a hang.
#[test]
fn malformed_request_heads_are_refused_with_a_status() {
    let store = tempfile::tempdir().unwrap();
    let receiver = Receiver::start("127.0.0.1:0", store.path(), None).unwrap();
    let addr = receiver.addr();
    let post = |headers: &str| format!("POST {REPORTS_PATH} HTTP/1.1\r\n{headers}\r\n");
    for (request, status) in [
        ("garbage\r\n\r\n".to_string(), 400),
        ("POST /v1/reports\r\n\r\n".to_string(), 400),
        (post("Content-Length: nine\r\n"), 400),
        (post("Content-Length: 5\r\nContent-Length: 6\r\n"), 400),
        (post(""), 411),
        (post("Transfer-Encoding: chunked\r\n"), 411),
        (post(&"X-Pad: y\r\n".repeat(2000)), 431),
        (post(&"X: y\r\n".repeat(100)), 431),
    ] {
        assert_eq!(raw_status(addr, &request), status, "{request:.60}");
    }
    assert_eq!(receiver.stats().new_reports, 0);
}

//! Unit tests of the uploader: whole delivery rounds against a scripted [`Transport`] and an
//! outbox on a `MemStore`, and the checks of its configuration.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::reporting::outbox::{Area, MemStore, OutboxOptions, Store};
use crate::reporting::report::fixtures::{context, segment};
use crate::reporting::report::Report;

pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) fn policy() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: 100 * MS,
        max_backoff: 1000 * MS,
        max_attempts: 4,
        max_retry_after: Duration::from_secs(10),
    }
}

fn config(endpoint: &str) -> UploadConfig {
    UploadConfig {
        endpoint: endpoint.into(),
        timeout: Duration::from_secs(1),
        retry: policy(),
    }
}

#[test]
fn config_is_checked() {
    let err = |c: UploadConfig| match Uploader::new(c) {
        Err(Error::Upload(why)) => why,
        other => panic!("expected an upload error, got {other:?}"),
    };
    assert!(Uploader::new(config("http://127.0.0.1:9/v1/reports")).is_ok());
    assert!(err(config("ftp://example.invalid/x")).contains("http://"));
    assert!(err(config("example.invalid/x")).contains("http://"));
    assert!(err(config("not a url")).contains("http://"));
    assert!(err(config("http://sec ret@x/")).contains("not a valid URL"));
    let no_host = err(config("http:///v1/reports"));
    assert!(
        no_host.contains("host") || no_host.contains("not a valid URL"),
        "{no_host}"
    );
    assert!(Uploader::new(config("HTTP://127.0.0.1:9/")).is_ok());
    let mut c = config("http://127.0.0.1:9/");
    c.timeout = Duration::ZERO;
    assert!(err(c).contains("timeout"));
    let mut c = config("http://127.0.0.1:9/");
    c.retry.max_attempts = 0;
    assert!(err(c).contains("max_attempts"));
    let https = config("https://example.invalid/v1/reports");
    if cfg!(feature = "upload-tls") {
        assert!(Uploader::new(https.clone()).is_ok());
    } else {
        assert!(err(https.clone()).contains("upload-tls"));
    }
    let script = Script::new(vec![]);
    assert!(Uploader::with_transport(https, Box::new(script)).is_ok());
}

/// A transport that answers from a script and records what it was sent.
#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<std::result::Result<Reply, String>>>>,
    sent: Arc<Mutex<Vec<(String, String, usize)>>>,
}

impl Script {
    fn new(answers: Vec<std::result::Result<Reply, String>>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.into())),
            sent: Arc::default(),
        }
    }

    fn keys(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.1.clone())
            .collect()
    }
}

impl Transport for Script {
    fn post(&mut self, url: &str, key: &str, body: &[u8]) -> std::result::Result<Reply, String> {
        self.sent
            .lock()
            .unwrap()
            .push((url.to_string(), key.to_string(), body.len()));
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script ran out of answers")
    }
}

fn status(status: u16) -> std::result::Result<Reply, String> {
    Ok(Reply {
        status,
        ..Reply::default()
    })
}

fn report(n: u64) -> Report {
    context().build(&segment(n, 1), &[], 1_000 + n).unwrap()
}

/// An outbox on a `MemStore` holding reports `1..=n`, oldest first.
fn outbox(n: u64) -> (Outbox, MemStore, Vec<String>) {
    let store = MemStore::new();
    let outbox = Outbox::with_store(Box::new(store.clone()), OutboxOptions::default()).unwrap();
    let ids = (1..=n)
        .map(|i| {
            let r = report(i);
            outbox.put(&r).unwrap();
            r.report_id
        })
        .collect();
    (outbox, store, ids)
}

fn uploader(script: &Script) -> (Uploader, Arc<Mutex<Vec<Duration>>>) {
    let pauses = Arc::new(Mutex::new(Vec::new()));
    let recorded = pauses.clone();
    let up = Uploader::with_transport(
        config("http://127.0.0.1:9/v1/reports"),
        Box::new(script.clone()),
    )
    .unwrap()
    .with_sleep(move |d| recorded.lock().unwrap().push(d));
    (up, pauses)
}

#[test]
fn delivers_everything_oldest_first() {
    let (outbox, _, ids) = outbox(3);
    let script = Script::new(vec![status(201), status(200), status(204)]);
    let (mut up, pauses) = uploader(&script);
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    assert_eq!(script.keys(), ids);
    assert_eq!((s.deferred, s.attempts, s.dead_lettered.len()), (0, 3, 0));
    assert!(s.bytes_sent > 0);
    assert_eq!(s.last_error, None);
    assert!(outbox.pending().is_empty());
    assert_eq!(outbox.metrics().acked, 3);
    assert!(pauses.lock().unwrap().is_empty());
    let sent = script.sent.lock().unwrap();
    assert!(sent
        .iter()
        .all(|(url, _, _)| url == "http://127.0.0.1:9/v1/reports"));
    assert_eq!(sent.iter().map(|s| s.2 as u64).sum::<u64>(), s.bytes_sent);
}

#[test]
fn retries_with_backoff_then_delivers() {
    let (outbox, _, ids) = outbox(2);
    let script = Script::new(vec![
        status(503),
        Err("connection reset".into()),
        status(201),
        status(201),
    ]);
    let (mut up, pauses) = uploader(&script);
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    assert_eq!(s.attempts, 4);
    assert_eq!(s.last_error.as_deref(), Some("connection reset"));
    assert_eq!(script.keys(), [&*ids[0], &ids[0], &ids[0], &ids[1]]);
    let pauses = pauses.lock().unwrap();
    assert_eq!(pauses.len(), 2);
    assert!((50 * MS..=100 * MS).contains(&pauses[0]), "{pauses:?}");
    assert!((100 * MS..=200 * MS).contains(&pauses[1]), "{pauses:?}");
    assert!(outbox.pending().is_empty());
}

#[test]
fn honours_retry_after() {
    let (outbox, _, ids) = outbox(1);
    let script = Script::new(vec![
        Ok(Reply {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
            message: String::new(),
        }),
        Ok(Reply {
            status: 503,
            retry_after: Some(Duration::from_secs(3600)),
            message: String::new(),
        }),
        status(200),
    ]);
    let (mut up, pauses) = uploader(&script);
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    assert_eq!(
        *pauses.lock().unwrap(),
        [Duration::from_secs(7), Duration::from_secs(10)]
    );
}

#[test]
fn gives_up_and_stops_the_round_when_the_network_is_down() {
    let (outbox, _, ids) = outbox(3);
    let script = Script::new((0..4).map(|_| Err("connection refused".into())).collect());
    let (mut up, pauses) = uploader(&script);
    let s = up.deliver(&outbox);
    assert!(s.delivered.is_empty() && s.dead_lettered.is_empty());
    assert_eq!((s.deferred, s.attempts), (3, 4));
    assert_eq!(s.last_error.as_deref(), Some("connection refused"));
    // Only the oldest report was tried; the others were not hammered.
    assert_eq!(script.keys(), vec![ids[0].clone(); 4]);
    assert_eq!(
        pauses.lock().unwrap().len(),
        3,
        "no pause after the last try"
    );
    let pending: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(pending, ids);

    // The next round, with the network back, delivers them all.
    script
        .answers
        .lock()
        .unwrap()
        .extend([status(201), status(201), status(201)]);
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, ids);
    assert!(outbox.pending().is_empty());
}

#[test]
fn an_endpoint_refusal_halts_the_round_and_dead_letters_nothing() {
    for refusal in [401, 403, 404, 301] {
        let (outbox, _store, ids) = outbox(3);
        let script = Script::new(vec![status(201), status(refusal)]);
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, &ids[..1], "{refusal}");
        assert!(s.dead_lettered.is_empty(), "{refusal}");
        assert_eq!((s.deferred, s.attempts), (2, 2), "{refusal}");
        assert!(pauses.lock().unwrap().is_empty());
        let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
        assert_eq!(left, &ids[1..], "{refusal}");
        assert!(outbox.dead_letters().unwrap().is_empty());
    }
}

#[test]
fn refused_reports_are_dead_lettered_and_the_round_goes_on() {
    let (outbox, store, ids) = outbox(3);
    let long = format!("bad report\n{}", "x".repeat(5000));
    let script = Script::new(vec![
        Ok(Reply {
            status: 400,
            retry_after: None,
            message: long,
        }),
        status(422),
        status(201),
    ]);
    let (mut up, pauses) = uploader(&script);
    let s = up.deliver(&outbox);
    assert_eq!(s.dead_lettered, &ids[..2]);
    assert_eq!(s.delivered, &ids[2..]);
    assert_eq!((s.deferred, s.attempts), (0, 3));
    assert!(pauses.lock().unwrap().is_empty());
    assert!(outbox.pending().is_empty());
    assert_eq!(outbox.dead_letters().unwrap(), {
        let mut d = ids[..2].to_vec();
        d.sort();
        d
    });
    let reason = |id: &str| {
        String::from_utf8(
            store
                .read(Area::DeadLetter, &format!("{id}.reason.txt"))
                .unwrap(),
        )
        .unwrap()
    };
    let first = reason(&ids[0]);
    assert!(first.starts_with("HTTP 400: bad report x"), "{first}");
    assert!(!first.contains('\n'));
    assert!(
        first.chars().count() <= MAX_REASON_CHARS + 12,
        "{}",
        first.len()
    );
    assert_eq!(reason(&ids[1]), "HTTP 422");
    assert!(store
        .names(Area::DeadLetter)
        .contains(&format!("{}.json", ids[0])));
}

#[test]
fn an_empty_outbox_sends_nothing() {
    let (outbox, _, _) = outbox(0);
    let script = Script::new(vec![]);
    let (mut up, _) = uploader(&script);
    assert_eq!(up.deliver(&outbox), DeliverySummary::default());
    assert!(script.keys().is_empty());
}

#[test]
fn a_report_that_cannot_be_read_is_skipped() {
    let (outbox, store, ids) = outbox(2);
    // The file vanishes behind the outbox's back (a user clearing app data, say).
    store
        .clone()
        .remove(Area::Pending, &format!("{}.json", ids[0]))
        .unwrap();
    let script = Script::new(vec![status(201)]);
    let (mut up, _) = uploader(&script);
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, &ids[1..]);
    assert_eq!(s.deferred, 1);
    assert!(s.last_error.unwrap().starts_with("outbox:"));
}

/// The documented defaults: 500 ms doubling up to 60 s, 6 tries, `Retry-After` honoured up to
/// 5 minutes, a 30 s timeout. Fails if `RetryPolicy::default` were replaced (it would recurse).
#[test]
fn defaults_are_the_documented_ones() {
    assert_eq!(
        UploadConfig::new("http://127.0.0.1:9/"),
        UploadConfig {
            endpoint: "http://127.0.0.1:9/".into(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                initial_backoff: 500 * MS,
                max_backoff: Duration::from_secs(60),
                max_attempts: 6,
                max_retry_after: Duration::from_secs(300),
            },
        }
    );
}

/// A report that runs out of tries after an earlier one was delivered defers itself and the
/// report after it: 2 of 3. Fails if the reports left were counted as `pending.len() + index`.
#[test]
fn giving_up_midway_defers_the_rest_of_the_round() {
    let (outbox, _, ids) = outbox(3);
    let mut answers = vec![status(201)];
    answers.extend((0..4).map(|_| Err("connection refused".to_string())));
    let script = Script::new(answers);
    let (mut up, pauses) = uploader(&script);
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, &ids[..1]);
    assert_eq!((s.deferred, s.attempts), (2, 5));
    assert_eq!(pauses.lock().unwrap().len(), 3);
    let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(left, &ids[1..]);
}

/// A refused report that cannot be moved to the dead-letter folder (every write fails) stays
/// pending and is counted as deferred; the round goes on. Fails if that count's `+= 1` became
/// `*= 1`.
#[test]
fn a_refusal_that_cannot_be_dead_lettered_is_deferred() {
    let (outbox, store, ids) = outbox(2);
    store.set_fail_writes(true);
    let script = Script::new(vec![status(400), status(201)]);
    let (mut up, _) = uploader(&script);
    let s = up.deliver(&outbox);
    assert!(s.dead_lettered.is_empty());
    assert_eq!(s.delivered, &ids[1..]);
    assert_eq!((s.deferred, s.attempts), (1, 2));
    let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(left, &ids[..1]);
    assert!(outbox.dead_letters().unwrap().is_empty());
}

/// A transport that, on its first post, acknowledges another report of the outbox, as the
/// host (or a second uploader) may while a round runs.
struct AckOnFirstPost {
    script: Script,
    outbox: Arc<Outbox>,
    ack: Option<String>,
}

impl Transport for AckOnFirstPost {
    fn post(&mut self, url: &str, key: &str, body: &[u8]) -> std::result::Result<Reply, String> {
        if let Some(id) = self.ack.take() {
            assert!(self.outbox.ack(&id).unwrap());
        }
        self.script.post(url, key, body)
    }
}

/// A report acknowledged elsewhere while the round runs is skipped: neither sent, nor
/// deferred, nor an error. Fails if the `UnknownReport` arm of `deliver` were deleted (the
/// report would count as unreadable).
#[test]
fn a_report_acknowledged_during_the_round_is_skipped_quietly() {
    let (outbox, _, ids) = outbox(3);
    let outbox = Arc::new(outbox);
    let script = Script::new(vec![status(201), status(201)]);
    let transport = AckOnFirstPost {
        script: script.clone(),
        outbox: outbox.clone(),
        ack: Some(ids[1].clone()),
    };
    let mut up =
        Uploader::with_transport(config("http://127.0.0.1:9/v1/reports"), Box::new(transport))
            .unwrap()
            .with_sleep(|_| {});
    let s = up.deliver(&outbox);
    assert_eq!(s.delivered, [&*ids[0], &ids[2]]);
    assert_eq!((s.deferred, s.attempts), (0, 2));
    assert_eq!(s.last_error, None);
    assert_eq!(script.keys(), [&*ids[0], &ids[2]]);
    assert!(outbox.pending().is_empty());
}

/// The uploader's debug output shows its timeout and retry policy, never the endpoint (it may
/// carry a token). Fails if its `fmt` wrote nothing.
#[test]
fn debug_output_shows_the_settings_but_not_the_endpoint() {
    let up = Uploader::with_transport(
        config("http://127.0.0.1:9/v1/reports?token=secret"),
        Box::new(Script::new(vec![])),
    )
    .unwrap();
    let shown = format!("{up:?}");
    assert!(
        shown.starts_with("Uploader { timeout: 1s, retry: RetryPolicy {")
            && shown.contains("max_attempts: 4"),
        "{shown}"
    );
    assert!(
        !shown.contains("secret") && !shown.contains("127.0.0.1"),
        "{shown}"
    );
}

//! Segment reports and the durable outbox: schema, ids, JPEG evidence, ack and reopen, the disk
//! budget, quarantine of corrupt and foreign files, full disks, and crash safety under SIGKILL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prescreen::ingest::Receiver;
use prescreen_runtime::reporting::outbox::{
    reporting_sink, Area, MemStore, Outbox, OutboxEvent, OutboxOptions, ReportingStats,
};
use prescreen_runtime::reporting::report::{Report, JSON_SCHEMA, SCHEMA_ID};
use prescreen_runtime::reporting::upload::{UploadConfig, Uploader};
use prescreen_runtime::stream::engine::{Event, Thumbnail};
use prescreen_runtime::stream::segmenter::{Segment, SegmentEvent};
use prescreen_runtime::Error;

/// A closed segment `id` from `start_s` to `end_s` (stream starting at camera time 5 s) with
/// `thumbs` evidence frames, and their thumbnails (a colour gradient, 96x72).
fn segment(id: u64, start_s: i64, end_s: i64, thumbs: usize) -> (Segment, Vec<Thumbnail>) {
    let origin = 5_000_000;
    let at = |s: f64| origin + (s * 1e6) as i64;
    let evidence: Vec<(i64, f32)> = (0..thumbs)
        .map(|k| {
            (
                at(start_s as f64 + 0.5 + k as f64 * 0.25),
                0.97 - k as f32 * 0.01,
            )
        })
        .collect();
    let thumbnails = evidence
        .iter()
        .map(|&(t, _)| Thumbnail {
            timestamp_us: t,
            width: 96,
            height: 72,
            rgb: (0..96 * 72)
                .flat_map(|i| {
                    [
                        (i % 96 * 2) as u8,
                        (i / 96 * 3) as u8,
                        ((t / 1000) % 251) as u8,
                    ]
                })
                .collect(),
        })
        .collect();
    let seg = Segment {
        id,
        label: Arc::from("nsfw"),
        stream_start_us: origin,
        start_us: at(start_s as f64),
        end_us: at(end_s as f64),
        crossed_us: at(start_s as f64 + 1.0),
        peak: 0.97,
        peak_us: at(start_s as f64 + 0.5),
        mean: 0.9,
        frames_scored: 12,
        evidence,
    };
    (seg, thumbnails)
}

fn report(stream: &str, id: u64, thumbs: usize) -> Report {
    let (seg, th) = segment(id, id as i64 * 10, id as i64 * 10 + 4, thumbs);
    common::report_context(stream)
        .build(&seg, &th, 1_700_000_000_000 + id)
        .unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn a_report_matches_its_schema_and_rekognition_shape() {
    let (seg, thumbs) = segment(3, 10, 16, 3);
    let r = common::report_context("stream-a")
        .build(&seg, &thumbs, 1_700_000_000_000)
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
    let v = validator();
    assert!(
        v.is_valid(&json),
        "{:?}",
        v.iter_errors(&json)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(r.schema, SCHEMA_ID);
    // Times in milliseconds from the stream's first frame; Rekognition's duration = end - start.
    assert_eq!(
        (r.start_timestamp_millis, r.end_timestamp_millis),
        (10_000, 16_000)
    );
    assert_eq!(r.duration_millis, 6_000);
    assert_eq!(r.timestamp, 11_000);
    assert!((r.confidence - 97.0).abs() < 1e-3);
    assert_eq!(r.evidence.len(), 3);
    // Evidence thumbnails are real JPEGs of the kept pictures.
    let jpeg = r.jpeg(0).unwrap();
    let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (96, 72));
    // Round trip, and the same segment always gets the same id; another segment another one.
    assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
    let again = common::report_context("stream-a")
        .build(&seg, &thumbs, 1_800_000_000_000)
        .unwrap();
    assert_eq!(again.report_id, r.report_id);
    let (seg2, _) = segment(4, 10, 16, 0);
    assert_ne!(
        common::report_context("stream-a")
            .build(&seg2, &[], 0)
            .unwrap()
            .report_id,
        r.report_id
    );
    assert_ne!(
        common::report_context("stream-b")
            .build(&seg, &[], 0)
            .unwrap()
            .report_id,
        r.report_id
    );
    // The schema refuses what the runtime refuses.
    for bad in [
        json.clone()
            .tap(|j| j["report_id"] = "../../etc/passwd".into()),
        json.clone().tap(|j| j["confidence"] = 130.0.into()),
        json.clone().tap(|j| j["extra"] = 1.into()),
        json.clone().tap(|j| {
            j.as_object_mut()
                .unwrap()
                .remove("label")
                .map(drop)
                .unwrap_or(())
        }),
    ] {
        assert!(!v.is_valid(&bad));
        assert!(Report::from_json(&serde_json::to_vec(&bad).unwrap()).is_err());
    }
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}
impl Tap for serde_json::Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[test]
fn put_ack_and_reopen_keep_exactly_the_unacknowledged_reports() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
    let reports: Vec<Report> = (1..=4).map(|i| report("s", i, 1)).collect();
    for r in &reports {
        outbox.put(r).unwrap();
    }
    let ids: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(
        ids,
        reports
            .iter()
            .map(|r| r.report_id.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        Report::from_json(&outbox.read(&ids[2]).unwrap()).unwrap(),
        reports[2]
    );
    assert!(outbox.ack(&ids[0]).unwrap());
    assert!(!outbox.ack(&ids[0]).unwrap(), "a second ack is harmless");
    outbox.dead_letter(&ids[1], "HTTP 400: bad").unwrap();
    drop(outbox);

    let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
    let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(left, ids[2..].to_vec());
    assert_eq!(outbox.dead_letters().unwrap(), vec![ids[1].clone()]);
    let reason = std::fs::read_to_string(
        dir.path()
            .join("dead-letter")
            .join(format!("{}.reason.txt", ids[1])),
    )
    .unwrap();
    assert_eq!(reason, "HTTP 400: bad");
    // Ids name files: anything but 32 hex digits is refused before touching the disk.
    for bad in [
        "../pending/x",
        "",
        "ABCDEF0123456789ABCDEF0123456789",
        "a/b",
    ] {
        assert!(
            matches!(outbox.ack(bad), Err(Error::BadReportId(_))),
            "{bad}"
        );
        assert!(matches!(outbox.read(bad), Err(Error::BadReportId(_))));
    }
    assert!(matches!(
        outbox.read(&"0".repeat(32)),
        Err(Error::UnknownReport(_))
    ));
}

fn recording() -> (OutboxOptions, Arc<Mutex<Vec<OutboxEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = OutboxOptions {
        budget_bytes: u64::MAX,
        events: Some(Arc::new(move |e| sink.lock().unwrap().push(e))),
    };
    (options, events)
}

#[test]
fn the_budget_drops_oldest_thumbnails_before_any_metadata() {
    let reports: Vec<Report> = (1..=5).map(|i| report("s", i, 3)).collect();
    let full = reports[0].to_json().len() as u64;
    let mut bare = reports[0].clone();
    bare.drop_thumbnails();
    let meta = bare.to_json().len() as u64;
    assert!(full > 4 * meta, "thumbnails dominate: {full} vs {meta}");

    // Room for two full reports and three bare ones.
    let (mut options, events) = recording();
    options.budget_bytes = 2 * full + 3 * meta + 100;
    let store = MemStore::new();
    let outbox = Outbox::with_store(Box::new(store.clone()), options).unwrap();
    for r in &reports {
        outbox.put(r).unwrap();
    }
    let m = outbox.metrics();
    assert_eq!(m.pending, 5, "no metadata lost: {m:?}");
    assert_eq!(
        m.thumbnails_dropped, 9,
        "three oldest reports lost their thumbnails"
    );
    assert_eq!(m.reports_evicted, 0);
    assert!(m.pending_bytes <= 2 * full + 3 * meta + 100);
    for (i, r) in reports.iter().enumerate() {
        let kept = Report::from_json(&outbox.read(&r.report_id).unwrap()).unwrap();
        let expect = if i < 3 { 0 } else { 3 };
        assert_eq!(kept.thumbnails(), expect, "report {i}");
        assert_eq!(kept.thumbnails_dropped as usize, 3 - expect);
        assert_eq!(kept.evidence.len(), 3, "evidence metadata stays");
    }
    let dropped: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            OutboxEvent::ThumbnailsDropped {
                report_id,
                count: 3,
            } => Some(report_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        dropped,
        reports[..3]
            .iter()
            .map(|r| r.report_id.clone())
            .collect::<Vec<_>>()
    );

    // Metadata alone over the budget: only then are whole reports evicted, oldest first, never the
    // report just written.
    let (mut options, events) = recording();
    options.budget_bytes = 2 * meta + 50;
    let outbox = Outbox::with_store(Box::new(MemStore::new()), options).unwrap();
    for r in &reports {
        outbox.put(r).unwrap();
    }
    let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(
        left,
        vec![reports[3].report_id.clone(), reports[4].report_id.clone()]
    );
    assert_eq!(outbox.metrics().reports_evicted, 3);
    let ev = events.lock().unwrap();
    let first_evicted = ev
        .iter()
        .position(|e| matches!(e, OutboxEvent::ReportEvicted { .. }));
    let last_drop = ev
        .iter()
        .rposition(|e| matches!(e, OutboxEvent::ThumbnailsDropped { .. }));
    assert!(first_evicted.is_some() && last_drop.is_some());
}

#[test]
fn corrupt_and_foreign_files_are_quarantined_and_block_nothing() {
    let store = MemStore::new();
    let good = report("s", 1, 1);
    let other = report("s", 2, 0);
    store.plant(
        Area::Pending,
        &format!("{}.json", good.report_id),
        &good.to_json(),
    );
    let truncated = &other.to_json()[..100];
    store.plant(
        Area::Pending,
        &format!("{}.json", other.report_id),
        truncated,
    );
    store.plant(Area::Pending, "notes.txt", b"hello");
    // Two names that sanitise alike must not overwrite each other in quarantine/.
    store.plant(Area::Pending, "a b.json", b"1");
    store.plant(Area::Pending, "a?b.json", b"2");
    store.plant(Area::Pending, "../escape.json", b"{}");
    let mismatched = report("s", 3, 0);
    store.plant(
        Area::Pending,
        &format!("{}.json", "f".repeat(32)),
        &mismatched.to_json(),
    );
    store.plant(
        Area::Pending,
        &format!("{}.json", "e".repeat(32)),
        &[0xff; 64],
    );

    let (options, events) = recording();
    let outbox = Outbox::with_store(Box::new(store.clone()), options).unwrap();
    let pending: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
    assert_eq!(pending, vec![good.report_id.clone()]);
    assert_eq!(outbox.metrics().quarantined, 7);
    assert_eq!(store.names(Area::Quarantine).len(), 7);
    assert_eq!(
        store.names(Area::Pending),
        vec![format!("{}.json", good.report_id)]
    );
    let reasons: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            OutboxEvent::Quarantined { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 7, "{reasons:?}");
    // The outbox goes on working.
    outbox.put(&other).unwrap();
    assert_eq!(outbox.pending().len(), 2);
    assert!(outbox.ack(&good.report_id).unwrap());
}

/// A reporting sink into `outbox` whose host events arrive on the receiver, and its counters.
fn recording_sink(
    outbox: &Arc<Outbox>,
) -> (
    prescreen_runtime::stream::engine::EventSink,
    std::sync::mpsc::Receiver<Event>,
    Arc<ReportingStats>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let stats = Arc::new(ReportingStats::default());
    let sink = reporting_sink(
        common::report_context("s"),
        outbox.clone(),
        stats.clone(),
        Box::new(move |e| drop(tx.send(e))),
    );
    (sink, rx, stats)
}

#[test]
fn a_full_disk_is_a_typed_error_and_loses_nothing() {
    let store = MemStore::new();
    let outbox =
        Arc::new(Outbox::with_store(Box::new(store.clone()), OutboxOptions::default()).unwrap());
    let r = report("s", 1, 2);
    store.set_capacity(Some(1000));
    match outbox.put(&r) {
        Err(Error::Storage {
            op: "write",
            source,
            ..
        }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("{other:?}"),
    }
    assert!(outbox.pending().is_empty());
    assert_eq!(outbox.metrics().write_failures, 1);

    // Through the engine's sink: the report is kept and stored once the disk has room again.
    let (mut sink, rx, stats) = recording_sink(&outbox);
    let (seg, thumbs) = segment(1, 0, 5, 2);
    sink(Event::Segment(SegmentEvent::Closed(seg), thumbs));
    assert!(outbox.pending().is_empty());
    let events: Vec<Event> = rx.try_iter().collect();
    assert!(matches!(
        events[0],
        Event::Segment(SegmentEvent::Closed(_), _)
    ));
    assert!(
        matches!(&events[1], Event::Error(m) if m.contains("not stored yet")),
        "{events:?}"
    );
    store.set_capacity(None);
    sink(Event::Error("any later event retries".into()));
    assert_eq!(outbox.pending().len(), 1);
    assert!(rx
        .try_iter()
        .any(|e| matches!(e, Event::ReportQueued { .. })));
    assert_eq!(stats.lost.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// The stream ends while the store still fails: the sink retries each waiting report once more
/// as it is dropped, and a report it still cannot store is counted lost and reported as an error,
/// never dropped silently. One that can be stored at the end is stored.
#[test]
fn reports_unstorable_when_the_stream_ends_are_retried_then_counted_lost() {
    use std::sync::atomic::Ordering::Relaxed;
    for disk_recovers in [false, true] {
        let store = MemStore::new();
        let outbox = Arc::new(
            Outbox::with_store(Box::new(store.clone()), OutboxOptions::default()).unwrap(),
        );
        let (mut sink, rx, stats) = recording_sink(&outbox);
        store.set_fail_writes(true);
        for i in 0..3 {
            let (seg, thumbs) = segment(i, 10 * i as i64, 10 * i as i64 + 5, 1);
            sink(Event::Segment(SegmentEvent::Closed(seg), thumbs));
        }
        assert!(outbox.pending().is_empty());
        assert_eq!(
            stats.lost.load(Relaxed),
            0,
            "kept for a retry while the stream runs"
        );
        let _ = rx.try_iter().count();
        store.set_fail_writes(!disk_recovers);
        // The engine drops its sink when its worker stops (after `finish`, or on drop).
        drop(sink);
        let events: Vec<Event> = rx.try_iter().collect();
        let lost = events
            .iter()
            .filter(|e| matches!(e, Event::Error(m) if m.contains("lost")))
            .count();
        let queued = events
            .iter()
            .filter(|e| matches!(e, Event::ReportQueued { .. }))
            .count();
        if disk_recovers {
            assert_eq!(
                (lost, queued, outbox.pending().len()),
                (0, 3, 3),
                "{events:?}"
            );
            assert_eq!(stats.lost.load(Relaxed), 0);
        } else {
            assert_eq!(
                (lost, queued, outbox.pending().len()),
                (3, 0, 0),
                "{events:?}"
            );
            assert_eq!(stats.lost.load(Relaxed), 3);
        }
    }
}

const CHILD_ENV: &str = "PRESCREEN_CRASH_CHILD_DIR";

/// The child of the crash test: writes reports as fast as it can, printing each id once `put`
/// returned. Run only by `crash_at_random_moments_never_loses_or_tears_a_report`.
#[test]
#[ignore = "child process of the crash test"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let stream = std::env::var("PRESCREEN_CRASH_STREAM").unwrap();
    let outbox = Outbox::open(&dir, OutboxOptions::default()).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 1.. {
        let r = report(&stream, i, (i % 4) as usize);
        outbox.put(&r).unwrap();
        use std::io::Write;
        writeln!(out, "stored {}", r.report_id).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn crash_at_random_moments_never_loses_or_tears_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let received = tempfile::tempdir().unwrap();
    let receiver = Receiver::start("127.0.0.1:0", received.path(), None).unwrap();
    let mut uploader = Uploader::new(UploadConfig::new(receiver.url())).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = Instant::now().elapsed().as_nanos() as u64 | 1;
    let (mut returned, mut durable, mut torn_temps) = (Vec::new(), 0, 0);
    let cycles = 200;
    for cycle in 0..cycles {
        let mut child = common::command(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("PRESCREEN_CRASH_STREAM", format!("crash-{cycle}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("stored ").map(str::to_string))
                .filter(|id| id.len() == 32)
                .inspect(|_| {
                    let _ = first_tx.send(());
                })
                .collect::<Vec<String>>()
        });
        // Half of the cycles wait for the child's first report, then kill it 0-15 ms later (kills
        // between and in the middle of writes, however slowly the child starts on a loaded
        // machine); the others kill 10-25 ms after the spawn (kills during start-up, too).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if seed.is_multiple_of(2) {
            first_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the child stored a first report");
            std::thread::sleep(Duration::from_micros(seed % 15_000));
        } else {
            std::thread::sleep(Duration::from_micros(10_000 + seed % 15_000));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let ids = reader.join().unwrap();

        torn_temps += std::fs::read_dir(dir.path().join("tmp")).map_or(0, |d| d.count());
        // Reopening cleans partial writes; every report whose put returned is there and parses,
        // and nothing partial is listed (it would be quarantined).
        let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
        assert_eq!(
            outbox.metrics().quarantined,
            0,
            "cycle {cycle}: a torn file was listed"
        );
        let pending: std::collections::HashSet<String> =
            outbox.pending().into_iter().map(|p| p.report_id).collect();
        for id in &ids {
            assert!(pending.contains(id), "cycle {cycle}: report {id} lost");
            Report::from_json(&outbox.read(id).unwrap()).unwrap();
        }
        assert!(std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none());
        // Reports that reached the disk just before the kill, unannounced, are whole too.
        assert!(pending.len() >= ids.len());
        for id in &pending {
            Report::from_json(&outbox.read(id).unwrap()).unwrap();
        }
        // Deliver them (acknowledged on success) before the next child starts.
        let summary = uploader.deliver(&outbox);
        assert_eq!(summary.delivered.len(), pending.len(), "{summary:?}");
        durable += pending.len();
        returned.extend(ids);
    }
    println!(
        "crash test: {cycles} SIGKILLs, {} reports returned from put, {durable} found whole on disk, \
         {torn_temps} partial temp files cleaned; none lost or torn",
        returned.len(),
    );
    // At least the cycles that waited for a first report returned one.
    assert!(
        returned.len() >= cycles / 3,
        "the child wrote too little to test anything"
    );
    // Every durable report reached the server exactly once.
    let got = receiver.stats();
    assert_eq!(got.new_reports as usize, durable, "{got:?}");
    assert_eq!(got.duplicates, 0, "{got:?}");
    assert_eq!(std::fs::read_dir(received.path()).unwrap().count(), durable);
    let unique: std::collections::HashSet<&String> = returned.iter().collect();
    assert_eq!(unique.len(), returned.len());
}

//! Unit tests of the outbox on a [`MemStore`] (and one on disk): the disk budget, acknowledgement,
//! counters, quarantine, and the bound on reports waiting in [`reporting_sink`].

use std::fs;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use crate::reporting::report::fixtures::{context, segment};
use crate::stream::engine::{Event, Thumbnail};
use crate::stream::segmenter::SegmentEvent;

/// The report of segment `n` with `thumbs` 8x8 thumbnails.
fn report(n: u64, thumbs: usize) -> Report {
    let segment = segment(n, thumbs);
    let thumbnails: Vec<Thumbnail> = segment.evidence[..thumbs]
        .iter()
        .map(|&(t, _)| Thumbnail {
            timestamp_us: t,
            width: 8,
            height: 8,
            rgb: vec![(n * 40) as u8; 8 * 8 * 3],
        })
        .collect();
    context().build(&segment, &thumbnails, 1_000 + n).unwrap()
}

fn size(report: &Report) -> u64 {
    report.to_json().len() as u64
}

fn mem_outbox(budget_bytes: u64) -> (Outbox, MemStore) {
    let store = MemStore::new();
    let options = OutboxOptions {
        budget_bytes,
        events: None,
    };
    let outbox = Outbox::with_store(Box::new(store.clone()), options).unwrap();
    (outbox, store)
}

fn assert_full(result: Result<()>) {
    match result {
        Err(Error::Storage {
            op: "write",
            source,
            ..
        }) if source.kind() == io::ErrorKind::StorageFull => {}
        other => panic!("expected a full store, got {other:?}"),
    }
}

/// A `MemStore`'s capacity is inclusive and counts every file but the one being replaced: a
/// report that exactly fills it is stored and can be stored again, one byte less of room
/// refuses it, and a second report does not fit beside it. Fails if the capacity test became
/// `>=`, `==` or `<`, its `+` became `*`, or if `used` counted only the replaced file (`!=`
/// became `==`).
#[test]
fn memstore_capacity_is_inclusive_and_a_replaced_file_is_not_counted() {
    let (a, b) = (report(1, 0), report(2, 0));
    let (outbox, store) = mem_outbox(u64::MAX);
    store.set_capacity(Some(size(&a) - 1));
    assert_full(outbox.put(&a));
    store.set_capacity(Some(size(&a)));
    outbox.put(&a).unwrap();
    outbox.put(&a).unwrap();
    assert_full(outbox.put(&b));
    store.set_capacity(Some(size(&a) + size(&b)));
    outbox.put(&b).unwrap();
    assert_eq!(outbox.metrics().write_failures, 2);
    assert_eq!(outbox.pending().len(), 2);
}

/// The disk budget is inclusive: reports that exactly fill it keep their thumbnails; with one
/// byte less the oldest report loses its two. Fails if the budget test `total > budget`
/// became `>=` or `==`.
#[test]
fn reports_that_exactly_fill_the_budget_keep_their_thumbnails() {
    let (a, b) = (report(1, 2), report(2, 2));
    let budget = size(&a) + size(&b);
    let (outbox, _) = mem_outbox(budget);
    outbox.put(&a).unwrap();
    outbox.put(&b).unwrap();
    let m = outbox.metrics();
    assert_eq!(
        (
            m.pending,
            m.pending_bytes,
            m.thumbnails_dropped,
            m.reports_evicted
        ),
        (2, budget, 0, 0)
    );

    let (outbox, _) = mem_outbox(budget - 1);
    outbox.put(&a).unwrap();
    outbox.put(&b).unwrap();
    let m = outbox.metrics();
    assert_eq!(
        (m.pending, m.thumbnails_dropped, m.reports_evicted),
        (2, 2, 0)
    );
    let thumbnails = |r: &Report| {
        Report::from_json(&outbox.read(&r.report_id).unwrap())
            .unwrap()
            .thumbnails()
    };
    assert_eq!((thumbnails(&a), thumbnails(&b)), (0, 2));
}

/// Acknowledging a report whose file already vanished (removed behind the outbox's back)
/// succeeds and forgets it. Fails if the `NotFound` guard of `ack` was negated or replaced
/// with `false`.
#[test]
fn acking_a_report_whose_file_vanished_succeeds() {
    let (outbox, store) = mem_outbox(u64::MAX);
    let r = report(1, 0);
    outbox.put(&r).unwrap();
    let mut behind = store.clone();
    behind
        .remove(Area::Pending, &file_name(&r.report_id))
        .unwrap();
    assert!(outbox.ack(&r.report_id).unwrap());
    assert!(outbox.pending().is_empty());
    assert_eq!(outbox.metrics().acked, 1);
}

/// A removal that fails for any other reason than a missing file (here the report's file was
/// replaced by a folder, which unlink refuses) is a storage error, and the report stays
/// pending. Fails if the `NotFound` guard of `ack` was replaced with `true` or negated.
#[test]
fn acking_fails_when_the_file_cannot_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
    let r = report(1, 0);
    outbox.put(&r).unwrap();
    let path = dir.path().join("pending").join(file_name(&r.report_id));
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    match outbox.ack(&r.report_id) {
        Err(Error::Storage { op: "remove", .. }) => {}
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(outbox.pending().len(), 1);
    assert_eq!(outbox.metrics().acked, 0);
}

/// Every counter after four puts (one replacing a pending report), an ack and a dead letter:
/// 4 stored, 1 acked, 1 dead-lettered, one report pending with its bytes. Fails if a
/// counter's `+= 1` became `*= 1` (stuck at 0), or a replaced report were indexed twice.
#[test]
fn counters_count_each_operation_once() {
    let (a, b, c) = (report(1, 0), report(2, 0), report(3, 0));
    let (outbox, _) = mem_outbox(u64::MAX);
    for r in [&a, &b, &c, &b] {
        outbox.put(r).unwrap();
    }
    assert_eq!(outbox.pending().len(), 3);
    assert!(outbox.ack(&a.report_id).unwrap());
    outbox.dead_letter(&c.report_id, "HTTP 400").unwrap();
    assert_eq!(
        outbox.metrics(),
        OutboxMetrics {
            pending: 1,
            pending_bytes: size(&b),
            stored: 4,
            acked: 1,
            thumbnails_dropped: 0,
            reports_evicted: 0,
            quarantined: 0,
            dead_lettered: 1,
            write_failures: 0,
        }
    );
}

/// A quarantined file is renamed `<millis>-<sequence>-<name>`, the name keeping letters,
/// digits, `.` and `-` and every other character becoming `_`. Fails if an `||` of the
/// character test became `&&`, or one of its `==` became `!=`.
#[test]
fn quarantined_names_keep_only_safe_characters() {
    let store = MemStore::new();
    for name in ["../up.json", "a b.json", "x-Y.9?.txt"] {
        store.plant(Area::Pending, name, b"{}");
    }
    let outbox = Outbox::with_store(Box::new(store.clone()), OutboxOptions::default()).unwrap();
    assert_eq!(outbox.metrics().quarantined, 3);
    let mut names: Vec<(u64, String)> = store
        .names(Area::Quarantine)
        .iter()
        .map(|n| {
            let mut parts = n.splitn(3, '-');
            let millis = parts.next().unwrap();
            assert!(millis.parse::<u64>().is_ok(), "{n}");
            let sequence = parts.next().unwrap().parse().unwrap();
            (sequence, parts.next().unwrap().to_string())
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            (0, ".._up.json".to_string()),
            (1, "a_b.json".to_string()),
            (2, "x-Y.9_.txt".to_string())
        ]
    );
}

/// The debug output of the options and of the outbox shows the budget (32 MiB = 33554432
/// bytes by default) and whether an event sink is set, never the sink. Fails if either `fmt`
/// wrote nothing.
#[test]
fn debug_output_shows_the_options() {
    assert_eq!(
        format!("{:?}", OutboxOptions::default()),
        "OutboxOptions { budget_bytes: 33554432, events: false }"
    );
    let options = OutboxOptions {
        budget_bytes: 1234,
        events: Some(Arc::new(|_| {})),
    };
    let outbox = Outbox::with_store(Box::new(MemStore::new()), options).unwrap();
    assert_eq!(
        format!("{outbox:?}"),
        "Outbox { options: OutboxOptions { budget_bytes: 1234, events: true }, .. }"
    );
}

/// While the stream runs, at most 64 reports wait for a failing store: the 65th is lost,
/// counted once and reported; the 64 kept are stored once the store works again. Fails if the
/// bound `unstored.len() < MAX_UNSTORED` became `<=` (65 kept).
#[test]
fn at_most_64_unstored_reports_wait_for_the_store() {
    let (outbox, store) = mem_outbox(u64::MAX);
    let outbox = Arc::new(outbox);
    let stats = Arc::new(ReportingStats::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut sink = reporting_sink(
        context(),
        outbox.clone(),
        stats.clone(),
        Box::new(move |e| drop(tx.send(e))),
    );
    store.set_fail_writes(true);
    for n in 1..=65 {
        sink(Event::Segment(SegmentEvent::Closed(segment(n, 0)), vec![]));
    }
    assert_eq!(stats.lost.load(Ordering::Relaxed), 1);
    let lost = rx
        .try_iter()
        .filter(|e| {
            matches!(e, Event::Error(m) if m.contains("could not be stored and too many reports wait"))
        })
        .count();
    assert_eq!(lost, 1);
    store.set_fail_writes(false);
    sink(Event::Error("any later event retries".into()));
    assert_eq!(outbox.pending().len(), 64);
    drop(sink);
    assert_eq!(stats.lost.load(Ordering::Relaxed), 1);
}

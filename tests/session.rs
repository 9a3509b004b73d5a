//! The session the mobile bindings wrap: model + policy + outbox + engine + events thread, with
//! close semantics and error kinds. Real tract, the real test classifier, real files.

mod common;

use std::sync::{mpsc, Arc, Mutex};

use prescreen::framegen::OwnedFrame;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, FrameError, PixelFormat, PlaneKind};
use prescreen_runtime::inference::model::{LoadOptions, Model};
use prescreen_runtime::policy::Policy;
use prescreen_runtime::preprocess::backend::Backend;
use prescreen_runtime::reporting::outbox::OutboxEvent;
use prescreen_runtime::session::{
    FrameMeta, HostFrame, HostPixels, HostPlane, LentFrame, MetricsSummary, Session, SessionConfig,
    SessionEvent, SubmitOutcome,
};
use prescreen_runtime::stream::segmenter::SegmentEvent;
use prescreen_runtime::{Error, ErrorKind};

fn config(outbox: &std::path::Path, stream_id: &str) -> SessionConfig {
    let dir = common::root().join("models/redness");
    assert!(
        dir.join("redness.onnx").is_file(),
        "TEST CLASSIFIER NOT BUILT: run `make model` (models/test_classifier.py) first"
    );
    let mut c = SessionConfig::new(
        dir,
        common::root().join("models/policies/redness.toml"),
        outbox,
        stream_id,
    );
    c.backend = Backend::Cpu;
    c
}

fn frame(red: bool, t_us: i64) -> OwnedFrame {
    let rgb = if red { [220, 30, 30] } else { [128, 128, 128] };
    let (w, h) = (160, 120);
    let px: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
    let mut f = OwnedFrame::from_rgb(
        &px,
        w,
        h,
        PixelFormat::Nv21,
        ColorMatrix::Bt601,
        ColorRange::Limited,
    )
    .unwrap();
    f.timestamp_us = t_us;
    f
}

fn listener() -> (
    Box<dyn FnMut(SessionEvent) + Send>,
    mpsc::Receiver<SessionEvent>,
) {
    let (tx, rx) = mpsc::channel();
    (Box::new(move |e| drop(tx.send(e))), rx)
}

/// 6 s at 30 fps, red during [1, 2.5) s.
fn stream(session: &Session) {
    for i in 0..180 {
        let t = i * 1_000_000 / 30;
        let f = frame((1_000_000..2_500_000).contains(&t), t);
        session.submit(&f.frame().unwrap()).unwrap();
        session.wait_idle().unwrap();
    }
}

#[test]
fn a_session_reports_its_segment_survives_reopening_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let (l, rx) = listener();
    let session = Session::open(&config(dir.path(), "s1"), l).unwrap();
    assert_eq!(session.labels(), ["other", "red"]);
    stream(&session);
    let metrics = session
        .close()
        .unwrap()
        .expect("first close returns the metrics");
    assert!(metrics.engine.accounted(), "{metrics:?}");
    assert_eq!(metrics.engine.seen, 180);
    assert_eq!(metrics.outbox.pending, 1);
    // close joined the events thread: every event is here, in order.
    let events: Vec<SessionEvent> = rx.try_iter().collect();
    let closed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Segment(SegmentEvent::Closed(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{events:?}");
    assert!(
        (closed[0].start_us - 1_000_000).abs() <= 200_000,
        "{closed:?}"
    );
    let queued: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::ReportQueued { report_id, .. } => Some(report_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(queued.len(), 1);
    let position = |f: &dyn Fn(&SessionEvent) -> bool| events.iter().position(f).unwrap();
    let closed_at = position(&|e| matches!(e, SessionEvent::Segment(SegmentEvent::Closed(_))));
    let queued_at = position(&|e| matches!(e, SessionEvent::ReportQueued { .. }));
    assert!(queued_at > closed_at, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Outbox(OutboxEvent::Stored { report_id }) if *report_id == queued[0])),
        "the outbox's Stored event is forwarded: {events:?}"
    );

    // Closed: a second close is a no-op, everything else is Error::Closed.
    assert!(session.close().unwrap().is_none());
    assert!(!session.is_open());
    let f = frame(false, 0);
    assert!(matches!(
        session.submit(&f.frame().unwrap()),
        Err(Error::Closed)
    ));
    assert_eq!(
        session.pending_reports().unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(session.metrics().unwrap_err().kind(), ErrorKind::Closed);

    // A new session on the same outbox sees the report, reads it, acks it.
    let (l, _rx) = listener();
    let again = Session::open(&config(dir.path(), "s2"), l).unwrap();
    let pending = again.pending_reports().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].report_id, queued[0]);
    let json = String::from_utf8(again.read_report(&queued[0]).unwrap()).unwrap();
    assert!(json.contains("\"stream_id\":\"s1\""), "{json}");
    assert!(again.ack(&queued[0]).unwrap());
    assert!(!again.ack(&queued[0]).unwrap());
    assert_eq!(
        again.read_report(&queued[0]).unwrap_err().kind(),
        ErrorKind::UnknownReport
    );
    assert_eq!(
        again.ack("not an id").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    drop(again); // Drop closes.
}

/// The desktop harness without `--outbox`: a model and a policy the host loaded, segments as
/// usual, and no outbox, no reports, no stream id to check. The outbox API acts as an empty one.
#[test]
fn a_session_without_reports_screens_and_opens_no_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mut c = config(&outbox, "");
    c.store_reports = false;
    let model = Model::load_dir(&c.model_dir, c.variant, &LoadOptions::default()).unwrap();
    let policy = Policy::load(&c.policy_path).unwrap();
    let (l, rx) = listener();
    let session = Session::start(&model, &policy, &c, l).unwrap();
    stream(&session);
    let id = "0".repeat(32);
    assert!(session.pending_reports().unwrap().is_empty());
    let unknown = session.read_report(&id).unwrap_err().kind();
    assert_eq!(unknown, ErrorKind::UnknownReport);
    assert!(!session.ack(&id).unwrap());
    let bad = session.ack("not an id").unwrap_err().kind();
    assert_eq!(bad, ErrorKind::InvalidArgument);
    let m = session.close().unwrap().unwrap();
    assert_eq!((m.outbox.pending, m.reports_lost), (0, 0));
    let events: Vec<SessionEvent> = rx.try_iter().collect();
    let closed = |e: &SessionEvent| matches!(e, SessionEvent::Segment(SegmentEvent::Closed(_)));
    assert_eq!(events.iter().filter(|e| closed(e)).count(), 1, "{events:?}");
    let reporting = |e: &SessionEvent| {
        matches!(
            e,
            SessionEvent::ReportQueued { .. } | SessionEvent::Outbox(_)
        )
    };
    assert!(!events.iter().any(reporting), "{events:?}");
    assert!(!outbox.exists());
}

#[test]
fn rejected_frames_are_counted_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (l, _rx) = listener();
    let session = Session::open(&config(dir.path(), "s"), l).unwrap();
    let e = session.reject(FrameError::ZeroSize {
        width: 0,
        height: 1,
    });
    assert_eq!(e.kind(), ErrorKind::InvalidFrame);
    stream(&session);
    let m = session.metrics().unwrap();
    assert_eq!((m.engine.seen, m.engine.rejected), (181, 1));
    assert!(m.engine.accounted(), "{m:?}");
    session.close().unwrap();
    // After close, a rejection reports the closed session instead.
    let e = session.reject(FrameError::ZeroSize {
        width: 0,
        height: 1,
    });
    assert_eq!(e.kind(), ErrorKind::Closed);
}

#[test]
fn host_submits_throw_for_every_frame_neither_taken_nor_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (l, _rx) = listener();
    let session = Session::open(&config(dir.path(), "host"), l).unwrap();
    let (w, h) = (64, 48);
    let px = vec![128u8; w * h * 4];
    let frame = |t_us: i64, rotation_degrees: i64| HostFrame {
        width: w as i64,
        height: h as i64,
        pixels: HostPixels::Packed {
            format: PixelFormat::Rgba8,
            plane: HostPlane::new(&px, (w * 4) as i64),
        },
        meta: FrameMeta {
            timestamp_us: t_us,
            rotation_degrees,
            ..FrameMeta::default()
        },
    };
    assert_eq!(
        session.submit_host(Ok(frame(0, 90))).unwrap(),
        SubmitOutcome::Accepted
    );
    let unreachable = FrameError::PlaneUnavailable {
        plane: PlaneKind::Packed,
        reason: "the buffer is null",
    };
    for bad in [
        Err(unreachable),
        Ok(frame(1_000_000, 45)),
        Ok(frame(1 << 62, 0)),
        Ok(HostFrame {
            width: -1,
            ..frame(2_000_000, 0)
        }),
    ] {
        let e = session.submit_host(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidFrame, "{e}");
    }
    session.wait_idle().unwrap();
    let m = MetricsSummary::from(session.metrics().unwrap());
    assert_eq!((m.seen, m.rejected, m.scored), (5, 4, 1), "{m:?}");
    assert!(m.accounted(), "{m:?}");
    assert!(
        m.infer_p50_us > 0 && m.infer_p99_us >= m.infer_p50_us,
        "{m:?}"
    );
    let closed = MetricsSummary::from(session.close().unwrap().unwrap());
    assert_eq!(closed.seen, 5);
    // Closed: the same error for a frame and for a frame the host could not describe.
    assert!(matches!(
        session.submit_host(Ok(frame(3_000_000, 0))),
        Err(Error::Closed)
    ));
    assert!(matches!(
        session.submit_host(Err(unreachable)),
        Err(Error::Closed)
    ));
}

/// Host-owned frame memory lent to a session, as a camera pool's buffer: allocated outside any
/// Rust value the frame borrows, zeroed when released (so a read after release would score a black
/// frame, not the red or grey one) and then freed; each release is logged by id.
struct PoolLease {
    id: usize,
    bytes: *mut [u8],
    released: Arc<Mutex<Vec<usize>>>,
}

// SAFETY: the lease owns its allocation outright (nothing else frees it); sending it to the worker
// thread moves that ownership.
unsafe impl Send for PoolLease {}

impl Drop for PoolLease {
    fn drop(&mut self) {
        // SAFETY: `bytes` came from `Box::into_raw` in `lend` and is freed only here, once; the
        // session drops the lease after its last read of the frame.
        let mut owned = unsafe { Box::from_raw(self.bytes) };
        owned.fill(0);
        drop(owned);
        self.released.lock().unwrap().push(self.id);
    }
}

/// A tightly packed NV21 frame, uniformly red or grey (BT.601 full range), `w` x `h`.
fn nv21(w: usize, h: usize, red: bool) -> Vec<u8> {
    let (y, u, v) = if red { (87, 96, 223) } else { (128, 128, 128) };
    let mut bytes = vec![y; w * h];
    bytes.extend((0..w.div_ceil(2) * 2 * h.div_ceil(2)).map(|i| if i % 2 == 0 { v } else { u }));
    bytes
}

fn nv21_frame(bytes: &[u8], w: usize, h: usize, t_us: i64) -> HostFrame<'_> {
    HostFrame {
        width: w as i64,
        height: h as i64,
        pixels: HostPixels::Nv21Packed(bytes),
        meta: FrameMeta {
            timestamp_us: t_us,
            color_matrix: ColorMatrix::Bt601,
            color_range: ColorRange::Full,
            ..FrameMeta::default()
        },
    }
}

/// Lends `bytes` to the session as a pool buffer would be.
fn lend(
    session: &Session,
    id: usize,
    bytes: Vec<u8>,
    describe: impl FnOnce(&'static [u8]) -> HostFrame<'static>,
    released: &Arc<Mutex<Vec<usize>>>,
) -> prescreen_runtime::Result<SubmitOutcome> {
    let raw = Box::into_raw(bytes.into_boxed_slice());
    // SAFETY: the allocation lives until the lease frees it, and nothing writes it before then.
    let view: &'static [u8] = unsafe { &*raw };
    let lease = PoolLease {
        id,
        bytes: raw,
        released: released.clone(),
    };
    // SAFETY: see above: the bytes stay readable and unchanged until `lease` drops.
    session.lend_host(unsafe { LentFrame::new(describe(view), lease) })
}

#[test]
fn lent_frames_score_as_copied_ones_and_are_released_exactly_once() {
    let (w, h) = (96, 64);
    let red_at = |t: i64| (1_000_000..2_500_000).contains(&t);
    let run = |lent: bool| {
        let dir = tempfile::tempdir().unwrap();
        let (l, rx) = listener();
        let mut c = config(dir.path(), "lent");
        c.emit_scores = true;
        let session = Session::open(&c, l).unwrap();
        let released = Arc::new(Mutex::new(Vec::new()));
        let mut outcomes = Vec::new();
        for i in 0..120usize {
            let t = i as i64 * 1_000_000 / 30;
            let bytes = nv21(w, h, red_at(t));
            let outcome = if lent {
                lend(&session, i, bytes, |b| nv21_frame(b, w, h, t), &released)
            } else {
                session.submit_host(Ok(nv21_frame(&bytes, w, h, t)))
            };
            outcomes.push(outcome.unwrap());
            session.wait_idle().unwrap();
        }
        if lent {
            // Every frame, taken or skipped, was released once, and before the next submit.
            let seen = released.lock().unwrap().clone();
            assert_eq!(seen, (0..120).collect::<Vec<_>>());
        }
        let taken = outcomes
            .iter()
            .filter(|o| **o == SubmitOutcome::Accepted)
            .count();
        let m = MetricsSummary::from(session.close().unwrap().unwrap());
        assert_eq!(
            (m.seen, m.scored, m.rejected),
            (120, taken as u64, 0),
            "{m:?}"
        );
        let scores: Vec<(i64, Vec<f32>)> = rx
            .try_iter()
            .filter_map(|e| match e {
                SessionEvent::Scored {
                    timestamp_us,
                    scores,
                } => Some((timestamp_us, scores)),
                _ => None,
            })
            .collect();
        (outcomes, scores)
    };
    let copied = run(false);
    let lent = run(true);
    assert!(copied.1.len() >= 20, "{} frames scored", copied.1.len());
    // The same decisions and, bit for bit, the same scores: the worker read the lent bytes before
    // their release zeroed them.
    assert_eq!(lent, copied);
    for (t, s) in &copied.1 {
        assert_eq!(s[1] > 0.5, red_at(*t), "{t}: {s:?}");
    }
}

#[test]
fn lent_frames_not_taken_are_released_before_submit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (l, _rx) = listener();
    let session = Session::open(&config(dir.path(), "lent-refused"), l).unwrap();
    let released = Arc::new(Mutex::new(Vec::new()));
    let (w, h) = (96, 64);
    let count = |r: &Arc<Mutex<Vec<usize>>>| r.lock().unwrap().len();
    // Malformed: a plane too short for the size.
    let e = lend(
        &session,
        0,
        vec![0; 10],
        |b| nv21_frame(b, w, h, 0),
        &released,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidFrame, "{e}");
    assert_eq!(count(&released), 1);
    // Out of range timestamp: rejected by the engine, released at once.
    let e = lend(
        &session,
        1,
        nv21(w, h, false),
        |b| nv21_frame(b, w, h, 1 << 62),
        &released,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidFrame, "{e}");
    assert_eq!(count(&released), 2);
    // Taken, then replaced in the slot or scored: released once either way. Not due at the
    // sampling rate (a second frame 1 ms later): released before the submit returns.
    assert!(matches!(
        lend(
            &session,
            2,
            nv21(w, h, false),
            |b| nv21_frame(b, w, h, 0),
            &released
        ),
        Ok(SubmitOutcome::Accepted)
    ));
    session.wait_idle().unwrap();
    assert_eq!(
        lend(
            &session,
            3,
            nv21(w, h, false),
            |b| nv21_frame(b, w, h, 1_000),
            &released
        )
        .unwrap(),
        SubmitOutcome::SkippedRate
    );
    assert_eq!(count(&released), 4);
    session.close().unwrap();
    // Closed: released, and the host hears Closed.
    assert!(matches!(
        lend(
            &session,
            4,
            nv21(w, h, false),
            |b| nv21_frame(b, w, h, 2_000_000),
            &released
        ),
        Err(Error::Closed)
    ));
    let mut ids = released.lock().unwrap().clone();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
}

#[test]
fn a_listener_may_close_its_own_session() {
    let dir = tempfile::tempdir().unwrap();
    let slot: Arc<Mutex<Option<Arc<Session>>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let inner = slot.clone();
    let session = Arc::new(
        Session::open(
            &config(dir.path(), "s"),
            Box::new(move |e| {
                if matches!(e, SessionEvent::Segment(SegmentEvent::Opened(_))) {
                    let s = inner.lock().unwrap().take().unwrap();
                    // Inside the listener: the last events are delivered after it returns.
                    let m = s.close().unwrap();
                    let _ = tx.send(m.is_some());
                }
            }),
        )
        .unwrap(),
    );
    *slot.lock().unwrap() = Some(session.clone());
    for i in 0..180 {
        let t = i * 1_000_000 / 30;
        let f = frame((1_000_000..2_500_000).contains(&t), t);
        if session.submit(&f.frame().unwrap()).is_err() {
            break;
        }
        let _ = session.wait_idle();
    }
    assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
    assert!(!session.is_open());
}

#[test]
fn opening_fails_with_the_kind_a_host_can_act_on() {
    let dir = tempfile::tempdir().unwrap();
    let open = |c: &SessionConfig| {
        let (l, _rx) = listener();
        Session::open(c, l).unwrap_err().kind()
    };
    let mut c = config(dir.path(), "s");
    c.model_dir = dir.path().join("missing");
    assert_eq!(open(&c), ErrorKind::ModelLoad);
    let mut c = config(dir.path(), "s");
    c.policy_path = dir.path().join("missing.toml");
    assert_eq!(open(&c), ErrorKind::Policy);
    let mut c = config(dir.path(), "s");
    c.stream_id = String::new();
    assert_eq!(open(&c), ErrorKind::InvalidArgument);
    // An outbox path that is a file cannot be opened.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let c = config(&file, "s");
    assert_eq!(open(&c), ErrorKind::Storage);
}

/// The outbox can no longer write (its `tmp/` is gone, as on a broken or full disk) when the
/// stream ends with a segment open: `close` stores the segment's report, fails, retries it once,
/// then counts it in `reports_lost` and sends an error event naming it. Nothing vanishes silently.
#[test]
fn a_report_that_cannot_be_stored_at_close_is_counted_and_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (l, rx) = listener();
    let session = Session::open(&config(dir.path(), "s"), l).unwrap();
    // Red from 1 s to the end: the segment is still open when the session closes.
    for i in 0..90 {
        let t = i * 1_000_000 / 30;
        let f = frame(t >= 1_000_000, t);
        session.submit(&f.frame().unwrap()).unwrap();
        session.wait_idle().unwrap();
    }
    let tmp = dir.path().join("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a folder").unwrap();
    let m = session.close().unwrap().unwrap();
    assert_eq!(m.reports_lost, 1, "{m:?}");
    assert_eq!(m.outbox.pending, 0);
    assert!(m.outbox.write_failures >= 2, "stored, then retried: {m:?}");
    let events: Vec<SessionEvent> = rx.try_iter().collect();
    let closed = events
        .iter()
        .position(|e| matches!(e, SessionEvent::Segment(SegmentEvent::Closed(_))))
        .expect("the open segment is closed by close()");
    let lost = events
        .iter()
        .position(|e| matches!(e, SessionEvent::Error(m) if m.contains("lost")))
        .unwrap_or_else(|| panic!("no error event says the report is lost: {events:?}"));
    assert!(lost > closed, "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, SessionEvent::ReportQueued { .. })));
}

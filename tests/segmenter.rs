//! The segmenter, sampler and scene gate with scripted scores and a fake clock: deterministic
//! cases for every rule, and properties over random score streams.

mod common;

use prescreen_runtime::frame::{Frame, PixelFormat, Plane};
use prescreen_runtime::policy::{Policy, QualityGate};
use prescreen_runtime::stream::sampling::{Gate, Quality, Sampler, Signature};
use prescreen_runtime::stream::segmenter::{Segment, SegmentEvent, Segmenter};
use proptest::prelude::*;

const MS: i64 = 1000;

/// A policy for one label `x`: enter 0.8, exit 0.5, watch 0.3, two evidence frames; the shaping
/// values are placeholders.
const POLICY: &str = r#"schema = 1
version = "test"
[labels.x]
enter = 0.8
exit = 0.5
watch = 0.3
[smoothing]
window = {window}
[segments]
min_duration_ms = {min_ms}
pre_roll_ms = {pre_ms}
post_roll_ms = {post_ms}
merge_gap_ms = {gap_ms}
[sampling]
base_fps = 2.0
burst_fps = 8.0
[scene_gate]
enabled = true
threshold = 0.02
max_interval_ms = 2000
[evidence]
thumbnails = 2
size = 64
jpeg_quality = 80
"#;

/// [`POLICY`] with the shaping values given.
fn policy(window: usize, min_ms: u64, pre_ms: u64, post_ms: u64, gap_ms: u64) -> Policy {
    let text = POLICY
        .replace("{window}", &window.to_string())
        .replace("{min_ms}", &min_ms.to_string())
        .replace("{pre_ms}", &pre_ms.to_string())
        .replace("{post_ms}", &post_ms.to_string())
        .replace("{gap_ms}", &gap_ms.to_string());
    Policy::parse(&text).unwrap()
}

/// Feeds `scores`, one every `step_ms` from t = 0, then finishes at the last frame's time.
fn run(p: &Policy, step_ms: i64, scores: &[f32], finish: bool) -> Vec<SegmentEvent> {
    let mut seg = Segmenter::new(p, &["other".to_string(), "x".to_string()]);
    let mut out = Vec::new();
    for (i, &s) in scores.iter().enumerate() {
        seg.observe(i as i64 * step_ms * MS, &[1.0 - s, s], &mut out);
    }
    if finish {
        seg.finish((scores.len() as i64 - 1).max(0) * step_ms * MS, &mut out);
    }
    out
}

fn closed(events: &[SegmentEvent]) -> Vec<Segment> {
    events
        .iter()
        .filter_map(|e| {
            if let SegmentEvent::Closed(s) = e {
                Some(s.clone())
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn hysteresis_keeps_a_segment_open_between_exit_and_enter() {
    let p = policy(1, 0, 0, 0, 0);
    // Up to 0.9, down to 0.6 (above exit: still open), 0.4 (below exit: closes).
    let ev = run(&p, 100, &[0.1, 0.9, 0.6, 0.6, 0.7, 0.4, 0.1], true);
    let segs = closed(&ev);
    assert_eq!(segs.len(), 1, "{ev:?}");
    assert_eq!((segs[0].start_us, segs[0].end_us), (100 * MS, 400 * MS));
    assert_eq!(segs[0].frames_scored, 4);
    assert!((segs[0].peak - 0.9).abs() < 1e-6 && segs[0].peak_us == 100 * MS);
    // A score that never reaches enter opens nothing, even above exit.
    assert!(run(&p, 100, &[0.7, 0.79, 0.75, 0.7], true).is_empty());
}

#[test]
fn smoothing_averages_over_the_window() {
    let p = policy(3, 0, 0, 0, 0);
    // One spike of 1.0 among zeros averages to 0.33: no segment.
    assert!(run(&p, 100, &[0.0, 0.0, 1.0, 0.0, 0.0], true).is_empty());
    // Three in a row reach 1.0 on average at the third.
    let segs = closed(&run(&p, 100, &[0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0], true));
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].crossed_us, 300 * MS);
}

#[test]
fn min_duration_drops_short_runs_and_opens_long_ones_late() {
    let p = policy(1, 500, 0, 0, 0);
    // 400 ms above enter (5 frames, 100 ms apart: 0..400): too short.
    assert!(run(&p, 100, &[0.9, 0.9, 0.9, 0.9, 0.9, 0.1], true).is_empty());
    // 600 ms: opens at the frame 500 ms after the crossing.
    let ev = run(
        &p,
        100,
        &[0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1],
        true,
    );
    let opened: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, SegmentEvent::Opened(_)))
        .collect();
    assert_eq!(opened.len(), 1);
    let s = opened[0].segment();
    assert_eq!(
        (s.crossed_us, s.end_us),
        (100 * MS, 600 * MS),
        "opened when the run reached 500 ms"
    );
}

#[test]
fn pre_and_post_roll_extend_the_segment_within_the_stream() {
    let p = policy(1, 0, 300, 200, 0);
    let mut scores = vec![0.0; 10];
    scores.extend([0.9; 5]);
    scores.extend([0.0; 10]);
    let segs = closed(&run(&p, 100, &scores, true));
    assert_eq!(segs.len(), 1);
    assert_eq!((segs[0].start_us, segs[0].end_us), (700 * MS, 1600 * MS));
    // At the stream's edges the rolls are clipped to the stream.
    let segs = closed(&run(&p, 100, &[0.9, 0.9, 0.9], true));
    assert_eq!((segs[0].start_us, segs[0].end_us), (0, 200 * MS));
}

#[test]
fn merge_gap_joins_runs_closer_than_the_gap() {
    let p = policy(1, 0, 0, 0, 500);
    let mut close_runs = vec![0.9; 3];
    close_runs.extend([0.1; 3]); // 300 ms below exit < 500 ms gap
    close_runs.extend([0.9; 3]);
    close_runs.extend([0.1; 8]);
    let segs = closed(&run(&p, 100, &close_runs, true));
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!((segs[0].start_us, segs[0].end_us), (0, 800 * MS));
    let mut far_runs = vec![0.9; 3];
    far_runs.extend([0.1; 7]); // 700 ms > gap
    far_runs.extend([0.9; 3]);
    far_runs.extend([0.1; 8]);
    let segs = closed(&run(&p, 100, &far_runs, true));
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert!(segs[0].end_us < segs[1].start_us);
    assert_ne!(segs[0].id, segs[1].id);
}

/// A segment cooling below `exit` resumes only on a new run above `enter`: scores that climb back
/// into [exit, enter) leave it cooling until the gap runs out. Fails if a cooling segment resumed
/// at `exit` (the hysteresis band) instead of `enter`.
#[test]
fn a_cooling_segment_resumes_only_above_enter() {
    let p = policy(1, 0, 0, 0, 500);
    // Open at 0, below exit at 100, back in the band (0.7) from 200 on: the gap (500 ms from the
    // last frame above exit, at 0) runs out at 500, and the band never resumes the segment.
    let ev = run(&p, 100, &[0.9, 0.4, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7], true);
    let segs = closed(&ev);
    assert_eq!(segs.len(), 1, "{ev:?}");
    assert_eq!((segs[0].start_us, segs[0].end_us), (0, 0), "{segs:?}");
    // A frame above enter within the gap resumes the same segment, the band frames before it join.
    let ev = run(
        &p,
        100,
        &[0.9, 0.4, 0.7, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
        true,
    );
    let segs = closed(&ev);
    assert_eq!(segs.len(), 1, "{ev:?}");
    assert_eq!(
        (segs[0].start_us, segs[0].end_us),
        (0, 300 * MS),
        "{segs:?}"
    );
    assert_eq!(
        segs[0].frames_scored, 4,
        "the cooling frames are merged in: {segs:?}"
    );
}

/// The merge gap is inclusive: a run that starts exactly `merge_gap_ms` after the last frame above
/// `exit` is a new segment, one a frame earlier joins the old one. Fails if the gap closed at
/// `> gap` instead of `>= gap`.
#[test]
fn a_run_exactly_one_gap_later_starts_a_new_segment() {
    let p = policy(1, 0, 0, 0, 500);
    let at_gap = [0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1];
    let segs = closed(&run(&p, 100, &at_gap, true));
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!((segs[1].start_us, segs[1].end_us), (500 * MS, 500 * MS));
    let within = [0.9, 0.1, 0.1, 0.1, 0.9, 0.1];
    let segs = closed(&run(&p, 100, &within, true));
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!((segs[0].start_us, segs[0].end_us), (0, 400 * MS));
    // Without frames: `advance` to exactly the gap closes, a microsecond before does not.
    let mut seg = Segmenter::new(&p, &["other".into(), "x".into()]);
    let mut out = Vec::new();
    seg.observe(0, &[0.1, 0.9], &mut out);
    seg.observe(100 * MS, &[0.9, 0.1], &mut out);
    seg.advance(500 * MS - 1, &mut out);
    assert!(closed(&out).is_empty(), "gap not over yet");
    seg.advance(500 * MS, &mut out);
    assert_eq!(closed(&out).len(), 1);
}

#[test]
fn a_segment_closes_once_the_gap_runs_out_even_without_frames() {
    let p = policy(1, 0, 0, 0, 500);
    let mut seg = Segmenter::new(&p, &["other".into(), "x".into()]);
    let mut out = Vec::new();
    seg.observe(0, &[0.1, 0.9], &mut out);
    seg.observe(100 * MS, &[0.9, 0.1], &mut out);
    seg.advance(400 * MS, &mut out);
    assert!(closed(&out).is_empty(), "gap not over yet");
    seg.advance(501 * MS, &mut out);
    assert_eq!(closed(&out).len(), 1);
}

#[test]
fn finish_mid_segment_closes_it_and_keeps_candidates_that_qualify() {
    let p = policy(1, 300, 0, 1000, 0);
    // Open (run of 500 ms) and still high at the end: closed by finish at the last frame.
    let segs = closed(&run(&p, 100, &[0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], true));
    assert_eq!(segs.len(), 1);
    assert_eq!((segs[0].start_us, segs[0].end_us), (100 * MS, 600 * MS));
    // Without finish nothing is closed.
    assert!(closed(&run(&p, 100, &[0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], false)).is_empty());
    // A run shorter than the minimum at the end is dropped, also one that began the stream.
    assert!(run(&p, 100, &[0.1, 0.9, 0.9], true).is_empty());
    assert!(run(&p, 100, &[0.9, 0.9, 0.9], true).is_empty());
}

#[test]
fn updates_follow_the_peak_and_evidence_keeps_the_best_frames() {
    let p = policy(1, 0, 0, 0, 0);
    let ev = run(&p, 100, &[0.85, 0.9, 0.88, 0.95, 0.7, 0.2], true);
    let updates: Vec<f32> = ev
        .iter()
        .filter_map(|e| {
            if let SegmentEvent::Updated(s) = e {
                Some(s.peak)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(updates, vec![0.9, 0.95]);
    let s = &closed(&ev)[0];
    assert_eq!(s.evidence, vec![(300 * MS, 0.95), (100 * MS, 0.9)]);
    assert!((s.mean - (0.85 + 0.9 + 0.88 + 0.95 + 0.7) / 5.0).abs() < 1e-5);
}

#[test]
fn the_default_policy_parses() {
    let p = Policy::load(common::root().join("models/policies/default.toml")).unwrap();
    assert!(p.labels.contains_key("nsfw"));
    for bad in [
        ("enter = 0.80", "enter = 0.40"),
        ("window = 3", "window = 0"),
        ("burst_fps = 6.0", "burst_fps = 1.0"),
    ] {
        let text =
            std::fs::read_to_string(common::root().join("models/policies/default.toml")).unwrap();
        assert!(
            Policy::parse(&text.replacen(bad.0, bad.1, 1)).is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn burst_sampling_raises_the_rate_while_uncertain() {
    let p = policy(1, 0, 0, 0, 0);
    let mut sampler = Sampler::new(&p.sampling);
    let mut seg = Segmenter::new(&p, &["other".into(), "x".into()]);
    let mut taken = Vec::new();
    let mut out = Vec::new();
    // A 30 fps camera for 3 s; the label is uncertain (0.4 >= watch 0.3) from 1 s to 2 s.
    for frame in 0..90i64 {
        let t = frame * 1_000_000 / 30;
        if !sampler.due(t) {
            continue;
        }
        sampler.taken(t);
        taken.push(t);
        let s = if (1_000_000..2_000_000).contains(&t) {
            0.4
        } else {
            0.0
        };
        seg.observe(t, &[1.0 - s, s], &mut out);
        sampler.set_burst(seg.wants_burst());
    }
    let count = |from: i64, to: i64| taken.iter().filter(|&&t| t >= from && t < to).count();
    assert_eq!(count(0, 1_000_000), 2, "base 2 fps: {taken:?}");
    assert!(
        (7..=9).contains(&count(1_100_000, 2_100_000)),
        "burst 8 fps: {taken:?}"
    );
    assert!(count(2_200_000, 3_000_000) <= 2, "back to base: {taken:?}");
}

#[test]
fn the_scene_gate_skips_unchanged_frames_but_not_beyond_its_maximum_interval() {
    let p = policy(1, 0, 0, 0, 0);
    let mut gate = Gate::new(&p.scene_gate);
    let still = Signature {
        cells: vec![100; Signature::WIDTH * Signature::HEIGHT],
    };
    let moved = Signature {
        cells: vec![140; Signature::WIDTH * Signature::HEIGHT],
    };
    assert!(!gate.unchanged(0, &still), "nothing scored yet");
    gate.scored(0, still.clone());
    assert!(gate.unchanged(500 * MS, &still));
    assert!(!gate.unchanged(500 * MS, &moved), "a new scene is scored");
    assert!(gate.unchanged(1999 * MS, &still));
    assert!(!gate.unchanged(2000 * MS, &still), "max interval reached");
}

/// A policy for one label `x` (enter 0.8, exit 0.5, watch 0.3) that keeps `keep` evidence frames.
fn policy_keeping(keep: usize, window: usize, gap_ms: u64) -> Policy {
    let mut p = policy(window, 0, 0, 0, gap_ms);
    p.evidence.thumbnails = keep;
    p
}

/// A segment that cools below `exit` and resumes above `enter` accounts for every frame in
/// between: their scores count in its mean and frame count, they compete for evidence, and they
/// never move its peak. Fails if merging the cooling frames dropped their sum, frame count or
/// evidence (`Stats::merge`, `Stats::add_evidence_only`) or took the cooling peak over a higher one.
#[test]
fn a_resumed_segment_accounts_for_its_cooling_frames() {
    let p = policy_keeping(8, 1, 1000);
    // Open at 100 (0.9), cool at 200 and 300, resume at 400 (0.85), cool again at 500 (not merged).
    let ev = run(&p, 100, &[0.1, 0.9, 0.4, 0.3, 0.85, 0.1], true);
    let segs = closed(&ev);
    assert_eq!(segs.len(), 1, "{ev:?}");
    let s = &segs[0];
    assert_eq!(
        (s.start_us, s.end_us, s.duration_us()),
        (100 * MS, 400 * MS, 300 * MS)
    );
    assert_eq!(s.frames_scored, 4);
    assert!(
        (s.mean - (0.9 + 0.4 + 0.3 + 0.85) / 4.0).abs() < 1e-6,
        "{s:?}"
    );
    assert_eq!((s.peak, s.peak_us), (0.9, 100 * MS));
    assert_eq!(
        s.evidence,
        vec![
            (100 * MS, 0.9),
            (400 * MS, 0.85),
            (200 * MS, 0.4),
            (300 * MS, 0.3)
        ]
    );
}

/// Equal scores do not move the peak: it stays at the first frame that reached it, and no
/// `Updated` event follows. Fails if the peak moved on `>=` instead of `>`.
#[test]
fn a_tie_does_not_move_the_peak() {
    let p = policy(1, 0, 0, 0, 0);
    let ev = run(&p, 100, &[0.9, 0.9, 0.9, 0.1], true);
    assert!(
        !ev.iter().any(|e| matches!(e, SegmentEvent::Updated(_))),
        "{ev:?}"
    );
    let s = &closed(&ev)[0];
    assert_eq!((s.peak, s.peak_us), (0.9, 0));
    // Evidence ties keep the earlier frames first.
    assert_eq!(s.evidence, vec![(0, 0.9), (100 * MS, 0.9)]);
}

/// What the engine reads between frames: the labels watched, their smoothed scores, whether a
/// segment is open and which frames are evidence. Fails if any accessor lied (returned nothing,
/// a constant or a made-up label).
#[test]
fn the_segmenter_reports_its_state_between_frames() {
    let p = policy_keeping(2, 2, 0);
    let mut seg = Segmenter::new(&p, &["other".into(), "x".into(), "y".into()]);
    assert_eq!(
        seg.labels().collect::<Vec<_>>(),
        vec!["x"],
        "only the policy's labels"
    );
    let mut out = Vec::new();
    assert!(!seg.any_open());
    assert_eq!(seg.evidence_wanted().count(), 0);
    seg.observe(0, &[0.0, 1.0, 0.0], &mut out);
    assert_eq!(seg.smoothed().collect::<Vec<_>>(), vec![("x", 1.0)]);
    assert!(seg.any_open());
    seg.observe(100 * MS, &[0.0, 0.8, 0.0], &mut out);
    let smoothed: Vec<_> = seg.smoothed().collect();
    assert!(smoothed.len() == 1 && smoothed[0].0 == "x" && (smoothed[0].1 - 0.9).abs() < 1e-6);
    assert_eq!(seg.evidence_wanted().collect::<Vec<_>>(), vec![0, 100 * MS]);
    seg.observe(200 * MS, &[1.0, 0.0, 0.0], &mut out);
    seg.observe(300 * MS, &[1.0, 0.0, 0.0], &mut out);
    assert_eq!(seg.smoothed().collect::<Vec<_>>(), vec![("x", 0.0)]);
    assert!(!seg.any_open(), "{out:?}");
    assert_eq!(seg.evidence_wanted().count(), 0);
}

/// Time never goes backwards: a frame older than the last is ignored, one at the same time is
/// scored, and `advance` to an older time changes nothing while `advance` to the same time
/// closes a segment whose gap ran out. Fails if `observe` or `advance` compared with `<=` or `==`
/// instead of `<`.
#[test]
fn frames_and_advances_out_of_order_are_ignored_but_equal_times_count() {
    let p = policy(1, 0, 0, 1000, 0);
    let labels = ["other".to_string(), "x".to_string()];
    let mut seg = Segmenter::new(&p, &labels);
    let mut out = Vec::new();
    seg.observe(0, &[0.1, 0.9], &mut out);
    seg.observe(200 * MS, &[0.1, 0.9], &mut out);
    seg.observe(100 * MS, &[0.9, 0.1], &mut out);
    assert_eq!(
        seg.smoothed().next(),
        Some(("x", 0.9)),
        "an older frame is ignored"
    );
    seg.observe(200 * MS, &[0.9, 0.2], &mut out);
    assert_eq!(
        seg.smoothed().next(),
        Some(("x", 0.2)),
        "a frame at the same time counts"
    );
    // Below exit since 200 ms; the gap (post-roll 1 s + 1 µs) runs out at 1200 ms + 1 µs.
    seg.advance(1200 * MS + 1, &mut out);
    assert_eq!(closed(&out).len(), 1, "{out:?}");

    // `advance` to an older time does not rewind the stream's end (the post-roll clip).
    let mut seg = Segmenter::new(&p, &labels);
    let mut out = Vec::new();
    seg.observe(0, &[0.1, 0.9], &mut out);
    seg.observe(100 * MS, &[0.1, 0.95], &mut out);
    seg.advance(50 * MS, &mut out);
    seg.finish(0, &mut out);
    assert_eq!(closed(&out)[0].end_us, 100 * MS, "{out:?}");
    // `advance` to exactly the last frame's time still closes a segment whose gap is over.
    let p = policy(1, 0, 0, 0, 0);
    let mut seg = Segmenter::new(&p, &labels);
    let mut out = Vec::new();
    seg.observe(0, &[0.1, 0.9], &mut out);
    seg.observe(100 * MS, &[0.9, 0.1], &mut out);
    assert!(closed(&out).is_empty());
    seg.advance(100 * MS, &mut out);
    assert_eq!(closed(&out).len(), 1, "{out:?}");
}

/// A segment stays open below `exit` for the merge gap, but at least pre-roll + post-roll plus one
/// microsecond, so the next segment cannot overlap it. Fails if that floor lost its microsecond or
/// combined the rolls other than by adding them.
#[test]
fn the_gap_is_at_least_both_rolls_and_a_microsecond() {
    // Merge gap 0, pre-roll 300 ms, post-roll 200 ms: the effective gap is 500 ms + 1 µs.
    let p = policy(1, 0, 300, 200, 0);
    let labels = ["other".to_string(), "x".to_string()];
    let mut seg = Segmenter::new(&p, &labels);
    let mut out = Vec::new();
    seg.observe(0, &[0.1, 0.9], &mut out);
    seg.observe(100 * MS, &[0.9, 0.1], &mut out);
    seg.advance(500 * MS, &mut out);
    assert!(closed(&out).is_empty(), "500 ms is within the gap: {out:?}");
    seg.advance(500 * MS + 1, &mut out);
    assert_eq!(closed(&out).len(), 1, "{out:?}");
}

/// Every policy number is checked against its documented range, inclusive at both ends: each
/// bound is accepted and the value one step past it refused. Fails if any bound moved by one
/// (`>` for `>=`), a check was joined with the wrong operator, or one was dropped.
#[test]
fn every_policy_bound_is_inclusive_and_one_step_past_it_is_refused() {
    let base = POLICY
        .replace("{window}", "1")
        .replace("{min_ms}", "0")
        .replace("{pre_ms}", "0")
        .replace("{post_ms}", "0")
        .replace("{gap_ms}", "0");
    let with = |edits: &[(&str, &str)]| {
        let mut text = base.clone();
        for (from, to) in edits {
            assert!(text.contains(from), "{from} not in the policy");
            text = text.replacen(from, to, 1);
        }
        Policy::parse(&text)
    };
    let max_evidence = prescreen_runtime::reporting::report::MAX_EVIDENCE;
    let long_version = format!("version = \"{}\"", "v".repeat(128));
    let too_long_version = format!("version = \"{}\"", "v".repeat(129));
    let thumbnails_max = format!("thumbnails = {max_evidence}");
    let thumbnails_over = format!("thumbnails = {}", max_evidence + 1);
    let accepted: Vec<Vec<(&str, &str)>> = vec![
        vec![("version = \"test\"", &long_version)],
        vec![("enter = 0.8", "enter = 1.0")],
        vec![("exit = 0.5", "exit = 0.0"), ("watch = 0.3", "watch = 0.0")],
        vec![("exit = 0.5", "exit = 0.8"), ("watch = 0.3", "watch = 0.8")],
        vec![("window = 1", "window = 1000")],
        vec![("min_duration_ms = 0", "min_duration_ms = 3600000")],
        vec![("pre_roll_ms = 0", "pre_roll_ms = 3600000")],
        vec![("post_roll_ms = 0", "post_roll_ms = 3600000")],
        vec![("merge_gap_ms = 0", "merge_gap_ms = 3600000")],
        vec![
            ("base_fps = 2.0", "base_fps = 0.1"),
            ("burst_fps = 8.0", "burst_fps = 0.1"),
        ],
        vec![
            ("base_fps = 2.0", "base_fps = 1000.0"),
            ("burst_fps = 8.0", "burst_fps = 1000.0"),
        ],
        vec![("threshold = 0.02", "threshold = 0.0")],
        vec![("threshold = 0.02", "threshold = 1.0")],
        vec![("max_interval_ms = 2000", "max_interval_ms = 1")],
        vec![("max_interval_ms = 2000", "max_interval_ms = 60000")],
        vec![("jpeg_quality = 80", "jpeg_quality = 1")],
        vec![("jpeg_quality = 80", "jpeg_quality = 100")],
        vec![("size = 64", "size = 16")],
        vec![("size = 64", "size = 512")],
        vec![("thumbnails = 2", &thumbnails_max)],
    ];
    for edits in &accepted {
        if let Err(e) = with(edits) {
            panic!("{edits:?} refused: {e}");
        }
    }
    let refused: Vec<Vec<(&str, &str)>> = vec![
        vec![("schema = 1", "schema = 2")],
        vec![("version = \"test\"", "version = \"\"")],
        vec![("version = \"test\"", &too_long_version)],
        vec![("version = \"test\"", "version = \"te\\tst\"")],
        vec![("[labels.x]\nenter = 0.8\nexit = 0.5\nwatch = 0.3\n", "")],
        vec![("enter = 0.8", "enter = 1.01")],
        vec![("exit = 0.5", "exit = -0.01")],
        vec![("exit = 0.5", "exit = 0.81")],
        vec![("watch = 0.3", "watch = 0.81")],
        vec![("watch = 0.3", "watch = -0.01")],
        vec![("window = 1", "window = 0")],
        vec![("window = 1", "window = 1001")],
        vec![("min_duration_ms = 0", "min_duration_ms = 3600001")],
        vec![("pre_roll_ms = 0", "pre_roll_ms = 3600001")],
        vec![("post_roll_ms = 0", "post_roll_ms = 3600001")],
        vec![("merge_gap_ms = 0", "merge_gap_ms = 3600001")],
        vec![("base_fps = 2.0", "base_fps = 0.09")],
        vec![("base_fps = 2.0", "base_fps = nan")],
        vec![("burst_fps = 8.0", "burst_fps = 1.99")],
        vec![
            ("base_fps = 2.0", "base_fps = 1000.0"),
            ("burst_fps = 8.0", "burst_fps = 1000.1"),
        ],
        vec![("threshold = 0.02", "threshold = -0.01")],
        vec![("threshold = 0.02", "threshold = 1.01")],
        vec![("max_interval_ms = 2000", "max_interval_ms = 0")],
        vec![("max_interval_ms = 2000", "max_interval_ms = 60001")],
        vec![("jpeg_quality = 80", "jpeg_quality = 0")],
        vec![("jpeg_quality = 80", "jpeg_quality = 101")],
        vec![("size = 64", "size = 15")],
        vec![("size = 64", "size = 513")],
        vec![("thumbnails = 2", &thumbnails_over)],
    ];
    for edits in &refused {
        assert!(with(edits).is_err(), "{edits:?} accepted");
    }
}

/// A policy may only flag labels the model has: the first one it lacks is named in the error.
/// Fails if the check accepted everything or compared the wrong way.
#[test]
fn a_policy_flagging_a_label_the_model_lacks_is_refused() {
    let p = policy(1, 0, 0, 0, 0);
    assert!(p.check_labels("m", &["other".into(), "x".into()]).is_ok());
    match p.check_labels("m", &["other".into(), "y".into()]) {
        Err(prescreen_runtime::Error::PolicyLabel { label, model, .. }) => {
            assert_eq!((label.as_str(), model.as_str()), ("x", "m"));
        }
        other => panic!("{other:?}"),
    }
}

/// A `w` x `h` luma plane whose pixels are `value(x / block, y / block)`.
fn blocky(w: u32, h: u32, block: u32, value: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| value(x / block, y / block))
        .collect()
}

/// The signature is the mean luma of a 4x4 lattice in each of its 32x18 cells, computed here
/// independently: at 128x72 the lattice is every pixel, so a cell is the mean of its 4x4 pixels;
/// at 256x144 it is the centre of each 2x2 block, the odd pixel (a picture of 2x2 blocks, then
/// one whose every pixel differs, where only the odd ones may count). Fails on any change to the
/// lattice positions (e.g. `2 * gx + 1` becoming `2 * gx * 1`, across or down), the cell sums or
/// the mean.
#[test]
fn the_signature_is_the_mean_luma_of_each_cell() {
    // Neighbouring blocks (pixels, where `block` is 1) differ by 37 across, 91 down, mod 251.
    let value = |bx: u32, by: u32| ((bx * 37 + by * 91 + (bx * by) % 17) % 251) as u8;
    // The lattice is every `step`-th pixel from `step / 2`.
    for (w, h, block, step) in [
        (128u32, 72u32, 1u32, 1u32),
        (256, 144, 2, 2),
        (256, 144, 1, 2),
    ] {
        let y = blocky(w, h, block, value);
        let uv = vec![128u8; (w * h / 2) as usize];
        let f = Frame::nv12(
            w,
            h,
            Plane::new(&y, w as usize),
            Plane::new(&uv, w as usize),
        )
        .unwrap();
        let mut sig = Signature::default();
        sig.compute(&f);
        let at = |cell: u32, i: u32| (step * (cell * 4 + i) + step / 2) / block;
        let mut want = Vec::new();
        for cy in 0..Signature::HEIGHT as u32 {
            for cx in 0..Signature::WIDTH as u32 {
                let mut sum = 0u32;
                for j in 0..4 {
                    for i in 0..4 {
                        sum += value(at(cx, i), at(cy, j)) as u32;
                    }
                }
                want.push((sum / 16) as u8);
            }
        }
        assert_eq!(sig.cells, want, "{w}x{h}, blocks of {block}");
    }
}

/// Packed frames weigh R, G and B as 77, 150 and 29 (of 256), whichever the byte order. Fails if a
/// weight or the channel order moved.
#[test]
fn the_signature_weighs_rgb_channels_in_their_byte_order() {
    let (w, h) = (64u32, 36u32);
    // R 200, G 100, B 50: (200 * 77 + 100 * 150 + 50 * 29) >> 8 = 124.
    for (format, px) in [
        (PixelFormat::Rgb8, &[200u8, 100, 50][..]),
        (PixelFormat::Rgba8, &[200, 100, 50, 255][..]),
        (PixelFormat::Bgra8, &[50, 100, 200, 255][..]),
    ] {
        let data = px.repeat((w * h) as usize);
        let stride = w as usize * px.len();
        let f = Frame::packed(format, w, h, &data, stride).unwrap();
        let mut sig = Signature::default();
        sig.compute(&f);
        assert_eq!(
            sig.cells,
            vec![124; Signature::WIDTH * Signature::HEIGHT],
            "{format}"
        );
    }
}

/// Distance is the mean absolute cell difference over 255, and 1 for grids that cannot be
/// compared. Fails if the sum, the scale or the size check changed.
#[test]
fn signature_distance_is_the_mean_absolute_difference() {
    let n = Signature::WIDTH * Signature::HEIGHT;
    let a = Signature {
        cells: vec![100; n],
    };
    let mut b = a.clone();
    assert_eq!(a.distance(&b), 0.0);
    b.cells[0] = 151;
    b.cells[1] = 49;
    assert_eq!(a.distance(&b), 102.0 / (255.0 * n as f32));
    let black = Signature { cells: vec![0; n] };
    let white = Signature {
        cells: vec![255; n],
    };
    assert_eq!(black.distance(&white), 1.0);
    let short = Signature {
        cells: vec![100; n - 1],
    };
    assert_eq!(a.distance(&short), 1.0);
    assert_eq!(Signature::default().distance(&Signature::default()), 1.0);
}

/// The sampler takes a frame once 95 % of the interval has passed (camera jitter), at the base or
/// the burst rate, and any frame after the clock went backwards. Fails if the rate, the tolerance
/// or the comparison changed.
#[test]
fn the_sampler_takes_a_frame_once_95_percent_of_the_interval_passed() {
    let p = policy(1, 0, 0, 0, 0);
    let mut s = Sampler::new(&p.sampling);
    assert!(!s.bursting());
    assert_eq!(s.interval_us(), 500_000, "2 fps");
    assert!(s.due(123), "the first frame");
    s.taken(1_000_000);
    assert!(!s.due(1_474_999));
    assert!(s.due(1_475_000));
    assert!(s.due(999_999), "the clock went backwards");
    assert!(!s.due(1_000_000), "the same frame again");
    s.set_burst(true);
    assert!(s.bursting());
    assert_eq!(s.interval_us(), 125_000, "8 fps");
    assert!(!s.due(1_118_749));
    assert!(s.due(1_118_750));
    s.set_burst(false);
    assert!(!s.bursting());
    assert!(!s.due(1_118_750));
}

/// The gate never skips when disabled, never skips a frame older than the last scored one, and
/// skips only below its threshold: at threshold 0 even an identical frame is scored. Fails if the
/// gate ignored `enabled`, the time order or the strict comparison.
#[test]
fn the_scene_gate_skips_only_when_enabled_and_strictly_below_its_threshold() {
    let n = Signature::WIDTH * Signature::HEIGHT;
    let still = Signature {
        cells: vec![100; n],
    };
    let p = policy(1, 0, 0, 0, 0);
    let mut gate = Gate::new(&p.scene_gate);
    gate.scored(1_000_000, still.clone());
    assert!(gate.unchanged(1_000_000, &still));
    assert!(
        !gate.unchanged(999_999, &still),
        "older than the last scored frame"
    );
    let mut off = p.scene_gate;
    off.enabled = false;
    let mut gate = Gate::new(&off);
    gate.scored(0, still.clone());
    assert!(!gate.unchanged(1000, &still), "disabled");
    let mut zero = p.scene_gate;
    zero.threshold = 0.0;
    let mut gate = Gate::new(&zero);
    gate.scored(0, still.clone());
    assert!(!gate.unchanged(1000, &still), "threshold 0 skips nothing");
}

fn runs_above(scores: &[f32], step_ms: i64, enter: f32) -> Vec<(i64, i64)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &s) in scores.iter().enumerate() {
        let t = i as i64 * step_ms * MS;
        match (s >= enter, start) {
            (true, None) => start = Some(t),
            (false, Some(a)) => {
                runs.push((a, t - step_ms * MS));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        runs.push((a, (scores.len() as i64 - 1) * step_ms * MS));
    }
    runs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn segments_never_overlap_and_cover_every_long_run(
        scores in prop::collection::vec(prop_oneof![0.0f32..0.5, 0.5f32..0.8, 0.8f32..=1.0], 1..200),
        min_ms in 0u64..600, pre in 0u64..500, post in 0u64..500, gap in 0u64..800,
    ) {
        let p = policy(1, min_ms, pre, post, gap);
        let segs = closed(&run(&p, 100, &scores, true));
        for w in segs.windows(2) {
            prop_assert!(w[0].end_us < w[1].start_us, "overlap: {:?}", w);
        }
        for s in &segs {
            prop_assert!(s.start_us <= s.end_us);
        }
        for (a, b) in runs_above(&scores, 100, 0.8) {
            if b - a >= min_ms as i64 * MS {
                prop_assert!(
                    segs.iter().any(|s| s.start_us <= a && b <= s.end_us),
                    "run {a}..{b} not covered by {segs:?}"
                );
            }
        }
    }

    /// Scores that never reach `enter` (below `exit` and in the hysteresis band alike) never open a
    /// segment, whatever the smoothing window. Fails if a segment opened at `exit`.
    #[test]
    fn scores_below_enter_never_make_a_segment(
        scores in prop::collection::vec(prop_oneof![0.0f32..0.5, 0.5f32..0.8], 0..300),
        window in 1usize..8, min_ms in 0u64..600, gap in 0u64..800,
    ) {
        let p = policy(window, min_ms, 100, 100, gap);
        prop_assert!(run(&p, 33, &scores, true).is_empty());
    }

    /// The other direction of coverage: every segment holds a real run. Without smoothing and rolls,
    /// a segment starts on a frame at or above `enter` that begins an unbroken run above `enter`
    /// lasting the minimum duration, and ends on a frame that kept it open: at or above `exit`
    /// while it was not cooling, or at or above `enter` after its scores fell below `exit` (band
    /// scores do not resume a cooling segment). Fails if a segment opened on a short run, or a
    /// cooling segment resumed at `exit`.
    #[test]
    fn every_segment_holds_a_real_run(
        scores in prop::collection::vec(prop_oneof![0.0f32..0.5, 0.5f32..0.8, 0.8f32..=1.0], 1..200),
        min_ms in 0u64..600, gap in 0u64..800,
    ) {
        let p = policy(1, min_ms, 0, 0, gap);
        let segs = closed(&run(&p, 100, &scores, true));
        for s in &segs {
            let (a, b) = ((s.start_us / (100 * MS)) as usize, (s.end_us / (100 * MS)) as usize);
            prop_assert!(scores[a] >= 0.8, "starts below enter: {s:?}");
            let run = scores[a..].iter().take_while(|&&x| x >= 0.8).count() as i64;
            prop_assert!((run - 1) * 100 >= min_ms as i64, "starts on a short run: {s:?}");
            let mut cooling = false;
            for &x in &scores[a..=b] {
                if x < 0.5 {
                    cooling = true;
                } else if x >= 0.8 {
                    cooling = false;
                }
            }
            prop_assert!(!cooling, "ends on a frame that does not keep it open: {s:?}");
        }
    }
}

/// The quality of a grey picture `w` x `h` whose luma is `luma(x, y)`, as an NV12 frame.
fn quality_of(w: u32, h: u32, luma: impl Fn(u32, u32) -> u8) -> Quality {
    let y: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| luma(x, y))
        .collect();
    let uv = vec![128u8; (w as usize).div_ceil(2) * 2 * (h as usize).div_ceil(2)];
    let f = Frame::nv12(
        w,
        h,
        Plane::new(&y, w as usize),
        Plane::new(&uv, (w as usize).div_ceil(2) * 2),
    )
    .unwrap();
    Signature::default().compute(&f)
}

/// `picture` box-blurred over `size` pixels across (and down when `down`), three times.
fn blurred(picture: &[Vec<f64>], size: usize, down: bool) -> Vec<Vec<f64>> {
    let across = |p: &[Vec<f64>]| -> Vec<Vec<f64>> {
        p.iter()
            .map(|row| {
                (0..row.len())
                    .map(|x| {
                        let (a, b) = (
                            x.saturating_sub(size / 2),
                            (x + size - size / 2).min(row.len()),
                        );
                        row[a..b].iter().sum::<f64>() / (b - a) as f64
                    })
                    .collect()
            })
            .collect()
    };
    let mut p = picture.to_vec();
    for _ in 0..3 {
        p = across(&p);
        if down {
            p = transposed(&across(&transposed(&p)));
        }
    }
    p
}

/// `picture` turned a quarter: rows become columns.
fn transposed(p: &[Vec<f64>]) -> Vec<Vec<f64>> {
    (0..p[0].len())
        .map(|x| p.iter().map(|row| row[x]).collect())
        .collect()
}

/// Two checkerboards added, of 37- and 7-pixel squares (not multiples of the lattice's
/// spacing, so the lattice meets every position across a square): `dark` plus up to `contrast`.
fn checkerboards(w: usize, h: usize, dark: f64, contrast: f64) -> Vec<Vec<f64>> {
    let board = |x: usize, y: usize, square: usize| ((x / square + y / square) % 2) as f64;
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| dark + contrast * (0.55 * board(x, y, 37) + 0.45 * board(x, y, 7)))
                .collect()
        })
        .collect()
}

fn quality_of_picture(p: &[Vec<f64>]) -> Quality {
    quality_of(p[0].len() as u32, p.len() as u32, |x, y| {
        p[y as usize][x as usize].round() as u8
    })
}

/// Sharp pictures measure 1/8 or more whatever their contrast; blurred ones (in both directions
/// or only one, as motion blurs) measure under the shipped threshold; flat ones count as sharp.
/// Fails if the measure lost its normalisation, a direction, the steps or the flat rule.
#[test]
fn sharpness_separates_sharp_from_blurred_pictures_and_ignores_contrast() {
    let board = checkerboards(640, 360, 20.0, 180.0);
    let sharp = quality_of_picture(&board);
    assert_eq!(sharp.short_side, 360);
    assert!(sharp.sharpness >= 0.1, "sharp edges: {sharp:?}");
    let faint = quality_of_picture(&checkerboards(640, 360, 100.0, 22.0));
    assert!(
        (faint.sharpness - sharp.sharpness).abs() < 0.01,
        "contrast changed sharpness: {faint:?} vs {sharp:?}"
    );
    // White noise: as much energy at the fine step as at the coarse one.
    let noise = quality_of(640, 360, |x, y| {
        let h =
            (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).wrapping_mul(2_246_822_519);
        (h >> 24) as u8
    });
    assert!(noise.sharpness > 0.8, "{noise:?}");

    let defocused = quality_of_picture(&blurred(&board, 16, true));
    assert!(defocused.sharpness < 0.04, "defocus: {defocused:?}");
    let panned = quality_of_picture(&blurred(&board, 16, false));
    assert!(panned.sharpness < 0.04, "motion across: {panned:?}");
    // Motion down alone: the board turned a quarter, blurred across, turned back. Fails if the
    // coarse energy down (or any one of the four sums) stopped adding up.
    let tilted = quality_of_picture(&transposed(&blurred(&transposed(&board), 16, false)));
    assert!(tilted.sharpness < 0.04, "motion down: {tilted:?}");

    let flat = quality_of(320, 240, |_, _| 77);
    assert_eq!(
        flat.sharpness, 1.0,
        "a flat picture says nothing about focus"
    );
    // A gentle ramp: coarse differences under the flat energy in both directions.
    let ramp = quality_of(320, 240, |x, y| (40 + x / 8 + y / 8) as u8);
    assert_eq!(ramp.sharpness, 1.0, "{ramp:?}");
}

/// Sharpness worked out by hand on a picture made for it. At 768x144 the fine step is 1 pixel and
/// the coarse one 8; the lattice columns are x = 6 gx + 3 and its rows y = 2 gy + 1, and the
/// energy is summed where gx and gy are both even: x = 12k + 3, y = 4m + 1. Rows y = 4m + 1 hold
/// stripes 8 pixels wide, 100 and 102; the other rows are 100. So across, every coarse difference
/// is 2 (a mean of exactly 4.0 levels², the flat energy, which is not flat), and the fine one is 2
/// at x = 24k + 15 (x + 1 starts a stripe), half the points: a mean of 2.0. Down, the coarse step
/// keeps the row phase (only the last row, clamped at the bottom edge, meets a plain row): a mean
/// far under the flat energy, so flat. Sharpness is 2.0 / 4.0 = 0.5 exactly.
///
/// Fails if the flat test became `<=` (1.0), the mean's point count changed (`gw / 2` -> `gw * 2`
/// makes the coarse mean 1.0: flat), the energy took other lattice points (`gy % 2 != 0` reads the
/// plain rows: flat; `gx % 2 != 0` finds no fine difference: 0; `||` for `&&` doubles the coarse
/// sum: 0.25) or the coarse step is not 8 fine ones (`fine + 8`).
#[test]
fn sharpness_at_exactly_the_flat_energy_is_measured() {
    let q = quality_of(768, 144, |x, y| {
        if y % 4 == 1 {
            100 + 2 * ((x / 8) % 2) as u8
        } else {
            100
        }
    });
    assert_eq!(q.sharpness, 0.5, "{q:?}");
    assert_eq!(q.short_side, 144);
}

/// The gate skips frames strictly below its sharpness or its side, and nothing when disabled.
/// Fails if `enabled`, either comparison or either measure were dropped.
#[test]
fn the_quality_gate_rejects_strictly_below_its_limits_and_only_when_enabled() {
    let gate = QualityGate {
        enabled: true,
        min_sharpness: 0.04,
        min_side: 112,
    };
    let q = |sharpness: f32, short_side: u32| Quality {
        sharpness,
        short_side,
    };
    assert!(!gate.rejects(&q(0.04, 112)), "at the limits");
    assert!(gate.rejects(&q(0.039, 1080)), "blurred");
    assert!(gate.rejects(&q(0.5, 111)), "too small");
    let off = QualityGate {
        enabled: false,
        ..gate
    };
    assert!(!off.rejects(&q(0.0, 1)), "disabled");
    assert!(
        !QualityGate::default().rejects(&q(0.0, 1)),
        "off by default"
    );
}

//! The segmenter, sampler and scene gate with scripted scores and a fake clock: deterministic
//! cases for every rule, and properties over random score streams.

mod common;

use prescreen_runtime::policy::Policy;
use prescreen_runtime::sampling::{Gate, Sampler, Signature};
use prescreen_runtime::segmenter::{Segment, SegmentEvent, Segmenter};
use proptest::prelude::*;

const MS: i64 = 1000;

/// A policy for one label `x`: enter 0.8, exit 0.5, watch 0.3; shaping values given.
fn policy(window: usize, min_ms: u64, pre_ms: u64, post_ms: u64, gap_ms: u64) -> Policy {
    Policy::parse(&format!(
        r#"schema = 1
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
"#
    ))
    .unwrap()
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
    // A run shorter than the minimum at the end is dropped.
    assert!(run(&p, 100, &[0.1, 0.9, 0.9], true).is_empty());
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

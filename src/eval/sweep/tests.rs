use super::*;
use crate::eval::test_util::XorShift;

const HOP: u64 = 100_000; // 100 ms frames

/// Frames every 100 ms with the given scores; `truth` marks frame indices.
fn frames(scores: &[f32], truth: impl Fn(usize) -> bool) -> Vec<Frame> {
    scores
        .iter()
        .enumerate()
        .map(|(i, &score)| Frame {
            timestamp_us: i as u64 * HOP,
            score,
            truth: truth(i),
        })
        .collect()
}

fn config(target_recall: f64) -> SweepConfig {
    SweepConfig {
        step: 0.05,
        min_off_us: 0,
        frame_duration_us: HOP,
        min_overlap: 0.5,
        target_recall,
    }
}

#[test]
fn hysteresis_without_min_off() {
    // enter .8, exit .5: opens at frames 1, 4, 8; closes at the first frame < .5.
    let f = frames(&[0.1, 0.9, 0.9, 0.3, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1], |_| {
        false
    });
    let h = Hysteresis::new(0.8, 0.5, 0).unwrap();
    let got = h.segment(&f, HOP).unwrap();
    let want = vec![
        Interval::new(HOP, 3 * HOP),
        Interval::new(4 * HOP, 5 * HOP),
        Interval::new(8 * HOP, 9 * HOP),
    ];
    assert_eq!(got, want);
}

/// Catches a quiet run that is not reset by a loud frame, and a close at the
/// end of the quiet run instead of its start.
#[test]
fn hysteresis_with_min_off() {
    // min_off 150 ms. Quiet at frame 3 lasts 100 ms, cancelled by frame 4.
    // Quiet from frame 5 (500 ms) reaches 200 ms at the end of frame 6: close at 500 ms.
    // Frame 8 reopens; frame 9 quiet is pending at stream end: close at 900 ms.
    let f = frames(&[0.1, 0.9, 0.9, 0.3, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1], |_| {
        false
    });
    let h = Hysteresis::new(0.8, 0.5, 150_000).unwrap();
    let want = vec![Interval::new(HOP, 5 * HOP), Interval::new(8 * HOP, 9 * HOP)];
    assert_eq!(h.segment(&f, HOP).unwrap(), want);
}

/// Catches closing on `score < enter` instead of `score < exit`.
#[test]
fn hysteresis_band_keeps_segment_open() {
    let f = frames(&[0.9, 0.6, 0.6, 0.4], |_| false);
    let h = Hysteresis::new(0.8, 0.5, 0).unwrap();
    assert_eq!(h.segment(&f, HOP).unwrap(), vec![Interval::new(0, 3 * HOP)]);
    // 0.6 alone never opens.
    let f = frames(&[0.6, 0.6], |_| false);
    assert!(h.segment(&f, HOP).unwrap().is_empty());
    // Open at stream end without quiet: closes at the end of the last frame.
    let f = frames(&[0.1, 0.9], |_| false);
    assert_eq!(
        h.segment(&f, 40_000).unwrap(),
        vec![Interval::new(HOP, HOP + 40_000)]
    );
    assert!(h.segment(&[], HOP).unwrap().is_empty());
}

#[test]
fn hysteresis_checks() {
    assert!(matches!(
        Hysteresis::new(0.5, 0.6, 0),
        Err(MetricError::OutOfRange {
            parameter: "exit",
            ..
        })
    ));
    assert!(Hysteresis::new(f32::NAN, 0.1, 0).is_err());
    // Built by hand with exit > enter: refused by `segment` too.
    let inverted = Hysteresis {
        enter: 0.2,
        exit: 0.3,
        min_off_us: 0,
    };
    assert!(inverted.segment(&frames(&[0.5], |_| false), HOP).is_err());
    let h = Hysteresis::new(0.5, 0.5, 0).unwrap();
    let mut f = frames(&[0.1, 0.2, 0.3], |_| false);
    f[2].timestamp_us = f[1].timestamp_us;
    assert_eq!(
        h.segment(&f, HOP),
        Err(MetricError::UnorderedTimestamps {
            stream: 0,
            index: 2
        })
    );
    assert!(h.segment(&frames(&[0.1], |_| false), 0).is_err());
}

#[test]
fn truth_runs_and_clean_duration() {
    // Truth frames 1-2 and 4 (the last frame: covers 50 ms with frame_duration 50 ms).
    let f = frames(&[0.0; 5], |i| matches!(i, 1 | 2 | 4));
    let t = truth_intervals(&f, 50_000);
    assert_eq!(
        t,
        vec![
            Interval::new(HOP, 3 * HOP),
            Interval::new(4 * HOP, 4 * HOP + 50_000)
        ]
    );
    // Clean frames 0 and 3: 2 * 100 ms.
    assert_eq!(clean_duration_us(&f, 50_000), 2 * HOP);
}

/// 50 frames; truth frames 10-19 score 0.9, frame 40 scores 0.6 (clean), the
/// rest 0.1. Truth [1 s, 2 s); clean 40 frames = 4 s.
fn event_stream() -> Vec<Frame> {
    let mut scores = [0.1f32; 50];
    scores[10..20].fill(0.9);
    scores[40] = 0.6;
    frames(&scores, |i| (10..20).contains(&i))
}

/// (0.9, 0.9) detects the event without flagging frame 40, as do the
/// (0.1, <=0.1) pairs (one segment over the whole stream); the tie goes to
/// the higher enter. Catches comparing f32 scores with f64 thresholds (0.9_f32
/// is below 0.9_f64, so 0.85 would win) and a reversed tie-break.
#[test]
fn sweep_hand_case() {
    let result = sweep(&[event_stream()], &config(1.0)).unwrap();
    // 20 grid values, pairs with exit <= enter: 20 * 21 / 2.
    assert_eq!(result.rows.len(), 210);
    assert!(result.rows.iter().all(|r| r.exit <= r.enter));
    assert_eq!(result.clean_duration_us, 40 * HOP);
    let best = result.best_row().unwrap();
    assert_eq!((best.enter, best.exit), (0.9, 0.9));
    assert_eq!(best.report.false_flags, 0);
    assert_eq!(best.report.recall, Some(1.0));
    assert_eq!(best.false_flags_per_hour, Some(0.0));
    // enter 0.6 also opens at frame 40: one false flag in 4 s = 900 per hour.
    let row = result
        .rows
        .iter()
        .find(|r| r.enter == 0.6 && r.exit == 0.6)
        .unwrap();
    assert_eq!(row.report.false_flags, 1);
    assert!((row.false_flags_per_hour.unwrap() - 900.0).abs() < 1e-9);
    // Above 0.9 nothing opens.
    let row = result.rows.iter().find(|r| r.enter == 0.95).unwrap();
    assert_eq!(row.report.recall, Some(0.0));
}

#[test]
fn sweep_without_reachable_target() {
    // Truth frames score 0: no grid threshold (>= 0.05) opens on them.
    let f = frames(&[0.0, 0.0, 0.0, 0.7], |i| i < 2);
    let result = sweep(std::slice::from_ref(&f), &config(0.5)).unwrap();
    assert_eq!(result.best, None);
    assert!(result.best_row().is_none());
    // Target 0 is always reached: the fewest false flags is 0 (enter > 0.7).
    let result = sweep(&[f], &config(0.0)).unwrap();
    let best = result.best_row().unwrap();
    assert_eq!((best.enter, best.exit), (1.0, 1.0));
}

#[test]
fn sweep_grid_shapes() {
    assert_eq!(grid(1.0), vec![1.0]);
    assert_eq!(grid(0.3), vec![0.3, 0.6, 0.9]);
    let g = grid(0.05);
    assert_eq!(g.len(), 20);
    assert_eq!((g[0], g[17], g[19]), (0.05, 0.9, 1.0));
    assert_eq!(grid(0.1).len(), 10);
}

#[test]
fn sweep_errors() {
    let ok = [event_stream()];
    let bad_step = SweepConfig {
        step: 0.0,
        ..config(1.0)
    };
    assert!(matches!(
        sweep(&ok, &bad_step),
        Err(MetricError::OutOfRange {
            parameter: "step",
            ..
        })
    ));
    let bad_target = SweepConfig {
        target_recall: 1.5,
        ..config(1.0)
    };
    assert!(matches!(
        sweep(&ok, &bad_target),
        Err(MetricError::OutOfRange {
            parameter: "target_recall",
            ..
        })
    ));
    let bad_overlap = SweepConfig {
        min_overlap: 0.0,
        ..config(1.0)
    };
    assert!(sweep(&ok, &bad_overlap).is_err());
    let no_truth = [frames(&[0.5, 0.9], |_| false)];
    assert_eq!(
        sweep(&no_truth, &config(1.0)),
        Err(MetricError::EmptyInput {
            what: "truth frames"
        })
    );
    let mut nan = event_stream();
    nan[3].score = f32::NAN;
    assert_eq!(
        sweep(&[event_stream(), nan], &config(1.0)),
        Err(MetricError::NonFiniteScore {
            stream: Some(1),
            index: 3
        })
    );
    let empty: [Vec<Frame>; 0] = [];
    assert!(sweep(&empty, &config(1.0)).is_err());
}

/// The chosen row meets the target and no qualifying row is strictly
/// preferable, checked against a separately written filter.
#[test]
fn property_choice_is_optimal() {
    let mut rng = XorShift::new(4242);
    for _ in 0..40 {
        let streams: Vec<Vec<Frame>> = (0..1 + rng.below(3))
            .map(|_| {
                let n = 5 + rng.below(60) as usize;
                let mut truth = false;
                (0..n)
                    .map(|i| {
                        if rng.chance(0.15) {
                            truth = !truth;
                        }
                        let base = if truth { 0.5 } else { 0.0 };
                        Frame {
                            timestamp_us: i as u64 * HOP,
                            score: base + 0.5 * rng.unit_f32(),
                            truth,
                        }
                    })
                    .collect()
            })
            .collect();
        let target = [0.0, 0.5, 0.8, 1.0][rng.below(4) as usize];
        let cfg = SweepConfig {
            step: 0.1,
            min_off_us: rng.below(3) * HOP,
            ..config(target)
        };
        let result = match sweep(&streams, &cfg) {
            Ok(r) => r,
            Err(MetricError::EmptyInput { .. }) => continue,
            Err(e) => panic!("{e}"),
        };
        let qualifying: Vec<&SweepRow> = result
            .rows
            .iter()
            .filter(|r| r.report.recall.unwrap() >= target)
            .collect();
        match result.best_row() {
            None => assert!(qualifying.is_empty()),
            Some(best) => {
                for r in qualifying {
                    let ff = (r.report.false_flags, best.report.false_flags);
                    assert!(ff.0 >= ff.1);
                    if ff.0 == ff.1 {
                        assert!((r.enter, r.exit) <= (best.enter, best.exit));
                    }
                }
            }
        }
    }
}

use super::*;
use crate::eval::test_util::XorShift;

const S: u64 = 1_000_000; // one second in microseconds

fn iv(start_s: f64, end_s: f64) -> Interval {
    Interval::new((start_s * S as f64) as u64, (end_s * S as f64) as u64)
}

fn one_stream(truths: Vec<Interval>, predictions: Vec<Interval>) -> Vec<StreamSegments> {
    vec![StreamSegments {
        truths,
        predictions,
    }]
}

/// Truths A [0,10) B [20,30) C [40,42) s; predictions
/// p1 [2,5)  overlaps A 3s  -> 0.3 of A
/// p2 [6,12) overlaps A 4s  -> 0.4 of A
/// p3 [19,25) overlaps B 5s -> 0.5 of B (opens 1 s before B)
/// p4 [50,51) overlaps nothing -> false flag
/// p5 [41.9,45) overlaps C 0.1s -> 0.05 of C: too little, not a false flag
fn hand_streams() -> Vec<StreamSegments> {
    one_stream(
        vec![iv(0.0, 10.0), iv(20.0, 30.0), iv(40.0, 42.0)],
        vec![
            iv(6.0, 12.0),
            iv(2.0, 5.0),
            iv(19.0, 25.0),
            iv(50.0, 51.0),
            iv(41.9, 45.0),
        ],
    )
}

#[test]
fn hand_case_threshold_030() {
    // A matched by p1, p2 (latency 2 s); B by p3 (latency saturates to 0).
    // recall 2/3, precision 3/5, fragmentation (2+1)/2, false flags 1 (p4).
    // Latencies [0, 2s]: median rank ceil(.5*2)=1 -> 0; p95 rank ceil(1.9)=2 -> 2s.
    let r = evaluate_segments(&hand_streams(), 0.3).unwrap();
    assert_eq!((r.truths, r.predictions), (3, 5));
    assert_eq!((r.matched_truths, r.matched_predictions), (2, 3));
    assert_eq!(r.recall, Some(2.0 / 3.0));
    assert_eq!(r.precision, Some(0.6));
    assert_eq!(r.fragmentation, Some(1.5));
    assert_eq!(r.latencies_us, vec![0, 2 * S]);
    assert_eq!(r.latency_median_us, Some(0));
    assert_eq!(r.latency_p95_us, Some(2 * S));
    assert_eq!(r.false_flags, 1);
}

/// Catches latency taken from the first *overlapping* prediction (p1)
/// instead of the first *matching* one (p2).
#[test]
fn hand_case_threshold_035() {
    // p1 (0.3) no longer matches A: A by p2 only (latency 6 s), B by p3.
    // precision 2/5, fragmentation 1, false flags still 1 (p1 overlaps A).
    let r = evaluate_segments(&hand_streams(), 0.35).unwrap();
    assert_eq!(r.matched_predictions, 2);
    assert_eq!(r.precision, Some(0.4));
    assert_eq!(r.fragmentation, Some(1.0));
    assert_eq!(r.latencies_us, vec![0, 6 * S]);
    assert_eq!(r.latency_p95_us, Some(6 * S));
    assert_eq!(r.false_flags, 1);
}

/// Catches `overlap >= t * duration` accepting zero overlap for tiny `t`.
#[test]
fn touching_intervals_never_match() {
    let streams = one_stream(vec![iv(0.0, 10.0)], vec![iv(10.0, 20.0)]);
    let r = evaluate_segments(&streams, 1e-12).unwrap();
    assert_eq!(r.recall, Some(0.0));
    assert_eq!(r.false_flags, 1);
}

#[test]
fn full_coverage_threshold_one() {
    // Threshold 1: the prediction must cover the whole truth.
    let exact = one_stream(vec![iv(1.0, 2.0)], vec![iv(0.5, 2.0)]);
    assert_eq!(evaluate_segments(&exact, 1.0).unwrap().recall, Some(1.0));
    let short = one_stream(vec![iv(1.0, 2.0)], vec![iv(1.0, 1.999)]);
    assert_eq!(evaluate_segments(&short, 1.0).unwrap().recall, Some(0.0));
    // Exactly half covered meets 0.5 (>=, not >).
    let half = one_stream(vec![iv(0.0, 2.0)], vec![iv(1.0, 3.0)]);
    assert_eq!(evaluate_segments(&half, 0.5).unwrap().recall, Some(1.0));
}

#[test]
fn zero_length_intervals() {
    // A zero-length truth is never matched; the prediction around it overlaps
    // no time of it, so it is a false flag. A zero-length prediction inside a
    // truth matches nothing and is a false flag too.
    let streams = one_stream(
        vec![Interval::new(5, 5), Interval::new(100, 200)],
        vec![Interval::new(0, 10), Interval::new(150, 150)],
    );
    let r = evaluate_segments(&streams, 0.1).unwrap();
    assert_eq!(r.truths, 2);
    assert_eq!(r.matched_truths, 0);
    assert_eq!(r.false_flags, 2);
}

/// Catches matching across streams.
#[test]
fn streams_are_separate() {
    let streams = vec![
        StreamSegments {
            truths: vec![iv(0.0, 10.0)],
            predictions: vec![],
        },
        StreamSegments {
            truths: vec![],
            predictions: vec![iv(0.0, 10.0)],
        },
    ];
    let r = evaluate_segments(&streams, 0.5).unwrap();
    assert_eq!(r.recall, Some(0.0));
    assert_eq!(r.precision, Some(0.0));
    assert_eq!(r.false_flags, 1);
}

#[test]
fn one_prediction_can_match_several_truths() {
    // [0,30) covers A [0,10) and B [20,30): both matched, one prediction.
    let streams = one_stream(vec![iv(0.0, 10.0), iv(20.0, 30.0)], vec![iv(0.0, 30.0)]);
    let r = evaluate_segments(&streams, 0.9).unwrap();
    assert_eq!((r.matched_truths, r.matched_predictions), (2, 1));
    assert_eq!(r.precision, Some(1.0));
    assert_eq!(r.fragmentation, Some(1.0));
    assert_eq!(r.latencies_us, vec![0, 0]);
}

#[test]
fn empty_sides_give_none() {
    let r = evaluate_segments(&[], 0.5).unwrap();
    assert_eq!((r.precision, r.recall, r.fragmentation), (None, None, None));
    assert_eq!((r.latency_median_us, r.latency_p95_us), (None, None));
    let only_truths = one_stream(vec![iv(0.0, 1.0)], vec![]);
    let r = evaluate_segments(&only_truths, 0.5).unwrap();
    assert_eq!((r.precision, r.recall), (None, Some(0.0)));
    let only_preds = one_stream(vec![], vec![iv(0.0, 1.0)]);
    let r = evaluate_segments(&only_preds, 0.5).unwrap();
    assert_eq!((r.precision, r.recall, r.false_flags), (Some(0.0), None, 1));
}

#[test]
fn parameters_and_intervals_checked() {
    let streams = hand_streams();
    for bad in [0.0, -0.1, 1.01, f64::NAN] {
        assert!(matches!(
            evaluate_segments(&streams, bad),
            Err(MetricError::OutOfRange {
                parameter: "min_overlap",
                ..
            })
        ));
    }
    let inverted = vec![
        StreamSegments::default(),
        StreamSegments {
            truths: vec![iv(0.0, 1.0)],
            predictions: vec![iv(0.0, 1.0), Interval::new(9, 8)],
        },
    ];
    assert_eq!(
        evaluate_segments(&inverted, 0.5),
        Err(MetricError::InvertedInterval {
            what: "prediction",
            stream: Some(1),
            index: 1
        })
    );
}

#[test]
fn nearest_rank_definition() {
    let v: Vec<u64> = (1..=20).rev().collect(); // unsorted on purpose
                                                // ranks: p50 ceil(10)=10, p95 ceil(19)=19, p100 20, p1 ceil(.2)=1, p52 ceil(10.4)=11
    assert_eq!(nearest_rank_percentile(&v, 50.0), Ok(10));
    assert_eq!(nearest_rank_percentile(&v, 95.0), Ok(19));
    assert_eq!(nearest_rank_percentile(&v, 100.0), Ok(20));
    assert_eq!(nearest_rank_percentile(&v, 1.0), Ok(1));
    assert_eq!(nearest_rank_percentile(&v, 52.0), Ok(11));
    // n=3: p50 rank ceil(1.5)=2; n=1: always the value.
    assert_eq!(nearest_rank_percentile(&[30, 10, 20], 50.0), Ok(20));
    assert_eq!(nearest_rank_percentile(&[7], 95.0), Ok(7));
    // n=10, p95: rank ceil(9.5)=10.
    let ten: Vec<u64> = (1..=10).collect();
    assert_eq!(nearest_rank_percentile(&ten, 95.0), Ok(10));
    // 16.1 * 1000 / 100 is 161.00000000000003 in f64: the guard keeps rank 161.
    let thousand: Vec<u64> = (1..=1000).collect();
    assert_eq!(nearest_rank_percentile(&thousand, 16.1), Ok(161));
    assert_eq!(
        nearest_rank_percentile(&[], 50.0),
        Err(MetricError::EmptyInput { what: "values" })
    );
    for bad in [0.0, 100.5, f64::NAN] {
        assert!(nearest_rank_percentile(&[1], bad).is_err());
    }
}

#[test]
fn false_flag_rate_from_report() {
    // 1 false flag in 2 clean hours -> 0.5 per hour.
    let r = evaluate_segments(&hand_streams(), 0.3).unwrap();
    let rate = r.false_flag_rate(7_200 * S, 0.95).unwrap();
    assert_eq!(rate.per_hour, 0.5);
    assert!((rate.upper_per_hour - 5.572 / 2.0).abs() < 1e-3);
}

fn random_streams(rng: &mut XorShift) -> Vec<StreamSegments> {
    let random_intervals = |rng: &mut XorShift, n: u64| -> Vec<Interval> {
        (0..n)
            .map(|_| {
                let start = rng.below(1_000);
                Interval::new(start, start + rng.below(120))
            })
            .collect()
    };
    (0..1 + rng.below(3))
        .map(|_| {
            let nt = rng.below(8);
            let np = rng.below(10);
            StreamSegments {
                truths: random_intervals(rng, nt),
                predictions: random_intervals(rng, np),
            }
        })
        .collect()
}

#[test]
fn property_monotone_in_threshold() {
    let mut rng = XorShift::new(123);
    let thresholds = [1e-9, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0];
    for _ in 0..300 {
        let streams = random_streams(&mut rng);
        let reports: Vec<SegmentReport> = thresholds
            .iter()
            .map(|&t| evaluate_segments(&streams, t).unwrap())
            .collect();
        for w in reports.windows(2) {
            assert!(w[1].matched_truths <= w[0].matched_truths);
            assert!(w[1].matched_predictions <= w[0].matched_predictions);
            // False flags do not depend on the threshold.
            assert_eq!(w[1].false_flags, w[0].false_flags);
            if let (Some(a), Some(b)) = (w[0].recall, w[1].recall) {
                assert!(b <= a);
            }
        }
    }
}

/// Cross-checks the sorted, cut-off scan against a plain all-pairs loop.
#[test]
fn property_matches_brute_force() {
    let mut rng = XorShift::new(9);
    for _ in 0..300 {
        let streams = random_streams(&mut rng);
        let t = [0.01, 0.3, 0.6, 1.0][rng.below(4) as usize];
        let r = evaluate_segments(&streams, t).unwrap();
        let (mut mt, mut mp, mut ff, mut pairs) = (0, 0, 0, 0);
        let mut lat = Vec::new();
        for s in &streams {
            let matches = |tr: &Interval, p: &Interval| {
                p.overlap_us(tr) > 0
                    && p.overlap_us(tr) as f64 >= t * tr.duration_us() as f64 - 1e-9
            };
            for tr in &s.truths {
                let m: Vec<&Interval> = s.predictions.iter().filter(|p| matches(tr, p)).collect();
                if let Some(first) = m.iter().map(|p| p.start_us).min() {
                    mt += 1;
                    pairs += m.len();
                    lat.push(first.saturating_sub(tr.start_us));
                }
            }
            for p in &s.predictions {
                mp += s.truths.iter().any(|tr| matches(tr, p)) as u64;
                ff += !s.truths.iter().any(|tr| p.overlap_us(tr) > 0) as u64;
            }
        }
        lat.sort_unstable();
        assert_eq!(
            (r.matched_truths, r.matched_predictions, r.false_flags),
            (mt, mp, ff)
        );
        assert_eq!(r.latencies_us, lat);
        if mt > 0 {
            assert_eq!(r.fragmentation, Some(pairs as f64 / mt as f64));
        }
    }
}

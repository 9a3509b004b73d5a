use super::*;
use crate::eval::test_util::XorShift;

fn near(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn hand_case_two_bins() {
    // Bin [0,.5): 0.2 N, 0.4 P -> mean .3, rate .5, gap .2
    // Bin [.5,1]: 0.6 P, 0.8 P -> mean .7, rate 1,  gap .3
    // ECE = 2/4*.2 + 2/4*.3 = .25; MCE = .3
    // (f32 inputs: tolerance 1e-6.)
    let pairs = [(0.2, false), (0.4, true), (0.6, true), (0.8, true)];
    let c = calibration(&pairs, 2).unwrap();
    assert!(near(c.expected_calibration_error, 0.25, 1e-6));
    assert!(near(c.maximum_calibration_error, 0.3, 1e-6));
    assert_eq!(c.bins.len(), 2);
    assert_eq!((c.bins[0].lower, c.bins[0].upper), (0.0, 0.5));
    assert_eq!(c.bins[1].count, 2);
    assert!(near(c.bins[0].mean_score.unwrap(), 0.3, 1e-6));
    assert_eq!(c.bins[0].positive_rate, Some(0.5));
    assert_eq!(c.bins[1].positive_rate, Some(1.0));
    assert!(near(
        expected_calibration_error(&pairs, 2).unwrap(),
        0.25,
        1e-6
    ));
    assert!(near(
        maximum_calibration_error(&pairs, 2).unwrap(),
        0.3,
        1e-6
    ));
}

/// Catches weighting ECE by bin count / bins instead of bin count / total.
#[test]
fn hand_case_uneven_bins() {
    // 4 bins. Bin 0: 0.0 N x3 -> gap 0. Bin 3: 1.0 N -> mean 1, rate 0, gap 1.
    // ECE = 3/4*0 + 1/4*1 = .25; MCE = 1. Bins 1 and 2 empty.
    let pairs = [(0.0, false), (0.0, false), (0.0, false), (1.0, false)];
    let c = calibration(&pairs, 4).unwrap();
    assert_eq!(c.expected_calibration_error, 0.25);
    assert_eq!(c.maximum_calibration_error, 1.0);
    assert_eq!(c.bins[1].count, 0);
    assert_eq!(c.bins[1].mean_score, None);
    assert_eq!(c.bins[2].gap(), None);
    assert_eq!(reliability_bins(&pairs, 4).unwrap(), c.bins);
}

#[test]
fn single_bin_is_global_gap() {
    // Mean score (.25+.75)/2 = .5, both positive -> gap .5.
    let c = calibration(&[(0.25, true), (0.75, true)], 1).unwrap();
    assert_eq!(c.expected_calibration_error, 0.5);
    assert_eq!(c.maximum_calibration_error, 0.5);
}

#[test]
fn all_positive_and_all_negative() {
    let all_pos = [(1.0, true), (1.0, true)];
    assert_eq!(expected_calibration_error(&all_pos, 10).unwrap(), 0.0);
    let all_neg = [(0.5, false), (0.5, false)];
    assert_eq!(expected_calibration_error(&all_neg, 10).unwrap(), 0.5);
}

#[test]
fn single_element() {
    let c = calibration(&[(0.5, true)], 3).unwrap();
    // 0.5 is in bin 1 of 3 ([1/3, 2/3)).
    assert_eq!(c.bins[1].count, 1);
    assert_eq!(c.expected_calibration_error, 0.5);
}

/// Catches clamping after binning (7.0 would index past the end) and mean
/// scores from unclamped values.
#[test]
fn scores_clamped_and_one_in_last_bin() {
    let c = calibration(&[(7.0, true), (1.0, true), (-2.0, false)], 5).unwrap();
    assert_eq!(c.bins[4].count, 2);
    assert_eq!(c.bins[4].mean_score, Some(1.0));
    assert_eq!(c.bins[0].mean_score, Some(0.0));
    assert_eq!(c.expected_calibration_error, 0.0);
}

#[test]
fn errors_are_typed() {
    assert_eq!(
        calibration(&[], 10),
        Err(MetricError::EmptyInput { what: "frames" })
    );
    assert!(matches!(
        calibration(&[(0.5, true)], 0),
        Err(MetricError::OutOfRange {
            parameter: "bins",
            ..
        })
    ));
    assert_eq!(
        calibration(&[(0.5, true), (f32::NAN, true)], 10),
        Err(MetricError::NonFiniteScore {
            stream: None,
            index: 1
        })
    );
}

/// Groups of `b` frames (b a power of two, so `a/b` is exact in f32) with
/// score `a/b` and exactly `a` positives are perfectly calibrated; pooling
/// such groups in any bin keeps mean score = positive rate, so ECE is 0 for
/// every bin count.
#[test]
fn property_perfect_calibration_gives_zero_ece() {
    let mut rng = XorShift::new(31);
    for _ in 0..200 {
        let mut pairs = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let b = 1u64 << rng.below(6);
            let a = rng.below(b + 1);
            let score = a as f32 / b as f32;
            for i in 0..b {
                pairs.push((score, i < a));
            }
        }
        let bins = 1 + rng.below(20) as usize;
        let c = calibration(&pairs, bins).unwrap();
        assert!(c.expected_calibration_error < 1e-12);
        assert!(c.maximum_calibration_error < 1e-12);
    }
}

#[test]
fn property_bounds_and_counts() {
    let mut rng = XorShift::new(77);
    for _ in 0..300 {
        let n = 1 + rng.below(60) as usize;
        let pairs: Vec<(f32, bool)> = (0..n).map(|_| (rng.unit_f32(), rng.chance(0.5))).collect();
        let bins = 1 + rng.below(15) as usize;
        let c = calibration(&pairs, bins).unwrap();
        let ece = c.expected_calibration_error;
        let mce = c.maximum_calibration_error;
        assert!(ece >= 0.0 && ece <= mce + 1e-12 && mce <= 1.0);
        assert_eq!(c.bins.iter().map(|b| b.count).sum::<u64>(), n as u64);
        for b in c.bins.iter().filter(|b| b.count > 0) {
            let m = b.mean_score.unwrap();
            assert!(m >= b.lower && m <= b.upper, "mean outside its bin");
        }
    }
}

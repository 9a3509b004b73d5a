use super::*;
use crate::eval::test_util::XorShift;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

/// Trapezoid area under a ROC curve, computed independently of `roc_auc`.
fn trapezoid(points: &[RocPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| {
            (w[1].false_positive_rate - w[0].false_positive_rate)
                * (w[1].true_positive_rate + w[0].true_positive_rate)
                / 2.0
        })
        .sum()
}

/// Brute force: share of (positive, negative) pairs ranked right, ties 1/2.
fn auc_by_pairs(pairs: &[(f32, bool)]) -> f64 {
    let mut wins = 0.0;
    let mut total = 0.0;
    for &(sp, p) in pairs {
        for &(sn, n) in pairs {
            if p && !n {
                total += 1.0;
                if sp > sn {
                    wins += 1.0;
                } else if sp == sn {
                    wins += 0.5;
                }
            }
        }
    }
    wins / total
}

/// Random frames with both classes; `levels > 0` quantises scores to make ties.
fn random_pairs(rng: &mut XorShift, levels: u64) -> Vec<(f32, bool)> {
    loop {
        let n = 2 + rng.below(40) as usize;
        let pairs: Vec<(f32, bool)> = (0..n)
            .map(|_| {
                let score = if levels > 0 {
                    rng.below(levels) as f32 / levels as f32
                } else {
                    rng.unit_f32()
                };
                (score, rng.chance(0.4))
            })
            .collect();
        if pairs.iter().any(|p| p.1) && pairs.iter().any(|p| !p.1) {
            return pairs;
        }
    }
}

fn has_ties(pairs: &[(f32, bool)]) -> bool {
    let mut s: Vec<f32> = pairs.iter().map(|p| p.0).collect();
    s.sort_by(f32::total_cmp);
    s.windows(2).any(|w| w[0] == w[1])
}

#[test]
fn hand_case_pr_ap_auc() {
    // Sorted: 0.9 P, 0.8 N, 0.7 P, 0.6 N; 2 positives.
    // t=0.9: tp1 fp0 P=1   R=1/2
    // t=0.8: tp1 fp1 P=1/2 R=1/2
    // t=0.7: tp2 fp1 P=2/3 R=1
    // t=0.6: tp2 fp2 P=1/2 R=1
    // AP = 1/2*1 + 0 + 1/2*2/3 + 0 = 5/6
    // AUC: 0.9 beats both negatives (2), 0.7 beats 0.6 (1): 3/4
    let pairs = [(0.7, true), (0.6, false), (0.9, true), (0.8, false)];
    let curve = pr_curve(&pairs).unwrap();
    let got: Vec<(f32, u64, u64)> = curve
        .iter()
        .map(|p| (p.threshold, p.true_positives, p.false_positives))
        .collect();
    assert_eq!(
        got,
        vec![(0.9, 1, 0), (0.8, 1, 1), (0.7, 2, 1), (0.6, 2, 2)]
    );
    assert!(close(curve[2].precision, 2.0 / 3.0));
    assert!(close(curve[1].recall, 0.5));
    assert!(close(average_precision(&pairs).unwrap(), 5.0 / 6.0));
    assert!(close(roc_auc(&pairs).unwrap(), 0.75));
}

/// Catches ties split into separate thresholds (which would give AP 1 here
/// when the positive happens to sort first).
#[test]
fn ties_form_one_threshold() {
    // One threshold 0.5: tp1 fp1, P=1/2 R=1 -> AP = 1/2. AUC: one tie = 1/2.
    for pairs in [[(0.5, true), (0.5, false)], [(0.5, false), (0.5, true)]] {
        let curve = pr_curve(&pairs).unwrap();
        assert_eq!(curve.len(), 1);
        assert!(close(average_precision(&pairs).unwrap(), 0.5));
        assert!(close(roc_auc(&pairs).unwrap(), 0.5));
        assert_eq!(roc_curve(&pairs).unwrap().len(), 2);
    }
}

#[test]
fn hand_case_auc_with_ties() {
    // Positives 0.8, 0.5; negatives 0.5, 0.2.
    // Pairs: (0.8,0.5)=1 (0.8,0.2)=1 (0.5,0.5)=1/2 (0.5,0.2)=1 -> 3.5/4 = 0.875.
    // ROC: (0,0) (0,.5) (.5,1) (1,1); trapezoids 0 + .5*.75 + .5*1 = .875.
    let pairs = [(0.8, true), (0.5, true), (0.5, false), (0.2, false)];
    assert!(close(roc_auc(&pairs).unwrap(), 0.875));
    let roc = roc_curve(&pairs).unwrap();
    let xy: Vec<(f64, f64)> = roc
        .iter()
        .map(|p| (p.false_positive_rate, p.true_positive_rate))
        .collect();
    assert_eq!(xy, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
    assert_eq!(roc[0].threshold, f32::INFINITY);
}

/// Catches -0.0 and 0.0 split into two thresholds, and a `-0.0` threshold
/// leaking into the curve.
#[test]
fn negative_zero_equals_zero() {
    for pairs in [
        [(-0.0, false), (0.0, true), (1.0, true)],
        [(0.0, true), (-0.0, false), (1.0, true)],
    ] {
        let curve = pr_curve(&pairs).unwrap();
        assert_eq!(curve.len(), 2);
        assert!(curve[1].threshold.is_sign_positive());
        // 1.0 beats the negative (1), 0.0 ties it (1/2): 1.5/2.
        assert!(close(roc_auc(&pairs).unwrap(), 0.75));
    }
}

#[test]
fn all_positive() {
    let pairs = [(0.2, true), (0.9, true), (0.2, true)];
    assert!(close(average_precision(&pairs).unwrap(), 1.0));
    let curve = pr_curve(&pairs).unwrap();
    assert_eq!(curve.last().unwrap().recall, 1.0);
    assert_eq!(
        roc_auc(&pairs),
        Err(MetricError::EmptyInput {
            what: "negative frames"
        })
    );
    assert!(roc_curve(&pairs).is_err());
}

#[test]
fn all_negative() {
    let pairs = [(0.2, false), (0.9, false)];
    let want = MetricError::EmptyInput {
        what: "positive frames",
    };
    assert_eq!(average_precision(&pairs).unwrap_err(), want);
    assert_eq!(pr_curve(&pairs).unwrap_err(), want);
    assert_eq!(roc_auc(&pairs).unwrap_err(), want);
}

#[test]
fn single_element() {
    assert!(close(average_precision(&[(0.3, true)]).unwrap(), 1.0));
    assert!(average_precision(&[(0.3, false)]).is_err());
    assert!(roc_auc(&[(0.3, true)]).is_err());
}

#[test]
fn empty_input_is_typed_error() {
    let want = MetricError::EmptyInput { what: "frames" };
    assert_eq!(average_precision(&[]).unwrap_err(), want);
    assert_eq!(roc_auc(&[]).unwrap_err(), want);
    assert_eq!(pr_curve(&[]).unwrap_err(), want);
    assert_eq!(roc_curve(&[]).unwrap_err(), want);
    // Histograms of nothing are defined: all zero.
    let h = score_histograms(&[], 3).unwrap();
    assert_eq!(h.positives, vec![0, 0, 0]);
}

#[test]
fn non_finite_scores_refused_with_index() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let pairs = [(0.1, true), (0.2, false), (bad, true)];
        let want = MetricError::NonFiniteScore {
            stream: None,
            index: 2,
        };
        assert_eq!(roc_auc(&pairs).unwrap_err(), want);
        assert_eq!(average_precision(&pairs).unwrap_err(), want);
        assert_eq!(score_histograms(&pairs, 4).unwrap_err(), want);
    }
}

#[test]
fn histogram_bins_and_clamping() {
    // 4 bins: [0,.25) [.25,.5) [.5,.75) [.75,1].
    // Positives: 0.0->0, 0.25->1, 1.0->3 (closed last bin), 7.0 clamps to 1.0 -> 3.
    // Negatives: 0.2499->0, 0.5->2, 0.75->3, -3.0 clamps to 0.0 -> 0.
    let pairs = [
        (0.0, true),
        (0.25, true),
        (1.0, true),
        (7.0, true),
        (0.2499, false),
        (0.5, false),
        (0.75, false),
        (-3.0, false),
    ];
    let h = score_histograms(&pairs, 4).unwrap();
    assert_eq!(h.positives, vec![1, 1, 0, 2]);
    assert_eq!(h.negatives, vec![2, 0, 1, 1]);
    assert_eq!(h.bins(), 4);
    assert_eq!(h.bin_range(1), Some((0.25, 0.5)));
    assert_eq!(h.bin_range(4), None);
    // 0.7_f32 is 0.69999998..., below the 0.7 edge.
    let h = score_histograms(&[(0.7, true)], 10).unwrap();
    assert_eq!(h.positives[6], 1);
}

#[test]
fn histogram_bin_count_checked() {
    let err = Err(MetricError::OutOfRange {
        parameter: "bins",
        expected: "an integer in [1, 1048576]",
    });
    assert_eq!(score_histograms(&[(0.5, true)], 0), err);
    assert_eq!(score_histograms(&[(0.5, true)], MAX_BINS + 1), err);
    let h = score_histograms(&[(0.5, true), (1.0, false)], 1).unwrap();
    assert_eq!((h.positives[0], h.negatives[0]), (1, 1));
}

#[test]
fn property_auc_equals_trapezoid_and_pair_count() {
    let mut rng = XorShift::new(17);
    for round in 0..400 {
        // Every other round quantises scores to create many ties.
        let levels = if round % 2 == 0 { 0 } else { 1 + rng.below(6) };
        let pairs = random_pairs(&mut rng, levels);
        let auc = roc_auc(&pairs).unwrap();
        let area = trapezoid(&roc_curve(&pairs).unwrap());
        assert!((auc - area).abs() < 1e-12, "round {round}: {auc} vs {area}");
        assert!((auc - auc_by_pairs(&pairs)).abs() < 1e-12, "round {round}");
    }
}

#[test]
fn property_ap_in_unit_interval_and_curve_shape() {
    let mut rng = XorShift::new(99);
    for round in 0..400 {
        let levels = if round % 2 == 0 { 0 } else { 1 + rng.below(6) };
        let pairs = random_pairs(&mut rng, levels);
        let ap = average_precision(&pairs).unwrap();
        assert!((0.0..=1.0 + 1e-12).contains(&ap), "round {round}: {ap}");
        let curve = pr_curve(&pairs).unwrap();
        assert!(curve.windows(2).all(|w| w[0].threshold > w[1].threshold));
        assert!(curve.windows(2).all(|w| w[0].recall <= w[1].recall));
        assert_eq!(curve.last().unwrap().recall, 1.0);
        let roc = roc_curve(&pairs).unwrap();
        let last = roc.last().unwrap();
        assert_eq!(
            (last.false_positive_rate, last.true_positive_rate),
            (1.0, 1.0)
        );
    }
}

/// Without ties, step-wise AP is the mean over positives of the precision
/// at each positive's rank; catches a wrong recall-increment weighting.
#[test]
fn property_ap_equals_mean_precision_at_positives_without_ties() {
    let mut rng = XorShift::new(5);
    let mut checked = 0;
    while checked < 300 {
        let pairs = random_pairs(&mut rng, 0);
        if has_ties(&pairs) {
            continue;
        }
        let mut sorted = pairs.clone();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut tp, mut sum) = (0.0, 0.0);
        for (rank, &(_, positive)) in sorted.iter().enumerate() {
            if positive {
                tp += 1.0;
                sum += tp / (rank + 1) as f64;
            }
        }
        let expected = sum / tp;
        assert!((average_precision(&pairs).unwrap() - expected).abs() < 1e-12);
        checked += 1;
    }
}

#[test]
fn property_reversed_scores_give_complementary_auc_without_ties() {
    let mut rng = XorShift::new(2024);
    let mut checked = 0;
    while checked < 300 {
        let pairs = random_pairs(&mut rng, 0);
        if has_ties(&pairs) {
            continue;
        }
        let reversed: Vec<(f32, bool)> = pairs.iter().map(|&(s, p)| (-s, p)).collect();
        let sum = roc_auc(&pairs).unwrap() + roc_auc(&reversed).unwrap();
        assert!((sum - 1.0).abs() < 1e-12);
        checked += 1;
    }
}

#[test]
fn property_separated_classes_score_perfectly() {
    let mut rng = XorShift::new(8);
    for _ in 0..100 {
        let pairs: Vec<(f32, bool)> = (0..2 + rng.below(30))
            .map(|i| {
                let positive = i % 2 == 0;
                let base = if positive { 0.6 } else { 0.0 };
                (base + 0.3 * rng.unit_f32(), positive)
            })
            .collect();
        assert!(close(average_precision(&pairs).unwrap(), 1.0));
        assert!(close(roc_auc(&pairs).unwrap(), 1.0));
    }
}

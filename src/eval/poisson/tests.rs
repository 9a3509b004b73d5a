use super::*;

fn near(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Published 95% Garwood limits (rounded as printed in standard tables).
#[test]
fn matches_published_table_values() {
    let cases = [
        (0u64, 0.0, 3.689),
        (1, 0.0253, 5.572),
        (2, 0.2422, 7.225),
        (5, 1.623, 11.668),
        (10, 4.795, 18.39),
    ];
    for (k, lower, upper) in cases {
        let i = garwood_interval(k, 0.95).unwrap();
        assert!(near(i.lower, lower, 6e-4), "k={k} lower {}", i.lower);
        assert!(near(i.upper, upper, 6e-3), "k={k} upper {}", i.upper);
    }
}

/// Closed forms: for k=0, e^-U = alpha/2, so U = -ln(alpha/2); for k=1,
/// 1 - e^-L = alpha/2, so L = -ln(1 - alpha/2). Catches swapped tails or a
/// one-sided alpha.
#[test]
fn matches_closed_forms() {
    for confidence in [0.5, 0.8, 0.9, 0.95, 0.99] {
        let tail: f64 = (1.0 - confidence) / 2.0;
        let i0 = garwood_interval(0, confidence).unwrap();
        assert_eq!(i0.lower, 0.0);
        assert!(near(i0.upper, -tail.ln(), 1e-9), "{confidence}");
        let i1 = garwood_interval(1, confidence).unwrap();
        assert!(near(i1.lower, -(1.0 - tail).ln(), 1e-9), "{confidence}");
    }
}

/// Catches overflow or underflow of e^-mean and mean^k for large counts:
/// the interval must still bracket the count and be roughly
/// k +- 1.96 sqrt(k).
#[test]
fn large_counts_stay_finite_and_near_normal() {
    for k in [1_000u64, 20_000] {
        let i = garwood_interval(k, 0.95).unwrap();
        let kf = k as f64;
        let half = 1.96 * kf.sqrt();
        assert!(i.lower < kf && kf < i.upper);
        assert!(near(i.lower, kf - half, 0.05 * half), "{k}: {i:?}");
        assert!(near(i.upper, kf + half, 0.05 * half), "{k}: {i:?}");
    }
}

#[test]
fn interval_widens_with_confidence_and_moves_with_count() {
    let mut previous = garwood_interval(3, 0.5).unwrap();
    for confidence in [0.8, 0.9, 0.95, 0.99] {
        let i = garwood_interval(3, confidence).unwrap();
        assert!(i.lower < previous.lower && i.upper > previous.upper);
        previous = i;
    }
    let mut previous = garwood_interval(0, 0.95).unwrap();
    for k in 1..40 {
        let i = garwood_interval(k, 0.95).unwrap();
        assert!(i.lower > previous.lower && i.upper > previous.upper, "{k}");
        previous = i;
    }
}

#[test]
fn cdf_hand_values() {
    // P(N <= 0 | 2) = e^-2; P(N <= 2 | 1) = e^-1 (1 + 1 + 1/2).
    assert!(near(poisson_cdf(0, 2.0), (-2.0f64).exp(), 1e-15));
    assert!(near(poisson_cdf(2, 1.0), 2.5 * (-1.0f64).exp(), 1e-15));
    assert_eq!(poisson_cdf(5, 0.0), 1.0);
}

#[test]
fn confidence_checked() {
    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        assert_eq!(
            garwood_interval(1, bad),
            Err(MetricError::OutOfRange {
                parameter: "confidence",
                expected: "a probability in (0, 1)"
            })
        );
    }
}

#[test]
fn rate_per_hour() {
    // 3 flags in 30 minutes = 6 per hour; bounds are the count bounds * 2.
    let r = false_flag_rate(3, 1_800_000_000, 0.95).unwrap();
    assert_eq!(r.clean_hours, 0.5);
    assert_eq!(r.per_hour, 6.0);
    let i = garwood_interval(3, 0.95).unwrap();
    assert_eq!(r.upper_per_hour, i.upper * 2.0);
    assert_eq!(r.lower_per_hour, i.lower * 2.0);
    // Zero flags in one hour: upper 3.689 per hour.
    let r = false_flag_rate(0, 3_600_000_000, 0.95).unwrap();
    assert_eq!(r.per_hour, 0.0);
    assert!(near(r.upper_per_hour, 3.689, 1e-3));
    assert!(matches!(
        false_flag_rate(1, 0, 0.95),
        Err(MetricError::OutOfRange {
            parameter: "clean_duration_us",
            ..
        })
    ));
}

//! Exact (Garwood) confidence interval for a Poisson count, and the
//! false-flag rate per stream-hour built on it.
//!
//! For `k` observed events and confidence `1 - alpha`, the two-sided
//! Garwood interval `[L, U]` for the Poisson mean is
//!
//! - `U = chi2_quantile(1 - alpha/2, 2k + 2) / 2`,
//! - `L = chi2_quantile(alpha/2, 2k) / 2`, and `L = 0` when `k = 0`.
//!
//! With even degrees of freedom the chi-square (gamma) distribution function
//! has the closed form `P(chi2_{2m} <= 2x) = 1 - sum_{i<m} e^-x x^i / i!`,
//! i.e. a Poisson tail. So `U` solves `P(N <= k | mean U) = alpha/2` and `L`
//! solves `P(N >= k | mean L) = alpha/2`. Both are found here by bisection
//! on a Poisson distribution function summed in log space (no overflow for
//! large counts; cost grows linearly with `k`).
//!
//! Known values (95%): 0 events -> `[0, 3.689]`, 1 -> `[0.0253, 5.572]`,
//! 10 -> `[4.795, 18.39]`; the tests check them.

use crate::eval::error::MetricError;

/// Microseconds in one hour.
pub const MICROS_PER_HOUR: f64 = 3_600_000_000.0;

/// Two-sided confidence interval for a Poisson mean, in events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoissonInterval {
    /// Lower bound (0 when no events were seen).
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// False flags per stream-hour of clean (truth-free) audio, with its
/// Garwood interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FalseFlagRate {
    /// Number of false flags.
    pub false_flags: u64,
    /// Clean duration in hours.
    pub clean_hours: f64,
    /// `false_flags / clean_hours`.
    pub per_hour: f64,
    /// Lower bound of the rate at the requested confidence.
    pub lower_per_hour: f64,
    /// Upper bound of the rate at the requested confidence.
    pub upper_per_hour: f64,
    /// Confidence level of the bounds, e.g. 0.95.
    pub confidence: f64,
}

/// `P(N <= k)` for `N ~ Poisson(mean)`, summed in log space.
fn poisson_cdf(k: u64, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 1.0;
    }
    let ln_mean = mean.ln();
    // Running log-sum-exp over ln(e^-mean mean^i / i!), i = 0..=k.
    let mut log_term = -mean;
    let mut max = log_term;
    let mut scaled_sum = 1.0; // sum of exp(log_term_i - max)
    for i in 1..=k {
        log_term += ln_mean - (i as f64).ln();
        if log_term > max {
            scaled_sum = scaled_sum * (max - log_term).exp() + 1.0;
            max = log_term;
        } else {
            scaled_sum += (log_term - max).exp();
        }
    }
    (max + scaled_sum.ln()).exp().clamp(0.0, 1.0)
}

/// Solves `f(x) = target` for `x >= 0`, `f` non-increasing with
/// `f(0) >= target`.
fn solve_decreasing(f: impl Fn(f64) -> f64, target: f64, start: f64) -> f64 {
    let mut lo = 0.0;
    let mut hi = start.max(1.0);
    while f(hi) > target {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn check_confidence(confidence: f64) -> Result<(), MetricError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(MetricError::OutOfRange {
            parameter: "confidence",
            expected: "a probability in (0, 1)",
        })
    }
}

/// Two-sided exact Garwood interval for the mean of a Poisson count of
/// `events`, at `confidence` (e.g. 0.95). See the module docs.
///
/// Errors: [`MetricError::OutOfRange`] for `confidence` outside `(0, 1)`.
pub fn garwood_interval(events: u64, confidence: f64) -> Result<PoissonInterval, MetricError> {
    check_confidence(confidence)?;
    let tail = (1.0 - confidence) / 2.0;
    let k = events as f64;
    let upper = solve_decreasing(|m| poisson_cdf(events, m), tail, k + 1.0);
    let lower = if events == 0 {
        0.0
    } else {
        // P(N >= k) = tail  <=>  P(N <= k-1) = 1 - tail.
        solve_decreasing(|m| poisson_cdf(events - 1, m), 1.0 - tail, k)
    };
    Ok(PoissonInterval { lower, upper })
}

/// False flags per hour of clean duration, with the Garwood interval of the
/// count scaled to a rate.
///
/// Errors: [`MetricError::OutOfRange`] when `clean_duration_us` is 0 or
/// `confidence` is outside `(0, 1)`.
pub fn false_flag_rate(
    false_flags: u64,
    clean_duration_us: u64,
    confidence: f64,
) -> Result<FalseFlagRate, MetricError> {
    if clean_duration_us == 0 {
        return Err(MetricError::OutOfRange {
            parameter: "clean_duration_us",
            expected: "a positive duration",
        });
    }
    let interval = garwood_interval(false_flags, confidence)?;
    let clean_hours = clean_duration_us as f64 / MICROS_PER_HOUR;
    Ok(FalseFlagRate {
        false_flags,
        clean_hours,
        per_hour: false_flags as f64 / clean_hours,
        lower_per_hour: interval.lower / clean_hours,
        upper_per_hour: interval.upper / clean_hours,
        confidence,
    })
}

#[cfg(test)]
mod tests;

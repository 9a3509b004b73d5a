//! Median and percentiles of stage timings.

use std::time::Duration;

/// Median and 95th percentile of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub median: Duration,
    /// 95th percentile (nearest rank).
    pub p95: Duration,
}

/// Summarises `samples` (order does not matter).
pub fn summarize(samples: &[Duration]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank =
        |q: f64| sorted[(((sorted.len() as f64) * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    Summary {
        count: sorted.len(),
        median: rank(0.5),
        p95: rank(0.95),
    }
}

/// Milliseconds as `f64`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summarize(&v);
        assert_eq!(
            (s.median, s.p95),
            (Duration::from_millis(50), Duration::from_millis(95))
        );
        assert_eq!(summarize(&[]).count, 0);
    }
}

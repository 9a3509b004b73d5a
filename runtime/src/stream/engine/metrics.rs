//! The engine's counters and latency histograms, as [`Engine::metrics`](super::Engine::metrics)
//! reports them.

use std::time::Duration;

use crate::preprocess::backend::ActiveBackend;

/// A latency histogram with log-spaced buckets (about 19% apart) from 1 µs to ~100 s.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
    sum_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; 110],
            count: 0,
            max_us: 0,
            sum_us: 0,
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        (((us.max(1) as f64).ln() / 1.19f64.ln()) as usize).min(109)
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[Self::bucket(us)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Sum of all samples.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket (at most the maximum).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let edge = 1.19f64.powi(i as i32 + 1).ceil() as u64;
                return Duration::from_micros(edge.min(self.max_us));
            }
        }
        self.max()
    }
}

/// Counters and latencies of an engine.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Frames submitted (including rejected ones).
    pub seen: u64,
    /// Malformed frames.
    pub rejected: u64,
    /// Frames not due at the sampling rate.
    pub rate_skipped: u64,
    /// Frames skipped by the scene gate.
    pub gated: u64,
    /// Frames skipped by the quality gate: too blurred or too small to judge.
    pub low_quality: u64,
    /// Frames taken but replaced in the slot by a newer one before the worker got to them.
    pub dropped: u64,
    /// Frames scored.
    pub scored: u64,
    /// Frames whose preprocessing or inference failed.
    pub failed: u64,
    /// Time `submit` took.
    pub submit: Histogram,
    /// Time to preprocess a frame.
    pub preprocess: Histogram,
    /// Time to infer a frame.
    pub infer: Histogram,
    /// Wall time from submitting the frame whose score crossed `enter` to its `SegmentOpened`.
    pub detection: Histogram,
    /// The backend preprocessing the worker's next frame (`None` before the worker started).
    pub backend: Option<ActiveBackend>,
    /// Times the GPU failed mid-stream and the worker moved to the CPU.
    pub gpu_fallbacks: u64,
}

impl Metrics {
    /// True when every frame seen is in exactly one other counter.
    pub fn accounted(&self) -> bool {
        self.seen
            == self.rejected
                + self.rate_skipped
                + self.low_quality
                + self.gated
                + self.dropped
                + self.scored
                + self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts, sums and the maximum of recorded samples. Fails if `record` dropped the sample or
    /// one of its counters, or if `count`, `total` or `max` returned a constant.
    #[test]
    fn a_histogram_counts_sums_and_keeps_the_maximum() {
        let mut h = Histogram::default();
        for us in [3, 10_000, 250] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 3);
        assert_eq!(h.total(), Duration::from_micros(10_253));
        assert_eq!(h.max(), Duration::from_millis(10));
    }

    /// A quantile is the sample's value rounded up to its bucket's upper edge: never below the
    /// true quantile, at most 19 % above it, and never above the maximum. 100 samples: 50 of
    /// 100 µs, 49 of 1 ms, one of 50 ms. Fails if the bucket index, the rank, the running count,
    /// its comparison or the edge changed, or if an empty histogram's guard was inverted.
    #[test]
    fn quantiles_round_up_to_their_bucket_by_at_most_19_percent() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        for (us, n) in [(100u64, 50), (1_000, 49), (50_000, 1)] {
            for _ in 0..n {
                h.record(Duration::from_micros(us));
            }
        }
        let within = |q: f64, true_us: u64| {
            let got = h.quantile(q).as_micros() as u64;
            assert!(
                true_us <= got && got * 100 <= true_us * 119,
                "q {q}: {got} us for {true_us} us"
            );
        };
        within(0.0, 100);
        within(0.5, 100);
        within(0.51, 1_000);
        within(0.98, 1_000);
        assert_eq!(h.quantile(1.0), Duration::from_millis(50));
    }

    /// `accounted` holds when every frame seen is in exactly one of the seven outcome counters,
    /// whichever it is, and fails when one is missing or counted twice. Fails if a counter left
    /// the sum, a `+` became `-`, or the `==` was inverted.
    #[test]
    fn every_outcome_counter_takes_part_in_the_accounting() {
        let outcomes: [fn(&mut Metrics) -> &mut u64; 7] = [
            |m| &mut m.rejected,
            |m| &mut m.rate_skipped,
            |m| &mut m.low_quality,
            |m| &mut m.gated,
            |m| &mut m.dropped,
            |m| &mut m.scored,
            |m| &mut m.failed,
        ];
        assert!(Metrics::default().accounted());
        for (i, counter) in outcomes.iter().enumerate() {
            let mut m = Metrics {
                seen: 3,
                ..Metrics::default()
            };
            *counter(&mut m) = 2;
            *outcomes[(i + 1) % 7](&mut m) = 1;
            assert!(m.accounted(), "counter {i}");
            m.seen = 2;
            assert!(!m.accounted(), "counter {i} seen 2");
            m.seen = 4;
            assert!(!m.accounted(), "counter {i} seen 4");
        }
    }
}

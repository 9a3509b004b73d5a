//! Segment-level matching of predicted segments against ground truth, for
//! one label.
//!
//! Times are microseconds; an [`Interval`] is half-open, `[start_us,
//! end_us)`. Inputs are grouped by stream ([`StreamSegments`]); intervals of
//! different streams never match. The caller runs one evaluation per label.
//!
//! Matching rule: a prediction *matches* a truth interval when
//! `overlap / truth duration >= min_overlap`, with `0 < min_overlap <= 1`,
//! and the overlap is strictly positive (so touching intervals such as
//! `[0, 10)` and `[10, 20)` never match, however small `min_overlap` is).
//! A zero-length interval contains no time: a zero-length truth is never
//! matched (it still counts in recall), a zero-length prediction matches
//! nothing and counts as a false flag.
//!
//! Reported figures:
//!
//! - precision: predictions matching at least one truth / predictions;
//! - recall: truths matched by at least one prediction / truths;
//! - fragmentation: mean number of matching predictions per matched truth;
//! - detection latency, per matched truth: start of the earliest-starting
//!   matching prediction minus the truth's start, *saturating at 0* when
//!   that prediction opened before the truth;
//! - latency median and p95 by nearest rank ([`nearest_rank_percentile`]);
//! - false flags: predictions that overlap no truth at all (a prediction
//!   that overlaps a truth too little to match is neither a match nor a
//!   false flag), and their rate per stream-hour of clean duration
//!   ([`SegmentReport::false_flag_rate`]).
//!
//! Cost: for each truth, every prediction starting before the truth's end is
//! examined, i.e. `O(truths * predictions)` per stream at worst.

use crate::eval::error::MetricError;
use crate::eval::poisson::{false_flag_rate, FalseFlagRate};

/// A half-open time interval `[start_us, end_us)` in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// First microsecond inside the interval.
    pub start_us: u64,
    /// First microsecond after the interval.
    pub end_us: u64,
}

impl Interval {
    /// Builds `[start_us, end_us)`.
    pub fn new(start_us: u64, end_us: u64) -> Self {
        Interval { start_us, end_us }
    }

    /// Length in microseconds (0 for an inverted interval).
    pub fn duration_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }

    /// Length of the intersection with `other`, in microseconds.
    pub fn overlap_us(&self, other: &Interval) -> u64 {
        self.end_us
            .min(other.end_us)
            .saturating_sub(self.start_us.max(other.start_us))
    }
}

/// Ground truth and predictions of one stream, for one label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSegments {
    /// Ground-truth intervals, in any order.
    pub truths: Vec<Interval>,
    /// Predicted segments, in any order; they may overlap each other.
    pub predictions: Vec<Interval>,
}

/// Segment-level figures over all streams; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentReport {
    /// Number of truth intervals.
    pub truths: u64,
    /// Number of predicted segments.
    pub predictions: u64,
    /// Truths matched by at least one prediction.
    pub matched_truths: u64,
    /// Predictions matching at least one truth.
    pub matched_predictions: u64,
    /// `matched_predictions / predictions`; `None` without predictions.
    pub precision: Option<f64>,
    /// `matched_truths / truths`; `None` without truths.
    pub recall: Option<f64>,
    /// Mean number of matching predictions per matched truth; `None`
    /// without matched truths.
    pub fragmentation: Option<f64>,
    /// Detection latency of each matched truth, ascending, in microseconds
    /// (0 when the prediction opened before the truth).
    pub latencies_us: Vec<u64>,
    /// Nearest-rank median (50th percentile) latency; `None` without
    /// matched truths.
    pub latency_median_us: Option<u64>,
    /// Nearest-rank 95th percentile latency; `None` without matched truths.
    pub latency_p95_us: Option<u64>,
    /// Predictions that overlap no truth at all.
    pub false_flags: u64,
}

impl SegmentReport {
    /// False flags per hour of `clean_duration_us` (the stream time free of
    /// this label's truth), with a Garwood interval at `confidence`.
    ///
    /// Errors: as [`false_flag_rate`].
    pub fn false_flag_rate(
        &self,
        clean_duration_us: u64,
        confidence: f64,
    ) -> Result<FalseFlagRate, MetricError> {
        false_flag_rate(self.false_flags, clean_duration_us, confidence)
    }
}

/// The value at nearest rank `ceil(percent / 100 * n)` (1-based, at least
/// 1) of the `n` values sorted ascending.
///
/// The result is always one of the values, never an interpolation; the
/// 50th percentile of an even count is the lower of the two middle values.
/// E.g. for `1..=20`: p50 is 10, p95 is 19, p100 is 20. `values` may be in
/// any order. Ranks within `1e-9` above an integer are taken as that integer,
/// so `percent * n / 100` landing on an integer is not pushed up by
/// rounding.
///
/// Errors: [`MetricError::EmptyInput`] for no values,
/// [`MetricError::OutOfRange`] for `percent` outside `(0, 100]`.
pub fn nearest_rank_percentile(values: &[u64], percent: f64) -> Result<u64, MetricError> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(MetricError::OutOfRange {
            parameter: "percent",
            expected: "a percentage in (0, 100]",
        });
    }
    if values.is_empty() {
        return Err(MetricError::EmptyInput { what: "values" });
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    Ok(sorted[rank_index(sorted.len(), percent)])
}

/// 0-based index of the nearest rank; `n > 0`, `percent` in `(0, 100]`.
fn rank_index(n: usize, percent: f64) -> usize {
    let rank = (percent * n as f64 / 100.0 - 1e-9).ceil() as usize;
    rank.clamp(1, n) - 1
}

fn check_intervals(
    intervals: &[Interval],
    what: &'static str,
    stream: usize,
) -> Result<(), MetricError> {
    match intervals.iter().position(|i| i.end_us < i.start_us) {
        Some(index) => Err(MetricError::InvertedInterval {
            what,
            stream: Some(stream),
            index,
        }),
        None => Ok(()),
    }
}

/// Checks `min_overlap` against `(0, 1]`.
pub(crate) fn check_min_overlap(min_overlap: f64) -> Result<(), MetricError> {
    if min_overlap > 0.0 && min_overlap <= 1.0 {
        Ok(())
    } else {
        Err(MetricError::OutOfRange {
            parameter: "min_overlap",
            expected: "a fraction of the truth duration in (0, 1]",
        })
    }
}

/// Matches predictions against truths in every stream and reports the
/// figures described in the module docs.
///
/// Errors: [`MetricError::OutOfRange`] for `min_overlap` outside `(0, 1]`,
/// [`MetricError::InvertedInterval`] for an interval with `end < start`.
pub fn evaluate_segments(
    streams: &[StreamSegments],
    min_overlap: f64,
) -> Result<SegmentReport, MetricError> {
    check_min_overlap(min_overlap)?;
    for (s, stream) in streams.iter().enumerate() {
        check_intervals(&stream.truths, "truth", s)?;
        check_intervals(&stream.predictions, "prediction", s)?;
    }
    let (mut truths, mut predictions) = (0u64, 0u64);
    let (mut matched_truths, mut matched_predictions) = (0u64, 0u64);
    let (mut matching_pairs, mut false_flags) = (0u64, 0u64);
    let mut latencies_us = Vec::new();
    for stream in streams {
        let mut preds = stream.predictions.clone();
        preds.sort_unstable();
        let mut pred_matches = vec![false; preds.len()];
        let mut pred_touches = vec![false; preds.len()];
        for truth in &stream.truths {
            let duration = truth.duration_us() as f64;
            let before_end = preds.partition_point(|p| p.start_us < truth.end_us);
            let mut first_start: Option<u64> = None;
            for (j, pred) in preds[..before_end].iter().enumerate() {
                let overlap = truth.overlap_us(pred);
                if overlap == 0 {
                    continue;
                }
                pred_touches[j] = true;
                // overlap > 0 implies duration > 0.
                if overlap as f64 / duration >= min_overlap {
                    pred_matches[j] = true;
                    matching_pairs += 1;
                    // Sorted by start: the first match starts earliest.
                    first_start.get_or_insert(pred.start_us);
                }
            }
            if let Some(start) = first_start {
                matched_truths += 1;
                latencies_us.push(start.saturating_sub(truth.start_us));
            }
        }
        truths += stream.truths.len() as u64;
        predictions += preds.len() as u64;
        matched_predictions += pred_matches.iter().filter(|&&m| m).count() as u64;
        false_flags += pred_touches.iter().filter(|&&t| !t).count() as u64;
    }
    latencies_us.sort_unstable();
    let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    let percentile = |p: f64| {
        (!latencies_us.is_empty()).then(|| latencies_us[rank_index(latencies_us.len(), p)])
    };
    Ok(SegmentReport {
        truths,
        predictions,
        matched_truths,
        matched_predictions,
        precision: ratio(matched_predictions, predictions),
        recall: ratio(matched_truths, truths),
        fragmentation: ratio(matching_pairs, matched_truths),
        latency_median_us: percentile(50.0),
        latency_p95_us: percentile(95.0),
        latencies_us,
        false_flags,
    })
}

#[cfg(test)]
mod tests;

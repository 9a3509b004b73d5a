//! Calibration of one label's scores: reliability diagram, expected and
//! maximum calibration error.
//!
//! Scores are read as probabilities. They are clamped into `[0, 1]` and put
//! into `bins` equal-width bins exactly as in
//! [`score_histograms`](crate::eval::curves::score_histograms): bin `i` of `n`
//! covers `[i/n, (i+1)/n)`, the last one also holds `1.0`. Mean scores use
//! the clamped values.

use crate::eval::curves::{bin_index, bin_range, check_bins, check_scores, clamp_unit};
use crate::eval::error::MetricError;

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliabilityBin {
    /// Lower edge of the bin.
    pub lower: f64,
    /// Upper edge of the bin.
    pub upper: f64,
    /// Frames whose score falls in the bin.
    pub count: u64,
    /// Mean score of those frames; `None` for an empty bin.
    pub mean_score: Option<f64>,
    /// Share of those frames that are positive; `None` for an empty bin.
    pub positive_rate: Option<f64>,
}

impl ReliabilityBin {
    /// `|mean_score - positive_rate|`; `None` for an empty bin.
    pub fn gap(&self) -> Option<f64> {
        Some((self.mean_score? - self.positive_rate?).abs())
    }
}

/// Reliability diagram with its summary errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// All bins, empty ones included, in ascending score order.
    pub bins: Vec<ReliabilityBin>,
    /// Expected calibration error: `sum_b (count_b / total) * gap_b` over
    /// non-empty bins.
    pub expected_calibration_error: f64,
    /// Maximum calibration error: the largest `gap_b` over non-empty bins.
    pub maximum_calibration_error: f64,
}

/// Reliability bins, ECE and MCE of `(score, positive)` frames.
///
/// Errors: [`MetricError::EmptyInput`] without frames,
/// [`MetricError::OutOfRange`] for `bins` outside `[1, MAX_BINS]` (see
/// [`MAX_BINS`](crate::eval::curves::MAX_BINS)),
/// [`MetricError::NonFiniteScore`].
pub fn calibration(pairs: &[(f32, bool)], bins: usize) -> Result<Calibration, MetricError> {
    check_bins(bins)?;
    if pairs.is_empty() {
        return Err(MetricError::EmptyInput { what: "frames" });
    }
    check_scores(pairs)?;
    let mut counts = vec![0u64; bins];
    let mut positives = vec![0u64; bins];
    let mut score_sums = vec![0.0f64; bins];
    for &(score, positive) in pairs {
        let clamped = clamp_unit(score);
        let bin = bin_index(clamped, bins);
        counts[bin] += 1;
        score_sums[bin] += clamped;
        if positive {
            positives[bin] += 1;
        }
    }
    let total = pairs.len() as f64;
    let mut ece = 0.0;
    let mut mce: f64 = 0.0;
    let mut out = Vec::with_capacity(bins);
    for bin in 0..bins {
        let (lower, upper) = bin_range(bin, bins).unwrap_or((0.0, 1.0));
        let count = counts[bin];
        let filled = count > 0;
        let entry = ReliabilityBin {
            lower,
            upper,
            count,
            mean_score: filled.then(|| score_sums[bin] / count as f64),
            positive_rate: filled.then(|| positives[bin] as f64 / count as f64),
        };
        if let Some(gap) = entry.gap() {
            ece += count as f64 / total * gap;
            mce = mce.max(gap);
        }
        out.push(entry);
    }
    Ok(Calibration {
        bins: out,
        expected_calibration_error: ece,
        maximum_calibration_error: mce,
    })
}

/// The bins of the reliability diagram; see [`calibration`].
pub fn reliability_bins(
    pairs: &[(f32, bool)],
    bins: usize,
) -> Result<Vec<ReliabilityBin>, MetricError> {
    Ok(calibration(pairs, bins)?.bins)
}

/// Expected calibration error with `bins` equal-width bins; see
/// [`calibration`].
pub fn expected_calibration_error(pairs: &[(f32, bool)], bins: usize) -> Result<f64, MetricError> {
    Ok(calibration(pairs, bins)?.expected_calibration_error)
}

/// Maximum calibration error with `bins` equal-width bins; see
/// [`calibration`].
pub fn maximum_calibration_error(pairs: &[(f32, bool)], bins: usize) -> Result<f64, MetricError> {
    Ok(calibration(pairs, bins)?.maximum_calibration_error)
}

#[cfg(test)]
mod tests;

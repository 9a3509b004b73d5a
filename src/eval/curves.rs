//! Frame-level ranking metrics for one label.
//!
//! Every function takes the frames of a single label as `(score, positive)`
//! pairs, `positive` being the ground truth of that frame. The ranking
//! metrics only compare scores, so any finite `f32` is accepted; only
//! [`score_histograms`] clamps scores into `[0, 1]`. A NaN or infinite score
//! is refused with [`MetricError::NonFiniteScore`].
//!
//! A frame is predicted positive at threshold `t` when `score >= t`. Curves
//! have one point per *distinct* score, so tied frames always enter the
//! predicted set together (`-0.0` and `0.0` are the same score).

use std::cmp::Ordering;

use crate::eval::error::MetricError;

/// Largest number of bins accepted by [`score_histograms`] and by the
/// [`calibration`](crate::eval::calibration) functions.
///
/// The cap bounds allocations and keeps bin assignment exact: an `f32`
/// times an integer below 2^29 is computed without rounding in `f64`.
pub const MAX_BINS: usize = 1 << 20;

/// One point of a precision/recall curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrPoint {
    /// Frames with `score >= threshold` are predicted positive.
    pub threshold: f32,
    /// Positive frames predicted positive.
    pub true_positives: u64,
    /// Negative frames predicted positive.
    pub false_positives: u64,
    /// `true_positives / (true_positives + false_positives)`.
    pub precision: f64,
    /// `true_positives / positive frames`.
    pub recall: f64,
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    /// Frames with `score >= threshold` are predicted positive;
    /// `f32::INFINITY` for the origin, where nothing is.
    pub threshold: f32,
    /// Share of negative frames predicted positive.
    pub false_positive_rate: f64,
    /// Share of positive frames predicted positive.
    pub true_positive_rate: f64,
}

/// Score histograms of positive and negative frames over fixed bins.
///
/// Bin `i` of `n` covers `[i/n, (i+1)/n)`, the last bin also holds `1.0`.
/// Scores are clamped into `[0, 1]` first. Bins are assigned from the exact
/// `f32` value, so for instance `0.7_f32` (slightly below 0.7) falls in bin
/// 6 of 10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreHistograms {
    /// Frame counts per bin for positive frames.
    pub positives: Vec<u64>,
    /// Frame counts per bin for negative frames.
    pub negatives: Vec<u64>,
}

impl ScoreHistograms {
    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.positives.len()
    }

    /// Lower and upper edge of bin `bin` (`None` past the last bin).
    pub fn bin_range(&self, bin: usize) -> Option<(f64, f64)> {
        bin_range(bin, self.bins())
    }
}

/// Lower and upper edge of bin `bin` out of `bins` equal-width bins on `[0, 1]`.
pub(crate) fn bin_range(bin: usize, bins: usize) -> Option<(f64, f64)> {
    (bin < bins).then(|| (bin as f64 / bins as f64, (bin + 1) as f64 / bins as f64))
}

/// Checks a bin count against `[1, MAX_BINS]`.
pub(crate) fn check_bins(bins: usize) -> Result<(), MetricError> {
    if (1..=MAX_BINS).contains(&bins) {
        Ok(())
    } else {
        Err(MetricError::OutOfRange {
            parameter: "bins",
            expected: "an integer in [1, 1048576]",
        })
    }
}

/// Clamps a finite score into `[0, 1]`.
pub(crate) fn clamp_unit(score: f32) -> f64 {
    f64::from(score).clamp(0.0, 1.0)
}

/// Index of the equal-width bin holding a score already clamped to `[0, 1]`.
pub(crate) fn bin_index(clamped: f64, bins: usize) -> usize {
    // Exact for f32 inputs and bins <= MAX_BINS, see MAX_BINS.
    ((clamped * bins as f64).floor() as usize).min(bins - 1)
}

/// Refuses NaN and infinite scores.
pub(crate) fn check_scores(pairs: &[(f32, bool)]) -> Result<(), MetricError> {
    match pairs.iter().position(|(s, _)| !s.is_finite()) {
        Some(index) => Err(MetricError::NonFiniteScore {
            stream: None,
            index,
        }),
        None => Ok(()),
    }
}

/// Frames sharing one distinct score.
struct Group {
    score: f32,
    positives: u64,
    negatives: u64,
}

/// Distinct scores in descending order with their frame counts.
struct Ranked {
    groups: Vec<Group>,
    positives: u64,
    negatives: u64,
}

fn rank(pairs: &[(f32, bool)]) -> Result<Ranked, MetricError> {
    if pairs.is_empty() {
        return Err(MetricError::EmptyInput { what: "frames" });
    }
    check_scores(pairs)?;
    let mut sorted = pairs.to_vec();
    // All scores are finite here, so partial_cmp never fails; it also treats
    // -0.0 and 0.0 as equal, unlike total_cmp.
    sorted.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal));
    let mut groups: Vec<Group> = Vec::new();
    let (mut positives, mut negatives) = (0u64, 0u64);
    for (score, positive) in sorted {
        if !matches!(groups.last(), Some(g) if g.score == score) {
            groups.push(Group {
                // Adding 0.0 turns -0.0 into 0.0.
                score: score + 0.0,
                positives: 0,
                negatives: 0,
            });
        }
        if let Some(g) = groups.last_mut() {
            if positive {
                g.positives += 1;
                positives += 1;
            } else {
                g.negatives += 1;
                negatives += 1;
            }
        }
    }
    Ok(Ranked {
        groups,
        positives,
        negatives,
    })
}

/// Precision/recall curve: one point per distinct score, by descending
/// threshold.
///
/// Errors: [`MetricError::EmptyInput`] without frames or without positive
/// frames (recall is undefined), [`MetricError::NonFiniteScore`].
pub fn pr_curve(pairs: &[(f32, bool)]) -> Result<Vec<PrPoint>, MetricError> {
    let ranked = rank(pairs)?;
    if ranked.positives == 0 {
        return Err(MetricError::EmptyInput {
            what: "positive frames",
        });
    }
    let (mut tp, mut fp) = (0u64, 0u64);
    Ok(ranked
        .groups
        .iter()
        .map(|g| {
            tp += g.positives;
            fp += g.negatives;
            PrPoint {
                threshold: g.score,
                true_positives: tp,
                false_positives: fp,
                precision: tp as f64 / (tp + fp) as f64,
                recall: tp as f64 / ranked.positives as f64,
            }
        })
        .collect())
}

/// Step-wise average precision: `sum_i (R_i - R_{i-1}) * P_i` over the
/// points of [`pr_curve`], with `R_0 = 0`.
///
/// No interpolation: each recall increment is weighted by the precision at
/// the threshold where it happens. Within `[0, 1]`.
///
/// Errors: as [`pr_curve`].
pub fn average_precision(pairs: &[(f32, bool)]) -> Result<f64, MetricError> {
    let curve = pr_curve(pairs)?;
    let mut previous_recall = 0.0;
    let mut sum = 0.0;
    for point in &curve {
        sum += (point.recall - previous_recall) * point.precision;
        previous_recall = point.recall;
    }
    Ok(sum)
}

/// ROC curve: the origin (threshold `+inf`) then one point per distinct
/// score by descending threshold, ending at `(1, 1)`.
///
/// Errors: [`MetricError::EmptyInput`] without positive or without negative
/// frames, [`MetricError::NonFiniteScore`].
pub fn roc_curve(pairs: &[(f32, bool)]) -> Result<Vec<RocPoint>, MetricError> {
    let ranked = rank(pairs)?;
    check_both_classes(&ranked)?;
    let (p, n) = (ranked.positives as f64, ranked.negatives as f64);
    let mut points = Vec::with_capacity(ranked.groups.len() + 1);
    points.push(RocPoint {
        threshold: f32::INFINITY,
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    });
    let (mut tp, mut fp) = (0u64, 0u64);
    for g in &ranked.groups {
        tp += g.positives;
        fp += g.negatives;
        points.push(RocPoint {
            threshold: g.score,
            false_positive_rate: fp as f64 / n,
            true_positive_rate: tp as f64 / p,
        });
    }
    Ok(points)
}

fn check_both_classes(ranked: &Ranked) -> Result<(), MetricError> {
    if ranked.positives == 0 {
        return Err(MetricError::EmptyInput {
            what: "positive frames",
        });
    }
    if ranked.negatives == 0 {
        return Err(MetricError::EmptyInput {
            what: "negative frames",
        });
    }
    Ok(())
}

/// Area under the ROC curve from the Mann-Whitney U statistic.
///
/// `U` counts the (positive, negative) pairs where the positive scores
/// higher, a tie counting 1/2; `AUC = U / (positives * negatives)`. This is
/// the trapezoid area under [`roc_curve`]. The count is kept exact in
/// integers (as `2U`) before the single final division.
///
/// Errors: as [`roc_curve`].
pub fn roc_auc(pairs: &[(f32, bool)]) -> Result<f64, MetricError> {
    let ranked = rank(pairs)?;
    check_both_classes(&ranked)?;
    let mut negatives_above = 0u64;
    let mut twice_u: u128 = 0;
    for g in &ranked.groups {
        let negatives_below = ranked.negatives - negatives_above - g.negatives;
        twice_u += u128::from(g.positives) * u128::from(2 * negatives_below + g.negatives);
        negatives_above += g.negatives;
    }
    let pairs_total = 2 * u128::from(ranked.positives) * u128::from(ranked.negatives);
    Ok(twice_u as f64 / pairs_total as f64)
}

/// Histograms of positive and negative scores over `bins` equal-width bins
/// on `[0, 1]` (see [`ScoreHistograms`]). Empty input gives empty counts.
///
/// Errors: [`MetricError::OutOfRange`] for `bins` outside `[1, MAX_BINS]`,
/// [`MetricError::NonFiniteScore`].
pub fn score_histograms(
    pairs: &[(f32, bool)],
    bins: usize,
) -> Result<ScoreHistograms, MetricError> {
    check_bins(bins)?;
    check_scores(pairs)?;
    let mut hist = ScoreHistograms {
        positives: vec![0; bins],
        negatives: vec![0; bins],
    };
    for &(score, positive) in pairs {
        let bin = bin_index(clamp_unit(score), bins);
        if positive {
            hist.positives[bin] += 1;
        } else {
            hist.negatives[bin] += 1;
        }
    }
    Ok(hist)
}

#[cfg(test)]
mod tests;

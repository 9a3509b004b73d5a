//! Threshold sweep over a simplified hysteresis segmenter, to propose
//! `(enter, exit)` thresholds for one label.
//!
//! The segmenter here ([`Hysteresis`]) is a small *approximation* of the
//! runtime's segmenter, used only to propose values; the real engine must
//! verify the chosen pair afterwards.
//!
//! Frames: each stream is a sequence of [`Frame`]s with strictly increasing
//! timestamps. Frame `i` covers `[t_i, t_{i+1})`; the last frame covers
//! `[t_last, t_last + frame_duration_us)`. Ground-truth intervals are the
//! maximal runs of frames with `truth == true`, and the clean duration is
//! the total coverage of frames with `truth == false`.
//!
//! Grid: thresholds are the multiples `k * step` in `(0, 1]` (`k >= 1`),
//! rounded to the nearest `f32` so that they compare with `f32` scores as
//! the same decimal literal would (`0.9` enters at a score of `0.9_f32`).
//! Every pair with `exit <= enter` is evaluated with
//! [`evaluate_segments`].
//!
//! Choice: among pairs whose segment recall reaches `target_recall`, the
//! one with the fewest false flags; ties go to the higher `enter`, then the
//! higher `exit`.

use std::cmp::Ordering;

use crate::eval::error::MetricError;
use crate::eval::poisson::MICROS_PER_HOUR;
use crate::eval::segments::{
    check_min_overlap, evaluate_segments, Interval, SegmentReport, StreamSegments,
};

/// One scored frame of one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Start of the frame in microseconds.
    pub timestamp_us: u64,
    /// Score of the label for this frame.
    pub score: f32,
    /// Whether the label is present in the ground truth for this frame.
    pub truth: bool,
}

/// Simplified hysteresis segmenter.
///
/// A segment opens at the start of the first frame with `score >= enter`.
/// While open, a *quiet run* starts at the first frame with `score < exit`
/// and is cancelled by any frame with `score >= exit`; once a quiet run has
/// covered at least `min_off_us`, the segment closes at the start of that
/// run. A stream ending with an open segment closes it at the start of a
/// pending quiet run if there is one, else at the end of the last frame.
/// With `min_off_us == 0` a segment closes at the first quiet frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hysteresis {
    /// Opening threshold.
    pub enter: f32,
    /// Closing threshold, `exit <= enter`.
    pub exit: f32,
    /// Minimum quiet time before a segment closes, in microseconds.
    pub min_off_us: u64,
}

impl Hysteresis {
    /// Builds a segmenter after checking that both thresholds are finite and
    /// `exit <= enter`.
    ///
    /// Errors: [`MetricError::OutOfRange`] naming `enter` or `exit`.
    pub fn new(enter: f32, exit: f32, min_off_us: u64) -> Result<Self, MetricError> {
        if !enter.is_finite() {
            return Err(MetricError::OutOfRange {
                parameter: "enter",
                expected: "a finite threshold",
            });
        }
        if !(exit.is_finite() && exit <= enter) {
            return Err(MetricError::OutOfRange {
                parameter: "exit",
                expected: "a finite threshold not above `enter`",
            });
        }
        Ok(Hysteresis {
            enter,
            exit,
            min_off_us,
        })
    }

    /// Segments of one stream.
    ///
    /// Errors: [`MetricError::OutOfRange`] for a zero `frame_duration_us` or
    /// thresholds that [`Hysteresis::new`] would refuse,
    /// [`MetricError::NonFiniteScore`] and
    /// [`MetricError::UnorderedTimestamps`] (reported as stream 0).
    pub fn segment(
        &self,
        frames: &[Frame],
        frame_duration_us: u64,
    ) -> Result<Vec<Interval>, MetricError> {
        Hysteresis::new(self.enter, self.exit, self.min_off_us)?;
        check_frame_duration(frame_duration_us)?;
        check_stream(0, frames)?;
        Ok(self.segment_checked(frames, frame_duration_us))
    }

    fn segment_checked(&self, frames: &[Frame], frame_duration_us: u64) -> Vec<Interval> {
        let mut out = Vec::new();
        let mut open: Option<u64> = None;
        let mut quiet_since: Option<u64> = None;
        for (i, frame) in frames.iter().enumerate() {
            let end = frame_end(frames, i, frame_duration_us);
            match open {
                None => {
                    if frame.score >= self.enter {
                        open = Some(frame.timestamp_us);
                        quiet_since = None;
                    }
                }
                Some(start) => {
                    if frame.score < self.exit {
                        let quiet = *quiet_since.get_or_insert(frame.timestamp_us);
                        if end - quiet >= self.min_off_us {
                            out.push(Interval::new(start, quiet));
                            open = None;
                            quiet_since = None;
                        }
                    } else {
                        quiet_since = None;
                    }
                }
            }
        }
        if let Some(start) = open {
            let last = frames.len() - 1; // open implies at least one frame
            let end = quiet_since.unwrap_or_else(|| frame_end(frames, last, frame_duration_us));
            out.push(Interval::new(start, end));
        }
        out
    }
}

/// End of the coverage of frame `i`.
fn frame_end(frames: &[Frame], i: usize, frame_duration_us: u64) -> u64 {
    match frames.get(i + 1) {
        Some(next) => next.timestamp_us,
        None => frames[i].timestamp_us.saturating_add(frame_duration_us),
    }
}

fn check_frame_duration(frame_duration_us: u64) -> Result<(), MetricError> {
    if frame_duration_us == 0 {
        Err(MetricError::OutOfRange {
            parameter: "frame_duration_us",
            expected: "a positive duration",
        })
    } else {
        Ok(())
    }
}

fn check_stream(stream: usize, frames: &[Frame]) -> Result<(), MetricError> {
    if let Some(index) = frames.iter().position(|f| !f.score.is_finite()) {
        return Err(MetricError::NonFiniteScore {
            stream: Some(stream),
            index,
        });
    }
    if let Some(w) = frames
        .windows(2)
        .position(|w| w[1].timestamp_us <= w[0].timestamp_us)
    {
        return Err(MetricError::UnorderedTimestamps {
            stream,
            index: w + 1,
        });
    }
    Ok(())
}

/// Ground-truth intervals of one stream: maximal runs of truth frames.
pub fn truth_intervals(frames: &[Frame], frame_duration_us: u64) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    let mut run_start: Option<u64> = None;
    for (i, frame) in frames.iter().enumerate() {
        if frame.truth {
            let start = *run_start.get_or_insert(frame.timestamp_us);
            let next_is_truth = frames.get(i + 1).is_some_and(|f| f.truth);
            if !next_is_truth {
                out.push(Interval::new(
                    start,
                    frame_end(frames, i, frame_duration_us),
                ));
                run_start = None;
            }
        }
    }
    out
}

/// Total coverage of the frames of one stream without truth, in
/// microseconds.
pub fn clean_duration_us(frames: &[Frame], frame_duration_us: u64) -> u64 {
    (0..frames.len())
        .filter(|&i| !frames[i].truth)
        .map(|i| frame_end(frames, i, frame_duration_us) - frames[i].timestamp_us)
        .sum()
}

/// Parameters of [`sweep`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepConfig {
    /// Grid step, in `[0.001, 1]`, e.g. `0.05`.
    pub step: f64,
    /// Quiet time before a segment closes, see [`Hysteresis`].
    pub min_off_us: u64,
    /// Coverage of the last frame of each stream, positive.
    pub frame_duration_us: u64,
    /// Overlap threshold of the segment matching, in `(0, 1]`, see
    /// [`evaluate_segments`].
    pub min_overlap: f64,
    /// Segment recall the chosen pair must reach, in `[0, 1]`.
    pub target_recall: f64,
}

/// One evaluated `(enter, exit)` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    /// Opening threshold.
    pub enter: f32,
    /// Closing threshold.
    pub exit: f32,
    /// Segment figures of the segments this pair produces.
    pub report: SegmentReport,
    /// False flags per hour of clean duration; `None` when there is no clean
    /// duration.
    pub false_flags_per_hour: Option<f64>,
}

/// Outcome of [`sweep`].
#[derive(Debug, Clone, PartialEq)]
pub struct SweepResult {
    /// Every evaluated pair, by ascending `enter` then ascending `exit`.
    pub rows: Vec<SweepRow>,
    /// Index in `rows` of the chosen pair; `None` when no pair reaches the
    /// target recall.
    pub best: Option<usize>,
    /// Total clean duration over all streams, in microseconds.
    pub clean_duration_us: u64,
}

impl SweepResult {
    /// The chosen row, if any.
    pub fn best_row(&self) -> Option<&SweepRow> {
        self.best.map(|i| &self.rows[i])
    }
}

/// Grid thresholds `k * step` for `k >= 1` up to 1, as `f32`.
fn grid(step: f64) -> Vec<f32> {
    // The 1e-9 keeps e.g. 1 / 0.05 = 19.999... from losing the last point.
    let count = (1.0 / step + 1e-9).floor() as u64;
    (1..=count)
        .map(|k| (k as f64 * step).min(1.0) as f32)
        .collect()
}

/// Order of preference among rows meeting the target: fewer false flags,
/// then higher `enter`, then higher `exit`.
fn preference(a: &SweepRow, b: &SweepRow) -> Ordering {
    a.report
        .false_flags
        .cmp(&b.report.false_flags)
        .then(b.enter.total_cmp(&a.enter))
        .then(b.exit.total_cmp(&a.exit))
}

/// Evaluates every grid pair on `streams` and picks one; see the module
/// docs.
///
/// Errors: [`MetricError::OutOfRange`] for a parameter of `config` outside
/// its range, [`MetricError::EmptyInput`] when no frame has truth (recall
/// would be undefined), [`MetricError::NonFiniteScore`] and
/// [`MetricError::UnorderedTimestamps`] for a bad stream.
pub fn sweep<S: AsRef<[Frame]>>(
    streams: &[S],
    config: &SweepConfig,
) -> Result<SweepResult, MetricError> {
    if !(config.step >= 0.001 && config.step <= 1.0) {
        return Err(MetricError::OutOfRange {
            parameter: "step",
            expected: "a grid step in [0.001, 1]",
        });
    }
    if !(config.target_recall >= 0.0 && config.target_recall <= 1.0) {
        return Err(MetricError::OutOfRange {
            parameter: "target_recall",
            expected: "a fraction in [0, 1]",
        });
    }
    check_min_overlap(config.min_overlap)?;
    check_frame_duration(config.frame_duration_us)?;
    for (s, frames) in streams.iter().enumerate() {
        check_stream(s, frames.as_ref())?;
    }
    let truths: Vec<Vec<Interval>> = streams
        .iter()
        .map(|f| truth_intervals(f.as_ref(), config.frame_duration_us))
        .collect();
    if truths.iter().all(Vec::is_empty) {
        return Err(MetricError::EmptyInput {
            what: "truth frames",
        });
    }
    let clean: u64 = streams
        .iter()
        .map(|f| clean_duration_us(f.as_ref(), config.frame_duration_us))
        .sum();
    let thresholds = grid(config.step);
    let mut rows = Vec::new();
    for (e, &enter) in thresholds.iter().enumerate() {
        for &exit in &thresholds[..=e] {
            let model = Hysteresis {
                enter,
                exit,
                min_off_us: config.min_off_us,
            };
            let segments: Vec<StreamSegments> = streams
                .iter()
                .zip(&truths)
                .map(|(frames, truths)| StreamSegments {
                    truths: truths.clone(),
                    predictions: model.segment_checked(frames.as_ref(), config.frame_duration_us),
                })
                .collect();
            let report = evaluate_segments(&segments, config.min_overlap)?;
            let false_flags_per_hour =
                (clean > 0).then(|| report.false_flags as f64 / (clean as f64 / MICROS_PER_HOUR));
            rows.push(SweepRow {
                enter,
                exit,
                report,
                false_flags_per_hour,
            });
        }
    }
    let best = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.report.recall.is_some_and(|rc| rc >= config.target_recall))
        .min_by(|a, b| preference(a.1, b.1))
        .map(|(i, _)| i);
    Ok(SweepResult {
        rows,
        best,
        clean_duration_us: clean,
    })
}

#[cfg(test)]
mod tests;

//! Metrics for `prescreen eval`: how a model and a policy do against labelled data,
//! the way a safety team measures them.
//!
//! Standard library only. Every metric works on the data of one label; the
//! caller groups its frames and segments by label first.
//!
//! Module map:
//!
//! - [`curves`]: frame-level precision/recall and ROC curves, average
//!   precision, ROC AUC and score histograms.
//! - [`calibration`]: reliability diagram bins, expected and maximum
//!   calibration error.
//! - [`segments`]: matching predicted segments against ground-truth
//!   intervals: segment precision/recall, fragmentation, detection latency
//!   and false flags.
//! - [`poisson`]: exact (Garwood) confidence interval for a Poisson count,
//!   used for the false-flag rate.
//! - [`sweep`]: threshold sweep over a simplified hysteresis segmenter to
//!   propose `(enter, exit)` thresholds.
//! - [`compare`]: comparison of two sets of named figures (baseline and
//!   current run).
//! - [`error`]: the one error type, [`MetricError`].
//!
//! And the command around them (these do I/O):
//!
//! - [`set`]: the labelled-set format (`eval-set.toml`, per-label image folders, CSV manifests,
//!   streams with ground-truth intervals) and its validation.
//! - [`run`]: the set through the real engine and screener, then every metric above, into one
//!   [`report::EvalReport`]; the proposed policy file.
//! - [`report`]: the report (JSON) and its flat figures for `--baseline`.
//! - [`html`]: the report as one self-contained HTML page with inline SVG figures.
//! - [`generate`]: sets that can live here (`prescreen make-eval-set`).

pub mod calibration;
pub mod compare;
pub mod curves;
pub mod error;
pub mod generate;
pub mod html;
pub mod poisson;
pub mod report;
pub mod run;
pub mod segments;
pub mod set;
pub mod sweep;

pub use error::MetricError;

#[cfg(test)]
mod test_util;

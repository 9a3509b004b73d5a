//! What `prescreen eval` writes: one [`EvalReport`], as JSON for machines (`eval.json`) and drawn
//! as HTML for people (`eval.html`, [`super::html`]).
//!
//! The JSON is versioned ([`REPORT_FORMAT`], [`REPORT_VERSION`]); `--baseline` reads an earlier
//! one back and compares the flat list of figures from [`EvalReport::figures`]. Times are
//! microseconds of stream time unless a field name says otherwise. Scores are probabilities in
//! `[0, 1]`. No field holds pixels except the evidence thumbnails of [`Example`], which never
//! leave the machine the evaluation runs on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `format` field of every report.
pub const REPORT_FORMAT: &str = "prescreen-eval-report";
/// The `version` field this harness writes and reads.
pub const REPORT_VERSION: u32 = 1;

/// The result of one evaluation: a model and a policy against one labelled set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// Always [`REPORT_VERSION`] for reports this harness writes.
    pub version: u32,
    /// The model that scored the frames.
    pub model: ModelInfo,
    /// The policy the engine ran under.
    pub policy: PolicyInfo,
    /// The labelled set.
    pub set: SetInfo,
    /// The settings of the metrics.
    pub settings: Settings,
    /// One entry per label of the policy, in the policy's order.
    pub labels: Vec<LabelReport>,
    /// One entry per stream of the set, in the set's order.
    pub streams: Vec<StreamReport>,
    /// What screening cost.
    pub cost: Cost,
    /// The worst false flags and misses, worst first within each kind, with evidence.
    pub examples: Vec<Example>,
}

/// Which model ran.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Manifest id, e.g. `open_nsfw`.
    pub id: String,
    /// Manifest version.
    pub version: String,
    /// `float` or `int8`.
    pub variant: String,
    /// sha256 of the model file.
    pub sha256: String,
    /// The model's labels, in output order.
    pub labels: Vec<String>,
}

/// Which policy ran.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PolicyInfo {
    /// The policy file as given on the command line.
    pub path: String,
    /// The policy's `version` field.
    pub version: String,
    /// Per label of the policy: its `enter` and `exit` thresholds.
    pub thresholds: Vec<Thresholds>,
}

/// The hysteresis thresholds of one label.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    /// The label.
    pub label: String,
    /// A segment opens when the smoothed score reaches this.
    pub enter: f32,
    /// An open segment ends when the smoothed score falls below this.
    pub exit: f32,
}

/// Which labelled set was evaluated.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SetInfo {
    /// The set's path as given on the command line.
    pub path: String,
    /// Number of streams.
    pub streams: usize,
    /// Number of still images.
    pub images: usize,
}

/// The settings of the metrics, as given on the command line (or their defaults).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// A segment matches a ground-truth interval when it covers at least this fraction of it.
    pub min_overlap: f64,
    /// The recall the threshold sweep must reach.
    pub target_recall: f64,
    /// Bins of the reliability diagram and the score histograms.
    pub bins: usize,
    /// Step of the threshold sweep's grid.
    pub sweep_step: f64,
    /// Confidence of the false-flag rate's interval.
    pub confidence: f64,
}

/// Everything measured for one label.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LabelReport {
    /// The label.
    pub label: String,
    /// Frame level: every scored stream frame and every still image.
    pub frames: FrameFigures,
    /// Segment level: the engine's segments against the ground-truth intervals of the streams.
    pub segments: SegmentFigures,
    /// The threshold sweep's proposal; `None` when the set has no positive stream frame of this
    /// label or no threshold pair reaches the target recall.
    pub proposal: Option<Proposal>,
}

/// Frame-level figures of one label. A metric that needs both positives and negatives is `None`
/// when either is missing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FrameFigures {
    /// Frames (and images) whose ground truth has this label.
    pub positives: u64,
    /// Frames (and images) whose ground truth lacks it.
    pub negatives: u64,
    /// Area under the precision/recall curve (average precision).
    pub average_precision: Option<f64>,
    /// Area under the ROC curve.
    pub roc_auc: Option<f64>,
    /// Expected calibration error.
    pub expected_calibration_error: Option<f64>,
    /// Maximum calibration error.
    pub maximum_calibration_error: Option<f64>,
    /// Negatives scoring at or above the policy's `enter` threshold.
    pub negatives_at_enter: u64,
    /// `negatives_at_enter / negatives`: the per-frame false-flag rate at `enter`.
    pub false_flag_rate_at_enter: Option<f64>,
    /// Positives scoring below `enter`.
    pub positives_below_enter: u64,
    /// The precision/recall curve, one point per distinct score, thresholds descending.
    pub pr_curve: Vec<CurvePoint>,
    /// The ROC curve: `x` the false-positive rate, `y` the true-positive rate.
    pub roc_curve: Vec<CurvePoint>,
    /// The reliability diagram's bins, `settings.bins` equal-width bins over `[0, 1]`.
    pub reliability: Vec<ReliabilityBin>,
    /// Score histograms over the same bins: counts of positives.
    pub histogram_positives: Vec<u64>,
    /// Score histograms over the same bins: counts of negatives.
    pub histogram_negatives: Vec<u64>,
}

/// One point of a curve. For the PR curve `x` is recall and `y` precision; for the ROC curve `x`
/// is the false-positive rate and `y` the true-positive rate.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// The score threshold of this point (frames at or above it count as flagged); `None` for
    /// the curve's origin, a threshold above every score.
    pub threshold: Option<f32>,
    /// See the type's docs.
    pub x: f64,
    /// See the type's docs.
    pub y: f64,
}

/// One bin of the reliability diagram.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReliabilityBin {
    /// Lower edge (inclusive).
    pub lower: f64,
    /// Upper edge (exclusive, but 1.0 is in the last bin).
    pub upper: f64,
    /// Frames in the bin.
    pub count: u64,
    /// Mean score of the bin's frames; `None` when empty.
    pub mean_score: Option<f64>,
    /// Fraction of the bin's frames that are positives; `None` when empty.
    pub positive_rate: Option<f64>,
}

/// Segment-level figures of one label.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SegmentFigures {
    /// Ground-truth intervals.
    pub truths: u64,
    /// Segments the engine closed.
    pub segments: u64,
    /// Truths covered by at least one segment (by `min_overlap`).
    pub matched_truths: u64,
    /// Segments that match a truth.
    pub matched_segments: u64,
    /// `matched_segments / segments`.
    pub precision: Option<f64>,
    /// `matched_truths / truths`.
    pub recall: Option<f64>,
    /// Matching segments per matched truth (1.0: one segment each).
    pub fragmentation: Option<f64>,
    /// From each matched truth's start to the `SegmentOpened` of its first matching segment,
    /// in stream time (0 when it opened before the truth started): the median, in milliseconds.
    pub latency_median_ms: Option<f64>,
    /// The same, 95th percentile (nearest rank).
    pub latency_p95_ms: Option<f64>,
    /// Segments that overlap no truth at all.
    pub false_flags: u64,
    /// Hours of stream outside every truth interval of this label.
    pub clean_hours: f64,
    /// `false_flags / clean_hours`; `None` when there is no clean time.
    pub false_flags_per_hour: Option<f64>,
    /// Lower end of the exact Poisson interval of that rate (`settings.confidence`).
    pub false_flags_per_hour_lower: Option<f64>,
    /// Upper end of it.
    pub false_flags_per_hour_upper: Option<f64>,
}

/// The threshold sweep's proposal for one label, with what the sweep measured for it (replayed
/// over the scored frames with a hysteresis model of the segmenter) and, when the proposal was run
/// through the real engine again, what that run measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Proposal {
    /// Proposed `enter`.
    pub enter: f32,
    /// Proposed `exit`.
    pub exit: f32,
    /// Segment recall in the sweep's replay.
    pub replay_recall: f64,
    /// False flags in the sweep's replay.
    pub replay_false_flags: u64,
    /// Recall measured by the engine under the proposed policy.
    pub engine_recall: Option<f64>,
    /// False flags measured by the engine under the proposed policy.
    pub engine_false_flags: Option<u64>,
    /// False flags per clean stream-hour measured by the engine under the proposed policy.
    pub engine_false_flags_per_hour: Option<f64>,
}

/// One stream of the set: its ground truth, the engine's segments and the score trace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamReport {
    /// The stream's name in the set.
    pub name: String,
    /// From the first frame's timestamp to the last one's plus one frame duration.
    pub duration_us: i64,
    /// Frames submitted.
    pub frames_seen: u64,
    /// Frames scored.
    pub frames_scored: u64,
    /// Ground-truth intervals, relative to the first frame.
    pub truths: Vec<LabelledInterval>,
    /// The segments the engine closed, relative to the first frame.
    pub segments: Vec<PredictedSegment>,
    /// The scores of every scored frame, one trace per policy label.
    pub traces: Vec<ScoreTrace>,
}

/// A ground-truth interval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LabelledInterval {
    /// The label.
    pub label: String,
    /// Start, inclusive.
    pub start_us: i64,
    /// End, exclusive.
    pub end_us: i64,
}

/// A segment the engine closed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PredictedSegment {
    /// The label.
    pub label: String,
    /// Start (pre-roll included).
    pub start_us: i64,
    /// End (post-roll included).
    pub end_us: i64,
    /// Stream time of its `SegmentOpened` event.
    pub opened_us: i64,
    /// Peak smoothed score.
    pub peak: f32,
    /// Whether it overlaps a ground-truth interval of its label.
    pub matched: bool,
}

/// The scores of one label over a stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScoreTrace {
    /// The label.
    pub label: String,
    /// `(timestamp_us relative to the first frame, score)` of every scored frame.
    pub points: Vec<(i64, f32)>,
}

/// What screening the set cost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cost {
    /// Seconds of stream in the set.
    pub stream_seconds: f64,
    /// Stream frames submitted.
    pub frames_seen: u64,
    /// Stream frames scored.
    pub frames_scored: u64,
    /// `frames_scored / stream_seconds`.
    pub frames_scored_per_stream_second: Option<f64>,
    /// Engine CPU time (submit, preprocessing and inference) per second of stream, in
    /// milliseconds. Machine-dependent: compare it only between runs on one machine.
    pub engine_ms_per_stream_second: Option<f64>,
    /// Still images scored.
    pub images_scored: u64,
    /// Stream frames the policy's quality gate skipped (too blurred or too small to judge).
    #[serde(default)]
    pub frames_low_quality: u64,
    /// Still images the quality gate skipped: counted as scored 0 for every label, as the
    /// engine never flags a frame it skips.
    #[serde(default)]
    pub images_low_quality: u64,
}

/// The kind of an [`Example`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKind {
    /// A segment that overlaps no ground truth of its label.
    FalseFlag,
    /// A ground-truth interval no segment matched.
    Miss,
    /// A clean still image scoring at or above `enter`.
    FlaggedImage,
    /// A positive still image scoring below `enter`.
    MissedImage,
}

/// One false flag or miss, for people to look at.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Example {
    /// What went wrong.
    pub kind: ExampleKind,
    /// The label.
    pub label: String,
    /// The stream or image name in the set.
    pub source: String,
    /// Start of the segment or interval (0 for images).
    pub start_us: i64,
    /// End of the segment or interval (0 for images).
    pub end_us: i64,
    /// The score that makes it bad: a false flag's peak, a miss's highest score in the interval,
    /// an image's score.
    pub score: f32,
    /// A JPEG thumbnail, base64, when one was kept.
    pub thumbnail_jpeg_base64: Option<String>,
}

impl EvalReport {
    /// The report's figures by name, flat, for `--baseline` comparisons: per label
    /// `<label>.frame.*` and `<label>.segment.*`, and `cost.*`. Figures that are `None` are left
    /// out (the comparison lists them as present on one side only).
    pub fn figures(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let mut put = |name: String, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                out.insert(name, v);
            }
        };
        for l in &self.labels {
            let f = &l.frames;
            let p = |s: &str| format!("{}.frame.{s}", l.label);
            put(p("average_precision"), f.average_precision);
            put(p("roc_auc"), f.roc_auc);
            put(
                p("expected_calibration_error"),
                f.expected_calibration_error,
            );
            put(p("false_flag_rate_at_enter"), f.false_flag_rate_at_enter);
            put(p("positives"), Some(f.positives as f64));
            put(p("negatives"), Some(f.negatives as f64));
            let s = &l.segments;
            let p = |n: &str| format!("{}.segment.{n}", l.label);
            put(p("precision"), s.precision);
            put(p("recall"), s.recall);
            put(p("fragmentation"), s.fragmentation);
            put(p("latency_median_ms"), s.latency_median_ms);
            put(p("latency_p95_ms"), s.latency_p95_ms);
            put(p("false_flags"), Some(s.false_flags as f64));
            put(p("false_flags_per_hour"), s.false_flags_per_hour);
        }
        let c = &self.cost;
        put(
            "cost.frames_scored_per_stream_second".into(),
            c.frames_scored_per_stream_second,
        );
        put(
            "cost.engine_ms_per_stream_second".into(),
            c.engine_ms_per_stream_second,
        );
        out
    }
}

/// The largest report `--baseline` reads.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// Why a report could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read (missing, not a regular file, larger than
    /// [`MAX_REPORT_BYTES`]).
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON of the report's shape.
    #[error("{path} is not a prescreen eval report: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A report of another format or version.
    #[error("{path} is a {format:?} report of version {version}; this harness reads {REPORT_FORMAT:?} version {REPORT_VERSION}")]
    Version {
        /// The file.
        path: String,
        /// Its `format`.
        format: String,
        /// Its `version`.
        version: u32,
    },
}

impl EvalReport {
    /// Reads a report written by `prescreen eval` (for `--baseline`).
    pub fn read(path: &std::path::Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let bytes =
            prescreen_runtime::files::read_regular(path, MAX_REPORT_BYTES).map_err(|source| {
                ReadError::Io {
                    path: name.clone(),
                    source,
                }
            })?;
        // The envelope first, so a report of another version gets the clearer error.
        #[derive(Deserialize)]
        struct Envelope {
            format: String,
            version: u32,
        }
        let parse = |e: serde_json::Error| ReadError::Parse {
            path: name.clone(),
            message: e.to_string(),
        };
        let envelope: Envelope = serde_json::from_slice(&bytes).map_err(parse)?;
        if envelope.format != REPORT_FORMAT || envelope.version != REPORT_VERSION {
            return Err(ReadError::Version {
                path: name,
                format: envelope.format,
                version: envelope.version,
            });
        }
        serde_json::from_slice(&bytes).map_err(parse)
    }
}

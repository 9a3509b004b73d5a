//! Screening policy: what counts as flagged, how segments are shaped, how often to score.
//!
//! A policy is a product decision, versioned on its own and kept apart from the model manifest
//! (models change less often than policies). It is read from TOML; see `models/policies/`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Policy schema version this runtime reads.
pub const SCHEMA: u32 = 1;

/// Longest segment shaping time (`min_duration_ms`, `pre_roll_ms`, `post_roll_ms`,
/// `merge_gap_ms`): one hour.
pub const MAX_SEGMENT_MS: u64 = 3_600_000;
/// Lowest base sampling rate: one frame every ten seconds. Below it a stream is not screened.
pub const MIN_BASE_FPS: f64 = 0.1;
/// Highest sampling rate.
pub const MAX_FPS: f64 = 1000.0;
/// Longest a scene gate may skip frames: one minute.
pub const MAX_GATE_INTERVAL_MS: u64 = 60_000;
/// Longest side of an evidence thumbnail, in pixels (at least 16).
pub const MAX_THUMBNAIL_SIZE: u32 = 512;
/// Longest policy version, in characters.
pub const MAX_VERSION_CHARS: usize = 128;
/// Highest `quality.min_sharpness`. A picture with any sharp edge measures at least about 1/8
/// ([`crate::stream::sampling::Quality`]) and sharp photographs measured 0.06 to 0.24; above this bound a
/// policy would skip sharp frames as blurred, switching screening off for them.
pub const MAX_MIN_SHARPNESS: f32 = 0.05;
/// Highest `quality.min_side`, in pixels: below QVGA's 240 lines, so no camera stream is skipped
/// whole as too small.
pub const MAX_MIN_SIDE: u32 = 200;

/// A parsed and checked policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Schema version, must be [`SCHEMA`].
    pub schema: u32,
    /// Version of this policy, reported with every segment.
    pub version: String,
    /// Thresholds per label, at least one; labels not listed are never flagged. Every label must
    /// be one of the model's ([`Policy::check_labels`], checked when an engine starts).
    #[serde(default)]
    pub labels: BTreeMap<String, LabelPolicy>,
    /// Score smoothing.
    pub smoothing: Smoothing,
    /// Segment shaping.
    pub segments: Segments,
    /// How often frames are scored.
    pub sampling: Sampling,
    /// Skipping frames that show the same scene.
    pub scene_gate: SceneGate,
    /// Skipping frames too blurred or too small to judge. Optional: without it, every frame is
    /// judged whatever its focus.
    #[serde(default)]
    pub quality: QualityGate,
    /// Evidence kept per segment.
    pub evidence: Evidence,
}

/// Hysteresis thresholds of one label, and the moderation category its segments report.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPolicy {
    /// A segment starts when the smoothed score reaches this.
    pub enter: f32,
    /// An open segment ends when the smoothed score falls below this.
    pub exit: f32,
    /// Scores at or above this (and below `enter`) are uncertain: sampling bursts.
    pub watch: f32,
    /// The top-level category this label's segments belong to, reported with each (a server
    /// built for Rekognition reads it as the label's `ParentName`). Optional: without it, reports
    /// of this label carry no category.
    #[serde(default)]
    pub category: Option<Category>,
}

/// A top-level moderation category: Amazon Rekognition's level-1 taxonomy of content moderation
/// (version 7), by its exact names, so that a policy maps any model's labels onto the categories
/// servers and review tools already use (`runtime/schema/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    /// Explicit nudity and sexual activity (`"Explicit"`).
    #[serde(rename = "Explicit")]
    Explicit,
    /// Non-explicit and implied nudity, kissing (`"Non-Explicit Nudity of Intimate parts and
    /// Kissing"`).
    #[serde(rename = "Non-Explicit Nudity of Intimate parts and Kissing")]
    NonExplicitNudity,
    /// Swimwear and underwear (`"Swimwear or Underwear"`).
    #[serde(rename = "Swimwear or Underwear")]
    SwimwearOrUnderwear,
    /// Weapons, fighting, blood (`"Violence"`).
    #[serde(rename = "Violence")]
    Violence,
    /// Gore, corpses, crashes (`"Visually Disturbing"`).
    #[serde(rename = "Visually Disturbing")]
    VisuallyDisturbing,
    /// Drugs, pills, smoking (`"Drugs & Tobacco"`).
    #[serde(rename = "Drugs & Tobacco")]
    DrugsAndTobacco,
    /// Alcoholic drinks and drinking (`"Alcohol"`).
    #[serde(rename = "Alcohol")]
    Alcohol,
    /// Offensive gestures (`"Rude Gestures"`).
    #[serde(rename = "Rude Gestures")]
    RudeGestures,
    /// Gambling (`"Gambling"`).
    #[serde(rename = "Gambling")]
    Gambling,
    /// Hate symbols (`"Hate Symbols"`).
    #[serde(rename = "Hate Symbols")]
    HateSymbols,
}

impl Category {
    /// Every category, in Rekognition's order.
    pub const ALL: [Category; 10] = [
        Category::Explicit,
        Category::NonExplicitNudity,
        Category::SwimwearOrUnderwear,
        Category::Violence,
        Category::VisuallyDisturbing,
        Category::DrugsAndTobacco,
        Category::Alcohol,
        Category::RudeGestures,
        Category::Gambling,
        Category::HateSymbols,
    ];

    /// The category's name as Rekognition writes it (and policies and reports do).
    pub fn name(self) -> &'static str {
        match self {
            Category::Explicit => "Explicit",
            Category::NonExplicitNudity => "Non-Explicit Nudity of Intimate parts and Kissing",
            Category::SwimwearOrUnderwear => "Swimwear or Underwear",
            Category::Violence => "Violence",
            Category::VisuallyDisturbing => "Visually Disturbing",
            Category::DrugsAndTobacco => "Drugs & Tobacco",
            Category::Alcohol => "Alcohol",
            Category::RudeGestures => "Rude Gestures",
            Category::Gambling => "Gambling",
            Category::HateSymbols => "Hate Symbols",
        }
    }

    /// The category named `name` (exactly as [`Category::name`] writes it).
    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Score smoothing.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoothing {
    /// Moving average over this many scored frames (1 = no smoothing).
    pub window: usize,
}

/// Segment shaping, in milliseconds, each at most [`MAX_SEGMENT_MS`].
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segments {
    /// A run above `enter` must last this long to open a segment.
    pub min_duration_ms: u64,
    /// The segment starts this long before the run.
    pub pre_roll_ms: u64,
    /// The segment ends this long after the last frame above `exit`.
    pub post_roll_ms: u64,
    /// Runs separated by less than this are one segment.
    pub merge_gap_ms: u64,
}

/// Scoring rates, in frames per second: [`MIN_BASE_FPS`] <= `base_fps` <= `burst_fps` <=
/// [`MAX_FPS`].
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Normal rate.
    pub base_fps: f64,
    /// Rate while any label is uncertain or a segment is open.
    pub burst_fps: f64,
}

/// The scene-change gate. It applies only while sampling is at the base rate: while a label is
/// uncertain or a segment is forming or open, every due frame is scored.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneGate {
    /// Whether frames may be skipped as unchanged.
    pub enabled: bool,
    /// Mean absolute difference of the luma signatures (0..=1) under which a frame is unchanged.
    pub threshold: f32,
    /// Never skip for longer than this (1..=[`MAX_GATE_INTERVAL_MS`]).
    pub max_interval_ms: u64,
}

/// The frame-quality gate: frames too blurred or too small to judge are never scored, so they
/// neither open nor extend a segment (counted in [`crate::stream::engine::Metrics::low_quality`]). It
/// applies at every sampling rate. Out-of-focus frames are not evidence: a camera focusing, a fast
/// pan or a shaking hand blur a benign picture into one a model may misread.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityGate {
    /// Whether frames may be skipped for their quality.
    pub enabled: bool,
    /// Frames whose sharpness ([`crate::stream::sampling::Quality::sharpness`]) is below this are skipped,
    /// 0..=[`MAX_MIN_SHARPNESS`].
    #[serde(default)]
    pub min_sharpness: f32,
    /// Frames whose shorter side has fewer pixels than this are skipped, 0..=[`MAX_MIN_SIDE`].
    #[serde(default)]
    pub min_side: u32,
}

/// Evidence thumbnails kept per segment.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Number of frames kept (the highest-scoring ones), at most
    /// [`crate::reporting::report::MAX_EVIDENCE`] (what a report may carry).
    pub thumbnails: usize,
    /// Longer side of a thumbnail, in pixels (16..=[`MAX_THUMBNAIL_SIZE`]).
    pub size: u32,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::files::read_regular_text(path, crate::manifest::MAX_TEXT_BYTES).map_err(
            |e| Error::Policy {
                path: path.to_path_buf(),
                reason: format!("cannot read: {e}"),
            },
        )?;
        Self::parse(&text).map_err(|reason| Error::Policy {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if p.schema != SCHEMA {
            return Err(format!(
                "schema {} is not supported (this runtime reads {SCHEMA})",
                p.schema
            ));
        }
        let version_chars = p.version.chars().count();
        if version_chars == 0
            || version_chars > MAX_VERSION_CHARS
            || p.version.chars().any(char::is_control)
        {
            return Err(format!(
                "version must have 1 to {MAX_VERSION_CHARS} printable characters"
            ));
        }
        if p.labels.is_empty() {
            return Err("no label to flag: a policy without labels would screen nothing".into());
        }
        for (label, l) in &p.labels {
            let ok = (0.0..=1.0).contains(&l.exit)
                && (0.0..=1.0).contains(&l.enter)
                && l.exit <= l.enter
                && l.watch <= l.enter
                && l.watch >= 0.0;
            if !ok {
                return Err(format!(
                    "label {label}: need 0 <= watch, exit <= enter <= 1"
                ));
            }
        }
        if p.smoothing.window == 0 || p.smoothing.window > 1000 {
            return Err("smoothing window must be 1..=1000 frames".into());
        }
        let g = p.segments;
        for (name, ms) in [
            ("min_duration_ms", g.min_duration_ms),
            ("pre_roll_ms", g.pre_roll_ms),
            ("post_roll_ms", g.post_roll_ms),
            ("merge_gap_ms", g.merge_gap_ms),
        ] {
            if ms > MAX_SEGMENT_MS {
                return Err(format!(
                    "segments.{name} = {ms} is more than {MAX_SEGMENT_MS} (one hour)"
                ));
            }
        }
        let s = p.sampling;
        if !(s.base_fps >= MIN_BASE_FPS && s.burst_fps >= s.base_fps && s.burst_fps <= MAX_FPS) {
            return Err(format!(
                "sampling needs {MIN_BASE_FPS} <= base_fps <= burst_fps <= {MAX_FPS}"
            ));
        }
        if !(0.0..=1.0).contains(&p.scene_gate.threshold) {
            return Err("scene_gate.threshold must be within 0..=1".into());
        }
        if !(1..=MAX_GATE_INTERVAL_MS).contains(&p.scene_gate.max_interval_ms) {
            return Err(format!(
                "scene_gate.max_interval_ms must be within 1..={MAX_GATE_INTERVAL_MS}"
            ));
        }
        let q = p.quality;
        if !(0.0..=MAX_MIN_SHARPNESS).contains(&q.min_sharpness) {
            return Err(format!(
                "quality.min_sharpness must be within 0..={MAX_MIN_SHARPNESS}: above it sharp frames \
                 would be skipped as blurred"
            ));
        }
        if q.min_side > MAX_MIN_SIDE {
            return Err(format!(
                "quality.min_side must be at most {MAX_MIN_SIDE} pixels: above it whole camera \
                 streams would be skipped as too small"
            ));
        }
        let e = p.evidence;
        if e.jpeg_quality == 0 || e.jpeg_quality > 100 {
            return Err("evidence.jpeg_quality must be within 1..=100".into());
        }
        if !(16..=MAX_THUMBNAIL_SIZE).contains(&e.size) {
            return Err(format!(
                "evidence.size must be within 16..={MAX_THUMBNAIL_SIZE} pixels"
            ));
        }
        if e.thumbnails > crate::reporting::report::MAX_EVIDENCE {
            return Err(format!(
                "evidence.thumbnails must be at most {} (what a report carries)",
                crate::reporting::report::MAX_EVIDENCE
            ));
        }
        Ok(p)
    }

    /// The category of each of `labels` (a model's, in score order) under this policy: `None`
    /// for a label it does not flag or flags without a category.
    pub fn categories(&self, labels: &[String]) -> Vec<Option<Category>> {
        labels
            .iter()
            .map(|l| self.labels.get(l).and_then(|p| p.category))
            .collect()
    }

    /// Checks that every label this policy flags is one of the model's `labels`. A label the
    /// model does not have would never be flagged: screening for it would be silently off.
    pub fn check_labels(&self, model: &str, labels: &[String]) -> Result<()> {
        match self.labels.keys().find(|l| !labels.contains(l)) {
            None => Ok(()),
            Some(label) => Err(Error::PolicyLabel {
                policy_version: self.version.clone(),
                label: label.clone(),
                model: model.to_string(),
                labels: labels.to_vec(),
            }),
        }
    }
}

//! Screening policy: what counts as flagged, how segments are shaped, how often to score.
//!
//! A policy is a product decision, versioned on its own and kept apart from the model manifest
//! (models change less often than policies). It is read from TOML; see `models/policies/`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Policy schema version this runtime reads.
pub const SCHEMA: u32 = 1;

/// A parsed and checked policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Schema version, must be [`SCHEMA`].
    pub schema: u32,
    /// Version of this policy, reported with every segment.
    pub version: String,
    /// Thresholds per label; labels not listed are never flagged.
    pub labels: BTreeMap<String, LabelPolicy>,
    /// Score smoothing.
    pub smoothing: Smoothing,
    /// Segment shaping.
    pub segments: Segments,
    /// How often frames are scored.
    pub sampling: Sampling,
    /// Skipping frames that show the same scene.
    pub scene_gate: SceneGate,
    /// Evidence kept per segment.
    pub evidence: Evidence,
}

/// Hysteresis thresholds of one label.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPolicy {
    /// A segment starts when the smoothed score reaches this.
    pub enter: f32,
    /// An open segment ends when the smoothed score falls below this.
    pub exit: f32,
    /// Scores at or above this (and below `enter`) are uncertain: sampling bursts.
    pub watch: f32,
}

/// Score smoothing.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoothing {
    /// Moving average over this many scored frames (1 = no smoothing).
    pub window: usize,
}

/// Segment shaping, in milliseconds.
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

/// Scoring rates, in frames per second.
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
    /// Never skip for longer than this.
    pub max_interval_ms: u64,
}

/// Evidence thumbnails kept per segment.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Number of frames kept (the highest-scoring ones).
    pub thumbnails: usize,
    /// Longer side of a thumbnail, in pixels.
    pub size: u32,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Policy {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
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
        let s = p.sampling;
        if !(s.base_fps > 0.0 && s.burst_fps >= s.base_fps && s.burst_fps <= 1000.0) {
            return Err("sampling needs 0 < base_fps <= burst_fps <= 1000".into());
        }
        if !(0.0..=1.0).contains(&p.scene_gate.threshold) {
            return Err("scene_gate.threshold must be within 0..=1".into());
        }
        if p.evidence.jpeg_quality == 0 || p.evidence.jpeg_quality > 100 || p.evidence.size == 0 {
            return Err("evidence needs 1..=100 JPEG quality and a non-zero size".into());
        }
        Ok(p)
    }
}

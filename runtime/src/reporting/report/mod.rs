//! Segment reports: what leaves the device for a closed flagged segment, and nothing else.
//!
//! A [`Report`] is versioned JSON ([`SCHEMA_ID`]); its JSON Schema is [`JSON_SCHEMA`]
//! (`runtime/schema/segment-report-v1.schema.json`) and each field is described in
//! `runtime/schema/README.md`, with its mapping onto AWS Rekognition's content-moderation segment
//! output. Times are milliseconds from the stream's first scored frame, as Rekognition's are from
//! the start of a video.
//!
//! The report id is derived from the stream id, the label, the segment's sequence number and its
//! start, so the same segment always gets the same id: it is the upload's idempotency key and the
//! outbox's file name, and the server deduplicates by it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::inference::model::Model;
use crate::policy::{Category, Policy};
use crate::stream::engine::Thumbnail;
use crate::stream::segmenter::Segment;

/// The `schema` value of every report this runtime writes.
pub const SCHEMA_ID: &str = "prescreen.segment-report/1";

/// The JSON Schema (draft 2020-12) reports are validated against.
pub const JSON_SCHEMA: &str = include_str!("../../../schema/segment-report-v1.schema.json");

/// Most characters in a report's `stream_id` (the schema's `maxLength`).
pub const MAX_STREAM_ID_CHARS: usize = 256;
/// Most characters in a report's `label` (the schema's `maxLength`).
pub const MAX_LABEL_CHARS: usize = 256;
/// Most characters in a report's `device_class` (the schema's `maxLength`).
pub const MAX_DEVICE_CLASS_CHARS: usize = 64;
/// Most evidence frames in a report (the schema's `maxItems`).
pub const MAX_EVIDENCE: usize = 64;
/// Longest side of an evidence thumbnail, in pixels (the schema's `maximum`).
pub const MAX_THUMBNAIL_SIDE: u32 = 4096;

/// Largest report accepted when parsing (a report with three thumbnails is ~40 KB).
pub const MAX_REPORT_BYTES: usize = 16 << 20;

/// One closed flagged segment, as sent to the server. Field names follow Rekognition's
/// `ContentModerationDetection` in snake_case; see `runtime/schema/README.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`SCHEMA_ID`].
    pub schema: String,
    /// Stable id, 32 lowercase hex digits: the idempotency key.
    pub report_id: String,
    /// The host's opaque id of the stream (never a user identifier).
    pub stream_id: String,
    /// Wall-clock time the report was made, milliseconds since the Unix epoch.
    pub created_unix_millis: u64,
    /// The label flagged (Rekognition `ModerationLabel.Name`).
    pub label: String,
    /// The label's top-level moderation category under the policy (Rekognition
    /// `ModerationLabel.ParentName`); absent when the policy gives the label none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Peak score as a percentage, 0..=100 (Rekognition `ModerationLabel.Confidence`).
    pub confidence: f32,
    /// When the score crossed the enter threshold (Rekognition `Timestamp`).
    pub timestamp: u64,
    /// Segment start, pre-roll included (Rekognition `StartTimestampMillis`).
    pub start_timestamp_millis: u64,
    /// Segment end, post-roll included (Rekognition `EndTimestampMillis`).
    pub end_timestamp_millis: u64,
    /// End minus start (Rekognition `DurationMillis`).
    pub duration_millis: u64,
    /// Highest smoothed score, 0..=1.
    pub peak_score: f32,
    /// When the peak was scored.
    pub peak_timestamp_millis: u64,
    /// Mean smoothed score over the frames scored inside the segment.
    pub mean_score: f32,
    /// Frames scored inside the segment.
    pub frames_scored: u32,
    /// The camera timestamp (microseconds) that the `*_millis` times count from.
    pub stream_origin_us: i64,
    /// The model that scored the frames.
    pub model: ModelInfo,
    /// The policy's version.
    pub policy_version: String,
    /// prescreen runtime version.
    pub runtime_version: String,
    /// Coarse device class (OS and CPU family, or what the host sets); no device identifier.
    pub device_class: String,
    /// The best frames, highest score first.
    pub evidence: Vec<Evidence>,
    /// Thumbnails removed by the outbox's disk budget (their metadata stays in `evidence`).
    pub thumbnails_dropped: u32,
}

/// The model that produced a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Manifest id.
    pub id: String,
    /// Manifest version.
    pub version: String,
    /// `float` or `int8`.
    pub variant: String,
    /// sha256 of the model file.
    pub sha256: String,
}

/// One evidence frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// When the frame was scored.
    pub timestamp_millis: u64,
    /// Its smoothed score, 0..=1.
    pub score: f32,
    /// Thumbnail width in pixels (upright).
    pub width: u32,
    /// Thumbnail height in pixels.
    pub height: u32,
    /// The thumbnail as base64 JPEG; absent once dropped by the disk budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_base64: Option<String>,
}

impl Report {
    /// The report as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and numbers cannot fail; NaN scores are mapped to
        // null by serde_json and then refused by `from_json`, never written silently as valid.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a report (schema id, id format, ranges).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(Error::Report(format!(
                "{} bytes is more than the {MAX_REPORT_BYTES} a report may have",
                bytes.len()
            )));
        }
        let r: Report = serde_json::from_slice(bytes)
            .map_err(|e| Error::Report(format!("not a report: {e}")))?;
        r.check().map_err(Error::Report)?;
        Ok(r)
    }

    /// Checks every limit of the report's JSON Schema ([`JSON_SCHEMA`]), and the consistency of
    /// its times: a report that passes is one the schema accepts (a property test holds the two
    /// together), so the runtime never stores a report its receiver would dead-letter.
    fn check(&self) -> std::result::Result<(), String> {
        if self.schema != SCHEMA_ID {
            return Err(format!("schema {:?}, expected {SCHEMA_ID:?}", self.schema));
        }
        check_id(&self.report_id).map_err(|e| e.to_string())?;
        // JSON Schema's `maxLength` counts characters (code points), not bytes.
        let chars = |s: &str| s.chars().count();
        let within = |what: &str, s: &str, min: usize, max: usize| {
            let n = chars(s);
            if (min..=max).contains(&n) {
                Ok(())
            } else {
                Err(format!(
                    "{what} has {n} characters, the schema allows {min} to {max}"
                ))
            }
        };
        within("stream_id", &self.stream_id, 0, MAX_STREAM_ID_CHARS)?;
        within("label", &self.label, 1, MAX_LABEL_CHARS)?;
        within(
            "device_class",
            &self.device_class,
            0,
            MAX_DEVICE_CLASS_CHARS,
        )?;
        within("model.id", &self.model.id, 1, usize::MAX)?;
        if !matches!(self.model.variant.as_str(), "float" | "int8") {
            return Err("model.variant must be float or int8".into());
        }
        if self.model.sha256.len() != 64
            || !self.model.sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err("model.sha256 must be 64 hex digits".into());
        }
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        if !unit(self.peak_score)
            || !unit(self.mean_score)
            || !(0.0..=100.0).contains(&self.confidence)
        {
            return Err("scores out of range".into());
        }
        if self.end_timestamp_millis < self.start_timestamp_millis
            || self.duration_millis != self.end_timestamp_millis - self.start_timestamp_millis
        {
            return Err("segment times are inconsistent".into());
        }
        if self.evidence.len() > MAX_EVIDENCE {
            return Err(format!(
                "{} evidence frames, the schema allows {MAX_EVIDENCE}",
                self.evidence.len()
            ));
        }
        if self.evidence.iter().any(|e| !unit(e.score)) {
            return Err("evidence score out of range".into());
        }
        if self
            .evidence
            .iter()
            .any(|e| e.width > MAX_THUMBNAIL_SIDE || e.height > MAX_THUMBNAIL_SIDE)
        {
            return Err(format!(
                "evidence thumbnails are at most {MAX_THUMBNAIL_SIDE} pixels a side"
            ));
        }
        Ok(())
    }

    /// Number of evidence thumbnails still carried.
    pub fn thumbnails(&self) -> usize {
        self.evidence
            .iter()
            .filter(|e| e.jpeg_base64.is_some())
            .count()
    }

    /// Removes every thumbnail (the outbox's disk budget); returns how many were removed.
    pub fn drop_thumbnails(&mut self) -> usize {
        let n = self.thumbnails();
        for e in &mut self.evidence {
            e.jpeg_base64 = None;
        }
        self.thumbnails_dropped += n as u32;
        n
    }

    /// The JPEG bytes of evidence `i`, decoded from base64.
    pub fn jpeg(&self, i: usize) -> Option<Vec<u8>> {
        let b64 = self.evidence.get(i)?.jpeg_base64.as_ref()?;
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    }
}

/// Checks that `id` is a report id: 32 lowercase hex digits.
pub fn check_id(id: &str) -> Result<()> {
    let ok = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        // Ids come from hosts and files: show at most a short, printable prefix.
        let shown: String = id.chars().filter(|c| !c.is_control()).take(40).collect();
        Err(Error::BadReportId(shown))
    }
}

/// The stable id of a segment's report.
pub fn report_id(stream_id: &str, label: &str, segment_id: u64, start_us: i64) -> String {
    let mut h = Sha256::new();
    for part in [stream_id.as_bytes(), label.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(segment_id.to_le_bytes());
    h.update(start_us.to_le_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The coarse device class of this build: OS and CPU family.
pub fn default_device_class() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// Everything about a stream that its reports repeat: made once per stream, then
/// [`ReportContext::build`] turns each closed segment into a report.
#[derive(Clone, Debug)]
pub struct ReportContext {
    /// The host's opaque stream id.
    pub stream_id: String,
    /// The model.
    pub model: ModelInfo,
    /// The policy's version.
    pub policy_version: String,
    /// Device class reported (default: [`default_device_class`]).
    pub device_class: String,
    /// JPEG quality of the thumbnails, 1..=100 (from the policy).
    pub jpeg_quality: u8,
    /// The category of each label the policy gives one (reported with the label's segments).
    pub categories: std::collections::BTreeMap<String, Category>,
}

impl ReportContext {
    /// The context of a stream screened by `model` under `policy`.
    pub fn new(stream_id: impl Into<String>, model: &Model, policy: &Policy) -> Self {
        let m = model.manifest();
        Self {
            stream_id: stream_id.into(),
            model: ModelInfo {
                id: m.id.clone(),
                version: m.version.clone(),
                variant: model.variant().to_string(),
                sha256: model.sha256().to_string(),
            },
            policy_version: policy.version.clone(),
            device_class: default_device_class(),
            jpeg_quality: policy.evidence.jpeg_quality,
            categories: policy
                .labels
                .iter()
                .filter_map(|(label, p)| Some((label.clone(), p.category?)))
                .collect(),
        }
    }

    /// Checks what the context puts in every report against the schema's limits: the stream id
    /// (at most [`MAX_STREAM_ID_CHARS`]), the device class (at most [`MAX_DEVICE_CLASS_CHARS`]),
    /// the model id and variant. Hosts call it once when a stream starts, so that no report of
    /// the stream is refused later.
    pub fn check(&self) -> Result<()> {
        let refuse = |what: &str, max: usize, s: &str| {
            Error::InvalidArgument(format!(
                "{what} has {} characters; a report allows {max}",
                s.chars().count()
            ))
        };
        if self.stream_id.chars().count() > MAX_STREAM_ID_CHARS {
            return Err(refuse(
                "the stream id",
                MAX_STREAM_ID_CHARS,
                &self.stream_id,
            ));
        }
        if self.device_class.chars().count() > MAX_DEVICE_CLASS_CHARS {
            return Err(refuse(
                "the device class",
                MAX_DEVICE_CLASS_CHARS,
                &self.device_class,
            ));
        }
        if self.model.id.is_empty() || !matches!(self.model.variant.as_str(), "float" | "int8") {
            return Err(Error::InvalidArgument(
                "a report's model needs an id and a float or int8 variant".into(),
            ));
        }
        Ok(())
    }

    /// The report of a closed segment, its thumbnails encoded as JPEG. `created_unix_millis` is
    /// the wall-clock time (taken by the caller, so this stays free of clocks).
    pub fn build(
        &self,
        segment: &Segment,
        thumbnails: &[Thumbnail],
        created_unix_millis: u64,
    ) -> Result<Report> {
        let origin = segment.stream_start_us;
        let ms = |t_us: i64| (t_us.saturating_sub(origin).max(0) / 1000) as u64;
        let (start, end) = (
            ms(segment.start_us),
            ms(segment.end_us).max(ms(segment.start_us)),
        );
        let evidence = segment
            .evidence
            .iter()
            .map(|&(t, score)| {
                let thumb = thumbnails.iter().find(|th| th.timestamp_us == t);
                Ok(Evidence {
                    timestamp_millis: ms(t),
                    score: score.clamp(0.0, 1.0),
                    width: thumb.map_or(0, |th| th.width),
                    height: thumb.map_or(0, |th| th.height),
                    jpeg_base64: thumb
                        .map(|th| encode_jpeg(th, self.jpeg_quality))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let peak = segment.peak.clamp(0.0, 1.0);
        let report = Report {
            schema: SCHEMA_ID.into(),
            report_id: report_id(
                &self.stream_id,
                &segment.label,
                segment.id,
                segment.start_us,
            ),
            stream_id: self.stream_id.clone(),
            created_unix_millis,
            label: segment.label.to_string(),
            category: self.categories.get(&*segment.label).copied(),
            confidence: peak * 100.0,
            timestamp: ms(segment.crossed_us),
            start_timestamp_millis: start,
            end_timestamp_millis: end,
            duration_millis: end - start,
            peak_score: peak,
            peak_timestamp_millis: ms(segment.peak_us),
            mean_score: segment.mean.clamp(0.0, 1.0),
            frames_scored: segment.frames_scored,
            stream_origin_us: origin,
            model: self.model.clone(),
            policy_version: self.policy_version.clone(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            device_class: self.device_class.clone(),
            evidence,
            thumbnails_dropped: 0,
        };
        report.check().map_err(Error::Report)?;
        Ok(report)
    }
}

fn encode_jpeg(thumb: &Thumbnail, quality: u8) -> Result<String> {
    let expected = thumb.width as usize * thumb.height as usize * 3;
    if thumb.rgb.len() != expected || expected == 0 {
        return Err(Error::Report(format!(
            "thumbnail {}x{} has {} bytes, expected {expected}",
            thumb.width,
            thumb.height,
            thumb.rgb.len()
        )));
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality.clamp(1, 100))
        .encode(
            &thumb.rgb,
            thumb.width,
            thumb.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Report(format!("JPEG encoding failed: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(jpeg))
}

/// Milliseconds since the Unix epoch, from the system clock (0 if it is before 1970).
pub fn now_unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Fixtures shared by the tests of the modules that store and send reports (outbox, upload).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{ModelInfo, ReportContext};
    use crate::stream::segmenter::Segment;

    /// The context of stream `stream-1`, model `test` and policy `p1`.
    pub(crate) fn context() -> ReportContext {
        ReportContext {
            stream_id: "stream-1".into(),
            model: ModelInfo {
                id: "test".into(),
                version: "1".into(),
                variant: "float".into(),
                sha256: "0".repeat(64),
            },
            policy_version: "p1".into(),
            device_class: "test".into(),
            jpeg_quality: 80,
            categories: Default::default(),
        }
    }

    /// Closed `nsfw` segment `n` (from `n` x 10 s, 2 s long) with `evidence` evidence frames, at
    /// least one, 100 ms apart from its peak on.
    pub(crate) fn segment(n: u64, evidence: usize) -> Segment {
        let s = n as i64 * 10_000_000;
        Segment {
            id: n,
            label: "nsfw".into(),
            stream_start_us: 0,
            start_us: s,
            end_us: s + 2_000_000,
            crossed_us: s + 500_000,
            peak: 0.9,
            peak_us: s + 1_000_000,
            mean: 0.8,
            frames_scored: 10,
            evidence: (0..evidence.max(1) as i64)
                .map(|k| (s + 1_000_000 + k * 100_000, 0.9))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;

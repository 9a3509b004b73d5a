//! The host-facing side of a [`Session`]: the flat types and the one submit entry the Android
//! (JNI) and iOS (UniFFI) bindings share, so that each binding only converts these to JNI arrays
//! or UniFFI records and the two cannot drift apart.
//!
//! Here, once: the event a host receives ([`HostEvent`], with the numeric [`EventKind`] the JNI
//! side passes), the metrics with their quantiles chosen ([`MetricsSummary`], with the order of its
//! flat array), the frame a host describes ([`HostFrame`]: format, planes, strides and
//! [`FrameMeta`]) and how it is submitted ([`Session::submit_host`]), and the numeric codes of
//! every enum a binding passes as a number ([`BACKENDS`], [`VARIANTS`], ...; a code is the index
//! in its table). [`host_constants`] lists every such number, so a binding's test can check its
//! own copies against them.

use crate::error::{Error, Result};
use crate::frame::{ColorMatrix, ColorRange, Frame, FrameError, PixelFormat, Plane};
use crate::manifest::Variant;
use crate::preprocess::backend::{ActiveBackend, Backend};
use crate::reporting::outbox::OutboxEvent;
use crate::stream::engine::{CameraBuffer, Submitted};
use crate::stream::segmenter::{Segment, SegmentEvent};

use super::{Session, SessionEvent, SessionMetrics};

/// Backends by code (Kotlin's `Backend` ordinals), with their host names.
pub const BACKENDS: [(&str, Backend); 3] = [
    ("AUTO", Backend::Auto),
    ("GPU", Backend::Gpu),
    ("CPU", Backend::Cpu),
];

/// Model variants by code (Kotlin's `ModelVariant` ordinals).
pub const VARIANTS: [(&str, Variant); 2] = [("FLOAT", Variant::Float), ("INT8", Variant::Int8)];

/// Colour matrices by code (Kotlin's `ColorMatrix` ordinals).
pub const COLOR_MATRICES: [(&str, ColorMatrix); 2] =
    [("BT601", ColorMatrix::Bt601), ("BT709", ColorMatrix::Bt709)];

/// Colour ranges by code (Kotlin's `ColorRange` ordinals).
pub const COLOR_RANGES: [(&str, ColorRange); 2] =
    [("LIMITED", ColorRange::Limited), ("FULL", ColorRange::Full)];

/// Active backends by code, as [`MetricsSummary::to_array`] writes them (-1: none yet).
pub const ACTIVE_BACKENDS: [(&str, ActiveBackend); 2] =
    [("CPU", ActiveBackend::Cpu), ("GPU", ActiveBackend::Gpu)];

fn by_code<T: Copy>(table: &[(&str, T)], code: i64) -> Option<T> {
    usize::try_from(code)
        .ok()
        .and_then(|i| table.get(i))
        .map(|(_, value)| *value)
}

fn code_of<T: PartialEq>(table: &[(&str, T)], value: &T) -> i64 {
    table
        .iter()
        .position(|(_, v)| v == value)
        .map_or(-1, |i| i as i64)
}

/// The backend of a code ([`BACKENDS`]); an unknown code is an invalid argument.
pub fn backend_from_code(code: i64) -> Result<Backend> {
    by_code(&BACKENDS, code)
        .ok_or_else(|| Error::InvalidArgument(format!("backend code {code} is out of range")))
}

/// The model variant of a code ([`VARIANTS`]); an unknown code is an invalid argument.
pub fn variant_from_code(code: i64) -> Result<Variant> {
    by_code(&VARIANTS, code)
        .ok_or_else(|| Error::InvalidArgument(format!("model variant code {code} is out of range")))
}

/// The colour matrix of a code ([`COLOR_MATRICES`]); an unknown code makes the frame invalid.
pub fn color_matrix_from_code(code: i64) -> std::result::Result<ColorMatrix, FrameError> {
    by_code(&COLOR_MATRICES, code).ok_or(FrameError::OutOfRange {
        what: "colour matrix code",
        value: code,
    })
}

/// The colour range of a code ([`COLOR_RANGES`]); an unknown code makes the frame invalid.
pub fn color_range_from_code(code: i64) -> std::result::Result<ColorRange, FrameError> {
    by_code(&COLOR_RANGES, code).ok_or(FrameError::OutOfRange {
        what: "colour range code",
        value: code,
    })
}

/// What is common to every submitted frame: time, orientation and colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Monotonic timestamp in microseconds.
    pub timestamp_us: i64,
    /// The clockwise rotation that makes the frame upright, in degrees (0, 90, 180, 270; also
    /// -90 or 360 style values, taken modulo 360).
    pub rotation_degrees: i64,
    /// Mirror horizontally after rotating (front camera).
    pub mirror: bool,
    /// The Y'CbCr matrix (YUV formats only).
    pub color_matrix: ColorMatrix,
    /// The sample range (YUV formats only).
    pub color_range: ColorRange,
}

impl FrameMeta {
    /// The frame with this time, orientation and colour; a rotation that is not a multiple of 90
    /// degrees is [`FrameError::OutOfRange`].
    pub fn apply<'a>(&self, frame: Frame<'a>) -> std::result::Result<Frame<'a>, FrameError> {
        Ok(frame
            .with_color(self.color_matrix, self.color_range)
            .with_orientation(FrameError::rotation(self.rotation_degrees)?, self.mirror)
            .with_timestamp_us(self.timestamp_us))
    }
}

/// One plane as a host passes it: bytes and strides as signed numbers (JNI has no unsigned
/// integers), checked when the frame is built.
#[derive(Clone, Copy, Debug)]
pub struct HostPlane<'a> {
    /// The plane's bytes, from its first sample to the end of the buffer.
    pub data: &'a [u8],
    /// Bytes from one row to the next.
    pub row_stride: i64,
    /// Bytes from one sample to the next within a row.
    pub pixel_stride: i64,
}

impl<'a> HostPlane<'a> {
    /// A plane whose samples are adjacent (pixel stride 1).
    pub fn new(data: &'a [u8], row_stride: i64) -> Self {
        Self {
            data,
            row_stride,
            pixel_stride: 1,
        }
    }

    fn plane(self, what: &'static str) -> std::result::Result<Plane<'a>, FrameError> {
        Ok(Plane::with_pixel_stride(
            self.data,
            FrameError::non_negative(what, self.row_stride)?,
            FrameError::non_negative(what, self.pixel_stride)?,
        ))
    }
}

/// The pixel layouts hosts submit.
#[derive(Clone, Copy, Debug)]
pub enum HostPixels<'a> {
    /// Android's `YUV_420_888`: three planes, chroma with any row and pixel stride.
    Yuv420 {
        /// Luma.
        y: HostPlane<'a>,
        /// Cb.
        u: HostPlane<'a>,
        /// Cr.
        v: HostPlane<'a>,
    },
    /// NV12 (iOS bi-planar): a Y plane and an interleaved CbCr plane.
    Nv12 {
        /// Luma.
        y: HostPlane<'a>,
        /// Interleaved Cb, Cr.
        uv: HostPlane<'a>,
    },
    /// NV21 tightly packed in one buffer (Camera1 previews): `width * height` luma bytes, then
    /// interleaved Cr, Cb rows of `width` rounded up to even bytes.
    Nv21Packed(&'a [u8]),
    /// A packed RGB-family format ([`PixelFormat::Bgra8`], [`PixelFormat::Rgba8`], ...).
    Packed {
        /// The format.
        format: PixelFormat,
        /// The single plane.
        plane: HostPlane<'a>,
    },
}

/// A frame as a host describes it: size, pixels and [`FrameMeta`]. Sizes are signed (as JNI passes
/// them) and checked by [`HostFrame::build`].
#[derive(Clone, Copy, Debug)]
pub struct HostFrame<'a> {
    /// Width in pixels.
    pub width: i64,
    /// Height in pixels.
    pub height: i64,
    /// The planes.
    pub pixels: HostPixels<'a>,
    /// Time, orientation and colour.
    pub meta: FrameMeta,
}

impl<'a> HostFrame<'a> {
    /// The runtime frame: sizes and strides checked, every plane bounds-checked against its
    /// bytes, the meta applied.
    pub fn build(&self) -> std::result::Result<Frame<'a>, FrameError> {
        // Sizes beyond u32 are clamped; the frame's own validation rejects absurd ones.
        let dim = |what, v| FrameError::non_negative(what, v).map(|v| v.min(u32::MAX as usize));
        let (w, h) = (dim("width", self.width)?, dim("height", self.height)?);
        let (w32, h32) = (w as u32, h as u32);
        let frame = match self.pixels {
            HostPixels::Yuv420 { y, u, v } => Frame::yuv420(
                w32,
                h32,
                y.plane("Y row or pixel stride")?,
                u.plane("U row or pixel stride")?,
                v.plane("V row or pixel stride")?,
            )?,
            HostPixels::Nv12 { y, uv } => Frame::nv12(
                w32,
                h32,
                y.plane("Y row stride")?,
                uv.plane("chroma row stride")?,
            )?,
            HostPixels::Nv21Packed(bytes) => {
                // Saturating: on 32-bit ABIs an absurd size must reach the frame's own size check.
                let luma = w.saturating_mul(h).min(bytes.len());
                Frame::nv21(
                    w32,
                    h32,
                    Plane::new(&bytes[..luma], w),
                    Plane::new(&bytes[luma..], w.div_ceil(2) * 2),
                )?
            }
            HostPixels::Packed { format, plane } => {
                let plane = plane.plane("row stride")?;
                Frame::packed(format, w32, h32, plane.data, plane.row_stride)?
            }
        };
        self.meta.apply(frame)
    }
}

/// What happened to a frame a host submitted, when it was not an error (Kotlin's `SubmitResult`
/// ordinals are the codes, [`SubmitOutcome::ALL`] order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Taken for scoring.
    Accepted,
    /// Taken for scoring; a frame still waiting was dropped for it.
    AcceptedDroppingPrevious,
    /// Not due at the policy's sampling rate.
    SkippedRate,
    /// Same scene as the last scored frame.
    SkippedGate,
    /// Too blurred or too small to judge.
    SkippedQuality,
}

impl SubmitOutcome {
    /// Every outcome with its host name, by code.
    pub const ALL: [(&'static str, SubmitOutcome); 5] = [
        ("ACCEPTED", Self::Accepted),
        ("ACCEPTED_DROPPING_PREVIOUS", Self::AcceptedDroppingPrevious),
        ("SKIPPED_RATE", Self::SkippedRate),
        ("SKIPPED_GATE", Self::SkippedGate),
        ("SKIPPED_QUALITY", Self::SkippedQuality),
    ];

    /// The outcome's code (its index in [`SubmitOutcome::ALL`]).
    pub fn code(self) -> i32 {
        code_of(&Self::ALL, &self) as i32
    }
}

/// A host frame lent to a session with [`Session::lend_host`]: the frame's description, whose
/// bytes the host keeps readable and unchanged until `lease` drops, and the lease, whose `Drop` is
/// the host's release (close the Android `Image`, unlock and release the `CVPixelBuffer`).
///
/// The session drops it exactly once, on whichever thread is done with it last: at once when the
/// frame is not taken (skipped, malformed, the session closed), on the submitting thread when a
/// newer frame replaces it while it waits, or on the worker thread after the frame is scored
/// (see [`CameraBuffer`]). The lease is dropped after the last read of the planes.
pub struct LentFrame<L: Send + 'static> {
    frame: HostFrame<'static>,
    _lease: L,
}

impl<L: Send + 'static> LentFrame<L> {
    /// Pairs a frame with the lease that keeps its bytes alive.
    ///
    /// # Safety
    /// Every byte the planes of `frame` refer to must stay readable, and must not be written, until
    /// `lease` is dropped: `'static` here stands for "until the lease drops", which the binding
    /// guarantees (a `CVPixelBuffer` locked until released, an `Image` open until closed).
    pub unsafe fn new(frame: HostFrame<'static>, lease: L) -> Self {
        Self {
            frame,
            _lease: lease,
        }
    }
}

impl<L: Send + 'static> std::fmt::Debug for LentFrame<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LentFrame")
            .field("width", &self.frame.width)
            .field("height", &self.frame.height)
            .finish_non_exhaustive()
    }
}

impl<L: Send + 'static> CameraBuffer for LentFrame<L> {
    fn frame(&self) -> std::result::Result<Frame<'_>, FrameError> {
        self.frame.build()
    }
}

/// The host outcome of what the engine did with a frame whose description was valid.
fn outcome(submitted: Submitted, timestamp_us: i64) -> Result<SubmitOutcome> {
    Ok(match submitted {
        Submitted::Accepted => SubmitOutcome::Accepted,
        Submitted::AcceptedDroppingPrevious => SubmitOutcome::AcceptedDroppingPrevious,
        Submitted::SkippedRate => SubmitOutcome::SkippedRate,
        Submitted::SkippedGate => SubmitOutcome::SkippedGate,
        Submitted::SkippedQuality => SubmitOutcome::SkippedQuality,
        // A frame that was built is only rejected for its timestamp (counted already).
        Submitted::Rejected => {
            return Err(Error::Frame(FrameError::OutOfRange {
                what: "timestamp (µs)",
                value: timestamp_us,
            }))
        }
        Submitted::Closed => return Err(Error::Closed),
    })
}

impl Session {
    /// The one submit entry of the bindings for frames they copy: builds the host's frame, counts
    /// it as rejected and fails with [`Error::Frame`] when it is malformed (also when the binding
    /// could not even describe it and passes its error here), and submits it otherwise (the
    /// engine copies what it keeps before this returns). A frame the engine rejects (a timestamp
    /// out of range) is [`Error::Frame`] too, and a closed session [`Error::Closed`]: both
    /// bindings throw for every frame not taken or skipped.
    pub fn submit_host(
        &self,
        frame: std::result::Result<HostFrame<'_>, FrameError>,
    ) -> Result<SubmitOutcome> {
        let built = frame.and_then(|f| f.build());
        let frame = built.map_err(|e| self.reject(e))?;
        outcome(self.submit(&frame)?, frame.timestamp_us())
    }

    /// The bindings' entry for lent frames: as [`Session::submit_host`], but the engine keeps the
    /// host's buffer instead of copying it, and drops `frame` (its lease) when done with it,
    /// exactly once, before this returns for a frame not taken or later for one taken. Outcomes and
    /// errors are those of `submit_host`; a malformed frame is released before the error returns.
    pub fn lend_host<L: Send + 'static>(&self, frame: LentFrame<L>) -> Result<SubmitOutcome> {
        let timestamp_us = frame.frame.meta.timestamp_us;
        if let Err(e) = frame.frame.build() {
            drop(frame);
            return Err(self.reject(e));
        }
        outcome(self.submit_buffer(Box::new(frame))?, timestamp_us)
    }
}

/// The kind of a [`HostEvent`], with the number the JNI binding passes for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// [`HostEvent::SegmentOpened`].
    SegmentOpened,
    /// [`HostEvent::SegmentUpdated`].
    SegmentUpdated,
    /// [`HostEvent::SegmentClosed`].
    SegmentClosed,
    /// [`HostEvent::ReportQueued`].
    ReportQueued,
    /// [`HostEvent::Scored`].
    Scored,
    /// [`HostEvent::ThumbnailsDropped`].
    ThumbnailsDropped,
    /// [`HostEvent::ReportEvicted`].
    ReportEvicted,
    /// [`HostEvent::Quarantined`].
    Quarantined,
    /// [`HostEvent::ReportStored`].
    ReportStored,
    /// [`HostEvent::DeadLettered`].
    DeadLettered,
    /// [`HostEvent::Error`].
    Error,
}

impl EventKind {
    /// Every kind with its host name; a kind's number is its index here plus one.
    pub const ALL: [(&'static str, EventKind); 11] = [
        ("SEGMENT_OPENED", Self::SegmentOpened),
        ("SEGMENT_UPDATED", Self::SegmentUpdated),
        ("SEGMENT_CLOSED", Self::SegmentClosed),
        ("REPORT_QUEUED", Self::ReportQueued),
        ("SCORED", Self::Scored),
        ("THUMBNAILS_DROPPED", Self::ThumbnailsDropped),
        ("REPORT_EVICTED", Self::ReportEvicted),
        ("QUARANTINED", Self::Quarantined),
        ("REPORT_STORED", Self::ReportStored),
        ("DEAD_LETTERED", Self::DeadLettered),
        ("ERROR", Self::Error),
    ];

    /// The kind's number, from 1 (0 is never sent, so a zeroed value is never a valid kind).
    pub fn code(self) -> i32 {
        code_of(&Self::ALL, &self) as i32 + 1
    }
}

/// A flagged segment as a host sees it (times in microseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct HostSegment {
    /// Sequence number in this stream, from 1.
    pub id: u64,
    /// The label flagged.
    pub label: String,
    /// Start (with pre-roll).
    pub start_us: i64,
    /// End (with post-roll once closed).
    pub end_us: i64,
    /// Highest smoothed score.
    pub peak: f32,
    /// Time of the peak.
    pub peak_us: i64,
    /// Mean smoothed score.
    pub mean: f32,
    /// Frames scored inside the segment.
    pub frames_scored: u32,
    /// Timestamp of the stream's first scored frame.
    pub stream_start_us: i64,
}

impl From<&Segment> for HostSegment {
    fn from(s: &Segment) -> Self {
        Self {
            id: s.id,
            label: s.label.to_string(),
            start_us: s.start_us,
            end_us: s.end_us,
            peak: s.peak,
            peak_us: s.peak_us,
            mean: s.mean,
            frames_scored: s.frames_scored,
            stream_start_us: s.stream_start_us,
        }
    }
}

/// A [`SessionEvent`] flattened for hosts: one case per [`EventKind`], plain fields only.
#[derive(Clone, Debug, PartialEq)]
pub enum HostEvent {
    /// A run above the label's `enter` threshold lasted the minimum duration.
    SegmentOpened(HostSegment),
    /// The peak of an open segment moved.
    SegmentUpdated(HostSegment),
    /// The segment ended; its report follows as `ReportQueued`.
    SegmentClosed(HostSegment),
    /// A closed segment's report is durably in the outbox.
    ReportQueued {
        /// The report's id.
        report_id: String,
        /// The segment's label.
        label: String,
    },
    /// The scores of one frame, in label order.
    Scored {
        /// The frame's timestamp.
        timestamp_us: i64,
        /// Probabilities.
        scores: Vec<f32>,
    },
    /// The outbox budget removed a report's thumbnails.
    ThumbnailsDropped {
        /// The report.
        report_id: String,
        /// Thumbnails removed.
        count: u32,
    },
    /// The outbox budget removed a whole report.
    ReportEvicted {
        /// The report.
        report_id: String,
    },
    /// A file in the outbox was not a valid report and was set aside.
    Quarantined {
        /// Its name in `quarantine/`.
        file: String,
        /// Why.
        reason: String,
    },
    /// A report was written to the outbox.
    ReportStored {
        /// Its id.
        report_id: String,
    },
    /// A report was refused for good by a server.
    DeadLettered {
        /// The report.
        report_id: String,
        /// Why.
        reason: String,
    },
    /// A frame could not be scored or a report not stored; the session goes on.
    Error {
        /// What happened.
        message: String,
    },
}

impl HostEvent {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::SegmentOpened(_) => EventKind::SegmentOpened,
            Self::SegmentUpdated(_) => EventKind::SegmentUpdated,
            Self::SegmentClosed(_) => EventKind::SegmentClosed,
            Self::ReportQueued { .. } => EventKind::ReportQueued,
            Self::Scored { .. } => EventKind::Scored,
            Self::ThumbnailsDropped { .. } => EventKind::ThumbnailsDropped,
            Self::ReportEvicted { .. } => EventKind::ReportEvicted,
            Self::Quarantined { .. } => EventKind::Quarantined,
            Self::ReportStored { .. } => EventKind::ReportStored,
            Self::DeadLettered { .. } => EventKind::DeadLettered,
            Self::Error { .. } => EventKind::Error,
        }
    }
}

impl From<SessionEvent> for HostEvent {
    fn from(e: SessionEvent) -> Self {
        match e {
            SessionEvent::Segment(SegmentEvent::Opened(s)) => Self::SegmentOpened((&s).into()),
            SessionEvent::Segment(SegmentEvent::Updated(s)) => Self::SegmentUpdated((&s).into()),
            SessionEvent::Segment(SegmentEvent::Closed(s)) => Self::SegmentClosed((&s).into()),
            SessionEvent::ReportQueued { report_id, label } => {
                Self::ReportQueued { report_id, label }
            }
            SessionEvent::Scored {
                timestamp_us,
                scores,
            } => Self::Scored {
                timestamp_us,
                scores,
            },
            SessionEvent::Outbox(OutboxEvent::Stored { report_id }) => {
                Self::ReportStored { report_id }
            }
            SessionEvent::Outbox(OutboxEvent::ThumbnailsDropped { report_id, count }) => {
                Self::ThumbnailsDropped {
                    report_id,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                }
            }
            SessionEvent::Outbox(OutboxEvent::ReportEvicted { report_id }) => {
                Self::ReportEvicted { report_id }
            }
            SessionEvent::Outbox(OutboxEvent::Quarantined { file, reason }) => {
                Self::Quarantined { file, reason }
            }
            SessionEvent::Outbox(OutboxEvent::DeadLettered { report_id, reason }) => {
                Self::DeadLettered { report_id, reason }
            }
            SessionEvent::Error(message) => Self::Error { message },
        }
    }
}

/// A session's counters as hosts show them: one flat record, latencies as the quantiles chosen
/// here (p50 and p99 of submit, preprocessing and inference, in microseconds). Every frame seen
/// ends in exactly one of `rejected`, `rate_skipped`, `gated`, `low_quality`, `dropped`, `scored`,
/// `failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSummary {
    /// Frames submitted.
    pub seen: u64,
    /// Malformed frames.
    pub rejected: u64,
    /// Frames not due at the sampling rate.
    pub rate_skipped: u64,
    /// Frames skipped by the scene gate.
    pub gated: u64,
    /// Frames skipped by the quality gate (too blurred or too small to judge).
    pub low_quality: u64,
    /// Frames replaced by a newer one before the worker got to them.
    pub dropped: u64,
    /// Frames scored.
    pub scored: u64,
    /// Frames whose preprocessing or inference failed.
    pub failed: u64,
    /// Median time `submit` took.
    pub submit_p50_us: u64,
    /// 99th percentile of `submit`.
    pub submit_p99_us: u64,
    /// Median preprocessing time.
    pub preprocess_p50_us: u64,
    /// 99th percentile of preprocessing.
    pub preprocess_p99_us: u64,
    /// Median inference time.
    pub infer_p50_us: u64,
    /// 99th percentile of inference.
    pub infer_p99_us: u64,
    /// The backend preprocessing frames (`None` before the worker started).
    pub backend: Option<ActiveBackend>,
    /// Times the GPU failed mid-stream and the CPU took over.
    pub gpu_fallbacks: u64,
    /// Reports pending in the outbox.
    pub pending_reports: u64,
    /// Bytes they take.
    pub pending_bytes: u64,
    /// Reports stored since the outbox opened.
    pub reports_stored: u64,
    /// Reports acked since the outbox opened.
    pub reports_acked: u64,
    /// Thumbnails the disk budget removed.
    pub thumbnails_dropped: u64,
    /// Reports the disk budget removed.
    pub reports_evicted: u64,
    /// Files set aside as invalid.
    pub quarantined: u64,
    /// Outbox writes that failed (then retried).
    pub write_failures: u64,
    /// Reports lost because the outbox kept failing.
    pub reports_lost: u64,
}

impl MetricsSummary {
    /// Values in [`MetricsSummary::to_array`].
    pub const LEN: usize = 25;

    /// The field at each index of [`MetricsSummary::to_array`].
    pub const FIELDS: [&'static str; Self::LEN] = [
        "seen",
        "rejected",
        "rate_skipped",
        "gated",
        "low_quality",
        "dropped",
        "scored",
        "failed",
        "submit_p50_us",
        "submit_p99_us",
        "preprocess_p50_us",
        "preprocess_p99_us",
        "infer_p50_us",
        "infer_p99_us",
        "backend",
        "gpu_fallbacks",
        "pending_reports",
        "pending_bytes",
        "reports_stored",
        "reports_acked",
        "thumbnails_dropped",
        "reports_evicted",
        "quarantined",
        "write_failures",
        "reports_lost",
    ];

    /// True when every frame seen is in exactly one other counter.
    pub fn accounted(&self) -> bool {
        self.seen
            == self.rejected
                + self.rate_skipped
                + self.gated
                + self.low_quality
                + self.dropped
                + self.scored
                + self.failed
    }

    /// The values in [`MetricsSummary::FIELDS`] order (counters saturate at `i64::MAX`; the
    /// backend is its [`ACTIVE_BACKENDS`] code, -1 for none).
    pub fn to_array(&self) -> [i64; Self::LEN] {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        [
            n(self.seen),
            n(self.rejected),
            n(self.rate_skipped),
            n(self.gated),
            n(self.low_quality),
            n(self.dropped),
            n(self.scored),
            n(self.failed),
            n(self.submit_p50_us),
            n(self.submit_p99_us),
            n(self.preprocess_p50_us),
            n(self.preprocess_p99_us),
            n(self.infer_p50_us),
            n(self.infer_p99_us),
            self.backend.map_or(-1, |b| code_of(&ACTIVE_BACKENDS, &b)),
            n(self.gpu_fallbacks),
            n(self.pending_reports),
            n(self.pending_bytes),
            n(self.reports_stored),
            n(self.reports_acked),
            n(self.thumbnails_dropped),
            n(self.reports_evicted),
            n(self.quarantined),
            n(self.write_failures),
            n(self.reports_lost),
        ]
    }
}

impl From<&SessionMetrics> for MetricsSummary {
    fn from(m: &SessionMetrics) -> Self {
        let (e, o) = (&m.engine, &m.outbox);
        let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            seen: e.seen,
            rejected: e.rejected,
            rate_skipped: e.rate_skipped,
            gated: e.gated,
            low_quality: e.low_quality,
            dropped: e.dropped,
            scored: e.scored,
            failed: e.failed,
            submit_p50_us: us(e.submit.quantile(0.5)),
            submit_p99_us: us(e.submit.quantile(0.99)),
            preprocess_p50_us: us(e.preprocess.quantile(0.5)),
            preprocess_p99_us: us(e.preprocess.quantile(0.99)),
            infer_p50_us: us(e.infer.quantile(0.5)),
            infer_p99_us: us(e.infer.quantile(0.99)),
            backend: e.backend,
            gpu_fallbacks: e.gpu_fallbacks,
            pending_reports: o.pending,
            pending_bytes: o.pending_bytes,
            reports_stored: o.stored,
            reports_acked: o.acked,
            thumbnails_dropped: o.thumbnails_dropped,
            reports_evicted: o.reports_evicted,
            quarantined: o.quarantined,
            write_failures: o.write_failures,
            reports_lost: m.reports_lost,
        }
    }
}

impl From<SessionMetrics> for MetricsSummary {
    fn from(m: SessionMetrics) -> Self {
        (&m).into()
    }
}

/// Every number a binding passes for these types, as `(group.NAME, value)`: event kinds
/// (`EventKind.SEGMENT_OPENED`), metrics array indices (`Metrics.submit_p50_us`), and enum codes
/// (`Backend.AUTO`, `ModelVariant.INT8`, `ColorMatrix.BT709`, `ColorRange.FULL`,
/// `SubmitResult.SKIPPED_GATE`, `ActiveBackend.GPU`). A binding's test compares its own copies
/// with this list (the Android one through `Native.constants`).
pub fn host_constants() -> Vec<(String, i64)> {
    fn table(
        out: &mut Vec<(String, i64)>,
        group: &str,
        names: impl Iterator<Item = &'static str>,
        first: i64,
    ) {
        out.extend(
            names
                .zip(first..)
                .map(|(name, code)| (format!("{group}.{name}"), code)),
        );
    }
    let mut out = Vec::new();
    table(
        &mut out,
        "EventKind",
        EventKind::ALL.iter().map(|(n, _)| *n),
        1,
    );
    table(&mut out, "Metrics", MetricsSummary::FIELDS.into_iter(), 0);
    table(&mut out, "Backend", BACKENDS.iter().map(|(n, _)| *n), 0);
    table(
        &mut out,
        "ModelVariant",
        VARIANTS.iter().map(|(n, _)| *n),
        0,
    );
    table(
        &mut out,
        "ColorMatrix",
        COLOR_MATRICES.iter().map(|(n, _)| *n),
        0,
    );
    table(
        &mut out,
        "ColorRange",
        COLOR_RANGES.iter().map(|(n, _)| *n),
        0,
    );
    table(
        &mut out,
        "SubmitResult",
        SubmitOutcome::ALL.iter().map(|(n, _)| *n),
        0,
    );
    table(
        &mut out,
        "ActiveBackend",
        ACTIVE_BACKENDS.iter().map(|(n, _)| *n),
        0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_table_indices() {
        assert_eq!(backend_from_code(2).unwrap(), Backend::Cpu);
        assert!(backend_from_code(3).is_err());
        assert!(backend_from_code(-1).is_err());
        assert_eq!(variant_from_code(1).unwrap(), Variant::Int8);
        assert!(variant_from_code(2).is_err());
        assert_eq!(color_matrix_from_code(1).unwrap(), ColorMatrix::Bt709);
        assert!(color_matrix_from_code(2).is_err());
        assert_eq!(color_range_from_code(0).unwrap(), ColorRange::Limited);
        assert!(color_range_from_code(-3).is_err());
        assert_eq!(SubmitOutcome::SkippedQuality.code(), 4);
        assert_eq!(EventKind::SegmentOpened.code(), 1);
        assert_eq!(EventKind::Error.code(), 11);
    }

    #[test]
    fn metrics_array_follows_fields() {
        let m = MetricsSummary {
            low_quality: 7,
            infer_p99_us: 9,
            backend: Some(ActiveBackend::Gpu),
            reports_lost: 3,
            ..Default::default()
        };
        let a = m.to_array();
        let at = |name| {
            a[MetricsSummary::FIELDS
                .iter()
                .position(|f| *f == name)
                .unwrap()]
        };
        assert_eq!(at("low_quality"), 7);
        assert_eq!(at("infer_p99_us"), 9);
        assert_eq!(at("backend"), 1);
        assert_eq!(at("reports_lost"), 3);
        assert_eq!(MetricsSummary::default().to_array()[14], -1);
    }

    #[test]
    fn constants_are_unique_per_group() {
        let all = host_constants();
        let mut names: Vec<_> = all.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.contains(&("EventKind.ERROR".into(), 11)));
        assert!(all.contains(&("Metrics.reports_lost".into(), 24)));
    }

    #[test]
    fn meta_applies_rotation_and_rejects_bad_degrees() {
        let px = [0u8; 16];
        let frame = HostFrame {
            width: 2,
            height: 2,
            pixels: HostPixels::Packed {
                format: PixelFormat::Rgba8,
                plane: HostPlane::new(&px, 8),
            },
            meta: FrameMeta {
                timestamp_us: 5,
                rotation_degrees: -90,
                ..FrameMeta::default()
            },
        };
        let built = frame.build().unwrap();
        assert_eq!(built.timestamp_us(), 5);
        assert_eq!(built.rotation().degrees(), 270);
        let bad = HostFrame {
            meta: FrameMeta {
                rotation_degrees: 45,
                ..frame.meta
            },
            ..frame
        };
        assert!(matches!(
            bad.build(),
            Err(FrameError::OutOfRange {
                what: "rotation degrees",
                ..
            })
        ));
        let negative = HostFrame { width: -2, ..frame };
        assert!(matches!(
            negative.build(),
            Err(FrameError::OutOfRange { what: "width", .. })
        ));
    }

    #[test]
    fn nv21_packed_splits_luma_and_chroma() {
        let bytes = vec![0u8; 4 * 2 + 4];
        let frame = HostFrame {
            width: 4,
            height: 2,
            pixels: HostPixels::Nv21Packed(&bytes),
            meta: FrameMeta::default(),
        };
        assert_eq!(frame.build().unwrap().format(), PixelFormat::Nv21);
        let short = HostFrame {
            pixels: HostPixels::Nv21Packed(&bytes[..9]),
            ..frame
        };
        assert!(matches!(
            short.build(),
            Err(FrameError::PlaneTooShort { .. })
        ));
    }
}

//! UniFFI bindings of the prescreen runtime: what iOS apps reach through the generated Swift
//! (`Sources/Prescreen/prescreen.swift`), and host tests through generated Python.
//!
//! A thin adapter: [`Screener`] wraps a runtime [`Session`] (its `inner`) and converts the
//! host-facing types of `prescreen_runtime::session` (the same ones the Android binding converts)
//! to UniFFI records: [`HostEvent`] to [`ScreenerEvent`], [`MetricsSummary`] to
//! [`ScreenerMetrics`], [`FrameInfo`] to [`FrameMeta`], and every submit goes through
//! [`Session::submit_host`]. Errors are mapped in one place ([`PrescreenError::from`]). UniFFI
//! catches panics in every exported call and raises them as an internal error in Swift or Python,
//! so none crosses the boundary. Plane bytes arrive as `&[u8]`, which UniFFI passes as a pointer
//! into the caller's own buffer (Swift `Data`, Python `bytes`): nothing is copied on the way in,
//! and the engine copies only the frames it takes for scoring.

use std::sync::Arc;

use prescreen_runtime::frame::{self as rt, PixelFormat};
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::preprocess::backend as rt_backend;
use prescreen_runtime::session::{
    FrameMeta, HostEvent, HostFrame, HostPixels, HostPlane, HostSegment, LentFrame, MetricsSummary,
    Session, SessionConfig, SubmitOutcome,
};
use prescreen_runtime::{Error, ErrorKind};

uniffi::setup_scaffolding!("prescreen");

/// Errors, one case per kind a host can act on; each carries a message that names sizes, formats,
/// files, labels and ids, never pixels or user data. Swift: `PrescreenError` (`throws`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum PrescreenError {
    /// The frame is malformed (sizes, strides, buffer lengths, rotation); counted as rejected, and
    /// the screener keeps working.
    #[error("{message}")]
    InvalidFrame {
        /// What is wrong.
        message: String,
    },
    /// An argument is out of range (an empty stream id, a string that is not a report id).
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// The model or its manifest could not be read, verified or loaded.
    #[error("{message}")]
    ModelLoad {
        /// What is wrong.
        message: String,
    },
    /// The policy could not be read or is invalid.
    #[error("{message}")]
    Policy {
        /// What is wrong.
        message: String,
    },
    /// `Backend::Gpu` was required and no usable GPU passed the self-test.
    #[error("{message}")]
    GpuUnavailable {
        /// What is wrong.
        message: String,
    },
    /// The outbox could not read or write its files (full disk, permissions); nothing is lost.
    #[error("{message}")]
    Storage {
        /// What is wrong.
        message: String,
    },
    /// No pending report has this id.
    #[error("{message}")]
    UnknownReport {
        /// What is wrong.
        message: String,
    },
    /// The screener was closed.
    #[error("{message}")]
    Closed {
        /// What is wrong.
        message: String,
    },
    /// Inference failed, or an internal error.
    #[error("{message}")]
    Internal {
        /// What is wrong.
        message: String,
    },
}

impl From<Error> for PrescreenError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e.kind() {
            ErrorKind::InvalidFrame => Self::InvalidFrame { message },
            ErrorKind::InvalidArgument => Self::InvalidArgument { message },
            ErrorKind::ModelLoad => Self::ModelLoad { message },
            ErrorKind::Policy => Self::Policy { message },
            ErrorKind::GpuUnavailable => Self::GpuUnavailable { message },
            ErrorKind::Storage => Self::Storage { message },
            ErrorKind::UnknownReport => Self::UnknownReport { message },
            ErrorKind::Closed => Self::Closed { message },
            ErrorKind::Internal => Self::Internal { message },
        }
    }
}

/// What a listener can fail with; an exception thrown by a Swift or Python listener arrives here
/// and is logged, never propagated.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    /// The listener threw.
    #[error("listener failed: {message}")]
    Failed {
        /// The foreign error's description.
        message: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { message: e.reason }
    }
}

/// Where frames are preprocessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Backend {
    /// A hardware GPU (Metal on iOS) that passes the start-up self-test, else the CPU.
    Auto,
    /// The GPU, or `GpuUnavailable` when none passes the self-test.
    Gpu,
    /// The CPU only.
    Cpu,
}

impl From<Backend> for rt_backend::Backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Auto => Self::Auto,
            Backend::Gpu => Self::Gpu,
            Backend::Cpu => Self::Cpu,
        }
    }
}

/// Which model file runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ModelVariant {
    /// float32.
    Float,
    /// int8-quantized.
    Int8,
}

impl From<ModelVariant> for Variant {
    fn from(v: ModelVariant) -> Self {
        match v {
            ModelVariant::Float => Self::Float,
            ModelVariant::Int8 => Self::Int8,
        }
    }
}

/// The Y'CbCr matrix of an NV12 frame (the pixel buffer's `kCVImageBufferYCbCrMatrixKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ColorMatrix {
    /// ITU-R BT.601.
    Bt601,
    /// ITU-R BT.709 (the usual matrix of iOS camera output).
    Bt709,
}

/// The range of an NV12 frame's samples: `...VideoRange` or `...FullRange` pixel formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ColorRange {
    /// Video range (`kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange`).
    Video,
    /// Full range (`kCVPixelFormatType_420YpCbCr8BiPlanarFullRange`).
    Full,
}

impl From<ColorMatrix> for rt::ColorMatrix {
    fn from(m: ColorMatrix) -> Self {
        match m {
            ColorMatrix::Bt601 => Self::Bt601,
            ColorMatrix::Bt709 => Self::Bt709,
        }
    }
}

impl From<ColorRange> for rt::ColorRange {
    fn from(r: ColorRange) -> Self {
        match r {
            ColorRange::Video => Self::Limited,
            ColorRange::Full => Self::Full,
        }
    }
}

/// How to open a [`Screener`].
#[derive(Clone, Debug, uniffi::Record)]
pub struct ScreenerConfig {
    /// The model's folder (`model.toml` and the files it names).
    pub model_dir: String,
    /// The policy file.
    pub policy_path: String,
    /// The outbox folder; reports an earlier screener left there stay pending.
    pub outbox_dir: String,
    /// An opaque id of the stream, part of every report (not user data).
    pub stream_id: String,
    /// Where frames are preprocessed.
    pub backend: Backend,
    /// Which model file runs.
    pub variant: ModelVariant,
    /// Deliver `Scored` events for every scored frame.
    #[uniffi(default = false)]
    pub emit_scores: bool,
    /// Bytes the pending reports may take on disk.
    #[uniffi(default = 33554432)]
    pub outbox_budget_bytes: u64,
    /// Written into reports; by default the OS and CPU architecture.
    #[uniffi(default = None)]
    pub device_class: Option<String>,
    /// Threads inference may use, 1 to 16. The default, 1, leaves the other cores to the camera,
    /// encoder and UI.
    #[uniffi(default = 1)]
    pub inference_threads: u32,
}

/// Orientation, colour and time of a frame.
#[derive(Clone, Copy, Debug, uniffi::Record)]
pub struct FrameInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The clockwise rotation that makes the frame upright: 0, 90, 180 or 270.
    pub rotation_degrees: u32,
    /// Mirror horizontally after rotating (front camera).
    #[uniffi(default = false)]
    pub mirrored: bool,
    /// Monotonic timestamp in microseconds (`CMSampleBuffer`'s presentation time).
    pub timestamp_us: i64,
    /// The Y'CbCr matrix (NV12 only).
    pub color_matrix: ColorMatrix,
    /// The sample range (NV12 only).
    pub color_range: ColorRange,
}

impl FrameInfo {
    /// An NV12 frame of this size and meta, for `submit_nv12` and `lend_nv12`.
    fn nv12<'a>(
        &self,
        y: &'a [u8],
        y_row_stride: u32,
        uv: &'a [u8],
        uv_row_stride: u32,
    ) -> HostFrame<'a> {
        HostFrame {
            width: self.width.into(),
            height: self.height.into(),
            pixels: HostPixels::Nv12 {
                y: HostPlane::new(y, y_row_stride.into()),
                uv: HostPlane::new(uv, uv_row_stride.into()),
            },
            meta: self.meta(),
        }
    }

    /// A BGRA frame of this size and meta, for `submit_bgra` and `lend_bgra`.
    fn bgra<'a>(&self, data: &'a [u8], row_stride: u32) -> HostFrame<'a> {
        HostFrame {
            width: self.width.into(),
            height: self.height.into(),
            pixels: HostPixels::Packed {
                format: PixelFormat::Bgra8,
                plane: HostPlane::new(data, row_stride.into()),
            },
            meta: self.meta(),
        }
    }

    fn meta(&self) -> FrameMeta {
        FrameMeta {
            timestamp_us: self.timestamp_us,
            rotation_degrees: self.rotation_degrees.into(),
            mirror: self.mirrored,
            color_matrix: self.color_matrix.into(),
            color_range: self.color_range.into(),
        }
    }
}

/// What happened to a submitted frame (a malformed frame throws `InvalidFrame`, a closed screener
/// `Closed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SubmitResult {
    /// Taken for scoring.
    Accepted,
    /// Taken for scoring; a frame still waiting was dropped for it.
    AcceptedDroppingPrevious,
    /// Not due at the policy's sampling rate.
    SkippedRate,
    /// Same scene as the last scored frame.
    SkippedGate,
    /// Too blurred or too small to judge (the policy's `quality` gate): not scored, so it neither
    /// opens nor extends a segment.
    SkippedQuality,
}

impl From<SubmitOutcome> for SubmitResult {
    fn from(o: SubmitOutcome) -> Self {
        match o {
            SubmitOutcome::Accepted => Self::Accepted,
            SubmitOutcome::AcceptedDroppingPrevious => Self::AcceptedDroppingPrevious,
            SubmitOutcome::SkippedRate => Self::SkippedRate,
            SubmitOutcome::SkippedGate => Self::SkippedGate,
            SubmitOutcome::SkippedQuality => Self::SkippedQuality,
        }
    }
}

/// A flagged segment as known when an event is emitted (times in microseconds).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Segment {
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

impl From<HostSegment> for Segment {
    fn from(s: HostSegment) -> Self {
        Self {
            id: s.id,
            label: s.label,
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

/// What a screener tells the app, on its events thread, in order.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum ScreenerEvent {
    /// A run above the label's `enter` threshold lasted the minimum duration.
    SegmentOpened {
        /// The segment.
        segment: Segment,
    },
    /// The peak of an open segment moved.
    SegmentUpdated {
        /// The segment.
        segment: Segment,
    },
    /// The segment ended; its report follows as `ReportQueued`.
    SegmentClosed {
        /// The segment.
        segment: Segment,
    },
    /// A closed segment's report is durably in the outbox.
    ReportQueued {
        /// The report's id (also the upload's idempotency key).
        report_id: String,
        /// The segment's label.
        label: String,
    },
    /// The scores of one frame, in `labels()` order (with `emit_scores`).
    Scored {
        /// The frame's timestamp.
        timestamp_us: i64,
        /// Probabilities.
        scores: Vec<f32>,
    },
    /// A report was written to the outbox.
    ReportStored {
        /// Its id.
        report_id: String,
    },
    /// The outbox budget removed a report's thumbnails (its metadata stays pending).
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
    /// A report was refused for good by a server (desktop uploader only).
    DeadLettered {
        /// The report.
        report_id: String,
        /// Why.
        reason: String,
    },
    /// A frame could not be scored or a report not stored yet; the screener goes on.
    Error {
        /// What happened.
        message: String,
    },
}

impl From<HostEvent> for ScreenerEvent {
    fn from(e: HostEvent) -> Self {
        match e {
            HostEvent::SegmentOpened(s) => Self::SegmentOpened { segment: s.into() },
            HostEvent::SegmentUpdated(s) => Self::SegmentUpdated { segment: s.into() },
            HostEvent::SegmentClosed(s) => Self::SegmentClosed { segment: s.into() },
            HostEvent::ReportQueued { report_id, label } => Self::ReportQueued { report_id, label },
            HostEvent::Scored {
                timestamp_us,
                scores,
            } => Self::Scored {
                timestamp_us,
                scores,
            },
            HostEvent::ReportStored { report_id } => Self::ReportStored { report_id },
            HostEvent::ThumbnailsDropped { report_id, count } => {
                Self::ThumbnailsDropped { report_id, count }
            }
            HostEvent::ReportEvicted { report_id } => Self::ReportEvicted { report_id },
            HostEvent::Quarantined { file, reason } => Self::Quarantined { file, reason },
            HostEvent::DeadLettered { report_id, reason } => {
                Self::DeadLettered { report_id, reason }
            }
            HostEvent::Error { message } => Self::Error { message },
        }
    }
}

/// Receives a screener's events on its events thread (never the capture queue). Swift: a
/// `Sendable` class implementing the `ScreenerListener` protocol.
#[uniffi::export(foreign)]
pub trait ScreenerListener: Send + Sync {
    /// Called once per event, in order. A thrown error is logged and ignored.
    fn on_event(&self, event: ScreenerEvent) -> Result<(), ListenerError>;
}

/// The lease of a frame lent to a screener ([`Screener::lend_nv12`], [`Screener::lend_bgra`]):
/// whatever keeps the frame's memory valid. Swift: the extension's `PixelBufferLease`, holding the
/// `CVPixelBuffer` retained and locked read-only until released.
#[uniffi::export(foreign)]
pub trait FrameLease: Send + Sync {
    /// Called exactly once, when the screener no longer reads the frame: during the `lend_*` call
    /// for a frame it does not take (skipped, malformed, closed), later on its worker thread (or
    /// the thread replacing or closing) for one it takes. It must only release (unlock the
    /// buffer). A thrown error is logged and ignored.
    fn release(&self) -> Result<(), ListenerError>;
}

/// The engine's side of a [`FrameLease`]: released when dropped, which the session does once.
struct Leased(Arc<dyn FrameLease>);

impl Drop for Leased {
    fn drop(&mut self) {
        if let Err(e) = self.0.release() {
            log::warn!("prescreen frame lease: {e}");
        }
    }
}

/// The plane at `address`, `len` bytes, as the runtime reads it while lent.
///
/// # Safety
/// `len` bytes from `address` must stay readable and unchanged until the frame's lease is
/// released (see [`Screener::lend_nv12`]).
unsafe fn lent_plane(
    address: u64,
    len: u64,
    plane: rt::PlaneKind,
) -> Result<&'static [u8], rt::FrameError> {
    let unavailable = |reason| rt::FrameError::PlaneUnavailable { plane, reason };
    let address =
        usize::try_from(address).map_err(|_| unavailable("the address is out of range"))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= isize::MAX as usize && address.checked_add(len).is_some())
        .ok_or(unavailable("the length is out of range"))?;
    if address == 0 {
        return Err(unavailable("the address is null"));
    }
    // SAFETY: per this function's contract the memory is readable for `len` bytes until the
    // lease is released; the address is non-null and the span does not wrap.
    Ok(unsafe { std::slice::from_raw_parts(address as *const u8, len) })
}

/// A report waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PendingReport {
    /// The report's id, also the idempotency key for the server.
    pub report_id: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was written, in Unix milliseconds.
    pub created_unix_millis: u64,
}

/// A screener's counters (the runtime's `MetricsSummary`, field for field). Every frame submitted
/// ends in exactly one of `rejected`, `rate_skipped`, `gated`, `low_quality`, `dropped`, `scored`,
/// `failed`.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ScreenerMetrics {
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
    /// Median time `submit` took, in microseconds.
    pub submit_p50_us: u64,
    /// 99th percentile of `submit`, in microseconds.
    pub submit_p99_us: u64,
    /// Median preprocessing time, in microseconds.
    pub preprocess_p50_us: u64,
    /// 99th percentile of preprocessing, in microseconds.
    pub preprocess_p99_us: u64,
    /// Median inference time, in microseconds.
    pub infer_p50_us: u64,
    /// 99th percentile of inference, in microseconds.
    pub infer_p99_us: u64,
    /// `cpu` or `gpu` (`None` before the worker started).
    pub backend: Option<String>,
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
    /// Writes that failed (then retried).
    pub write_failures: u64,
    /// Reports lost because the outbox kept failing.
    pub reports_lost: u64,
}

impl From<MetricsSummary> for ScreenerMetrics {
    fn from(m: MetricsSummary) -> Self {
        Self {
            seen: m.seen,
            rejected: m.rejected,
            rate_skipped: m.rate_skipped,
            gated: m.gated,
            low_quality: m.low_quality,
            dropped: m.dropped,
            scored: m.scored,
            failed: m.failed,
            submit_p50_us: m.submit_p50_us,
            submit_p99_us: m.submit_p99_us,
            preprocess_p50_us: m.preprocess_p50_us,
            preprocess_p99_us: m.preprocess_p99_us,
            infer_p50_us: m.infer_p50_us,
            infer_p99_us: m.infer_p99_us,
            backend: m.backend.map(|b| b.to_string()),
            gpu_fallbacks: m.gpu_fallbacks,
            pending_reports: m.pending_reports,
            pending_bytes: m.pending_bytes,
            reports_stored: m.reports_stored,
            reports_acked: m.reports_acked,
            thumbnails_dropped: m.thumbnails_dropped,
            reports_evicted: m.reports_evicted,
            quarantined: m.quarantined,
            write_failures: m.write_failures,
            reports_lost: m.reports_lost,
        }
    }
}

/// Screens one live stream: frames in through `submit_*` (from the capture queue; they never wait
/// on inference), events out to the listener, reports in a durable outbox until the app uploads
/// them ([`Screener::pending_reports`], [`Screener::read_report`], [`Screener::ack`]).
/// Thread-safe; `close` is idempotent and every other method throws `Closed` after it.
#[derive(uniffi::Object)]
pub struct Screener {
    inner: Session,
}

impl std::fmt::Debug for Screener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Screener {
    fn submit(&self, frame: HostFrame<'_>) -> Result<SubmitResult, PrescreenError> {
        Ok(self.inner.submit_host(Ok(frame))?.into())
    }

    /// Lends a frame described by `describe` (planes from [`lent_plane`]); `lease` is released on
    /// every path, exactly once.
    fn lend(
        &self,
        describe: impl FnOnce() -> Result<HostFrame<'static>, rt::FrameError>,
        lease: Arc<dyn FrameLease>,
    ) -> Result<SubmitResult, PrescreenError> {
        let lease = Leased(lease);
        match describe() {
            // SAFETY: the caller of `lend_*` keeps the planes valid until the lease is released,
            // which happens when the runtime drops this `LentFrame`.
            Ok(frame) => Ok(self
                .inner
                .lend_host(unsafe { LentFrame::new(frame, lease) })?
                .into()),
            Err(e) => {
                drop(lease);
                Err(self.inner.reject(e).into())
            }
        }
    }
}

#[uniffi::export]
impl Screener {
    /// Opens a screener: loads and verifies the model (checksum, inputs and outputs, golden
    /// self-test), reads the policy, opens the outbox and starts the worker and events threads.
    #[uniffi::constructor]
    pub fn new(
        config: ScreenerConfig,
        listener: Arc<dyn ScreenerListener>,
    ) -> Result<Arc<Self>, PrescreenError> {
        let mut c = SessionConfig::new(
            config.model_dir,
            config.policy_path,
            config.outbox_dir,
            config.stream_id,
        );
        c.backend = config.backend.into();
        c.variant = config.variant.into();
        c.emit_scores = config.emit_scores;
        c.outbox_budget_bytes = config.outbox_budget_bytes;
        c.device_class = config.device_class;
        c.inference_threads = config.inference_threads as usize;
        let inner = Session::open(
            &c,
            Box::new(move |event| {
                if let Err(e) = listener.on_event(HostEvent::from(event).into()) {
                    log::warn!("prescreen listener: {e}");
                }
            }),
        )?;
        Ok(Arc::new(Self { inner }))
    }

    /// The model's labels, in the order of `Scored` scores.
    pub fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    /// Each label's moderation category under the policy (one of Amazon Rekognition's level-1
    /// names, as reports carry it), in `labels()` order; `nil` for a label the policy does not
    /// flag or gives no category.
    pub fn categories(&self) -> Vec<Option<String>> {
        self.inner
            .categories()
            .iter()
            .map(|c| c.map(|c| c.name().to_string()))
            .collect()
    }

    /// Offers an NV12 frame (bi-planar 4:2:0: a Y plane and an interleaved CbCr plane) with its
    /// row strides. The planes are read in place during the call; each is checked against its
    /// length. Throws `InvalidFrame` for a malformed frame (counted as rejected).
    pub fn submit_nv12(
        &self,
        y: &[u8],
        y_row_stride: u32,
        uv: &[u8],
        uv_row_stride: u32,
        info: FrameInfo,
    ) -> Result<SubmitResult, PrescreenError> {
        self.submit(info.nv12(y, y_row_stride, uv, uv_row_stride))
    }

    /// Offers a BGRA frame (`kCVPixelFormatType_32BGRA`) with its row stride.
    pub fn submit_bgra(
        &self,
        data: &[u8],
        row_stride: u32,
        info: FrameInfo,
    ) -> Result<SubmitResult, PrescreenError> {
        self.submit(info.bgra(data, row_stride))
    }

    /// Lends an NV12 frame in memory the caller keeps, instead of having it copied: a frame taken
    /// for scoring is read in place on the worker thread, so the call costs the same whatever the
    /// frame size. Swift apps call the extension's `submit(pixelBuffer:lend:...)`, which locks
    /// the `CVPixelBuffer`, passes its plane addresses and unlocks it from the lease.
    ///
    /// The `*_address` and `*_len` arguments describe raw memory: `len` bytes at each address must
    /// stay readable and unchanged until `lease.release()` is called, which happens exactly once
    /// (before this returns for a frame not taken, an error included). Throws as
    /// [`Screener::submit_nv12`].
    #[allow(clippy::too_many_arguments)]
    pub fn lend_nv12(
        &self,
        y_address: u64,
        y_len: u64,
        y_row_stride: u32,
        uv_address: u64,
        uv_len: u64,
        uv_row_stride: u32,
        info: FrameInfo,
        lease: Arc<dyn FrameLease>,
    ) -> Result<SubmitResult, PrescreenError> {
        self.lend(
            || {
                // SAFETY: the caller keeps the planes until the lease is released (see above).
                let (y, uv) = unsafe {
                    (
                        lent_plane(y_address, y_len, rt::PlaneKind::Y)?,
                        lent_plane(uv_address, uv_len, rt::PlaneKind::Chroma)?,
                    )
                };
                Ok(info.nv12(y, y_row_stride, uv, uv_row_stride))
            },
            lease,
        )
    }

    /// Lends a BGRA frame (`kCVPixelFormatType_32BGRA`) in memory the caller keeps: as
    /// [`Screener::lend_nv12`], one plane.
    pub fn lend_bgra(
        &self,
        address: u64,
        len: u64,
        row_stride: u32,
        info: FrameInfo,
        lease: Arc<dyn FrameLease>,
    ) -> Result<SubmitResult, PrescreenError> {
        self.lend(
            || {
                // SAFETY: the caller keeps the plane until the lease is released (see above).
                let data = unsafe { lent_plane(address, len, rt::PlaneKind::Packed)? };
                Ok(info.bgra(data, row_stride))
            },
            lease,
        )
    }

    /// Reports waiting for delivery, oldest first (also those an earlier screener left).
    pub fn pending_reports(&self) -> Result<Vec<PendingReport>, PrescreenError> {
        Ok(self
            .inner
            .pending_reports()?
            .into_iter()
            .map(|p| PendingReport {
                report_id: p.report_id,
                bytes: p.bytes,
                created_unix_millis: p.created_unix_millis,
            })
            .collect())
    }

    /// The JSON of a pending report, to upload with `URLSession` using its id as the idempotency
    /// key.
    pub fn read_report(&self, report_id: String) -> Result<Vec<u8>, PrescreenError> {
        Ok(self.inner.read_report(&report_id)?)
    }

    /// Removes a delivered report; false if no report had this id (acked already).
    pub fn ack(&self, report_id: String) -> Result<bool, PrescreenError> {
        Ok(self.inner.ack(&report_id)?)
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Result<ScreenerMetrics, PrescreenError> {
        Ok(MetricsSummary::from(self.inner.metrics()?).into())
    }

    /// Blocks until every frame taken so far has been scored and its events handed to the events
    /// thread (for replaying recorded streams and tests; a live camera never needs it).
    pub fn wait_idle(&self) -> Result<(), PrescreenError> {
        Ok(self.inner.wait_idle()?)
    }

    /// Scores the frame still waiting, closes open segments and stores their reports, delivers
    /// the last events and stops the threads. Returns the final metrics the first time, `None`
    /// after that.
    pub fn close(&self) -> Result<Option<ScreenerMetrics>, PrescreenError> {
        Ok(self.inner.close()?.map(|m| MetricsSummary::from(m).into()))
    }
}

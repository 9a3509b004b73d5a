//! The live stream engine: the host's camera thread hands over every frame, the engine decides which
//! to score, scores them on its own worker thread, and reports segments.
//!
//! `submit` never waits on inference: it checks the sampling rate, the frame's quality and the
//! scene gate, copies a frame
//! it takes into a reused buffer and puts it in a single latest-frame-wins slot. A host that can
//! lend its camera buffers ([`Engine::submit_buffer`], for Android's `Image` or iOS's
//! `CVPixelBuffer`) saves even the copy: the engine keeps the buffer instead, and drops it (so the
//! host can recycle it) as soon as the frame is scored, skipped or replaced. A frame still
//! waiting there when a newer one is taken is dropped (and counted); nothing queues. The worker
//! preprocesses, infers, and feeds the [`Segmenter`]; events go to the host's sink on the worker
//! thread. Every frame seen ends in exactly one counter:
//! `seen = rejected + rate_skipped + low_quality + gated + dropped + scored + failed`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{ColorMatrix, ColorRange, Frame, FrameError, PixelFormat, Plane, Rotation};
use crate::inference::model::Model;
use crate::policy::{Policy, QualityGate};
use crate::preprocess::backend::{ActiveBackend, Backend};
use crate::stream::sampling::{Gate, Sampler, Signature};
use crate::stream::screener::Screener;
use crate::stream::segmenter::{SegmentEvent, Segmenter};

/// A camera buffer lent to the engine with [`Engine::submit_buffer`]: the engine keeps it, and
/// reads its pixels on the worker thread, instead of copying them on the camera thread.
///
/// The engine drops the buffer once it is done with it: at once when the frame is skipped or
/// rejected, when a newer frame replaces it in the slot (on the submitting thread), or after the
/// frame is scored (on the worker thread). Dropping is the host's cue to recycle it (close the
/// `Image`, release the `CVPixelBuffer`). The engine holds at most two buffers between submits (one
/// waiting, one being scored) and a third during a `submit` that replaces one, so a camera pool
/// needs three buffers for the engine besides those the app keeps.
pub trait CameraBuffer: Send + 'static {
    /// The frame in this buffer. Called on the submitting thread and again on the worker thread;
    /// it must describe the same pixels every time (the buffer must not change while lent).
    fn frame(&self) -> std::result::Result<Frame<'_>, FrameError>;
}

/// What happened to a submitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Taken for scoring (it waits in the slot until the worker is free).
    Accepted,
    /// Taken for scoring; a frame that was still waiting was dropped for it.
    AcceptedDroppingPrevious,
    /// Not due at the current sampling rate.
    SkippedRate,
    /// Skipped by the scene gate: same scene as the last scored frame.
    SkippedGate,
    /// Skipped by the quality gate: too blurred or too small to judge (the policy's `quality`).
    SkippedQuality,
    /// Malformed: a frame the host could not build ([`Engine::reject`]), a lent buffer whose
    /// frame is invalid, or a timestamp beyond [`MAX_TIMESTAMP_US`].
    Rejected,
    /// The engine is finished or closed.
    Closed,
}

/// A downscaled picture of an evidence frame, upright (rotated and mirrored as the model saw it).
#[derive(Clone, PartialEq)]
pub struct Thumbnail {
    /// Frame timestamp.
    pub timestamp_us: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed 8-bit RGB, `width * 3` bytes per row.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Thumbnail {
    // Never print the pixels.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnail")
            .field("timestamp_us", &self.timestamp_us)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// What the engine tells the host, on the worker thread.
#[derive(Clone, Debug)]
pub enum Event {
    /// A segment opened, moved its peak, or closed. A closed segment comes with thumbnails of its
    /// evidence frames (best first, as many as the policy asks and were scored), for its report.
    Segment(SegmentEvent, Vec<Thumbnail>),
    /// Scores of one frame (only with [`EngineOptions::emit_scores`]).
    Scored {
        /// Frame timestamp.
        timestamp_us: i64,
        /// Probabilities in the model's label order.
        scores: Vec<f32>,
    },
    /// A frame could not be scored (counted in `failed`), or a report could not be stored; the
    /// engine goes on.
    Error(String),
    /// A closed segment's report is durably in the outbox (only with
    /// [`crate::reporting::outbox::reporting_sink`]); it follows the segment's `Closed` event.
    ReportQueued {
        /// The report's id (its idempotency key).
        report_id: String,
        /// The label of the segment.
        label: String,
    },
}

/// Engine options beyond the policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineOptions {
    /// Send an [`Event::Scored`] for every scored frame.
    pub emit_scores: bool,
    /// Where frames are preprocessed (default `auto`: a hardware GPU that passes the start-up
    /// self-test, else the CPU). A GPU failure mid-stream moves the worker to the CPU for the rest
    /// of the stream, without losing the frame; [`Metrics::gpu_fallbacks`] counts it.
    pub backend: Backend,
}

/// A latency histogram with log-spaced buckets (about 19% apart) from 1 µs to ~100 s.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
    sum_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; 110],
            count: 0,
            max_us: 0,
            sum_us: 0,
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        (((us.max(1) as f64).ln() / 1.19f64.ln()) as usize).min(109)
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[Self::bucket(us)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Sum of all samples.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket (at most the maximum).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let edge = 1.19f64.powi(i as i32 + 1).ceil() as u64;
                return Duration::from_micros(edge.min(self.max_us));
            }
        }
        self.max()
    }
}

/// Counters and latencies of an engine.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Frames submitted (including rejected ones).
    pub seen: u64,
    /// Malformed frames.
    pub rejected: u64,
    /// Frames not due at the sampling rate.
    pub rate_skipped: u64,
    /// Frames skipped by the scene gate.
    pub gated: u64,
    /// Frames skipped by the quality gate: too blurred or too small to judge.
    pub low_quality: u64,
    /// Frames taken but replaced in the slot by a newer one before the worker got to them.
    pub dropped: u64,
    /// Frames scored.
    pub scored: u64,
    /// Frames whose preprocessing or inference failed.
    pub failed: u64,
    /// Time `submit` took.
    pub submit: Histogram,
    /// Time to preprocess a frame.
    pub preprocess: Histogram,
    /// Time to infer a frame.
    pub infer: Histogram,
    /// Wall time from submitting the frame whose score crossed `enter` to its `SegmentOpened`.
    pub detection: Histogram,
    /// The backend preprocessing the worker's next frame (`None` before the worker started).
    pub backend: Option<ActiveBackend>,
    /// Times the GPU failed mid-stream and the worker moved to the CPU.
    pub gpu_fallbacks: u64,
}

impl Metrics {
    /// True when every frame seen is in exactly one other counter.
    pub fn accounted(&self) -> bool {
        self.seen
            == self.rejected
                + self.rate_skipped
                + self.low_quality
                + self.gated
                + self.dropped
                + self.scored
                + self.failed
    }
}

/// A frame copied out of the host's buffers (rows packed, YUV as I420 or NV12/NV21).
#[derive(Default)]
struct FrameBuf {
    data: Vec<u8>,
    format: Option<PixelFormat>,
    width: u32,
    height: u32,
    matrix: ColorMatrix,
    range: ColorRange,
    rotation: Rotation,
    mirror: bool,
    timestamp_us: i64,
    signature: Signature,
    submitted: Option<Instant>,
    /// A lent camera buffer holding the pixels instead of `data`.
    lent: Option<Box<dyn CameraBuffer>>,
}

impl FrameBuf {
    fn copy_from(&mut self, f: &Frame<'_>) {
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.data.clear();
        let copy_rows = |data: &mut Vec<u8>, p: &Plane<'_>, row_bytes: usize, rows: usize| {
            append_rows(data, p.data, p.row_stride, row_bytes, rows)
        };
        let planes = f.planes();
        let format = match f.format() {
            PixelFormat::Nv12 | PixelFormat::Nv21 => {
                copy_rows(&mut self.data, &planes[0], w, h);
                copy_rows(&mut self.data, &planes[1], 2 * cw, ch);
                f.format()
            }
            PixelFormat::I420 | PixelFormat::Yuv420 => {
                copy_rows(&mut self.data, &planes[0], w, h);
                for p in &planes[1..3] {
                    for r in 0..ch {
                        self.data.extend((0..cw).map(|x| p.data[p.offset(x, r)]));
                    }
                }
                PixelFormat::I420
            }
            packed => {
                copy_rows(
                    &mut self.data,
                    &planes[0],
                    w * packed.packed_bytes_per_pixel().unwrap_or(4),
                    h,
                );
                packed
            }
        };
        self.format = Some(format);
        (self.width, self.height) = (f.width(), f.height());
        (self.matrix, self.range) = (f.matrix(), f.range());
        (self.rotation, self.mirror, self.timestamp_us) =
            (f.rotation(), f.mirror(), f.timestamp_us());
    }

    fn frame(&self) -> std::result::Result<Frame<'_>, FrameError> {
        if let Some(lent) = &self.lent {
            return lent.frame();
        }
        let (w, h) = (self.width, self.height);
        let (wu, hu) = (w as usize, h as usize);
        let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
        let d = &self.data[..];
        let format = self.format.unwrap_or(PixelFormat::Rgb8);
        let f = match format {
            PixelFormat::Nv12 | PixelFormat::Nv21 => {
                let (y, c) = d.split_at((wu * hu).min(d.len()));
                let (y, c) = (Plane::new(y, wu), Plane::new(c, 2 * cw));
                if format == PixelFormat::Nv12 {
                    Frame::nv12(w, h, y, c)
                } else {
                    Frame::nv21(w, h, y, c)
                }
            }
            PixelFormat::I420 | PixelFormat::Yuv420 => {
                let (y, rest) = d.split_at((wu * hu).min(d.len()));
                let (u, v) = rest.split_at((cw * ch).min(rest.len()));
                Frame::i420(
                    w,
                    h,
                    Plane::new(y, wu),
                    Plane::new(u, cw),
                    Plane::new(v, cw),
                )
            }
            packed => Frame::packed(
                packed,
                w,
                h,
                d,
                wu * packed.packed_bytes_per_pixel().unwrap_or(4),
            ),
        }?;
        Ok(f.with_color(self.matrix, self.range)
            .with_orientation(self.rotation, self.mirror)
            .with_timestamp_us(self.timestamp_us))
    }
}

/// Appends `rows` rows of `row_bytes` from `src` (rows `stride` apart) to `dst`: one copy when the
/// rows are contiguous, else one per row.
fn append_rows(dst: &mut Vec<u8>, src: &[u8], stride: usize, row_bytes: usize, rows: usize) {
    if stride == row_bytes {
        dst.extend_from_slice(&src[..row_bytes * rows]);
    } else {
        for r in 0..rows {
            dst.extend_from_slice(&src[r * stride..r * stride + row_bytes]);
        }
    }
}

/// A submitted frame: borrowed (copied if taken) or in a buffer lent to the engine.
enum Pixels<'f, 'a> {
    Borrowed(&'f Frame<'a>),
    Lent(Box<dyn CameraBuffer>),
}

/// The camera side: sampling and spare buffers, behind one lock (submit may come from any thread).
struct Front {
    sampler: Sampler,
    quality: QualityGate,
    spares: Vec<FrameBuf>,
    signature: Signature,
}

/// The hand-over between camera side and worker.
struct Slot {
    waiting: Option<FrameBuf>,
    busy: bool,
    gate: Gate,
    finishing: bool,
    stopping: bool,
}

struct Shared {
    front: Mutex<Front>,
    slot: Mutex<Slot>,
    wake: Condvar,
    closed: AtomicBool,
    burst: AtomicBool,
    seen: AtomicU64,
    rejected: AtomicU64,
    rate_skipped: AtomicU64,
    gated: AtomicU64,
    low_quality: AtomicU64,
    dropped: AtomicU64,
    scored: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the engine unusable: the data behind these locks stays valid.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Largest frame timestamp magnitude accepted, in microseconds (about 285 years): differences of
/// timestamps, and of timestamps and policy durations, can never overflow. A frame beyond it is
/// rejected.
pub const MAX_TIMESTAMP_US: i64 = 1 << 53;

/// Niceness of the worker thread: inference yields to the host's camera and UI threads (as Android's
/// `THREAD_PRIORITY_BACKGROUND` does), so a busy core never delays `submit`.
pub const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`WORKER_NICE`] where the platform allows it
/// (Linux and Android; elsewhere it does nothing). The error says why it could not (e.g. a
/// sandbox), which is harmless: the worker then runs at the host's priority.
fn lower_thread_priority() -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: gettid and setpriority take no pointers; on Linux a task id names exactly the
        // calling thread, so only the worker is affected.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, WORKER_NICE)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives the engine's events on the worker thread.
pub type EventSink = Box<dyn FnMut(Event) + Send>;

/// The live stream engine. See the module docs.
pub struct Engine {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    labels: Vec<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts an engine on `model` under `policy`; `sink` receives events on the worker thread.
    ///
    /// Refuses ([`Error::PolicyLabel`]) a policy that flags a label the model does not have.
    pub fn start(
        model: &Model,
        policy: &Policy,
        options: EngineOptions,
        sink: EventSink,
    ) -> Result<Self> {
        let labels = model.manifest().output.labels.clone();
        policy.check_labels(&model.manifest().id, &labels)?;
        let shared = Arc::new(Shared {
            front: Mutex::new(Front {
                sampler: Sampler::new(&policy.sampling),
                quality: policy.quality,
                spares: Vec::new(),
                signature: Signature::default(),
            }),
            slot: Mutex::new(Slot {
                waiting: None,
                busy: false,
                gate: Gate::new(&policy.scene_gate),
                finishing: false,
                stopping: false,
            }),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            burst: AtomicBool::new(false),
            seen: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            rate_skipped: AtomicU64::new(0),
            gated: AtomicU64::new(0),
            low_quality: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            scored: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies: Mutex::new(Metrics::default()),
        });
        let (model, segmenter) = (model.clone(), Segmenter::new(policy, &labels));
        let evidence_size = policy.evidence.size;
        let worker_shared = shared.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("prescreen-worker".into())
            .spawn(move || {
                if let Err(e) = lower_thread_priority() {
                    log::debug!("could not lower the worker thread's priority: {e}");
                }
                // The session is opened on the thread that runs it.
                match Screener::with_backend(&model, options.backend) {
                    Ok(screener) => {
                        lock(&worker_shared.latencies).backend = Some(screener.active_backend());
                        let _ = ready_tx.send(Ok(()));
                        Worker {
                            shared: worker_shared,
                            screener,
                            segmenter,
                            thumbnails: Thumbnailer::new(evidence_size),
                            sink,
                            options,
                            crossings: VecDeque::new(),
                        }
                        .run();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::Inference(format!("cannot start the worker thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Inference("the worker thread died while starting".into()))??;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
            labels,
        })
    }

    /// Labels of the model, in score order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Offers a frame. Returns at once (never waits on inference) with what happened to it.
    ///
    /// A frame taken for scoring is copied (its rows, not the host's padding) so the host's buffer
    /// is free when this returns. To lend the buffer instead, see [`Engine::submit_buffer`].
    pub fn submit(&self, frame: &Frame<'_>) -> Submitted {
        self.submit_from(Pixels::Borrowed(frame))
    }

    /// Offers a frame in a camera buffer the engine may keep (see [`CameraBuffer`]): no copy, so
    /// `submit` costs the same whatever the frame size. A buffer whose frame is malformed is
    /// counted as rejected and dropped.
    pub fn submit_buffer(&self, buffer: Box<dyn CameraBuffer>) -> Submitted {
        self.submit_from(Pixels::Lent(buffer))
    }

    fn submit_from(&self, pixels: Pixels<'_, '_>) -> Submitted {
        let started = Instant::now();
        let s = &*self.shared;
        s.seen.fetch_add(1, Ordering::Relaxed);
        let outcome = self.offer(pixels, started);
        let counter = match outcome {
            Submitted::SkippedRate => Some(&s.rate_skipped),
            Submitted::SkippedGate => Some(&s.gated),
            Submitted::SkippedQuality => Some(&s.low_quality),
            Submitted::Closed | Submitted::Rejected => Some(&s.rejected),
            _ => None,
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        lock(&s.latencies).submit.record(started.elapsed());
        outcome
    }

    fn offer(&self, pixels: Pixels<'_, '_>, started: Instant) -> Submitted {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Submitted::Closed;
        }
        let lent_frame;
        let frame = match &pixels {
            Pixels::Borrowed(f) => *f,
            Pixels::Lent(buffer) => match buffer.frame() {
                Ok(f) => {
                    lent_frame = f;
                    &lent_frame
                }
                Err(e) => {
                    log::debug!("lent camera buffer rejected: {e}");
                    return Submitted::Rejected;
                }
            },
        };
        let t = frame.timestamp_us();
        if !(-MAX_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&t) {
            log::debug!("frame rejected: timestamp outside ±{MAX_TIMESTAMP_US} µs");
            return Submitted::Rejected;
        }
        let mut front = lock(&s.front);
        let burst = s.burst.load(Ordering::Relaxed);
        front.sampler.set_burst(burst);
        if !front.sampler.due(t) {
            return Submitted::SkippedRate;
        }
        let mut signature = std::mem::take(&mut front.signature);
        let quality = signature.compute(frame);
        // A frame too blurred or too small to judge is never evidence, at any rate: not scored,
        // it neither opens nor extends a segment. Not taken either, so the next frame is due.
        if front.quality.rejects(&quality) {
            front.signature = signature;
            return Submitted::SkippedQuality;
        }
        // The gate only saves work while nothing is happening: while a label is uncertain or a
        // segment is forming or open, every due frame is scored (a still picture of flagged content
        // must keep being scored to reach the minimum duration and to end its segment on time).
        if !burst && lock(&s.slot).gate.unchanged(t, &signature) {
            front.signature = signature;
            return Submitted::SkippedGate;
        }
        front.sampler.taken(t);
        let mut buf = front.spares.pop().unwrap_or_default();
        match pixels {
            Pixels::Borrowed(f) => buf.copy_from(f),
            Pixels::Lent(buffer) => {
                buf.timestamp_us = t;
                buf.lent = Some(buffer);
            }
        }
        buf.signature = signature;
        buf.submitted = Some(started);
        let replaced = {
            let mut slot = lock(&s.slot);
            if slot.finishing || slot.stopping {
                buf.lent = None;
                front.spares.push(buf);
                return Submitted::Closed;
            }
            slot.waiting.replace(buf)
        };
        s.wake.notify_all();
        match replaced {
            Some(mut old) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                front.signature = std::mem::take(&mut old.signature);
                let lent = old.lent.take();
                front.spares.push(old);
                // The host's buffer goes back outside the engine's locks.
                drop(front);
                drop(lent);
                Submitted::AcceptedDroppingPrevious
            }
            None => Submitted::Accepted,
        }
    }

    /// Counts a frame the host could not even build (its `FrameError` went to the caller).
    pub fn reject(&self, _error: FrameError) -> Submitted {
        self.shared.seen.fetch_add(1, Ordering::Relaxed);
        self.shared.rejected.fetch_add(1, Ordering::Relaxed);
        Submitted::Rejected
    }

    /// Blocks until no frame waits and the worker is idle: every frame taken so far has been scored
    /// (or has failed) and its events delivered. For replaying recorded streams frame by frame and
    /// for tests; a live camera never needs it.
    pub fn wait_idle(&self) {
        let mut slot = lock(&self.shared.slot);
        while (slot.waiting.is_some() || slot.busy) && !slot.stopping {
            slot = self
                .shared
                .wake
                .wait(slot)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A snapshot of the counters and latencies.
    pub fn metrics(&self) -> Metrics {
        let s = &*self.shared;
        let mut m = lock(&s.latencies).clone();
        m.seen = s.seen.load(Ordering::Acquire);
        m.rejected = s.rejected.load(Ordering::Acquire);
        m.rate_skipped = s.rate_skipped.load(Ordering::Acquire);
        m.gated = s.gated.load(Ordering::Acquire);
        m.low_quality = s.low_quality.load(Ordering::Acquire);
        m.dropped = s.dropped.load(Ordering::Acquire);
        m.scored = s.scored.load(Ordering::Acquire);
        m.failed = s.failed.load(Ordering::Acquire);
        m
    }

    /// Scores the frame still waiting, closes open segments (their events reach the sink before this
    /// returns), stops the worker and returns the final metrics. Later submits return `Closed`;
    /// calling it again only returns the metrics.
    pub fn finish(&self) -> Metrics {
        self.stop(true);
        self.metrics()
    }

    fn stop(&self, flush: bool) {
        self.shared.closed.store(true, Ordering::Release);
        {
            let mut slot = lock(&self.shared.slot);
            if flush {
                slot.finishing = true;
            } else {
                slot.stopping = true;
            }
        }
        self.shared.wake.notify_all();
        let worker = lock(&self.worker).take();
        if let Some(worker) = worker {
            if worker.join().is_err() {
                log::error!("prescreen worker thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    /// Stops the worker without scoring what waits or closing segments (use [`Engine::finish`]).
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// How many spare buffers the camera side keeps; see [`keep_spares`].
const SPARES: usize = 2;

/// Makes sure the camera side finds [`SPARES`] spare buffers with room for `bytes`, allocated and
/// touched here (on the worker) rather than in `submit` (a first write to fresh pages costs page
/// faults). While the worker scores one buffer and another waits in the slot, `submit` fills a
/// third and swaps it in, and the one it replaces becomes a spare only after that. So `submit`
/// needs two spares to find one ready once the first frame has been taken. Spares too small for
/// `bytes` (the stream changed resolution) are replaced; larger ones are kept.
fn keep_spares(front: &Mutex<Front>, bytes: usize) {
    loop {
        let missing = {
            let front = lock(front);
            front.spares.len() < SPARES || front.spares.iter().any(|s| s.data.capacity() < bytes)
        };
        if !missing {
            return;
        }
        // Not `vec![0; n]`: calloc'd pages are mapped lazily and would fault in `submit`.
        let mut data = Vec::with_capacity(bytes);
        data.resize(bytes, 1u8);
        let spare = FrameBuf {
            data,
            ..FrameBuf::default()
        };
        let mut front = lock(front);
        front.spares.retain(|s| s.data.capacity() >= bytes);
        if front.spares.len() < SPARES {
            front.spares.push(spare);
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    screener: Screener,
    segmenter: Segmenter,
    thumbnails: Thumbnailer,
    sink: EventSink,
    options: EngineOptions,
    /// Recent scored frames: (timestamp, when submitted), to time detections.
    crossings: VecDeque<(i64, Instant)>,
}

impl Worker {
    fn run(mut self) {
        let mut events = Vec::new();
        let mut last_t = 0;
        loop {
            let (mut buf, finishing) = {
                let mut slot = lock(&self.shared.slot);
                loop {
                    if slot.stopping {
                        return;
                    }
                    if let Some(buf) = slot.waiting.take() {
                        slot.gate.scored(buf.timestamp_us, buf.signature.clone());
                        slot.busy = true;
                        break (Some(buf), false);
                    }
                    if slot.finishing {
                        break (None, true);
                    }
                    slot = self
                        .shared
                        .wake
                        .wait(slot)
                        .unwrap_or_else(|p| p.into_inner());
                }
            };
            if finishing {
                self.segmenter.finish(last_t, &mut events);
                self.emit(&mut events);
                self.shared.wake.notify_all();
                return;
            }
            if let Some(buf) = buf.as_mut() {
                keep_spares(&self.shared.front, buf.data.len());
                last_t = last_t.max(buf.timestamp_us);
                self.score(buf, &mut events);
            }
            if let Some(mut buf) = buf {
                // The host's buffer goes back now, outside the engine's locks.
                drop(buf.lent.take());
                lock(&self.shared.front).spares.push(buf);
            }
            lock(&self.shared.slot).busy = false;
            self.shared.wake.notify_all();
        }
    }

    fn score(&mut self, buf: &FrameBuf, events: &mut Vec<SegmentEvent>) {
        let s = &*self.shared;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match buf.frame() {
            Ok(frame) => self.screener.screen(&frame),
            Err(e) => Err(Error::Frame(e)),
        }));
        let screened = match result {
            Ok(Ok(screened)) => screened,
            Ok(Err(e)) => return self.fail(e.to_string()),
            Err(_) => return self.fail("preprocessing or inference panicked".into()),
        };
        s.scored.fetch_add(1, Ordering::Relaxed);
        {
            let mut m = lock(&s.latencies);
            m.preprocess.record(screened.preprocess);
            m.infer.record(screened.infer);
            m.backend = Some(self.screener.active_backend());
            m.gpu_fallbacks = self.screener.preprocessor().fallbacks();
        }
        let t = buf.timestamp_us;
        if let Some(at) = buf.submitted {
            self.crossings.push_back((t, at));
            if self.crossings.len() > 256 {
                self.crossings.pop_front();
            }
        }
        if self.options.emit_scores {
            (self.sink)(Event::Scored {
                timestamp_us: t,
                scores: screened.scores.probabilities.clone(),
            });
        }
        self.segmenter
            .observe(t, &screened.scores.probabilities, events);
        self.shared
            .burst
            .store(self.segmenter.wants_burst(), Ordering::Relaxed);
        if self.segmenter.evidence_wanted().any(|w| w == t) {
            if let Ok(frame) = buf.frame() {
                self.thumbnails.keep(&frame);
            }
        }
        self.emit(events);
        // Forget pictures no forming or open segment still wants (closed ones took theirs).
        let wanted: Vec<i64> = self.segmenter.evidence_wanted().collect();
        self.thumbnails.retain(&wanted);
    }

    fn fail(&mut self, message: String) {
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        log::warn!("frame not scored: {message}");
        (self.sink)(Event::Error(message));
    }

    fn emit(&mut self, events: &mut Vec<SegmentEvent>) {
        for e in events.drain(..) {
            if let SegmentEvent::Opened(seg) = &e {
                if let Some(&(_, at)) = self.crossings.iter().find(|(t, _)| *t == seg.crossed_us) {
                    lock(&self.shared.latencies).detection.record(at.elapsed());
                }
            }
            let thumbnails = match &e {
                SegmentEvent::Closed(seg) => self.thumbnails.take(&seg.evidence),
                _ => Vec::new(),
            };
            (self.sink)(Event::Segment(e, thumbnails));
        }
    }
}

/// Keeps upright RGB thumbnails of evidence frames, made with the CPU preprocessor.
struct Thumbnailer {
    size: u32,
    preprocessor: Option<(u32, u32, crate::preprocess::CpuPreprocessor)>,
    tensor: Vec<f32>,
    kept: Vec<Thumbnail>,
}

impl Thumbnailer {
    fn new(size: u32) -> Self {
        Self {
            size,
            preprocessor: None,
            tensor: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The thumbnail size for an upright picture: longer side `size`, aspect ratio kept.
    fn dims(&self, w: u32, h: u32) -> (u32, u32) {
        let s = self.size as f64 / w.max(h) as f64;
        (
            ((w as f64 * s).round() as u32).max(1),
            ((h as f64 * s).round() as u32).max(1),
        )
    }

    fn keep(&mut self, frame: &Frame<'_>) {
        let (uw, uh) = frame.upright_size();
        let (tw, th) = self.dims(uw, uh);
        if !matches!(&self.preprocessor, Some((w, h, _)) if (*w, *h) == (tw, th)) {
            let spec = crate::manifest::InputSpec::upright_rgb(tw, th);
            self.preprocessor = Some((tw, th, crate::preprocess::CpuPreprocessor::new(&spec)));
        }
        let Some((_, _, pre)) = self.preprocessor.as_mut() else {
            return;
        };
        self.tensor.resize(tw as usize * th as usize * 3, 0.0);
        if pre.run(frame, &mut self.tensor).is_err() {
            return;
        }
        let rgb = self
            .tensor
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        self.kept.push(Thumbnail {
            timestamp_us: frame.timestamp_us(),
            width: tw,
            height: th,
            rgb,
        });
    }

    fn retain(&mut self, wanted: &[i64]) {
        self.kept.retain(|t| wanted.contains(&t.timestamp_us));
    }

    /// The thumbnails of `evidence` (best first), removed from the store.
    fn take(&mut self, evidence: &[(i64, f32)]) -> Vec<Thumbnail> {
        evidence
            .iter()
            .filter_map(|(t, _)| {
                let i = self.kept.iter().position(|k| k.timestamp_us == *t)?;
                Some(self.kept.swap_remove(i))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Counts, sums and the maximum of recorded samples. Fails if `record` dropped the sample or
    /// one of its counters, or if `count`, `total` or `max` returned a constant.
    #[test]
    fn a_histogram_counts_sums_and_keeps_the_maximum() {
        let mut h = Histogram::default();
        for us in [3, 10_000, 250] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 3);
        assert_eq!(h.total(), Duration::from_micros(10_253));
        assert_eq!(h.max(), Duration::from_millis(10));
    }

    /// A quantile is the sample's value rounded up to its bucket's upper edge: never below the
    /// true quantile, at most 19 % above it, and never above the maximum. 100 samples: 50 of
    /// 100 µs, 49 of 1 ms, one of 50 ms. Fails if the bucket index, the rank, the running count,
    /// its comparison or the edge changed, or if an empty histogram's guard was inverted.
    #[test]
    fn quantiles_round_up_to_their_bucket_by_at_most_19_percent() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        for (us, n) in [(100u64, 50), (1_000, 49), (50_000, 1)] {
            for _ in 0..n {
                h.record(Duration::from_micros(us));
            }
        }
        let within = |q: f64, true_us: u64| {
            let got = h.quantile(q).as_micros() as u64;
            assert!(
                true_us <= got && got * 100 <= true_us * 119,
                "q {q}: {got} us for {true_us} us"
            );
        };
        within(0.0, 100);
        within(0.5, 100);
        within(0.51, 1_000);
        within(0.98, 1_000);
        assert_eq!(h.quantile(1.0), Duration::from_millis(50));
    }

    /// `accounted` holds when every frame seen is in exactly one of the seven outcome counters,
    /// whichever it is, and fails when one is missing or counted twice. Fails if a counter left
    /// the sum, a `+` became `-`, or the `==` was inverted.
    #[test]
    fn every_outcome_counter_takes_part_in_the_accounting() {
        let outcomes: [fn(&mut Metrics) -> &mut u64; 7] = [
            |m| &mut m.rejected,
            |m| &mut m.rate_skipped,
            |m| &mut m.low_quality,
            |m| &mut m.gated,
            |m| &mut m.dropped,
            |m| &mut m.scored,
            |m| &mut m.failed,
        ];
        assert!(Metrics::default().accounted());
        for (i, counter) in outcomes.iter().enumerate() {
            let mut m = Metrics {
                seen: 3,
                ..Metrics::default()
            };
            *counter(&mut m) = 2;
            *outcomes[(i + 1) % 7](&mut m) = 1;
            assert!(m.accounted(), "counter {i}");
            m.seen = 2;
            assert!(!m.accounted(), "counter {i} seen 2");
            m.seen = 4;
            assert!(!m.accounted(), "counter {i} seen 4");
        }
    }

    /// A thumbnail's debug form names its time and size and never prints its pixels. Fails if the
    /// `Debug` impl printed nothing.
    #[test]
    fn a_thumbnails_debug_form_has_no_pixels() {
        let t = Thumbnail {
            timestamp_us: 1_234_567,
            width: 2,
            height: 1,
            rgb: vec![201, 202, 203, 204, 205, 206],
        };
        let text = format!("{t:?}");
        assert!(text.starts_with("Thumbnail"), "{text}");
        for shown in ["1234567", "width: 2", "height: 1"] {
            assert!(text.contains(shown), "{text}");
        }
        assert!(!text.contains("201") && !text.contains("rgb"), "{text}");
    }

    /// `lower_thread_priority` really sets the calling thread's niceness to [`WORKER_NICE`] and
    /// says so. Raising one's own niceness is always allowed, so it must succeed unless the
    /// thread already runs nicer than that (lowering it back needs a privilege). Fails if the
    /// function did nothing or reported success as failure.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_worker_priority_is_lowered_to_worker_nice() {
        std::thread::spawn(|| {
            // SAFETY: gettid and getpriority take no pointers.
            let nice = || unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            };
            let before = nice();
            let lowered = lower_thread_priority();
            if before <= WORKER_NICE {
                assert!(lowered.is_ok(), "{lowered:?}");
            }
            let want = if lowered.is_ok() { WORKER_NICE } else { before };
            assert_eq!(nice(), want, "niceness {before} before, {lowered:?}");
        })
        .join()
        .unwrap();
    }

    /// Spare buffers of `capacities` behind the camera side's lock.
    fn front_with(capacities: &[usize]) -> Mutex<Front> {
        let sampling = crate::policy::Sampling {
            base_fps: 2.0,
            burst_fps: 6.0,
        };
        Mutex::new(Front {
            sampler: Sampler::new(&sampling),
            quality: QualityGate::default(),
            spares: capacities
                .iter()
                .map(|&n| FrameBuf {
                    data: Vec::with_capacity(n),
                    ..FrameBuf::default()
                })
                .collect(),
            signature: Signature::default(),
        })
    }

    fn spare_capacities(front: &Mutex<Front>) -> Vec<usize> {
        let mut c: Vec<usize> = lock(front)
            .spares
            .iter()
            .map(|s| s.data.capacity())
            .collect();
        c.sort_unstable();
        c
    }

    /// The worker keeps exactly [`SPARES`] spares with room for the frame size: it makes them
    /// when there are none (filled, so their pages are touched), replaces the ones too small,
    /// keeps larger ones, and leaves a surplus spare (a replaced buffer handed back) alone
    /// unless it is too small. Fails if `keep_spares` did nothing, if its count or size tests
    /// were inverted or joined by `&&`, or if it pushed a spare when two fit already.
    #[test]
    fn the_worker_keeps_two_spares_big_enough_for_the_frame() {
        let front = front_with(&[]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front).len(), SPARES);
        for s in &lock(&front).spares {
            assert!(s.data.capacity() >= 100 && s.data.len() == 100);
            assert!(
                s.data.iter().all(|&b| b == 1),
                "written, so its pages are mapped"
            );
        }
        // One spare: a second is made.
        let front = front_with(&[500]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front).len(), 2);
        assert_eq!(spare_capacities(&front)[1], 500);
        // Too small for a larger frame: both replaced.
        let front = front_with(&[10, 10]);
        keep_spares(&front, 100);
        let c = spare_capacities(&front);
        assert!(c.len() == 2 && c.iter().all(|&n| n >= 100), "{c:?}");
        // Larger than needed: kept as they are.
        let front = front_with(&[400, 300]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front), [300, 400]);
        // Two that fit and one too small: the small one goes, no third is made.
        let front = front_with(&[200, 10, 300]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front), [200, 300]);
        // Three that fit: a surplus is not trimmed.
        let front = front_with(&[200, 300, 400]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front), [200, 300, 400]);
    }

    /// A thumbnail's size: longer side `size`, aspect ratio kept (rounded, never below one
    /// pixel), small pictures blown up. Fails if the scale or either side's product changed.
    #[test]
    fn thumbnails_keep_the_aspect_ratio_at_the_evidence_size() {
        let t = Thumbnailer::new(64);
        for (w, h, want) in [
            (640, 480, (64, 48)),
            (480, 640, (48, 64)),
            (100, 30, (64, 19)),
            (32, 32, (64, 64)),
            (1000, 3, (64, 1)),
        ] {
            assert_eq!(t.dims(w, h), want, "{w}x{h}");
        }
    }

    /// Thumbnails are made upright in the picture's colours, forgotten by `retain` unless
    /// wanted, and handed over by `take` (exactly the evidence's, in its order, removed from
    /// the store). Fails if `keep`, `retain` or `take` did nothing, if `keep` sized its tensor
    /// wrongly or never made its preprocessor, or if `take` matched the wrong time.
    #[test]
    fn thumbnails_are_kept_upright_and_handed_over_once() {
        let mut store = Thumbnailer::new(32);
        let (w, h) = (40u32, 20u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 100, 50]).collect();
        for (t, rotation) in [(10, Rotation::R0), (20, Rotation::R90), (30, Rotation::R0)] {
            let f = Frame::packed(PixelFormat::Rgb8, w, h, &rgb, w as usize * 3)
                .unwrap()
                .with_orientation(rotation, false)
                .with_timestamp_us(t);
            store.keep(&f);
        }
        let kept: Vec<(i64, u32, u32)> = store
            .kept
            .iter()
            .map(|k| (k.timestamp_us, k.width, k.height))
            .collect();
        assert_eq!(kept, [(10, 32, 16), (20, 16, 32), (30, 32, 16)]);
        for k in &store.kept {
            assert_eq!(k.rgb.len(), (k.width * k.height * 3) as usize);
            assert!(k.rgb.chunks(3).all(|p| p == [200, 100, 50]), "{k:?}");
        }
        store.retain(&[30, 20, 99]);
        let evidence = [(30, 0.9), (77, 0.8), (20, 0.7)];
        let taken: Vec<i64> = store
            .take(&evidence)
            .iter()
            .map(|k| k.timestamp_us)
            .collect();
        assert_eq!(taken, [30, 20]);
        assert!(store.kept.is_empty(), "taken thumbnails leave the store");
        assert!(store.take(&evidence).is_empty());
    }

    proptest! {
        /// The plane copy gives exactly the rows' bytes, for any stride, row length and offset.
        #[test]
        fn append_rows_equals_a_plain_copy(
            row_bytes in 1usize..3000,
            pad in 0usize..40,
            rows in 1usize..400,
            prefix in 0usize..40,
            seed in any::<u8>(),
        ) {
            let stride = row_bytes + pad;
            let src: Vec<u8> = (0..stride * rows).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let mut dst = vec![7u8; prefix];
            append_rows(&mut dst, &src, stride, row_bytes, rows);
            let mut expected = vec![7u8; prefix];
            for r in 0..rows {
                expected.extend_from_slice(&src[r * stride..r * stride + row_bytes]);
            }
            prop_assert_eq!(dst, expected);
        }
    }
}

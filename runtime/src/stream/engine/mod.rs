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

mod buffers;
mod metrics;
mod thumbnails;
mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::frame::{Frame, FrameError};
use crate::inference::model::Model;
use crate::policy::Policy;
use crate::preprocess::backend::Backend;
use crate::stream::sampling::{Gate, Sampler, Signature};
use crate::stream::scorer::Scorer;
use crate::stream::segmenter::{SegmentEvent, Segmenter};

use buffers::{FrameBuf, Front, Pixels};
pub use metrics::{Histogram, Metrics};
pub use thumbnails::Thumbnail;
use thumbnails::Thumbnailer;
use worker::Worker;

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
                match Scorer::new(&model, options.backend) {
                    Ok(scorer) => {
                        lock(&worker_shared.latencies).backend = Some(scorer.active_backend());
                        let _ = ready_tx.send(Ok(()));
                        Worker {
                            shared: worker_shared,
                            scorer,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

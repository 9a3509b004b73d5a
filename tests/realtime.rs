//! The camera thread never waits on inference: 1080p NV12 frames submitted in real time at 30 and
//! 240 fps while the real open_nsfw model takes tens of milliseconds per frame.
//!
//! This file is its own test binary on purpose: it measures `submit` latency, so nothing else of the
//! suite runs beside it (cargo runs test binaries one after another).
//!
//! Two ways to hand a frame over, both measured:
//! * lent buffers (`submit_buffer`, the zero-copy path for Android's `Image` and iOS's
//!   `CVPixelBuffer`): the camera's buffer goes to the engine and comes back to the camera's pool
//!   when the engine drops it. `submit` does no per-pixel work beyond the scene signature, so its
//!   p99 must stay under 1 ms, the bound.
//! * borrowed frames (`submit`): a frame taken for scoring is copied (3.1 MB at 1080p NV12) before
//!   the camera's buffer goes back. That copy's median is ~0.5 ms on this project's 2-core dev
//!   machine while inference runs, and its p99 measured 0.44-0.80 ms on a quiet machine but 1.3 ms
//!   in one CI run on a loaded one: a sub-millisecond bound on a copy cannot be held on a shared
//!   machine, so this path asserts what it must never do, wait on inference (a 10 ms ceiling, under
//!   a fifth of one inference here), and prints its p99s.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prescreen::framegen::OwnedFrame;
use prescreen::stream::SampleStream;
use prescreen_runtime::engine::{CameraBuffer, Engine, EngineOptions, Submitted};
use prescreen_runtime::frame::{Frame, FrameError};
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::model::Model;
use prescreen_runtime::policy::Policy;

fn policy(base_fps: f64, burst_fps: f64) -> Policy {
    let text = std::fs::read_to_string(common::root().join("models/policies/default.toml"))
        .unwrap()
        .replacen("base_fps = 2.0", &format!("base_fps = {base_fps:.1}"), 1)
        .replacen("burst_fps = 6.0", &format!("burst_fps = {burst_fps:.1}"), 1);
    Policy::parse(&text).unwrap()
}

/// A camera's buffer pool: a lent buffer returns to it when the engine drops it.
type Pool = Arc<Mutex<VecDeque<OwnedFrame>>>;

/// A buffer of the pool, lent to the engine.
struct Pooled {
    frame: Option<OwnedFrame>,
    pool: Pool,
}

impl CameraBuffer for Pooled {
    fn frame(&self) -> Result<Frame<'_>, FrameError> {
        self.frame.as_ref().expect("held until dropped").frame()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(f) = self.frame.take() {
            self.pool.lock().unwrap().push_back(f);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Handover {
    Borrowed,
    Lent,
}

struct Outcome {
    p99: Duration,
    max: Duration,
    dropped: u64,
    scored: u64,
    rate_skipped: u64,
}

/// Submits `seconds` of frames at `fps`, paced by the wall clock as a camera would; returns the
/// submit latencies measured on this (the camera) thread and the engine's accounting.
fn stream_at(
    model: &Model,
    policy: &Policy,
    fps: u32,
    seconds: u32,
    handover: Handover,
) -> Outcome {
    let mut stream =
        SampleStream::new(common::root().join("models/photos"), 1920, 1080, 30, 0.25).unwrap();
    // Distinct 1080p frames, rendered before the clock starts (rendering is not the camera's job).
    let mut frames: Vec<_> = (0..stream.len().min(24))
        .map(|i| stream.frame(i * 5 % stream.len()).unwrap())
        .collect();
    let pool: Pool = Arc::new(Mutex::new(frames.clone().into()));
    let engine = Engine::start(model, policy, EngineOptions::default(), Box::new(|_| {})).unwrap();
    let n = fps * seconds;
    let period = Duration::from_secs(1) / fps;
    let mut latencies = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let due = start + period * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = i as i64 * 1_000_000 / fps as i64;
        let outcome = match handover {
            Handover::Borrowed => {
                let k = i as usize % frames.len();
                let f = &mut frames[k];
                f.timestamp_us = t;
                let frame = f.frame().unwrap();
                let t0 = Instant::now();
                let outcome = engine.submit(&frame);
                latencies.push(t0.elapsed());
                outcome
            }
            Handover::Lent => {
                // The engine holds at most three buffers: the pool of 24 never runs dry.
                let mut f = pool
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("a free camera buffer");
                f.timestamp_us = t;
                let buffer = Box::new(Pooled {
                    frame: Some(f),
                    pool: pool.clone(),
                });
                let t0 = Instant::now();
                let outcome = engine.submit_buffer(buffer);
                latencies.push(t0.elapsed());
                outcome
            }
        };
        assert_ne!(outcome, Submitted::Closed);
        assert_ne!(outcome, Submitted::Rejected);
    }
    let m = engine.finish();
    drop(engine);
    // Every lent buffer came back to the camera.
    assert_eq!(pool.lock().unwrap().len(), frames.len());
    assert!(m.accounted(), "{m:?}");
    assert_eq!(m.seen, n as u64);
    assert_eq!(
        m.seen,
        m.dropped + m.gated + m.rate_skipped + m.scored + m.rejected + m.failed
    );
    assert_eq!((m.rejected, m.failed), (0, 0), "{m:?}");
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    println!(
        "{handover:?} frames, {fps} fps for {seconds} s: submit p50 {:?} p99 {p99:?} max {:?} (engine histogram p99 {:?}); \
         {} scored, {} dropped, {} rate-skipped, {} gated; infer median {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        m.submit.quantile(0.99),
        m.scored,
        m.dropped,
        m.rate_skipped,
        m.gated,
        m.infer.quantile(0.5),
    );
    Outcome {
        p99,
        max: latencies[latencies.len() - 1],
        dropped: m.dropped,
        scored: m.scored,
        rate_skipped: m.rate_skipped,
    }
}

/// Streams at `fps` and checks the submit p99 against `bound`. A stream whose p99 misses the bound
/// is streamed once more, and the bound must hold in that second run: on a shared 2-core VM the
/// camera thread is sometimes descheduled for a millisecond or more while inference holds the other
/// core, and two such stalls in ~120 submits are a p99. An engine that waits on inference (tens of
/// milliseconds here) misses the bound in both runs.
fn within_bound(
    model: &Model,
    policy: &Policy,
    fps: u32,
    seconds: u32,
    handover: Handover,
    bound: Duration,
    what: &str,
) -> Outcome {
    let o = stream_at(model, policy, fps, seconds, handover);
    if o.p99 < bound {
        return o;
    }
    println!(
        "{handover:?}, {what}, {fps} fps: submit p99 {:?} (max {:?}) over {bound:?}; streaming again",
        o.p99, o.max
    );
    let again = stream_at(model, policy, fps, seconds, handover);
    assert!(
        again.p99 < bound,
        "{handover:?}, {what}, {fps} fps: submit p99 {:?} then {:?} (max {:?})",
        o.p99,
        again.p99,
        again.max
    );
    again
}

fn check(model: &Model, handover: Handover, bound: Duration) {
    // The product's configuration: the default policy at 30 and 240 fps.
    let default = policy(2.0, 6.0);
    for (fps, seconds) in [(30, 6), (240, 2)] {
        let o = within_bound(
            model,
            &default,
            fps,
            seconds,
            handover,
            bound,
            "default policy",
        );
        assert!(o.rate_skipped > 0 && o.scored > 0);
    }
    // Stress: every frame due, so every submit hands a frame over and the single slot is
    // contended. It must drop, never queue or block.
    let every_frame = policy(240.0, 240.0);
    for (fps, seconds) in [(30, 4), (240, 2)] {
        let o = within_bound(
            model,
            &every_frame,
            fps,
            seconds,
            handover,
            bound,
            "every frame due",
        );
        // Inference (tens of ms) cannot keep up with every frame: frames were dropped in the slot,
        // and the worker still scored steadily.
        assert!(o.dropped > 0 && o.scored > 0, "{fps} fps");
    }
}

/// One test, so the two runs never overlap (the harness runs tests of a binary in parallel).
/// The zero-copy path holds the bound, submit p99 under 1 ms at 30 and 240 fps; the
/// copying path never waits on inference.
#[test]
fn submit_never_blocks_the_camera_thread() {
    let model = Model::load_dir(common::model_dir(), Variant::Float).unwrap();
    check(&model, Handover::Lent, Duration::from_millis(1));
    check(&model, Handover::Borrowed, Duration::from_millis(10));
}

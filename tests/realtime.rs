//! The camera thread never waits on inference: 1080p NV12 frames submitted in real time at 30 and
//! 240 fps to an engine running the real open_nsfw model.
//!
//! What is asserted does not depend on how fast this machine is:
//! * under the default policy, the sampling rate skips frames and the worker scores some (both
//!   follow from the frames' timestamps alone);
//! * under contention made certain by construction: the event sink holds the worker thread (as a
//!   classifier slower than any frame interval would) for the whole stream, with every frame due.
//!   Each `submit` must still return, with the frame taken into the single slot and the one waiting
//!   there dropped: if `submit` waited on inference, the stream could not end while the worker is
//!   held. The engine holds at most three lent buffers at any time, and every frame is accounted.
//!
//! Two ways to hand a frame over: lent buffers (`submit_buffer`, the zero-copy path for Android's
//! `Image` and iOS's `CVPixelBuffer`) and borrowed frames (`submit`, which copies a frame it takes).
//! Submit latencies are printed here and measured by `cargo bench --bench engine`; a latency bound
//! would be a statement about the machine, not the engine.
//!
//! This file is its own test binary on purpose: nothing else of the suite runs beside it (cargo runs
//! test binaries one after another).

mod common;

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use prescreen::framegen::OwnedFrame;
use prescreen::stream::SampleStream;
use prescreen_runtime::frame::{Frame, FrameError};
use prescreen_runtime::inference::model::Model;
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::policy::Policy;
use prescreen_runtime::stream::engine::{
    CameraBuffer, Engine, EngineOptions, Event, EventSink, Metrics, Submitted,
};

fn policy(base_fps: f64, burst_fps: f64, gate: bool) -> Policy {
    let text = std::fs::read_to_string(common::root().join("models/policies/default.toml"))
        .unwrap()
        .replacen("base_fps = 2.0", &format!("base_fps = {base_fps:.1}"), 1)
        .replacen("burst_fps = 6.0", &format!("burst_fps = {burst_fps:.1}"), 1)
        // Both gates, the scene's and the quality's.
        .replace("enabled = true", &format!("enabled = {gate}"));
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

/// Holds the engine's worker inside its event sink until released: a classifier slower than
/// the whole stream, by construction.
#[derive(Default)]
struct Hold {
    released: Mutex<bool>,
    wake: Condvar,
}

impl Hold {
    /// A sink that signals `entered` and then blocks at the first scored frame until released.
    fn sink(self: &Arc<Self>, entered: mpsc::Sender<()>) -> EventSink {
        let hold = self.clone();
        Box::new(move |e| {
            if matches!(e, Event::Scored { .. }) {
                let _ = entered.send(());
                let mut released = hold.released.lock().unwrap();
                while !*released {
                    released = hold.wake.wait(released).unwrap();
                }
            }
        })
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }
}

/// What a stream did, seen from the camera thread and from the engine.
struct Outcome {
    metrics: Metrics,
    outcomes: Vec<Submitted>,
    /// Fewest buffers of the pool that were free during the stream (lent buffers only).
    min_free: usize,
}

impl Outcome {
    fn count(&self, which: Submitted) -> u64 {
        self.outcomes.iter().filter(|&&o| o == which).count() as u64
    }
}

/// The camera: 1080p frames of the sample stream, distinct pictures, in a pool of 24 buffers.
struct Camera {
    frames: Vec<OwnedFrame>,
    pool: Pool,
}

impl Camera {
    fn new() -> Self {
        let mut stream =
            SampleStream::new(common::root().join("models/photos"), 1920, 1080, 30, 0.25).unwrap();
        // Rendered before the clock starts (rendering is not the camera's job).
        let frames: Vec<_> = (0..stream.len().min(24))
            .map(|i| stream.frame(i * 5 % stream.len()).unwrap())
            .collect();
        let pool = Arc::new(Mutex::new(frames.clone().into()));
        Self { frames, pool }
    }

    fn free(&self) -> usize {
        self.pool.lock().unwrap().len()
    }

    /// Hands frame `i` (timestamp `t`) to the engine; returns the outcome and the submit time.
    fn submit(
        &mut self,
        engine: &Engine,
        i: usize,
        t: i64,
        handover: Handover,
    ) -> (Submitted, Duration) {
        match handover {
            Handover::Borrowed => {
                let k = i % self.frames.len();
                let f = &mut self.frames[k];
                f.timestamp_us = t;
                let frame = f.frame().unwrap();
                let t0 = Instant::now();
                let outcome = engine.submit(&frame);
                (outcome, t0.elapsed())
            }
            Handover::Lent => {
                let mut f = self
                    .pool
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("a free camera buffer: the engine holds at most three");
                f.timestamp_us = t;
                let buffer = Box::new(Pooled {
                    frame: Some(f),
                    pool: self.pool.clone(),
                });
                let t0 = Instant::now();
                let outcome = engine.submit_buffer(buffer);
                (outcome, t0.elapsed())
            }
        }
    }
}

/// Submits `seconds` of frames at `fps` to `engine`, paced by the wall clock as a camera would,
/// starting at timestamp `t0`; finishes the engine and returns what happened.
fn stream_at(
    camera: &mut Camera,
    engine: &Engine,
    fps: u32,
    seconds: u32,
    t0: i64,
    handover: Handover,
    label: &str,
) -> Outcome {
    let n = fps * seconds;
    let period = Duration::from_secs(1) / fps;
    let mut latencies = Vec::with_capacity(n as usize);
    let mut outcomes = Vec::with_capacity(n as usize);
    let mut min_free = camera.free();
    let start = Instant::now();
    for i in 0..n {
        let due = start + period * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = t0 + i as i64 * 1_000_000 / fps as i64;
        let (outcome, latency) = camera.submit(engine, i as usize, t, handover);
        assert!(
            !matches!(outcome, Submitted::Closed | Submitted::Rejected),
            "{label}: frame {i}: {outcome:?}"
        );
        latencies.push(latency);
        outcomes.push(outcome);
        min_free = min_free.min(camera.free());
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    println!(
        "{handover:?} frames, {label}, {fps} fps for {seconds} s: submit p50 {:?} p99 {p99:?} max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    Outcome {
        metrics: engine.metrics(),
        outcomes,
        min_free,
    }
}

/// Every frame is in exactly one counter, none malformed or failed, every lent buffer came back.
fn check_accounting(camera: &Camera, m: &Metrics, seen: u64) {
    assert!(m.accounted(), "{m:?}");
    assert_eq!(m.seen, seen, "{m:?}");
    assert_eq!((m.rejected, m.failed), (0, 0), "{m:?}");
    assert_eq!(
        camera.free(),
        camera.frames.len(),
        "lent buffers not returned"
    );
}

/// The default policy at 30 and 240 fps, the worker free: frames are skipped at the sampling rate
/// and scored, and every frame is accounted for.
fn default_policy(model: &Model, camera: &mut Camera, handover: Handover) {
    let default = policy(2.0, 6.0, true);
    for (fps, seconds) in [(30, 6), (240, 2)] {
        let engine =
            Engine::start(model, &default, EngineOptions::default(), Box::new(|_| {})).unwrap();
        let o = stream_at(camera, &engine, fps, seconds, 0, handover, "default policy");
        let m = engine.finish();
        drop(engine);
        check_accounting(camera, &m, (fps * seconds) as u64);
        assert!(m.rate_skipped > 0 && m.scored > 0, "{fps} fps: {m:?}");
        assert!(o.count(Submitted::SkippedRate) == m.rate_skipped, "{m:?}");
    }
}

/// Every frame due and no scene gate, with the worker held for the whole stream: every submit
/// returns, takes its frame and drops the one waiting; after the release, the waiting frame is
/// scored and everything is accounted.
fn held_worker(model: &Model, camera: &mut Camera, handover: Handover) {
    let every_frame = policy(240.0, 240.0, false);
    for (fps, seconds) in [(30, 4), (240, 2)] {
        let hold = Arc::new(Hold::default());
        let (entered_tx, entered) = mpsc::channel();
        let options = EngineOptions {
            emit_scores: true,
            ..EngineOptions::default()
        };
        let engine = Engine::start(model, &every_frame, options, hold.sink(entered_tx)).unwrap();
        // A first frame takes the worker into the sink, where it stays.
        assert_eq!(
            camera.submit(&engine, 0, 0, handover).0,
            Submitted::Accepted
        );
        entered
            .recv_timeout(Duration::from_secs(600))
            .expect("the worker scores the first frame");
        let o = stream_at(
            camera,
            &engine,
            fps,
            seconds,
            1_000_000,
            handover,
            "worker held",
        );
        // The stream ended while the worker was still held: no submit waited on it.
        assert!(!*hold.released.lock().unwrap());
        let n = (fps * seconds) as u64;
        assert_eq!(o.metrics.scored, 1, "{:?}", o.metrics);
        assert_eq!(o.count(Submitted::Accepted), 1, "{fps} fps");
        assert_eq!(o.count(Submitted::AcceptedDroppingPrevious), n - 1);
        assert_eq!(o.metrics.dropped, n - 1);
        if handover == Handover::Lent {
            // One buffer in the worker, one waiting, a third only inside a submit.
            assert!(
                o.min_free + 3 >= camera.frames.len(),
                "{} of {} buffers free",
                o.min_free,
                camera.frames.len()
            );
        }
        hold.release();
        let m = engine.finish();
        drop(engine);
        check_accounting(camera, &m, n + 1);
        assert_eq!((m.scored, m.dropped), (2, n - 1), "{m:?}");
    }
}

/// One test, so the runs never overlap (the harness runs tests of a binary in parallel).
#[test]
fn submit_never_blocks_the_camera_thread() {
    let model = Model::load_dir(
        common::model_dir(),
        Variant::Float,
        &prescreen_runtime::LoadOptions::default(),
    )
    .unwrap();
    let mut camera = Camera::new();
    for handover in [Handover::Lent, Handover::Borrowed] {
        default_policy(&model, &mut camera, handover);
        held_worker(&model, &mut camera, handover);
    }
}

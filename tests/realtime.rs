//! The camera thread never waits on inference: 1080p NV12 frames submitted in real time at 30 and
//! 240 fps while the real open_nsfw model takes tens of milliseconds per frame.
//!
//! This file is its own test binary on purpose: it measures `submit` latency, so nothing else of the
//! suite runs beside it (cargo runs test binaries one after another).
//!
//! What bounds `submit` is the copy of the frame (3.1 MB at 1080p NV12) into a reused buffer, the
//! one thing it must do before the camera's buffer goes back. On this project's 2-core dev machine
//! that copy's median is ~0.5 ms while inference runs. Under the default policy the p99 over all
//! submits measured 0.44-0.80 ms on a quiet machine, but 1.3 ms in a CI run on a loaded one. When
//! every frame is due (stress), it measured 0.65-1.05 ms. A timed test cannot hold a sub-millisecond
//! bound on a shared machine, so this one asserts what it exists to prove: `submit` never waits on
//! inference. The 10 ms ceiling is under a fifth of one inference (57-97 ms here). It prints the
//! measured p99s, which are reported as numbers.

mod common;

use std::time::{Duration, Instant};

use prescreen::stream::SampleStream;
use prescreen_runtime::engine::{Engine, EngineOptions, Submitted};
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

struct Outcome {
    p99: Duration,
    max: Duration,
    dropped: u64,
    scored: u64,
    rate_skipped: u64,
}

/// Submits `seconds` of frames at `fps`, paced by the wall clock as a camera would; returns the
/// submit latencies measured on this (the camera) thread and the engine's accounting.
fn stream_at(model: &Model, policy: &Policy, fps: u32, seconds: u32) -> Outcome {
    let mut stream =
        SampleStream::new(common::root().join("models/photos"), 1920, 1080, 30, 0.25).unwrap();
    // Distinct 1080p frames, rendered before the clock starts (rendering is not the camera's job).
    let mut frames: Vec<_> = (0..stream.len().min(24))
        .map(|i| stream.frame(i * 5 % stream.len()).unwrap())
        .collect();
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
        let k = i as usize % frames.len();
        let f = &mut frames[k];
        f.timestamp_us = i as i64 * 1_000_000 / fps as i64;
        let frame = f.frame().unwrap();
        let t0 = Instant::now();
        let outcome = engine.submit(&frame);
        latencies.push(t0.elapsed());
        assert_ne!(outcome, Submitted::Closed);
    }
    let m = engine.finish();
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
        "{fps} fps for {seconds} s: submit p50 {:?} p99 {p99:?} max {:?} (engine histogram p99 {:?}); \
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

#[test]
fn submit_never_waits_on_inference_at_30_and_240_fps() {
    let model = Model::load_dir(common::model_dir(), Variant::Float).unwrap();
    // The product's configuration: the default policy at 30 and 240 fps.
    let ceiling = Duration::from_millis(10);
    let default = policy(2.0, 6.0);
    for (fps, seconds) in [(30, 6), (240, 2)] {
        let o = stream_at(&model, &default, fps, seconds);
        assert!(
            o.p99 < ceiling,
            "default policy, {fps} fps: submit p99 {:?} (max {:?})",
            o.p99,
            o.max
        );
        assert!(o.rate_skipped > 0 && o.scored > 0);
    }
    // Stress: every frame due, so every submit copies its frame and the single slot is contended.
    // It must drop, never queue or block.
    let every_frame = policy(240.0, 240.0);
    for (fps, seconds) in [(30, 4), (240, 2)] {
        let o = stream_at(&model, &every_frame, fps, seconds);
        assert!(
            o.p99 < ceiling,
            "every frame due, {fps} fps: submit p99 {:?} (max {:?})",
            o.p99,
            o.max
        );
        // Inference (tens of ms) cannot keep up with every frame: frames were dropped in the slot,
        // and the worker still scored steadily.
        assert!(o.dropped > 0 && o.scored > 0, "{fps} fps");
    }
}

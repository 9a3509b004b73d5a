//! `submit` latency on the camera thread, 1080p NV12, with every frame due and the worker busy
//! (held in its event sink, as a classifier slower than the camera would keep it): each submit
//! takes its frame into the slot and drops the one waiting. `copy` is [`Engine::submit`] (the
//! frame's planes copied into a reused buffer); `lent` is [`Engine::submit_buffer`] (the camera's
//! buffer kept, no copy). tests/realtime.rs asserts what submit must do; this measures how fast.

use std::sync::{Arc, Condvar, Mutex};

use criterion::{criterion_group, criterion_main, Criterion};
use prescreen::framegen::OwnedFrame;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, Frame, FrameError, PixelFormat};
use prescreen_runtime::inference::model::Model;
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::policy::Policy;
use prescreen_runtime::stream::engine::{CameraBuffer, Engine, EngineOptions, Event};

struct Lent(OwnedFrame);

impl CameraBuffer for Lent {
    fn frame(&self) -> Result<Frame<'_>, FrameError> {
        self.0.frame()
    }
}

fn bench(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load_dir(
        root.join("models/redness"),
        Variant::Float,
        &prescreen_runtime::LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("test classifier not built ({e}); run `make model` first"));
    let text = std::fs::read_to_string(root.join("models/policies/redness.toml")).unwrap();
    let policy = Policy::parse(
        &text
            .replacen("base_fps = 5.0", "base_fps = 1000.0", 1)
            .replacen("burst_fps = 10.0", "burst_fps = 1000.0", 1)
            .replacen("enabled = true", "enabled = false", 1),
    )
    .unwrap();
    let held = Arc::new((Mutex::new(false), Condvar::new()));
    let hold = held.clone();
    let options = EngineOptions {
        emit_scores: true,
        ..EngineOptions::default()
    };
    let engine = Engine::start(
        &model,
        &policy,
        options,
        Box::new(move |e| {
            if matches!(e, Event::Scored { .. }) {
                let (released, wake) = &*hold;
                let mut r = released.lock().unwrap();
                while !*r {
                    r = wake.wait(r).unwrap();
                }
            }
        }),
    )
    .unwrap();
    let px: Vec<u8> = (0..1920 * 1080 * 3).map(|i| (i % 251) as u8).collect();
    let mut frame = OwnedFrame::from_rgb(
        &px,
        1920,
        1080,
        PixelFormat::Nv12,
        ColorMatrix::Bt709,
        ColorRange::Limited,
    )
    .unwrap();
    let mut t = 0i64;
    let mut group = c.benchmark_group("engine_submit_1080p_nv12");
    group.bench_function("copy", |b| {
        b.iter(|| {
            t += 1_000;
            frame.timestamp_us = t;
            engine.submit(&frame.frame().unwrap())
        })
    });
    group.bench_function("lent", |b| {
        b.iter_batched(
            || {
                t += 1_000;
                let mut f = frame.clone();
                f.timestamp_us = t;
                Box::new(Lent(f))
            },
            |buffer| engine.submit_buffer(buffer),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
    let (released, wake) = &*held;
    *released.lock().unwrap() = true;
    wake.notify_all();
    let m = engine.finish();
    assert!(m.accounted(), "{m:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);

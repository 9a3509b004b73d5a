//! Preprocessing benchmarks: camera frames (720p, 1080p; NV21, NV12, BGRA) to the model's input
//! tensor on the CPU and on the GPU, side by side (`preprocess_cpu/*`, `preprocess_gpu/*`). GPU
//! times include the plane upload and the tensor readback; `preprocess_gpu_ring/*` is the two-slot
//! pipelined API (frame N+1 uploads and runs while frame N is read back), per frame. Without a GPU
//! adapter the GPU groups are skipped with the reason printed. The OpenCV anchor for the same work
//! is benches/anchors.py (`make bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prescreen::framegen::OwnedFrame;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat};
use prescreen_runtime::manifest::{InputSpec, Manifest};
use prescreen_runtime::preprocess::gpu::{GpuContext, GpuPreprocessor};
use prescreen_runtime::preprocess::CpuPreprocessor;

/// A camera-like picture: smooth gradients and some texture.
fn picture(w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let t = ((x * 7 + y * 13) % 31) as u8;
            rgb.extend_from_slice(&[
                (x * 255 / w) as u8 ^ t,
                (y * 255 / h) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
    }
    rgb
}

const SIZES: [(u32, u32, &str); 2] = [(1280, 720, "720p"), (1920, 1080, "1080p")];
const FORMATS: [PixelFormat; 3] = [PixelFormat::Nv21, PixelFormat::Nv12, PixelFormat::Bgra8];

fn spec() -> InputSpec {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Manifest::load(root.join("models/open_nsfw"))
        .expect("manifest")
        .input
}

fn frames() -> Vec<(PixelFormat, &'static str, OwnedFrame)> {
    let mut all = Vec::new();
    for (w, h, label) in SIZES {
        let rgb = picture(w, h);
        for format in FORMATS {
            let owned =
                OwnedFrame::from_rgb(&rgb, w, h, format, ColorMatrix::Bt709, ColorRange::Limited)
                    .unwrap();
            all.push((format, label, owned));
        }
    }
    all
}

fn bench_gpu(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            println!("SKIPPING GPU BENCHMARKS: no GPU adapter ({e})");
            return;
        }
    };
    println!("GPU benchmarks on {}", ctx.adapter_name());
    let spec = spec();
    let mut pre = GpuPreprocessor::new(&ctx, &spec).expect("GPU preprocessor");
    let mut out = vec![0f32; spec.len()];
    let frames = frames();
    let mut group = c.benchmark_group("preprocess_gpu");
    group.sample_size(30);
    for (format, label, owned) in &frames {
        let frame = owned.frame().unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new(format.name(), label), &frame, |b, f| {
            b.iter(|| pre.run(f, &mut out).unwrap())
        });
    }
    group.finish();
    let mut group = c.benchmark_group("preprocess_gpu_ring");
    group.sample_size(30);
    for (format, label, owned) in &frames {
        let frame = owned.frame().unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new(format.name(), label), &frame, |b, f| {
            // Steady state: one frame always in flight; each iteration submits one and receives
            // the previous one.
            pre.submit(f).unwrap();
            b.iter(|| {
                pre.submit(f).unwrap();
                pre.receive(&mut out).unwrap();
            });
            pre.receive(&mut out).unwrap();
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let spec = spec();
    let mut pre = CpuPreprocessor::new(&spec);
    let mut out = vec![0f32; spec.len()];
    let mut group = c.benchmark_group("preprocess_cpu");
    group.sample_size(30);
    for (format, label, owned) in &frames() {
        let frame = owned.frame().unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new(format.name(), label), &frame, |b, f| {
            b.iter(|| pre.run(f, &mut out).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_gpu);
criterion_main!(benches);

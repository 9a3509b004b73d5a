//! Preprocessing benchmarks: camera frames (720p, 1080p; NV21, NV12, BGRA) to the model's input
//! tensor on the CPU. The OpenCV anchor for the same work is benches/anchors.py (`make bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prescreen::framegen::OwnedFrame;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat};
use prescreen_runtime::manifest::Manifest;
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

fn bench(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = Manifest::load(root.join("models/open_nsfw"))
        .expect("manifest")
        .input;
    let mut pre = CpuPreprocessor::new(&spec);
    let mut out = vec![0f32; spec.len()];
    let mut group = c.benchmark_group("preprocess_cpu");
    group.sample_size(30);
    for (w, h, label) in [(1280u32, 720u32, "720p"), (1920, 1080, "1080p")] {
        let rgb = picture(w, h);
        for format in [PixelFormat::Nv21, PixelFormat::Nv12, PixelFormat::Bgra8] {
            let owned =
                OwnedFrame::from_rgb(&rgb, w, h, format, ColorMatrix::Bt709, ColorRange::Limited)
                    .unwrap();
            let frame = owned.frame().unwrap();
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(format.name(), label), &frame, |b, f| {
                b.iter(|| pre.run(f, &mut out).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

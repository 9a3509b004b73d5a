//! Inference benchmarks with tract, batch 1: the float and int8 files of both models (open_nsfw and
//! nsfwjs's MobileNetV2) on their manifests' golden inputs, with one and two threads. The
//! side-by-side run against onnxruntime on the same files (same input, load time, memory, file
//! size, fidelity) is benches/side_by_side.py (`make bench`).

use criterion::{criterion_group, criterion_main, Criterion};
use prescreen_runtime::inference::model::{golden_input, LoadOptions, Model};
use prescreen_runtime::manifest::Variant;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("infer_tract");
    group.sample_size(20);
    for (name, threads) in ["open_nsfw", "nsfwjs"]
        .into_iter()
        .flat_map(|name| [(name, 1), (name, 2)])
    {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name);
        for variant in [Variant::Float, Variant::Int8] {
            let model = match Model::load_dir(
                &dir,
                variant,
                &LoadOptions {
                    threads,
                    ..LoadOptions::default()
                },
            ) {
                Ok(m) => m,
                Err(e) => panic!("{name} not available ({e}); run `make model nsfwjs` first"),
            };
            let mut runner = model.runner().unwrap();
            let m = model.manifest();
            golden_input(&m.golden.input, &m.input, runner.input_mut()).unwrap();
            group.bench_function(
                format!("{name}/{}/threads={threads}", variant.name()),
                |b| b.iter(|| runner.run().unwrap()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
